"""Motorola MC146818 CMOS real-time clock at index port 0x70 / data port 0x71.

Time of day starts at 2026-01-01 00:00:00 at power-on and follows virtual time:
the once-a-second update happens at every whole virtual second (1 s, 2 s, ...).
The clock is stored as an offset in seconds from that update count, so nothing
ticks when nobody looks.

Interrupts, chosen by ``legacy_interrupts``:

- ``True`` (Generation 1; Generation 2 with ``--rtc-interrupts on``, as Microsoft's
  open VMM implements them): the periodic (PIE), alarm (AIE) and update-ended (UIE)
  interrupts set PF/AF/UF and IRQF in register C and assert ISA IRQ 8
  (``irq(8, True)``) until register C is read, which clears the flags and drops
  the line.  With ``no_ack`` (the platform's WAET sets RTC_NO_ACK: "the RTC needs
  no acknowledge") an interrupt that comes while the line is still up pulses it
  (down, up), so every period gives an edge whether or not register C was read.
- ``False`` (Generation 2 default: the periodic interrupt was observed unusable on
  a real Gen2 VM): register C always reads 0 and IRQ 8 is never raised.  Time of
  day is still readable and writable.

Update-in-progress, chosen by ``uip_blip``:

- ``False`` (MC146818, Generation 1): UIP reads 1 during the 244 us before each update.
- ``True`` (Generation 2, after Microsoft's open VMM whose RTC was ported from
  Hyper-V): UIP reads 1 on the first read of register A that comes more than 1 s
  after the previous such "blip" (power-on counts as one), and 0 otherwise, so a wait
  for its rising edge ends within about a second.

Register formats follow register B: DM (bit 2) selects binary (1) or BCD (0),
24/12 (bit 1) selects the hour format (12-hour hours carry PM in bit 7).  Writes
to the time registers set the clock whether or not SET is 1; while SET is 1 the
clock is frozen and the written fields are kept until SET is cleared, at which
point the clock resumes from them.  The century (CMOS 0x32, BCD, initially 0x20)
is plain RAM, as on a PC: it supplies the century when the guest sets the clock.

Simplifications: register A's divider bits (DV2-0) are stored, but the time base
always runs; daylight-saving (DSE) is stored and ignored; the day of week
(register 6) is derived from the date; the update cycle itself
takes no time (registers change exactly at the second).  Rate-select values 1 and
2 give 256 Hz and 128 Hz, as the MC146818 does with a 32.768 kHz time base;
3-15 give 32768 >> (rs - 1) Hz.  Interrupt events are scheduled only while the
matching enable bit is set, so an idle machine's event queue is not kept busy.
"""

from __future__ import annotations

import datetime as _dt
from typing import Callable

from ..bus import ByteIoDevice
from ..clock import PS_PER_S, PS_PER_US, VirtualClock, ps_for_ticks, ticks
from ..ffplan import Access, Plan, earliest
from ..trace import Trace

#: The instant virtual time 0 corresponds to.
START = _dt.datetime(2026, 1, 1, 0, 0, 0)
#: UIP rises this long before every update (MC146818 t_BUC).
UIP_LEAD_PS = 244 * PS_PER_US
#: Default ISA line of the RTC.
RTC_IRQ = 8

REG_A, REG_B, REG_C, REG_D = 0x0A, 0x0B, 0x0C, 0x0D
CENTURY = 0x32

A_UIP = 0x80
B_SET, B_PIE, B_AIE, B_UIE, B_SQWE, B_DM, B_24H, B_DSE = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
C_IRQF, C_PF, C_AF, C_UF = 0x80, 0x40, 0x20, 0x10
D_VRT = 0x80

_EPOCH = _dt.datetime(1970, 1, 1)
_TIME_REGS = (0, 2, 4, 6, 7, 8, 9)
_ALARM_REGS = (1, 3, 5)


