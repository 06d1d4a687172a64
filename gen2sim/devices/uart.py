"""National Semiconductor 16550A UART (COM1 at 0x3F8-0x3FF by default).

The transmitter is infinitely fast: every byte written to THR is appended to
``output`` at once, so LSR always shows THRE | TEMT.  Nothing is ever received
from outside (LSR.DR = 0), except in loopback mode (MCR bit 4), where written
bytes come back through RBR as on the real chip -- serial probes use that.

The only interrupt source modelled is "THR empty" (IER bit 1): it is pending
after THR is written or ETBEI is enabled, and cleared by reading IIR or writing
THR.  The interrupt output reaches the ISA line only when MCR.OUT2 (bit 3) is set,
as on a PC.  Modem status outside loopback shows CTS, DSR and DCD asserted, so a
flow-controlled sender is never held off.
"""

from __future__ import annotations

from typing import Callable

from ..bus import ByteIoDevice
from ..clock import VirtualClock
from ..trace import Trace

RBR_THR, IER, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)
LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40
LCR_DLAB = 0x80
MCR_OUT2, MCR_LOOP = 0x08, 0x10
IER_ETBEI = 0x02


class Uart16550(ByteIoDevice):
    """16550A serial port collecting transmitted bytes in ``output``."""

    def __init__(
        self,
        clock: VirtualClock,
        trace: Trace,
        base: int = 0x3F8,
        name: str = "com1",
        irq: Callable[[int, bool], None] | None = None,
        irq_line: int = 4,
    ) -> None:
        self.clock = clock
        self.trace = trace
        self.base = base
        self.name = name
        self.irq = irq or (lambda line, level: None)
        self.irq_line = irq_line
        self.ports = tuple(range(base, base + 8))
        self.output = bytearray()
        self.divisor = 12  # 9600 baud until the guest says otherwise
        self.ier = 0
        self.lcr = 0x03  # 8N1
        self.mcr = 0
        self.scr = 0
        self.fifo_enabled = False
        self._rx: list[int] = []
        self._thre_pending = False
        self._irq_level = False

    def text(self) -> str:
        """Transmitted bytes decoded as UTF-8 (invalid sequences replaced)."""
        return self.output.decode("utf-8", errors="replace")

    # -- port interface -------------------------------------------------------------------------
    def read_byte(self, port: int) -> int:
        """Read one UART register."""
        reg = port - self.base
        dlab = self.lcr & LCR_DLAB
        if reg == RBR_THR:
            if dlab:
                return self.divisor & 0xFF
            value = self._rx.pop(0) if self._rx else 0
            return value
        if reg == IER:
            return self.divisor >> 8 if dlab else self.ier
        if reg == IIR_FCR:
            fifo = 0xC0 if self.fifo_enabled else 0
            if self._thre_pending and self.ier & IER_ETBEI:
                self._thre_pending = False  # reading IIR acknowledges THR-empty
                self._update_irq()
                return fifo | 0x02
            return fifo | 0x01
        if reg == LCR:
            return self.lcr
        if reg == MCR:
            return self.mcr
        if reg == LSR:
            return LSR_THRE | LSR_TEMT | (LSR_DR if self._rx else 0)
        if reg == MSR:
            if self.mcr & MCR_LOOP:
                # Loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
                m = self.mcr
                return (m & 0x02) << 3 | (m & 0x01) << 5 | (m & 0x04) << 4 | (m & 0x08) << 4
            return 0xB0  # DCD, DSR, CTS
        return self.scr

    def write_byte(self, port: int, value: int) -> None:
        """Write one UART register."""
        reg = port - self.base
        dlab = self.lcr & LCR_DLAB
        if reg == RBR_THR:
            if dlab:
                self.divisor = (self.divisor & 0xFF00) | value
                return
            if self.mcr & MCR_LOOP:
                self._rx.append(value)
            else:
                self.output.append(value)
            self._thre_pending = True
        elif reg == IER:
            if dlab:
                self.divisor = (self.divisor & 0x00FF) | value << 8
                return
            if value & IER_ETBEI and not self.ier & IER_ETBEI:
                self._thre_pending = True  # THR is empty, so enabling ETBEI raises at once
            self.ier = value & 0x0F
        elif reg == IIR_FCR:
            self.fifo_enabled = bool(value & 0x01)
            if value & 0x02:
                self._rx.clear()
        elif reg == LCR:
            self.lcr = value
        elif reg == MCR:
            self.mcr = value & 0x1F
        elif reg == SCR:
            self.scr = value
        # LSR and MSR writes are ignored (factory-test registers).
        self._update_irq()

    def _update_irq(self) -> None:
        level = bool(self._thre_pending and self.ier & IER_ETBEI and self.mcr & MCR_OUT2)
        if level != self._irq_level:
            self._irq_level = level
            if level:
                self.trace.record("interrupt", device=self.name, address=self.irq_line, value=1, detail="THR empty")
            self.irq(self.irq_line, level)

    # -- fast-forward (gen2sim.ffplan) ------------------------------------------------------------------
    def ff_state(self) -> tuple:
        """Everything an access can change (see ``gen2sim.ffplan``)."""
        return (len(self.output), self.divisor, self.ier, self.lcr, self.mcr, self.scr, self.fifo_enabled,
                tuple(self._rx), self._thre_pending, self._irq_level)

    def ff_peek_byte(self, port: int) -> int | None:
        """Registers are constant; a read that pops received data or acknowledges THR-empty refuses."""
        reg = port - self.base
        dlab = self.lcr & LCR_DLAB
        if reg == RBR_THR and not dlab and self._rx:
            return None
        if reg == IIR_FCR and self._thre_pending and self.ier & IER_ETBEI:
            return None
        return self.read_byte(port)  # no side effects in the remaining cases
