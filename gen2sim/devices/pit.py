"""Intel 8254 programmable interval timer and PC "port B" (0x61).

Present only on Generation 1.  Nothing is stored as a running count: each channel
remembers the PIT tick at which its current countdown began and derives the
count and its OUT level from ``clock.ticks(now, PIT_HZ)``.  PIT ticks are counted
from power-on, so tick ``k`` happens at ``ps_for_ticks(k, PIT_HZ)``.

Channel 0's OUT drives ISA IRQ 0 through ``irq(0, level)``.  Clock events are
scheduled only for channel 0 and only at its rising edges (the moment an
edge-triggered interrupt controller acts): every period in modes 2 and 3, once in
modes 0 and 4.  The one-tick low pulse that precedes each rising edge in mode 2
(and the low half of a mode 3 square wave) is signalled at the edge instant as a
fall immediately followed by the rise, so the interrupt controller sees one edge
per period without one event per half period.

Simplifications (documented, deterministic):
- a count takes effect at the tick of the write, not at the following CLK edge
  (real hardware adds up to one tick of latency to the first period);
- in mode 3 the value read back is exact for even counts and within one step
  for odd counts; OUT and the period are exact;
- channels 0 and 1 have their GATE tied high; channel 2's GATE is port 0x61 bit 0.

Port 0x61: bit 0 channel-2 gate, bit 1 speaker data enable, bits 2-3 parity/IOCHK
check disables (stored), bit 4 refresh request toggle (flips every 15.085 us of
virtual time), bit 5 channel-2 OUT, bits 6-7 (IOCHK/parity error) read 0.
"""

from __future__ import annotations

from typing import Callable

from ..bus import ByteIoDevice
from ..clock import PIT_HZ, VirtualClock, ps_for_ticks, ticks
from ..trace import Trace

#: Half-period of the DRAM refresh request seen in port 0x61 bit 4 (15.085 us).
REFRESH_TOGGLE_PS = 15_085_000

_RW_LATCH, _RW_LSB, _RW_MSB, _RW_LOHI = 0, 1, 2, 3


