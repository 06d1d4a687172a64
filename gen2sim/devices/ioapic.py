"""I/O APIC (82093AA-style, version 0x11, 24 pins) at 0xFEC00000.

Registers are reached indirectly: IOREGSEL (offset 0x00) selects, IOWIN (offset
0x10) reads or writes the selected 32-bit register.  Version 0x11 has no EOI
register (offset 0x40 exists from version 0x20 on), so level interrupts are
ended only through ``eoi(vector)``, which the local APIC calls on the EOI of a
level-triggered vector (``lapic.on_level_eoi``).

Indirect registers: 0x00 ID (bits 27:24, read/write), 0x01 version
(0x00170011: 24 entries, version 0x11), 0x02 arbitration ID (the ID, read-only),
0x10 + 2n / 0x11 + 2n redirection entry n low / high dword.  Entries power up
masked.

Pin levels: ``set_irq(gsi, level)`` takes the **physical** level of the input
line.  The entry's polarity bit (13, 1 = active low) turns it into the logical
assertion the rest of the logic uses, so a guest that programs the wrong
polarity sees what real hardware would show it (an idle line counts as
asserted).  ISA sources and the Hyper-V SCI are active high, so the platform
passes their output level unchanged.

Delivery: an unmasked edge-triggered pin delivers on each logical rising edge
(an edge that arrives while the pin is masked is lost); an unmasked
level-triggered pin delivers while asserted and remote IRR is clear, and sets
remote IRR until the EOI.  Fixed and lowest-priority entries are delivered with
``lapic.raise_vector(vector, level=...)`` when the destination (physical or
logical, 8-bit) names the one local APIC; other delivery modes (SMI, NMI, INIT,
ExtINT) are recorded as notes and not delivered.
"""

from __future__ import annotations

from ..clock import VirtualClock
from ..ffplan import Access, Plan
from ..trace import Trace

IOREGSEL, IOWIN, IOEOI = 0x00, 0x10, 0x40

RTE_MASKED = 1 << 16
RTE_LEVEL = 1 << 15
RTE_REMOTE_IRR = 1 << 14
RTE_ACTIVE_LOW = 1 << 13
RTE_DELIVERY_STATUS = 1 << 12
RTE_LOGICAL = 1 << 11
#: Writable bits of an entry's low dword (delivery status and remote IRR are read-only).
_RTE_LOW_WRITABLE = 0x0001_AFFF

_DELIVERY_NAMES = {0: "fixed", 1: "lowest-priority", 2: "SMI", 4: "NMI", 5: "INIT", 7: "ExtINT"}


