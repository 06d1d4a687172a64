"""Intel 8259A programmable interrupt controller pair plus the EISA ELCR registers.

Present only on Generation 1.  The machine always runs in APIC mode: the master's
INT output would reach LINT0 as ExtINT, which every APIC HAL masks, so this model
**never delivers an interrupt** to the CPU.  It keeps the full programming state
(ICW1-ICW4, IMR, ISR/IRR, OCW3 read selection, rotation, ELCR) so that a trace
and the tests can show exactly what a HAL programmed, and it latches request
lines handed to ``set_irq`` so that IRR reads are meaningful.

Ports: master 0x20 (command) / 0x21 (data), slave 0xA0 / 0xA1, ELCR 0x4D0 (IRQ
0-7) / 0x4D1 (IRQ 8-15).
"""

from __future__ import annotations

from ..bus import ByteIoDevice
from ..clock import VirtualClock
from ..trace import Trace

#: ELCR bits that are hard-wired to edge on a PC: IRQ 0, 1, 2 (master) and 8, 13 (slave).
_ELCR_FIXED = (0xF8, 0xDE)


class _Chip:
    """State of one 8259A."""

    def __init__(self, name: str, command_port: int) -> None:
        self.name = name
        self.command_port = command_port
        self.data_port = command_port + 1
        self.irr = 0
        self.isr = 0
        self.imr = 0
        self.lines = 0  # current input levels, for edge detection
        self.vector_base = 0
        self.icw1 = 0
        self.icw3 = 0
        self.icw4 = 0
        self.init_step = 0  # 0 = ready; 2, 3, 4 = next ICW expected
        self.initialized = False
        self.read_isr = False  # OCW3 RR/RIS: False reads IRR, True reads ISR
        self.poll = False
        self.special_mask = False
        self.rotate_on_aeoi = False
        self.lowest_priority = 7  # IR with the lowest priority; IR(lowest+1) is highest
        self.elcr = 0

    # -- priority helpers -------------------------------------------------------
    def _order(self) -> list[int]:
        """IR numbers from highest to lowest priority."""
        first = (self.lowest_priority + 1) & 7
        return [(first + i) & 7 for i in range(8)]

    def highest(self, bits: int) -> int | None:
        """Highest-priority IR set in ``bits``, or ``None``."""
        for ir in self._order():
            if bits & (1 << ir):
                return ir
        return None

    def pending(self) -> int | None:
        """IR the chip would present on INT (unmasked, not blocked by ISR), or ``None``."""
        candidates = self.irr & ~self.imr & 0xFF
        for ir in self._order():
            if self.isr & (1 << ir) and not self.special_mask:
                return None  # an equal or higher priority request is in service
            if candidates & (1 << ir):
                return ir
        return None


