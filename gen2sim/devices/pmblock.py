"""ACPI fixed-hardware power-management block in I/O space, plus the SMI command port.

Layout relative to ``base`` (0x400 on Hyper-V):

| offset | register | width | behaviour |
|---|---|---|---|
| 0x0 | PM1a_STS | 16 | write 1 to clear; TMR_STS (bit 0) sets when the PM timer's top bit toggles |
| 0x2 | PM1a_EN | 16 | read/write |
| 0x4 | PM1a_CNT | 16 | SCI_EN bit 0, BM_RLD bit 1, GBL_RLS bit 2 (write-only), SLP_TYP 12:10, SLP_EN 13 (write-only) |
| 0x6 | reserved | 16 | reads 0, writes dropped |
| 0x8 | PM_TMR | 32 | 3.579545 MHz counter derived from virtual time, 32 bits (or 24 with ``timer_24bit``) |
| 0xC | GPE0_STS | 16 | write 1 to clear (nothing sets a GPE in this model) |
| 0xE | GPE0_EN | 16 | read/write |

Wide accesses are split into byte accesses, so a 16-bit read of the PM timer
returns its low 16 bits and a 32-bit read the whole counter.

SCI_EN: ``sci_en_initial`` is its power-on value (Generation 2: 1, the platform is
always in ACPI mode and has no SMI_CMD; Generation 1: 0).  With ``smi_cmd_port``
set, writing ``acpi_enable_value`` there sets SCI_EN ``enable_latency_ps`` later
(a clock event, deterministic; it stands for the firmware's SMI handler), and
``acpi_disable_value`` clears it after the same latency.  SCI_EN is also
guest-writable, as on the PIIX4 PM function.

The SCI (ISA ``sci_irq``, level, active high) is asserted while SCI_EN is set and
an enabled PM1 or GPE0 status bit is set.

Sleep: writing SLP_EN with SLP_TYP equal to ``s5_slp_typ`` (0: the Hyper-V DSDT's
``\\_S5`` package is {0, 0}) raises ``MachineReset("S5 power off")`` -- the model
has no separate power-off outcome, and the scenario treats it as the end of the
run.  Any other SLP_TYP is recorded as a note and ignored (the machine stays on).
"""

from __future__ import annotations

from typing import Callable

from ..bus import ByteIoDevice
from ..clock import PM_TIMER_HZ, PS_PER_US, VirtualClock, ps_for_ticks, ticks
from ..errors import MachineReset
from ..ffplan import Access, Counter, Plan, earliest
from ..trace import Trace

PM1_STS, PM1_EN, PM1_CNT, PM_TMR, GPE0_STS, GPE0_EN = 0x0, 0x2, 0x4, 0x8, 0xC, 0xE

TMR_STS = 0x0001
PM1_STS_BITS = 0x0001 | 0x0010 | 0x0020 | 0x0100 | 0x0200 | 0x0400 | 0x4000 | 0x8000
PM1_EN_BITS = 0x0001 | 0x0020 | 0x0100 | 0x0200 | 0x0400 | 0x4000
SCI_EN, BM_RLD, GBL_RLS = 0x0001, 0x0002, 0x0004
SLP_TYP_SHIFT, SLP_TYP_MASK, SLP_EN = 10, 0x1C00, 0x2000
#: PM1_CNT bits that keep a value (GBL_RLS and SLP_EN are write-only strobes).
_CNT_STORED = SCI_EN | BM_RLD | SLP_TYP_MASK

DEFAULT_ENABLE_LATENCY_PS = 50 * PS_PER_US