class IoApic:
    """The platform's I/O APIC; routes GSIs to ``lapic`` (see the module docstring)."""

    name = "ioapic"

    def __init__(
        self,
        clock: VirtualClock,
        trace: Trace,
        lapic,
        ioapic_id: int = 0,
        base: int = 0xFEC0_0000,
        pins: int = 24,
        version: int = 0x11,
        gsi_base: int = 0,
        name: str = "ioapic",
    ) -> None:
        self.name = name
        self.gsi_base = gsi_base
        self.clock = clock
        self.trace = trace
        self.lapic = lapic
        self.ioapic_id = ioapic_id & 0xF
        self.base = base
        self.pins = pins
        self.version = version
        self.regsel = 0
        self.entries = [RTE_MASKED for _ in range(pins)]  # 64-bit redirection entries
        self.levels = [False] * pins  # physical line levels
        self._asserted = [False] * pins  # logical assertion after polarity
        self.deliveries = 0

    # -- registers ---------------------------------------------------------------------------------------
    def read_register(self, index: int) -> int:
        """Indirect register ``index`` (what IOWIN returns when IOREGSEL = index)."""
        if index == 0x00:
            return self.ioapic_id << 24
        if index == 0x01:
            return ((self.pins - 1) << 16) | self.version
        if index == 0x02:
            return self.ioapic_id << 24
        if 0x10 <= index < 0x10 + 2 * self.pins:
            entry = self.entries[(index - 0x10) >> 1]
            return entry >> 32 if index & 1 else entry & 0xFFFF_FFFF
        return 0

    def write_register(self, index: int, value: int) -> None:
        """Write indirect register ``index``."""
        value &= 0xFFFF_FFFF
        if index == 0x00:
            self.ioapic_id = (value >> 24) & 0xF
            return
        if not 0x10 <= index < 0x10 + 2 * self.pins:
            self.trace.record(
                "note",
                device=self.name,
                address=index,
                value=value,
                detail="write to a read-only or reserved IOAPIC register ignored",
            )
            return
        pin = (index - 0x10) >> 1
        old = self.entries[pin]
        if index & 1:
            new = (old & 0xFFFF_FFFF) | ((value & 0xFF00_0000) << 32)
        else:
            new = (old & ~_RTE_LOW_WRITABLE) | (value & _RTE_LOW_WRITABLE)
            if not new & RTE_LEVEL:
                new &= ~RTE_REMOTE_IRR  # remote IRR only has a meaning for level pins
        self.entries[pin] = new
        self._reevaluate(pin)

    # -- MMIO ---------------------------------------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        """Read IOREGSEL (0x00) or IOWIN (0x10); anything else reads 0."""
        mask = (1 << (8 * size)) - 1
        if offset == IOREGSEL:
            return self.regsel & mask
        if IOWIN <= offset < IOWIN + 4:
            return (self.read_register(self.regsel) >> (8 * (offset - IOWIN))) & mask
        self.trace.record("note", device=self.name, address=offset, detail="read of an unimplemented IOAPIC offset")
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        """Write IOREGSEL (0x00) or IOWIN (0x10, 32-bit); other offsets are noted and ignored."""
        if offset == IOREGSEL:
            self.regsel = value & 0xFF
        elif offset == IOWIN and size == 4:
            self.write_register(self.regsel, value)
        elif offset == IOEOI and self.version < 0x20:
            self.trace.record(
                "note",
                device=self.name,
                address=offset,
                value=value,
                detail="IOAPIC EOI register written, but version 0x11 has none; ignored",
            )
        else:
            self.trace.record(
                "note",
                device=self.name,
                address=offset,
                value=value,
                detail=f"{size}-byte IOAPIC write at offset {offset:#x} ignored",
            )

    # -- pins ------------------------------------------------------------------------------------------------------
    def set_irq(self, gsi: int, level: bool) -> None:
        """Drive the physical level of input ``gsi`` (the pin number: the GSI minus ``gsi_base``)."""
        if not 0 <= gsi < self.pins:
            self.trace.record(
                "note",
                device=self.name,
                address=gsi,
                detail="interrupt on a GSI this IOAPIC does not have",
            )
            return
        self.levels[gsi] = bool(level)
        self._reevaluate(gsi)

    def _reevaluate(self, pin: int) -> None:
        entry = self.entries[pin]
        asserted = self.levels[pin] != bool(entry & RTE_ACTIVE_LOW)
        rising = asserted and not self._asserted[pin]
        self._asserted[pin] = asserted
        if entry & RTE_MASKED or not asserted:
            return
        if entry & RTE_LEVEL:
            if not entry & RTE_REMOTE_IRR:
                self._deliver(pin)
        elif rising:
            # An edge pin unmasked while its line is already high does not deliver:
            # the edge happened while it was masked and is lost.
            self._deliver(pin)

    def _deliver(self, pin: int) -> None:
        entry = self.entries[pin]
        vector = entry & 0xFF
        mode = (entry >> 8) & 7
        level = bool(entry & RTE_LEVEL)
        if mode not in (0, 1):
            name = _DELIVERY_NAMES.get(mode, f"mode {mode}")
            self.trace.record(
                "note",
                device=self.name,
                address=pin,
                value=entry & 0xFFFF_FFFF,
                detail=f"{name} delivery not modelled; not delivered",
            )
            return
        dest = entry >> 56
        if not self.lapic.accepts(dest, bool(entry & RTE_LOGICAL), width=8):
            self.trace.record(
                "note",
                device=self.name,
                address=pin,
                value=dest,
                detail="destination names no local APIC; not delivered",
            )
            return
        if not self.lapic.raise_vector(vector, level=level):
            return
        self.deliveries += 1
        self.trace.record("interrupt", device=self.name, address=pin, value=vector, detail="level" if level else "edge")
        if level:
            self.entries[pin] |= RTE_REMOTE_IRR

    def eoi(self, vector: int) -> None:
        """EOI of ``vector`` from the local APIC.

        Clears remote IRR of the level pins using that vector and redelivers any
        whose line is still asserted."""
        for pin, entry in enumerate(self.entries):
            if entry & RTE_LEVEL and entry & RTE_REMOTE_IRR and entry & 0xFF == vector:
                self.entries[pin] = entry & ~RTE_REMOTE_IRR
                self._reevaluate(pin)

    def remote_irr(self, pin: int) -> bool:
        """Remote IRR of ``pin``'s entry."""
        return bool(self.entries[pin] & RTE_REMOTE_IRR)

    # -- fast-forward (gen2sim.ffplan) -------------------------------------------------------------------------
    def ff_state(self) -> tuple:
        """Everything an access or a line change can change (see ``gen2sim.ffplan``)."""
        return (self.ioapic_id, self.regsel, tuple(self.entries), tuple(self.levels), tuple(self._asserted),
                self.deliveries)

    def ff_plan(self, space: str, accesses: list[Access]) -> Plan | None:
        """IOREGSEL writes and reads of IOREGSEL/IOWIN (constant registers); anything else refuses."""
        if space != "mmio":
            return None
        regsel = self.regsel
        reads: dict = {}
        for i, acc in enumerate(accesses):
            mask = (1 << (8 * acc.size)) - 1
            if acc.op == "w":
                if acc.key != IOREGSEL:
                    return None
                regsel = acc.value & 0xFF
            elif acc.key == IOREGSEL:
                reads[i] = regsel & mask
            elif IOWIN <= acc.key < IOWIN + 4:
                reads[i] = (self.read_register(regsel) >> (8 * (acc.key - IOWIN))) & mask
            else:
                return None
        return Plan(None, reads)