class Pic8259(ByteIoDevice):
    """The cascaded 8259A pair and ELCR (Gen1 only; never delivers in APIC mode).

    ``set_irq(line, level)`` latches ISA request lines into IRR (edge- or
    level-sensitive per ICW1.LTIM / ELCR) purely so that IRR/ISR reads reflect
    them; ``would_interrupt()`` tells what the INT pin would do.
    """

    name = "pic"

    def __init__(self, clock: VirtualClock, trace: Trace) -> None:
        self.clock = clock
        self.trace = trace
        self.master = _Chip("master", 0x20)
        self.slave = _Chip("slave", 0xA0)
        self.ports = (0x20, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1)

    # -- port interface (wide accesses are split into bytes by ByteIoDevice) -------
    def _chip(self, port: int) -> _Chip:
        return self.master if port in (0x20, 0x21) else self.slave

    def read_byte(self, port: int) -> int:
        """Read one 8-bit register."""
        if port in (0x4D0, 0x4D1):
            return self.master.elcr if port == 0x4D0 else self.slave.elcr
        chip = self._chip(port)
        if port == chip.data_port:
            return chip.imr
        if chip.poll:
            # A poll command turns the next command-port read into an acknowledge.
            chip.poll = False
            ir = chip.pending()
            if ir is None:
                return 0
            self._acknowledge(chip, ir)
            return 0x80 | ir
        return chip.isr if chip.read_isr else chip.irr

    def write_byte(self, port: int, value: int) -> None:
        """Write one 8-bit register (ICW/OCW decoding)."""
        if port in (0x4D0, 0x4D1):
            chip = self.master if port == 0x4D0 else self.slave
            chip.elcr = value & _ELCR_FIXED[0 if port == 0x4D0 else 1]
            return
        chip = self._chip(port)
        if port == chip.command_port:
            if value & 0x10:
                self._icw1(chip, value)
            elif value & 0x08:
                self._ocw3(chip, value)
            else:
                self._ocw2(chip, value)
            return
        # Data port: the next ICW while initialising, else OCW1 (the IMR).
        if chip.init_step == 2:
            chip.vector_base = value & 0xF8  # x86 mode: low three bits come from the IR number
            chip.init_step = 3 if not chip.icw1 & 0x02 else (4 if chip.icw1 & 0x01 else 0)
        elif chip.init_step == 3:
            chip.icw3 = value
            chip.init_step = 4 if chip.icw1 & 0x01 else 0
        elif chip.init_step == 4:
            chip.icw4 = value
            chip.init_step = 0
        else:
            chip.imr = value
            return
        if chip.init_step == 0:
            chip.initialized = True
            self.trace.record(
                "note",
                device=self.name,
                address=chip.command_port,
                value=chip.vector_base,
                detail=f"8259 {chip.name} initialised: vector base {chip.vector_base:#04x}, "
                f"ICW1 {chip.icw1:#04x} ICW3 {chip.icw3:#04x} ICW4 {chip.icw4:#04x}",
            )

    # -- command decoding -----------------------------------------------------------
    @staticmethod
    def _icw1(chip: _Chip, value: int) -> None:
        # ICW1 restarts initialisation: IMR cleared, IR7 lowest priority, special
        # mask mode off, status reads select IRR, edge detection re-armed.
        chip.icw1 = value
        chip.icw3 = 0
        chip.icw4 = 0
        chip.imr = 0
        chip.isr = 0
        chip.irr = 0
        chip.lowest_priority = 7
        chip.special_mask = False
        chip.read_isr = False
        chip.poll = False
        chip.rotate_on_aeoi = False
        chip.initialized = False
        chip.init_step = 2

    def _ocw2(self, chip: _Chip, value: int) -> None:
        command = value >> 5
        level = value & 7
        if command == 0b001:  # non-specific EOI
            ir = chip.highest(chip.isr)
            if ir is not None:
                chip.isr &= ~(1 << ir)
        elif command == 0b011:  # specific EOI
            chip.isr &= ~(1 << level)
        elif command == 0b101:  # rotate on non-specific EOI
            ir = chip.highest(chip.isr)
            if ir is not None:
                chip.isr &= ~(1 << ir)
                chip.lowest_priority = ir
        elif command == 0b111:  # rotate on specific EOI
            chip.isr &= ~(1 << level)
            chip.lowest_priority = level
        elif command == 0b110:  # set priority
            chip.lowest_priority = level
        elif command == 0b100:
            chip.rotate_on_aeoi = True
        elif command == 0b000:
            chip.rotate_on_aeoi = False
        # 0b010 is a no-op.

    @staticmethod
    def _ocw3(chip: _Chip, value: int) -> None:
        if value & 0x02:
            chip.read_isr = bool(value & 0x01)
        chip.poll = bool(value & 0x04)
        if value & 0x40:
            chip.special_mask = bool(value & 0x20)

    def _acknowledge(self, chip: _Chip, ir: int) -> None:
        chip.irr &= ~(1 << ir)
        if chip.icw4 & 0x02:  # automatic EOI
            if chip.rotate_on_aeoi:
                chip.lowest_priority = ir
        else:
            chip.isr |= 1 << ir

    # -- request lines --------------------------------------------------------------
    def set_irq(self, line: int, level: bool) -> None:
        """Drive ISA request ``line`` (0-15); latches IRR, never interrupts the CPU."""
        chip = self.master if line < 8 else self.slave
        bit = 1 << (line & 7)
        level_mode = bool(chip.icw1 & 0x08) or bool(chip.elcr & bit)
        was = bool(chip.lines & bit)
        if level:
            chip.lines |= bit
            if level_mode or not was:
                chip.irr |= bit
        else:
            chip.lines &= ~bit
            if level_mode:
                chip.irr &= ~bit
        if chip is self.slave:
            # The slave's INT output drives master IR2 (the cascade input).
            self.set_irq(2, self.slave.pending() is not None)

    def would_interrupt(self) -> bool:
        """Whether the master's INT pin would be asserted (informational only)."""
        return self.master.pending() is not None

    @property
    def imr(self) -> tuple[int, int]:
        """(master IMR, slave IMR)."""
        return self.master.imr, self.slave.imr


    # -- fast-forward (gen2sim.ffplan) ------------------------------------------------------------------
    def ff_state(self) -> tuple:
        """Everything an access or an IRQ line can change (see ``gen2sim.ffplan``)."""
        return tuple(tuple(sorted(vars(chip).items())) for chip in (self.master, self.slave))

    def ff_peek_byte(self, port: int) -> int | None:
        """IMR, ELCR, IRR/ISR are constant between line changes; a poll-mode read acknowledges, so it refuses."""
        if port not in (0x4D0, 0x4D1) and port == self._chip(port).command_port and self._chip(port).poll:
            return None
        return self.read_byte(port)  # no side effects outside poll mode