class PmBlock(ByteIoDevice):
    """ACPI PM1a event/control, PM timer and GPE0 block, with an optional SMI_CMD port."""

    name = "pm"

    def __init__(
        self,
        clock: VirtualClock,
        trace: Trace,
        irq: Callable[[int, bool], None] | None = None,
        *,
        base: int = 0x400,
        smi_cmd_port: int | None = None,
        acpi_enable_value: int = 0xF0,
        acpi_disable_value: int = 0xF1,
        sci_en_initial: bool = True,
        enable_latency_ps: int = DEFAULT_ENABLE_LATENCY_PS,
        sci_irq: int = 9,
        timer_24bit: bool = False,
        s5_slp_typ: int = 0,
    ) -> None:
        self.clock = clock
        self.trace = trace
        self.irq = irq or (lambda line, level: None)
        self.base = base
        self.smi_cmd_port = smi_cmd_port
        self.acpi_enable_value = acpi_enable_value
        self.acpi_disable_value = acpi_disable_value
        self.enable_latency_ps = enable_latency_ps
        self.sci_irq = sci_irq
        self.timer_bits = 24 if timer_24bit else 32
        self.s5_slp_typ = s5_slp_typ
        ports = list(range(base, base + 0x10))
        if smi_cmd_port is not None:
            ports.append(smi_cmd_port)
        self.ports = tuple(ports)
        self.pm1_sts = 0
        self.pm1_en = 0
        self.pm1_cnt = SCI_EN if sci_en_initial else 0
        self.gpe0_sts = 0
        self.gpe0_en = 0
        self.smi_cmd = 0
        self._toggle_mark = 0
        self._sci_level = False
        self._smi_event = None
        self._tmr_event = None

    # -- derived values ----------------------------------------------------------------------
    @property
    def sci_en(self) -> bool:
        """Whether the platform is in ACPI mode (PM1a_CNT.SCI_EN)."""
        return bool(self.pm1_cnt & SCI_EN)

    def timer(self) -> int:
        """PM timer value at ``now`` (wraps at 2**32, or 2**24 with ``timer_24bit``)."""
        return ticks(self.clock.now, PM_TIMER_HZ) & ((1 << self.timer_bits) - 1)

    def _toggles(self) -> int:
        # TMR_STS is set each time the counter's top bit changes value.
        return ticks(self.clock.now, PM_TIMER_HZ) >> (self.timer_bits - 1)

    def _sync_status(self) -> None:
        toggles = self._toggles()
        if toggles > self._toggle_mark:
            self.pm1_sts |= TMR_STS
        self._toggle_mark = toggles

    # -- port interface -------------------------------------------------------------------------
    def read_byte(self, port: int) -> int:
        """One byte of a PM register (or the last value written to SMI_CMD)."""
        if port == self.smi_cmd_port:
            return self.smi_cmd
        off = port - self.base
        reg, shift = off & ~1, 8 * (off & 1)
        if off >= PM_TMR and off < PM_TMR + 4:
            return (self.timer() >> (8 * (off - PM_TMR))) & 0xFF
        if reg == PM1_STS:
            self._sync_status()
            value = self.pm1_sts
        elif reg == PM1_EN:
            value = self.pm1_en
        elif reg == PM1_CNT:
            value = self.pm1_cnt
        elif reg == GPE0_STS:
            value = self.gpe0_sts
        elif reg == GPE0_EN:
            value = self.gpe0_en
        else:
            value = 0
        return (value >> shift) & 0xFF

    def write_byte(self, port: int, value: int) -> None:
        """One byte of a PM register write, with its side effects."""
        if port == self.smi_cmd_port:
            self._smi_command(value)
            return
        off = port - self.base
        reg, shift = off & ~1, 8 * (off & 1)
        bits = value << shift
        keep = 0xFF00 >> shift  # the other byte of the 16-bit register
        if reg == PM1_STS:
            self._sync_status()
            self.pm1_sts &= ~(bits & PM1_STS_BITS)
        elif reg == PM1_EN:
            self.pm1_en = (self.pm1_en & keep) | (bits & PM1_EN_BITS)
        elif reg == PM1_CNT:
            self._write_cnt((self.pm1_cnt & keep) | (bits & _CNT_STORED), bits)
        elif reg == GPE0_STS:
            self.gpe0_sts &= ~bits
        elif reg == GPE0_EN:
            self.gpe0_en = (self.gpe0_en & keep) | bits
        else:
            self.trace.record(
                "note",
                device=self.name,
                address=port,
                value=value,
                detail="write to read-only PM register ignored",
            )
        self._update_sci()

    def _write_cnt(self, new: int, strobes: int) -> None:
        if (new ^ self.pm1_cnt) & SCI_EN:
            self.trace.record(
                "note",
                device=self.name,
                address=self.base + PM1_CNT,
                value=new,
                detail=f"SCI_EN written {int(bool(new & SCI_EN))} by the guest",
            )
        self.pm1_cnt = new
        if strobes & SLP_EN:
            slp_typ = (new & SLP_TYP_MASK) >> SLP_TYP_SHIFT
            if slp_typ == self.s5_slp_typ:
                self.trace.record(
                    "note",
                    device=self.name,
                    address=self.base + PM1_CNT,
                    value=slp_typ,
                    detail="SLP_EN: S5 power off",
                )
                raise MachineReset("S5 power off")
            self.trace.record(
                "note",
                device=self.name,
                address=self.base + PM1_CNT,
                value=slp_typ,
                detail=f"SLP_EN with SLP_TYP {slp_typ}: sleep not modelled, ignored",
            )

    # -- SMI_CMD handshake --------------------------------------------------------------------------
    def _smi_command(self, value: int) -> None:
        self.smi_cmd = value
        if value == self.acpi_enable_value:
            target, what = True, "ACPI_ENABLE"
        elif value == self.acpi_disable_value:
            target, what = False, "ACPI_DISABLE"
        else:
            self.trace.record(
                "note",
                device=self.name,
                address=self.smi_cmd_port,
                value=value,
                detail="unknown SMI command ignored",
            )
            return
        self.trace.record("note", device=self.name, address=self.smi_cmd_port, value=value, detail=f"SMI_CMD {what}")
        self.clock.cancel(self._smi_event)
        self._smi_event = self.clock.schedule(
            self.clock.now + self.enable_latency_ps, lambda: self._finish_smi(target), "pm-smi"
        )

    def _finish_smi(self, enable: bool) -> None:
        self._smi_event = None
        if enable:
            self.pm1_cnt |= SCI_EN
        else:
            self.pm1_cnt &= ~SCI_EN
        self.trace.record(
            "note",
            device=self.name,
            address=self.base + PM1_CNT,
            value=self.pm1_cnt,
            detail=f"SCI_EN = {int(enable)} (firmware SMI handler done)",
        )
        self._update_sci()

    # -- SCI ------------------------------------------------------------------------------------------
    def _update_sci(self) -> None:
        self._sync_status()
        level = self.sci_en and bool((self.pm1_sts & self.pm1_en) or (self.gpe0_sts & self.gpe0_en))
        if level != self._sci_level:
            self._sci_level = level
            if level:
                self.trace.record("interrupt", device=self.name, address=self.sci_irq, value=1, detail="SCI asserted")
            self.irq(self.sci_irq, level)
        # Only wake the clock for the next timer carry when it could raise the SCI.
        self.clock.cancel(self._tmr_event)
        self._tmr_event = None
        if self.sci_en and self.pm1_en & TMR_STS and not self.pm1_sts & TMR_STS:
            next_tick = (self._toggles() + 1) << (self.timer_bits - 1)
            self._tmr_event = self.clock.schedule(ps_for_ticks(next_tick, PM_TIMER_HZ), self._on_carry, "pm-tmr")

    def _on_carry(self) -> None:
        self._tmr_event = None
        self._update_sci()

    @property
    def sci_level(self) -> bool:
        """Whether the SCI line is asserted."""
        return self._sci_level

    # -- fast-forward (gen2sim.ffplan) -------------------------------------------------------------------
    def ff_state(self) -> tuple:
        """Everything an access or an event can change (see ``gen2sim.ffplan``)."""
        return (self.pm1_sts, self.pm1_en, self.pm1_cnt, self.gpe0_sts, self.gpe0_en, self.smi_cmd,
                self._toggle_mark, self._sci_level)

    def _ff_read(self, port: int, size: int) -> tuple[int | Counter, int | None] | None:
        """(value or counter, until) of a read repeated from the present state; ``None`` if it changes state."""
        offsets = [p - self.base for p in range(port, port + size)]
        if port == self.smi_cmd_port and size == 1:
            return self.smi_cmd, None
        if not all(0 <= off < 0x10 for off in offsets):
            return None
        timer = [PM_TMR <= off < PM_TMR + 4 for off in offsets]
        if all(timer):
            shift = 8 * (offsets[0] - PM_TMR)
            counter = Counter(PM_TIMER_HZ, shift=shift,
                              mask=(((1 << self.timer_bits) - 1) >> shift) & ((1 << (8 * size)) - 1))
            return counter, None  # the engine bounds a counter by its own wrap
        if any(timer):
            return None
        until = None
        if any(off & ~1 == PM1_STS for off in offsets):
            # Reading PM1_STS folds timer carries into TMR_STS: steady until the next carry.
            if self._toggles() != self._toggle_mark:
                return None
            until = ps_for_ticks((self._toggles() + 1) << (self.timer_bits - 1), PM_TIMER_HZ)
        value = 0
        for i, p in enumerate(range(port, port + size)):
            off = p - self.base
            reg, shift = off & ~1, 8 * (off & 1)
            regs = {PM1_STS: self.pm1_sts, PM1_EN: self.pm1_en, PM1_CNT: self.pm1_cnt, GPE0_STS: self.gpe0_sts,
                    GPE0_EN: self.gpe0_en}
            value |= ((regs.get(reg, 0) >> shift) & 0xFF) << (8 * i)
        return value, until

    def ff_plan(self, space: str, accesses: list[Access]) -> Plan | None:
        """Reads only: the PM timer as a counter, the other registers as constants (PM1_STS until a carry)."""
        until = None
        reads: dict = {}
        for i, acc in enumerate(accesses):
            if space != "io" or acc.op != "r":
                return None
            answer = self._ff_read(acc.key, acc.size)
            if answer is None:
                return None
            reads[i], reg_until = answer
            until = earliest(until, reg_until)
        return Plan(until, reads)