def _bcd(n: int) -> int:
    return (n // 10) << 4 | (n % 10)


def _unbcd(v: int) -> int:
    return (v >> 4) * 10 + (v & 0x0F)


def periodic_hz(rate_select: int) -> int:
    """Periodic interrupt rate for register A's RS3-0 (0 = off)."""
    if rate_select == 0:
        return 0
    if rate_select <= 2:
        return 256 >> (rate_select - 1)
    return 32768 >> (rate_select - 1)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date; tolerates out-of-range days."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


class Rtc(ByteIoDevice):
    """MC146818 RTC and 128 bytes of CMOS; ``legacy_interrupts`` selects Gen1 or Gen2 behaviour."""

    name = "rtc"

    def __init__(
        self,
        clock: VirtualClock,
        trace: Trace,
        irq: Callable[[int, bool], None] | None = None,
        *,
        legacy_interrupts: bool,
        start: _dt.datetime = START,
        irq_line: int = RTC_IRQ,
        uip_blip: bool = False,
        no_ack: bool = False,
    ) -> None:
        self.clock = clock
        self.trace = trace
        self.irq = irq or (lambda line, level: None)
        self.legacy_interrupts = legacy_interrupts
        self.uip_blip = uip_blip
        self.no_ack = no_ack
        self._last_blip = 0  # virtual time of the last UIP blip (uip_blip mode)
        self.irq_line = irq_line
        self.ports = (0x70, 0x71)
        self.index = 0
        self.nmi_masked = False
        self.ram = bytearray(128)
        self.ram[REG_A] = 0x26  # divider 010 (32.768 kHz), rate 6 (1024 Hz)
        self.ram[REG_B] = B_24H  # 24-hour, BCD
        self.ram[REG_D] = D_VRT
        self.ram[CENTURY] = _bcd(start.year // 100)
        #: RTC seconds since 1970 = offset + whole virtual seconds elapsed.
        self._offset = int((start - _EPOCH).total_seconds())
        self._frozen: dict[int, int] | None = None  # binary field values while SET = 1
        self._flags = 0  # PF | AF | UF (sticky until register C is read)
        self._pf_mark = 0  # periodic ticks accounted for
        self._upd_mark = 0  # updates accounted for
        self._irq_level = False
        self._periodic_event = None
        self._update_event = None
        self.interrupts = 0  # IRQ 8 assertions (for tests and reports)

    # -- time of day ------------------------------------------------------------------------
    def _updates(self) -> int:
        """Once-a-second updates since power-on."""
        return self.clock.now // PS_PER_S

    def seconds(self) -> int:
        """RTC time as seconds since 1970-01-01 (frozen fields while SET = 1)."""
        if self._frozen is not None:
            return self._fields_to_seconds(self._frozen)
        return self._offset + self._updates()

    def datetime(self) -> _dt.datetime:
        """RTC time of day as a ``datetime`` (for the platform, reports and tests)."""
        return _EPOCH + _dt.timedelta(seconds=self.seconds())

    def _fields(self, secs: int) -> dict[int, int]:
        t = _EPOCH + _dt.timedelta(seconds=secs)
        return {
            0: t.second,
            2: t.minute,
            4: t.hour,
            6: (t.isoweekday() % 7) + 1,  # 1 = Sunday
            7: t.day,
            8: t.month,
            9: t.year % 100,
            CENTURY: t.year // 100,
        }

    def _fields_to_seconds(self, f: dict[int, int]) -> int:
        year = f[CENTURY] * 100 + f[9]
        days = _days_from_civil(year, max(1, min(f[8], 12)), f[7])
        return days * 86400 + f[4] * 3600 + f[2] * 60 + f[0]

    def _century(self) -> int:
        value = _unbcd(self.ram[CENTURY])
        return value if 19 <= value <= 99 else 20

    def _current_fields(self) -> dict[int, int]:
        if self._frozen is not None:
            return dict(self._frozen)
        f = self._fields(self.seconds())
        f[CENTURY] = self._century()  # CMOS 0x32 is RAM; the guest's century wins
        return f

    # -- register encoding ----------------------------------------------------------------------
    @property
    def _binary(self) -> bool:
        return bool(self.ram[REG_B] & B_DM)

    def _encode(self, reg: int, value: int) -> int:
        pm = 0
        if reg in (4, 5) and not self.ram[REG_B] & B_24H:
            pm = 0x80 if value >= 12 else 0
            value = value % 12 or 12
        return (value if self._binary else _bcd(value)) | pm

    def _decode(self, reg: int, raw: int) -> int:
        pm = False
        if reg in (4, 5) and not self.ram[REG_B] & B_24H:
            pm = bool(raw & 0x80)
            raw &= 0x7F
        value = raw if self._binary else _unbcd(raw)
        if reg in (4, 5) and not self.ram[REG_B] & B_24H:
            value = (value % 12) + (12 if pm else 0)
        return value

    # -- port interface ---------------------------------------------------------------------------
    def read_byte(self, port: int) -> int:
        """0x70 returns the last index written (with the NMI-mask bit); 0x71 the selected register."""
        if port == 0x70:
            return self.index | (0x80 if self.nmi_masked else 0)
        return self.read_register(self.index)

    def write_byte(self, port: int, value: int) -> None:
        """0x70 selects a register (bit 7 is the NMI mask, not part of the index); 0x71 writes it."""
        if port == 0x70:
            self.nmi_masked = bool(value & 0x80)
            self.index = value & 0x7F
        else:
            self.write_register(self.index, value)

    def read_register(self, reg: int) -> int:
        """Value of CMOS register ``reg`` as the guest sees it (reading C clears it)."""
        if reg in _TIME_REGS:
            return self._encode(reg, self._current_fields()[reg])
        if reg == REG_A:
            return (self.ram[REG_A] & 0x7F) | (A_UIP if self._read_uip() else 0)
        if reg == REG_C:
            return self._read_c()
        if reg == REG_D:
            return D_VRT
        return self.ram[reg]

    def write_register(self, reg: int, value: int) -> None:
        """Write CMOS register ``reg`` with the side effects of the real chip."""
        if reg in _TIME_REGS:
            fields = self._current_fields()
            # The day of week is derived from the date, so a write to register 6
            # is accepted but has no lasting effect.
            fields[reg] = self._decode(reg, value)
            if self._frozen is not None:
                self._frozen = fields
            else:
                self._set_time(fields)
            return
        if reg == REG_A:
            self._sync_flags()
            self.ram[REG_A] = value & 0x7F  # UIP is read-only
            self._pf_mark = self._periodic_ticks()
        elif reg == REG_B:
            self._write_b(value)
        elif reg in (REG_C, REG_D):
            return  # read-only
        else:
            self.ram[reg] = value
        self._update_irq()
        self._reschedule()

    def _set_time(self, fields: dict[int, int]) -> None:
        self._sync_flags()
        self._offset = self._fields_to_seconds(fields) - self._updates()
        self.trace.record("note", device=self.name, detail=f"RTC set to {self.datetime().isoformat()}")

    def _write_b(self, value: int) -> None:
        self._sync_flags()
        old = self.ram[REG_B]
        if value & B_SET:
            value &= ~B_UIE  # setting SET clears UIE on the MC146818
        if value & B_SET and not old & B_SET:
            self._frozen = self._current_fields()
        self.ram[REG_B] = value
        if old & B_SET and not value & B_SET and self._frozen is not None:
            fields, self._frozen = self._frozen, None
            self._set_time(fields)
        self._upd_mark = self._updates()

    # -- update-in-progress, flags, interrupts ---------------------------------------------------
    def _uip(self) -> bool:
        """MC146818 UIP (no side effect): 1 in the 244 us before each update."""
        if self.ram[REG_B] & B_SET:
            return False
        return self.clock.now % PS_PER_S >= PS_PER_S - UIP_LEAD_PS

    def _blip_due(self) -> bool:
        """``uip_blip`` mode: whether a register-A read now would blip (more than 1 s since the last blip)."""
        return not self.ram[REG_B] & B_SET and self.clock.now - self._last_blip > PS_PER_S

    def _read_uip(self) -> bool:
        """UIP as a read of register A sees it (a blip is consumed by the read that sees it)."""
        if not self.uip_blip:
            return self._uip()
        if self._blip_due():
            self._last_blip = self.clock.now
            return True
        return False

    def _periodic_ticks(self) -> int:
        hz = periodic_hz(self.ram[REG_A] & 0x0F)
        return ticks(self.clock.now, hz) if hz else 0

    def _sync_flags(self) -> None:
        """Fold periodic edges and updates since the last look into PF/UF/AF."""
        if not self.legacy_interrupts:
            return
        if periodic_hz(self.ram[REG_A] & 0x0F):
            k = self._periodic_ticks()
            if k > self._pf_mark:
                self._flags |= C_PF
            self._pf_mark = k
        upd = self._updates()
        if upd > self._upd_mark and not self.ram[REG_B] & B_SET:
            self._flags |= C_UF
            if not self._flags & C_AF and self._alarm_between(self._upd_mark, upd):
                self._flags |= C_AF
        self._upd_mark = upd

    def _alarm_between(self, first: int, last: int) -> bool:
        """Whether an update in (first, last] produced a time matching the alarm registers."""
        # The alarm pattern repeats at most daily, so one day of updates decides it.
        for upd in range(max(first + 1, last - 86400), last + 1):
            if self._alarm_matches(self._fields(self._offset + upd)):
                return True
        return False

    def _alarm_matches(self, fields: dict[int, int]) -> bool:
        for alarm, reg in zip(_ALARM_REGS, (0, 2, 4)):
            raw = self.ram[alarm]
            if raw & 0xC0 == 0xC0:
                continue  # "don't care"
            if raw != self._encode(reg, fields[reg]):
                return False
        return True

    def _irqf(self) -> bool:
        enables = self.ram[REG_B] & (B_PIE | B_AIE | B_UIE)
        # PIE/AIE/UIE sit at the same bit positions as PF/AF/UF.
        return bool(self._flags & enables)

    def _read_c(self) -> int:
        if not self.legacy_interrupts:
            return 0
        self._sync_flags()
        value = self._flags | (C_IRQF if self._irqf() else 0)
        self._flags = 0
        self._update_irq()
        return value

    def _update_irq(self) -> None:
        level = self.legacy_interrupts and self._irqf()
        if level == self._irq_level:
            return
        self._irq_level = level
        if level:
            self.interrupts += 1
            self.trace.record("interrupt", device=self.name, address=self.irq_line, value=1, detail="IRQ8 asserted")
        self.irq(self.irq_line, level)

    @property
    def irq_level(self) -> bool:
        """Whether the RTC currently asserts its interrupt line."""
        return self._irq_level

    def _reschedule(self) -> None:
        self.clock.cancel(self._periodic_event)
        self.clock.cancel(self._update_event)
        self._periodic_event = self._update_event = None
        if not self.legacy_interrupts:
            return
        b = self.ram[REG_B]
        hz = periodic_hz(self.ram[REG_A] & 0x0F)
        if b & B_PIE and hz:
            when = ps_for_ticks(ticks(self.clock.now, hz) + 1, hz)
            self._periodic_event = self.clock.schedule(when, self._on_periodic, "rtc-periodic")
        if b & (B_UIE | B_AIE) and not b & B_SET:
            when = (self._updates() + 1) * PS_PER_S
            self._update_event = self.clock.schedule(when, self._on_update, "rtc-update")

    def _pulse_unacknowledged(self) -> None:
        """RTC_NO_ACK: an interrupt while the line is still up (register C unread) is a fresh edge."""
        if self.no_ack and self._irq_level and self._irqf():
            self.interrupts += 1
            self.trace.record("interrupt", device=self.name, address=self.irq_line, value=1,
                              detail="IRQ8 pulsed (WAET RTC_NO_ACK: no register C read needed)")
            self.irq(self.irq_line, False)
            self.irq(self.irq_line, True)

    def _on_periodic(self) -> None:
        self._periodic_event = None
        self._sync_flags()
        self._pulse_unacknowledged()
        self._update_irq()
        self._reschedule()

    def _on_update(self) -> None:
        self._update_event = None
        self._sync_flags()
        self._pulse_unacknowledged()
        self._update_irq()
        self._reschedule()

    # -- fast-forward (gen2sim.ffplan) -------------------------------------------------------------
    def ff_state(self) -> tuple:
        """Everything an access or an event can change (see ``gen2sim.ffplan``)."""
        frozen = tuple(sorted(self._frozen.items())) if self._frozen is not None else None
        return (self.index, self.nmi_masked, bytes(self.ram), self._offset, frozen, self._flags, self._pf_mark,
                self._upd_mark, self._irq_level, self._last_blip)

    def _next_second(self) -> int:
        return (self._updates() + 1) * PS_PER_S

    def _peek_register(self, reg: int) -> tuple[int, int | None] | None:
        """(value, until) of a read of ``reg`` repeated from the present state, or ``None`` when the read would
        change the state (register C with flags or marks to fold in)."""
        now = self.clock.now
        if reg in _TIME_REGS:
            return self._encode(reg, self._current_fields()[reg]), (None if self._frozen is not None
                                                                    else self._next_second())
        if reg == REG_A:
            if self.uip_blip:
                if self.ram[REG_B] & B_SET:
                    return self.ram[REG_A] & 0x7F, None
                if self._blip_due():
                    return None  # this read blips: it changes the state
                return self.ram[REG_A] & 0x7F, self._last_blip + PS_PER_S + 1
            value = (self.ram[REG_A] & 0x7F) | (A_UIP if self._uip() else 0)
            if self.ram[REG_B] & B_SET:
                return value, None
            second = now - now % PS_PER_S
            rise = second + PS_PER_S - UIP_LEAD_PS
            return value, (rise if now < rise else second + PS_PER_S)
        if reg == REG_C:
            if not self.legacy_interrupts:
                return 0, None
            hz = periodic_hz(self.ram[REG_A] & 0x0F)
            # Steady only when nothing is left to fold in: the read then returns 0 and changes nothing.
            if self._flags or (hz and self._periodic_ticks() != self._pf_mark) or self._updates() != self._upd_mark:
                return None
            tick = ps_for_ticks(ticks(now, hz) + 1, hz) if hz else None
            return 0, earliest(tick, self._next_second())  # the update mark moves every second, SET or not
        if reg == REG_D:
            return D_VRT, None
        return self.ram[reg], None

    def ff_plan(self, space: str, accesses: list[Access]) -> Plan | None:
        """Byte accesses to 0x70/0x71: index writes, register reads (UIP and flag edges bound ``until``)."""
        index, nmi = self.index, self.nmi_masked
        until = None
        reads: dict = {}
        for i, acc in enumerate(accesses):
            if space != "io" or acc.size != 1:
                return None
            if acc.op == "w":
                if acc.key != 0x70:
                    return None  # register writes have side effects
                index, nmi = acc.value & 0x7F, bool(acc.value & 0x80)
                continue
            if acc.key == 0x70:
                reads[i] = index | (0x80 if nmi else 0)
                continue
            peek = self._peek_register(index)
            if peek is None:
                return None
            reads[i], reg_until = peek
            until = earliest(until, reg_until)
        return Plan(until, reads)