def _to_bcd(n: int) -> int:
    n %= 10000
    return (n // 1000) << 12 | (n // 100 % 10) << 8 | (n // 10 % 10) << 4 | (n % 10)


def _from_bcd(v: int) -> int:
    return ((v >> 12) & 0xF) * 1000 + ((v >> 8) & 0xF) * 100 + ((v >> 4) & 0xF) * 10 + (v & 0xF)


class _Channel:
    """One 8254 counter; count and OUT are functions of the current PIT tick."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.mode = 0
        self.access = _RW_LOHI
        self.bcd = False
        self.programmed = False  # a control word has been written
        self.armed = False  # a full count has been written
        self.triggered = False  # modes 1 and 5: a gate rising edge started counting
        self.n = 0x10000  # effective initial count (0 means the maximum)
        self.raw = 0  # count as written
        self.start = 0  # PIT tick at which the current countdown began
        self.paused: int | None = None  # elapsed ticks frozen while GATE is low (modes 0, 4)
        self.pending: tuple[int, int, int] | None = None  # (tick, n, raw): reload at the next period
        self.gate = index != 2
        self.write_msb_next = False
        self.read_msb_next = False
        self.low_byte = 0
        self.null_count = True
        self.latched: list[int] = []  # bytes a latch or read-back command froze
        self.status_latched: int | None = None

    @property
    def modulus(self) -> int:
        """Counter range: 10000 in BCD, 65536 in binary."""
        return 10000 if self.bcd else 0x10000

    def effective(self, raw: int) -> int:
        """Initial count value a written ``raw`` count stands for."""
        value = _from_bcd(raw) if self.bcd else raw
        return value if value else self.modulus

    def sync(self, tick: int) -> None:
        """Apply a mode 2/3 count change whose period boundary has passed."""
        if self.pending is not None and tick >= self.pending[0]:
            self.start, self.n, self.raw = self.pending
            self.pending = None

    def elapsed(self, tick: int) -> int:
        """Ticks counted since the countdown began (frozen while paused)."""
        if self.paused is not None:
            return self.paused
        return tick - self.start

    def counting(self) -> bool:
        """Whether a count is loaded and (in modes 1 and 5) triggered."""
        return self.armed and (self.mode not in (1, 5) or self.triggered)

    def count(self, tick: int) -> int:
        """Current count as an integer (not BCD-encoded)."""
        self.sync(tick)
        if not self.counting():
            return self.n % self.modulus
        e = self.elapsed(tick)
        n = self.n
        if self.mode in (2, 3) and not self.gate:
            return n % self.modulus
        if self.mode == 2:
            return n - (e % n)
        if self.mode == 3:
            high = (n + 1) // 2
            p = e % n
            phase = p if p < high else p - high
            return max((n & ~1) - 2 * phase, 2) % self.modulus
        return (n - e) % self.modulus  # modes 0, 1, 4, 5 wrap after terminal count

    def out(self, tick: int) -> bool:
        """Level of OUT at ``tick``."""
        self.sync(tick)
        if not self.programmed:
            return False
        if self.mode == 0:
            return self.armed and self.elapsed(tick) >= self.n
        if self.mode == 1:
            return not self.triggered or self.elapsed(tick) >= self.n
        if self.mode in (2, 3):
            if not self.armed or not self.gate:
                return True
            p = self.elapsed(tick) % self.n
            if self.mode == 2:
                return p != self.n - 1
            return p < (self.n + 1) // 2
        # modes 4 and 5: a one-tick low strobe when the count reaches zero
        if not self.counting():
            return True
        return self.elapsed(tick) != self.n

    def next_rising_edge(self, tick: int) -> int | None:
        """First PIT tick strictly after ``tick`` at which OUT rises, or ``None``."""
        self.sync(tick)
        if not self.counting() or self.paused is not None:
            return None
        e = tick - self.start
        if self.mode == 0:
            return self.start + self.n if e < self.n else None
        if self.mode in (2, 3):
            if not self.gate:
                return None
            boundary = self.start + (e // self.n + 1) * self.n
            if self.pending is not None and self.pending[0] <= boundary:
                return self.pending[0]
            return boundary
        if self.mode in (4, 5):
            return self.start + self.n + 1 if e < self.n + 1 else None
        return self.start + self.n if e < self.n else None  # mode 1


class Pit8254(ByteIoDevice):
    """8254 PIT at 0x40-0x43 with port B at 0x61; channel 0 drives ISA IRQ 0."""

    name = "pit"

    def __init__(self, clock: VirtualClock, trace: Trace, irq: Callable[[int, bool], None] | None = None) -> None:
        self.clock = clock
        self.trace = trace
        self.irq = irq or (lambda line, level: None)
        self.channels = [_Channel(i) for i in range(3)]
        self.ports = (0x40, 0x41, 0x42, 0x43, 0x61)
        self.port_b = 0  # stored bits 0-3 of port 0x61
        self._out0 = False  # level last driven on IRQ 0
        self._event = None
        self.irq0_edges = 0  # rising edges driven on IRQ 0 (for tests and reports)

    # -- time -----------------------------------------------------------------------
    def tick(self) -> int:
        """PIT ticks since power-on."""
        return ticks(self.clock.now, PIT_HZ)

    # -- port interface ---------------------------------------------------------------
    def read_byte(self, port: int) -> int:
        """Read a counter (0x40-0x42), the control port (0x43, reads 0xFF) or port B (0x61)."""
        now = self.tick()
        if port == 0x61:
            ch2 = self.channels[2]
            refresh = (self.clock.now // REFRESH_TOGGLE_PS) & 1
            return (self.port_b & 0x0F) | (refresh << 4) | (int(ch2.out(now)) << 5)
        if port == 0x43:
            return 0xFF  # the control word register is write-only
        ch = self.channels[port - 0x40]
        if ch.status_latched is not None:
            value = ch.status_latched
            ch.status_latched = None
            return value
        if ch.latched:
            return ch.latched.pop(0)
        value = ch.count(now)
        value = _to_bcd(value) if ch.bcd else value & 0xFFFF
        if ch.access == _RW_LSB:
            return value & 0xFF
        if ch.access == _RW_MSB:
            return value >> 8
        byte = value >> 8 if ch.read_msb_next else value & 0xFF
        ch.read_msb_next = not ch.read_msb_next
        return byte & 0xFF

    def write_byte(self, port: int, value: int) -> None:
        """Write a counter (0x40-0x42), a control word (0x43) or port B (0x61)."""
        if port == 0x61:
            self._write_port_b(value)
        elif port == 0x43:
            self._control(value)
        else:
            self._write_count(self.channels[port - 0x40], value)
        self._reschedule()

    # -- control word -------------------------------------------------------------------
    def _control(self, value: int) -> None:
        select = value >> 6
        if select == 3:
            self._read_back(value)
            return
        ch = self.channels[select]
        access = (value >> 4) & 3
        if access == _RW_LATCH:
            # Counter latch: freeze the count until it has been read in full;
            # a second latch before that is ignored.
            if not ch.latched:
                self._latch_count(ch)
            return
        mode = (value >> 1) & 7
        if mode > 5:
            mode -= 4  # 6 and 7 alias modes 2 and 3
        ch.mode = mode
        ch.access = access
        ch.bcd = bool(value & 1)
        ch.programmed = True
        ch.armed = False
        ch.triggered = False
        ch.paused = None
        ch.pending = None
        ch.null_count = True
        ch.write_msb_next = False
        ch.read_msb_next = False
        ch.latched = []
        ch.status_latched = None
        if ch.index == 0:
            self._drive_irq0(ch.out(self.tick()))

    def _latch_count(self, ch: _Channel) -> None:
        value = ch.count(self.tick())
        value = _to_bcd(value) if ch.bcd else value & 0xFFFF
        if ch.access == _RW_LSB:
            ch.latched = [value & 0xFF]
        elif ch.access == _RW_MSB:
            ch.latched = [value >> 8]
        else:
            ch.latched = [value & 0xFF, value >> 8]

    def _read_back(self, value: int) -> None:
        # Read-back: bit 5 = 0 latches counts, bit 4 = 0 latches status, bits 3-1 select channels.
        now = self.tick()
        for ch in self.channels:
            if not value & (2 << ch.index):
                continue
            if not value & 0x10 and ch.status_latched is None:
                ch.status_latched = (
                    int(ch.out(now)) << 7 | int(ch.null_count) << 6 | ch.access << 4 | ch.mode << 1 | int(ch.bcd)
                )
            if not value & 0x20 and not ch.latched:
                self._latch_count(ch)

    # -- counts ---------------------------------------------------------------------------
    def _write_count(self, ch: _Channel, byte: int) -> None:
        if not ch.programmed:
            ch.programmed = True  # power-on default: mode 0, lo/hi, binary
        if ch.access == _RW_LSB:
            raw = byte
        elif ch.access == _RW_MSB:
            raw = byte << 8
        elif not ch.write_msb_next:
            ch.low_byte = byte
            ch.write_msb_next = True
            if ch.mode == 0:
                # Mode 0: writing the first byte stops the count (OUT stays low).
                ch.armed = False
                if ch.index == 0:
                    self._drive_irq0(False)
            return
        else:
            raw = ch.low_byte | byte << 8
            ch.write_msb_next = False
        self._load(ch, raw)

    def _load(self, ch: _Channel, raw: int) -> None:
        now = self.tick()
        n = ch.effective(raw)
        ch.null_count = False
        if ch.mode in (2, 3) and ch.counting() and ch.gate:
            # A new count in a periodic mode takes effect at the end of the current period.
            ch.sync(now)
            boundary = ch.start + ((now - ch.start) // ch.n + 1) * ch.n
            ch.pending = (boundary, n, raw)
            return
        ch.raw = raw
        ch.n = n
        ch.armed = True
        ch.start = now
        ch.paused = None
        if ch.mode in (0, 4) and not ch.gate:
            ch.paused = 0
        if ch.index == 0:
            self._drive_irq0(ch.out(now))

    # -- gate and port B -------------------------------------------------------------------
    def _write_port_b(self, value: int) -> None:
        ch = self.channels[2]
        gate = bool(value & 1)
        self.port_b = value & 0x0F
        if gate == ch.gate:
            return
        now = self.tick()
        ch.sync(now)
        if gate:
            if ch.mode in (1, 5):
                if ch.armed:
                    ch.triggered = True
                    ch.start = now
            elif ch.mode in (2, 3):
                ch.start = now  # a rising gate reloads the count
            elif ch.paused is not None:
                ch.start = now - ch.paused
                ch.paused = None
        elif ch.mode in (0, 4) and ch.armed:
            ch.paused = now - ch.start
        ch.gate = gate

    # -- channel 0 -> IRQ 0 ---------------------------------------------------------------------
    def _drive_irq0(self, level: bool) -> None:
        if level == self._out0:
            return
        self._out0 = level
        self.irq(0, level)
        if level:
            self._note_edge()

    def _note_edge(self) -> None:
        self.irq0_edges += 1
        self.trace.record("interrupt", device=self.name, address=0, value=1, detail="IRQ0 rising edge")

    def _reschedule(self) -> None:
        self.clock.cancel(self._event)
        self._event = None
        ch = self.channels[0]
        edge = ch.next_rising_edge(self.tick())
        if edge is not None:
            self._event = self.clock.schedule(ps_for_ticks(edge, PIT_HZ), self._on_edge, "pit-ch0")

    def _on_edge(self) -> None:
        self._event = None
        ch = self.channels[0]
        ch.sync(self.tick())
        if self._out0:
            # Modes 2/3: OUT was high; the low pulse and the rise meet at this instant.
            self._out0 = False
            self.irq(0, False)
        self._drive_irq0(True)
        self._reschedule()

    # -- fast-forward (gen2sim.ffplan) ------------------------------------------------------------------
    def ff_state(self) -> tuple:
        """Everything an access or an event can change (see ``gen2sim.ffplan``)."""
        channels = tuple(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in vars(ch).items()))
                         for ch in self.channels)
        return (channels, self.port_b, self._out0, self.irq0_edges)

    # ff_peek_byte stays the refusing default: counts, latches and port B's toggling bits move with time or
    # with every read.
