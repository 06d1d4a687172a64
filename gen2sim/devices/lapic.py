"""Local APIC of the (single) virtual processor: xAPIC MMIO, x2APIC MSRs, timer.

Interrupt state is three 256-bit sets (IRR, ISR, TMR) held as Python integers.
Every interrupt source -- the IOAPIC, the local timer, self-IPIs, Hyper-V's
synthetic timers and SynIC -- calls ``raise_vector(vector, level)``.  The CPU core
asks ``pending_vector()`` at instruction boundaries when RFLAGS.IF is set, moves
the vector to service with ``acknowledge(vector)`` and delivers it through the
guest IDT; the guest ends it with an EOI write, which lands in ``eoi()``.

Two Hyper-V enlightenments end interrupts without that write (gen2sim.hyperv implements the hypervisor's side):
a vector raised with ``auto_eoi`` (a SynIC SINT with AutoEOI) leaves service as soon as it is taken, and while
``eoi_assist`` is set (the VP assist page is enabled) every taken interrupt is reported to it, and every exit that
observes this APIC first lets it settle an outstanding lazy EOI (``retire(vector)``).

Priority rules (Intel SDM vol. 3 ch. 11 "Advanced Programmable Interrupt Controller"):
PPR = TPR when TPR[7:4] >= the highest in-service class, else that class (low
nibble 0); a requested vector is deliverable only when its class (vector[7:4]) is
strictly above PPR[7:4].

Modes come from the APIC base MSR (0x1B): EN (bit 11) and EXTD (bit 10).
- xAPIC (EN=1, EXTD=0): registers in the 4 KiB MMIO page at ``base``; the x2APIC
  MSRs 0x800-0x8FF raise #GP.
- x2APIC (EN=1, EXTD=1): registers are MSRs 0x800 + offset/16 (ICR is one 64-bit
  MSR 0x830, self-IPI MSR 0x83F); the MMIO page is not decoded.
- disabled (EN=0): nothing is delivered; leaving this mode starts from the
  power-on register state.
Invalid transitions (EN=0 with EXTD=1, x2APIC -> xAPIC, disabled -> x2APIC) and
reserved bits raise #GP.

Timer: counts at ``APIC_TIMER_HZ`` / divide configuration, derived from virtual
time; one-shot, periodic and TSC-deadline (MSR 0x6E0).  Clock events are scheduled
only while the timer LVT is unmasked, so a masked periodic timer does not keep
the idle CPU's event queue busy; the count itself runs regardless.  The TSC the
deadline is compared with is ``read_tsc()`` (by default ``clock.tsc``; the platform
replaces it if the core keeps a guest TSC offset).

Single-CPU simplifications: IPIs that would reach another processor (all
excluding self, or a destination that is not this APIC) and non-fixed delivery
modes (SMI, NMI, INIT, SIPI) are recorded as notes and otherwise dropped; the ICR
delivery-status bit always reads idle.  While the APIC is software-disabled (SVR
bit 8 clear) fixed interrupts are dropped (with a note) and LVT masks are forced.
"""

from __future__ import annotations

from typing import Callable

from specs import load_facts

from ..clock import APIC_TIMER_HZ, VirtualClock, ps_for_ticks, ticks
from ..clock import PS_PER_S
from ..errors import GuestFault, ModelError
from ..ffplan import Access, Counter, Plan, earliest
from ..trace import Trace

# Register offsets, LVT bits and MSR numbers: specs/x64.toml [apic] (Intel SDM vol. 3A ch. 11), the file the
# generated HAL code is rendered from too.
_APIC = load_facts("x64")["apic"]
_REG = _APIC["registers"]

MSR_APIC_BASE = _APIC["msrs"]["apic_base"]
MSR_TSC_DEADLINE = _APIC["msrs"]["tsc_deadline"]
X2APIC_MSR_FIRST, X2APIC_MSR_LAST = _APIC["msrs"]["x2apic_first"], _APIC["msrs"]["x2apic_last"]

BASE_BSP, BASE_EXTD, BASE_EN = 1 << 8, 1 << 10, 1 << 11
_BASE_ADDR_MASK = ((1 << 52) - 1) & ~0xFFF

APIC_VERSION = 0x0005_0014  # version 0x14, max LVT entry 5 (six LVTs, no CMCI)

REG_ID, REG_VER, REG_TPR, REG_APR, REG_PPR, REG_EOI, REG_RRD = (
    _REG[k] for k in ("id", "version", "tpr", "apr", "ppr", "eoi", "rrd"))
REG_LDR, REG_DFR, REG_SVR = _REG["ldr"], _REG["dfr"], _REG["svr"]
REG_ISR, REG_TMR, REG_IRR = _REG["isr"], _REG["tmr"], _REG["irr"]
REG_ESR, REG_ICR_LO, REG_ICR_HI = _REG["esr"], _REG["icr_low"], _REG["icr_high"]
LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR = (
    _REG[k] for k in ("lvt_timer", "lvt_thermal", "lvt_perf", "lvt_lint0", "lvt_lint1", "lvt_error"))
REG_TIMER_INITIAL, REG_TIMER_CURRENT, REG_TIMER_DIVIDE, REG_SELF_IPI = (
    _REG[k] for k in ("timer_initial_count", "timer_current_count", "timer_divide", "self_ipi"))

LVT_MASKED = _APIC["lvt"]["masked"]
SVR_ENABLE = _APIC["svr"]["software_enable"]
TIMER_ONESHOT, TIMER_PERIODIC, TIMER_TSC_DEADLINE = 0, 1, 2

ESR_SEND_ILLEGAL_VECTOR, ESR_RECEIVE_ILLEGAL_VECTOR, ESR_ILLEGAL_REGISTER = 0x20, 0x40, 0x80

#: Writable bits of each LVT (delivery status and remote IRR are read-only).
_LVT_WRITABLE = {
    LVT_TIMER: 0x0007_00FF,  # vector, mask, timer mode
    LVT_THERMAL: 0x0001_07FF,  # vector, delivery mode, mask
    LVT_PERF: 0x0001_07FF,
    LVT_LINT0: 0x0001_A7FF,  # vector, delivery mode, polarity, trigger, mask
    LVT_LINT1: 0x0001_A7FF,
    LVT_ERROR: 0x0001_00FF,  # vector, mask
}

_X2APIC_READABLE = frozenset(
    [REG_ID, REG_VER, REG_TPR, REG_PPR, REG_LDR, REG_SVR, REG_ESR, REG_ICR_LO]
    + list(_LVT_WRITABLE)
    + [REG_TIMER_INITIAL, REG_TIMER_CURRENT, REG_TIMER_DIVIDE]
    + [base + 0x10 * i for base in (REG_ISR, REG_TMR, REG_IRR) for i in range(8)]
)
_X2APIC_WRITABLE = frozenset(
    [REG_TPR, REG_EOI, REG_SVR, REG_ESR, REG_ICR_LO, REG_TIMER_INITIAL, REG_TIMER_DIVIDE, REG_SELF_IPI]
    + list(_LVT_WRITABLE)
)

_DELIVERY_NAMES = {0: "fixed", 1: "lowest-priority", 2: "SMI", 4: "NMI", 5: "INIT", 6: "SIPI", 7: "ExtINT"}


def _highest(bits: int) -> int | None:
    """Highest set bit number of a 256-bit set, or ``None``."""
    return bits.bit_length() - 1 if bits else None


def divide_value(config: int) -> int:
    """Timer divisor for the divide configuration register (bits 3, 1, 0)."""
    code = ((config >> 1) & 0x4) | (config & 0x3)
    return 1 if code == 0x7 else 2 << code


class LocalApic:
    """Local APIC of one virtual processor (see the module docstring for the model)."""

    name = "lapic"

    def __init__(
        self, clock: VirtualClock, trace: Trace, apic_id: int = 0, base: int = 0xFEE0_0000, *, bsp: bool = True
    ) -> None:
        self.clock = clock
        self.trace = trace
        self.apic_id = apic_id
        self.apic_base_msr = (base & _BASE_ADDR_MASK) | BASE_EN | (BASE_BSP if bsp else 0)
        #: Called with the vector when a level-triggered interrupt is EOIed (the platform sets it to ``ioapic.eoi``).
        self.on_level_eoi: Callable[[int], None] = lambda vector: None
        #: Guest-visible TSC used by the TSC-deadline timer.
        self.read_tsc: Callable[[], int] = clock.tsc
        self.eoi_count = 0
        #: Hyper-V's EOI assist while the VP assist page is enabled (``assist_injected`` / ``assist_sync``).
        self.eoi_assist = None
        #: Interrupts ended without a guest EOI: AutoEOI vectors and lazy EOIs.
        self.implicit_eoi_count = 0
        self._timer_event = None
        self._reset_state()

    def _reset_state(self) -> None:
        """Power-on register state (also what leaving the disabled mode gives)."""
        self.irr = 0
        self.isr = 0
        self.tmr = 0
        self.auto_eoi = 0  # requested vectors the hypervisor ends when they are taken (SynIC AutoEOI)
        self._tpr = 0
        self.ldr = 0
        self.dfr = 0xFFFF_FFFF
        self.svr = 0xFF
        self.lvt = {reg: LVT_MASKED for reg in _LVT_WRITABLE}
        self.esr = 0
        self._esr_pending = 0
        self.icr = 0  # 64 bits: low dword = command, high dword = destination
        self.timer_initial = 0
        self.timer_divide = 0
        self.tsc_deadline = 0
        self._t_start = 0  # APIC bus tick at which the current countdown began
        self._t_first = 0  # count at _t_start (the periodic reload value is timer_initial)
        self._t_running = False
        self.clock.cancel(self._timer_event)
        self._timer_event = None

    # -- mode -------------------------------------------------------------------------------------
    @property
    def base(self) -> int:
        """Physical base address of the xAPIC MMIO page."""
        return self.apic_base_msr & _BASE_ADDR_MASK

    @property
    def enabled(self) -> bool:
        """APIC globally enabled (APIC base MSR bit 11)."""
        return bool(self.apic_base_msr & BASE_EN)

    @property
    def x2apic(self) -> bool:
        """x2APIC mode (APIC base MSR bit 10 with bit 11)."""
        return self.enabled and bool(self.apic_base_msr & BASE_EXTD)

    @property
    def mmio_enabled(self) -> bool:
        """Whether the xAPIC MMIO page is decoded (enabled and not in x2APIC mode)."""
        return self.enabled and not self.x2apic

    @property
    def software_enabled(self) -> bool:
        """SVR bit 8."""
        return bool(self.svr & SVR_ENABLE)

    # -- priority -----------------------------------------------------------------------------------
    @property
    def tpr(self) -> int:
        """Task-priority register (the core keeps CR8 = TPR >> 4)."""
        return self._tpr

    @tpr.setter
    def tpr(self, value: int) -> None:
        """Set TPR (8 bits)."""
        self._tpr = value & 0xFF

    @property
    def ppr(self) -> int:
        """Processor-priority register, derived from TPR and the highest in-service vector."""
        isrv = _highest(self.isr) or 0
        if (self._tpr >> 4) >= (isrv >> 4):
            return self._tpr
        return isrv & 0xF0

    @property
    def apr(self) -> int:
        """Arbitration-priority register (xAPIC only)."""
        isrv = _highest(self.isr) or 0
        irrv = _highest(self.irr) or 0
        if (self._tpr >> 4) >= (irrv >> 4) and (self._tpr >> 4) > (isrv >> 4):
            return self._tpr
        return max(self._tpr & 0xF0, isrv & 0xF0, irrv & 0xF0)

    def irr_vectors(self) -> list[int]:
        """Requested vectors, lowest first."""
        return [v for v in range(256) if self.irr >> v & 1]

    def isr_vectors(self) -> list[int]:
        """In-service vectors, lowest first."""
        return [v for v in range(256) if self.isr >> v & 1]

    # -- interrupt flow --------------------------------------------------------------------------
    def _note(self, detail: str, address: int | None = None, value: int | None = None) -> None:
        self.trace.record("note", device=self.name, address=address, value=value, detail=detail)

    def _settle(self) -> None:
        """An exit that observes the APIC: let Hyper-V settle an outstanding lazy EOI first."""
        if self.eoi_assist is not None:
            self.eoi_assist.assist_sync()

    def raise_vector(self, vector: int, level: bool = False, auto_eoi: bool = False) -> bool:
        """Request ``vector`` (set its IRR bit; TMR records the trigger mode).

        ``auto_eoi``: the vector leaves service as soon as the CPU takes it (Hyper-V SynIC AutoEOI).
        Returns whether the APIC accepted it: a disabled APIC (global or software)
        drops fixed interrupts, and vectors 0-15 are illegal (ESR bit 6).
        """
        self._settle()
        vector &= 0xFF
        if not self.enabled:
            self._note(f"vector {vector:#04x} dropped: APIC globally disabled", value=vector)
            return False
        if vector < 16:
            self._note(f"illegal vector {vector:#04x} received", value=vector)
            self._error(ESR_RECEIVE_ILLEGAL_VECTOR)
            return False
        if not self.software_enabled:
            self._note(f"vector {vector:#04x} dropped: APIC software-disabled", value=vector)
            return False
        bit = 1 << vector
        self.irr |= bit
        if level:
            self.tmr |= bit
        else:
            self.tmr &= ~bit
        if auto_eoi and not level:
            self.auto_eoi |= bit
        else:
            self.auto_eoi &= ~bit
        return True

    def pending_vector(self) -> int | None:
        """Highest requested vector whose priority class is above PPR's, or ``None``."""
        if not self.enabled:
            return None
        vector = _highest(self.irr)
        if vector is None or (vector & 0xF0) <= (self.ppr & 0xF0):
            return None
        return vector

    def acknowledge(self, vector: int) -> None:
        """The CPU takes ``vector``: move it from IRR to ISR."""
        bit = 1 << vector
        if not self.irr & bit:
            raise ModelError(f"acknowledge of vector {vector:#x} that is not requested")
        self._settle()  # injecting is the hypervisor's act: an earlier lazy EOI is settled first
        self.irr &= ~bit
        if self.auto_eoi & bit:
            # SynIC AutoEOI: the hypervisor ends the interrupt as it is delivered; it never enters service.
            self.auto_eoi &= ~bit
            self.implicit_eoi_count += 1
            return
        self.isr |= bit
        if self.eoi_assist is not None:
            # TLFS EOI assist: no EOI needed for an edge interrupt when no other interrupt is requested.
            self.eoi_assist.assist_injected(vector, not (self.tmr & bit) and not self.irr)

    def retire(self, vector: int) -> None:
        """Hyper-V ends edge ``vector`` for the guest (a lazy EOI): it leaves service without an EOI write."""
        bit = 1 << vector
        if not self.isr & bit:
            return  # no longer in service: the APIC was disabled (its state reset) in between
        if _highest(self.isr) != vector or self.tmr & bit:
            raise ModelError(f"lazy EOI of vector {vector:#x}, which is not the highest edge vector in service")
        self.isr &= ~bit
        self.implicit_eoi_count += 1

    def eoi(self) -> None:
        """End of interrupt: retire the highest in-service vector; a level one is forwarded."""
        self._settle()
        self.eoi_count += 1
        vector = _highest(self.isr)
        if vector is None:
            return
        self.isr &= ~(1 << vector)
        if self.tmr >> vector & 1:
            self.on_level_eoi(vector)

    def _error(self, bit: int) -> None:
        # Errors accumulate until the guest writes ESR; the error LVT signals each one.
        self._esr_pending |= bit
        entry = self.lvt[LVT_ERROR]
        vector = entry & 0xFF
        if not entry & LVT_MASKED and self.software_enabled and self.enabled and vector >= 16:
            self.irr |= 1 << vector
            self.tmr &= ~(1 << vector)
            self.trace.record(
                "interrupt",
                device=self.name,
                address=LVT_ERROR,
                value=vector,
                detail=f"APIC error {bit:#04x}",
            )

    def accepts(self, dest: int, logical: bool, width: int | None = None) -> bool:
        """Whether a message with destination ``dest`` (physical or logical) targets this APIC.

        ``width`` is the destination field width in bits: 8 for xAPIC ICRs and
        IOAPIC entries, 32 for x2APIC ICRs (default: by the current mode).
        """
        if width is None:
            width = 32 if self.x2apic else 8
        broadcast = (1 << width) - 1
        if dest == broadcast:
            return True
        if not logical:
            return dest == (self.apic_id & broadcast)
        if self.x2apic:
            ldr = self.logical_id()
            if width == 8:
                return bool(dest & ldr & 0xFFFF) and ldr >> 16 == 0
            return dest >> 16 == ldr >> 16 and bool(dest & ldr & 0xFFFF)
        ldr = self.ldr >> 24
        if self.dfr >> 28 == 0xF:  # flat model
            return bool(dest & ldr)
        return dest >> 4 == ldr >> 4 and bool(dest & ldr & 0xF)  # cluster model

    def logical_id(self) -> int:
        """Logical destination: LDR[31:24] in xAPIC mode, the derived 32-bit LDR in x2APIC mode."""
        if self.x2apic:
            return ((self.apic_id >> 4) << 16) | (1 << (self.apic_id & 0xF))
        return self.ldr >> 24

    # -- inter-processor interrupts ----------------------------------------------------------------
    def _send_ipi(self, command: int, dest: int, source: int) -> None:
        vector = command & 0xFF
        mode = (command >> 8) & 7
        logical = bool(command & (1 << 11))
        shorthand = (command >> 18) & 3
        if mode not in (0, 1):
            name = _DELIVERY_NAMES.get(mode, f"mode {mode}")
            self._note(f"{name} IPI not modelled (single CPU); ignored", address=source, value=command)
            return
        if vector < 16:
            self._note(f"IPI with illegal vector {vector:#04x}", address=source, value=command)
            self._error(ESR_SEND_ILLEGAL_VECTOR)
            return
        if shorthand == 3:
            self._note("IPI to all excluding self: no other CPU", address=source, value=command)
            return
        if shorthand == 0 and not self.accepts(dest, logical):
            self._note(f"IPI to destination {dest:#x}: no such CPU", address=source, value=command)
            return
        if self.raise_vector(vector):
            self.trace.record("interrupt", device=self.name, address=source, value=vector, detail="self IPI")

    # -- timer -----------------------------------------------------------------------------------------
    @property
    def timer_mode(self) -> int:
        """0 one-shot, 1 periodic, 2 TSC-deadline (LVT timer bits 18:17)."""
        return (self.lvt[LVT_TIMER] >> 17) & 3

    def _bus_ticks(self) -> int:
        return ticks(self.clock.now, APIC_TIMER_HZ)

    def current_count(self) -> int:
        """Current-count register, derived from virtual time."""
        if not self._t_running or self.timer_mode == TIMER_TSC_DEADLINE:
            return 0
        e = (self._bus_ticks() - self._t_start) // divide_value(self.timer_divide)
        if e < self._t_first:
            return self._t_first - e
        if self.timer_mode == TIMER_PERIODIC and self.timer_initial:
            return self.timer_initial - ((e - self._t_first) % self.timer_initial)
        return 0

    def _next_expiry_ps(self) -> int | None:
        """Virtual time of the next timer expiry at or after now, or ``None``."""
        mode = self.timer_mode
        if mode == TIMER_TSC_DEADLINE:
            if not self.tsc_deadline:
                return None
            delta = self.tsc_deadline - self.read_tsc()
            return ps_for_ticks(self.clock.tsc() + max(delta, 0), self.clock.tsc_hz)
        if not self._t_running or mode not in (TIMER_ONESHOT, TIMER_PERIODIC):
            return None
        div = divide_value(self.timer_divide)
        e = (self._bus_ticks() - self._t_start) // div
        first_expiry = self._t_start + self._t_first * div
        if e < self._t_first:
            return ps_for_ticks(first_expiry, APIC_TIMER_HZ)
        if mode == TIMER_PERIODIC and self.timer_initial:
            k = (e - self._t_first) // self.timer_initial + 1
            return ps_for_ticks(first_expiry + k * self.timer_initial * div, APIC_TIMER_HZ)
        return None

    def _start_countdown(self, count: int) -> None:
        self._t_start = self._bus_ticks()
        self._t_first = count
        self._t_running = count != 0

    def _retire_passed_deadline(self) -> None:
        # The deadline MSR reads 0 once the TSC has reached it, delivered or not.
        if self.tsc_deadline and self.read_tsc() >= self.tsc_deadline and self._timer_event is None:
            self.tsc_deadline = 0

    def _reschedule_timer(self) -> None:
        self.clock.cancel(self._timer_event)
        self._timer_event = None
        if self.lvt[LVT_TIMER] & LVT_MASKED or not self.enabled:
            return
        if self.timer_mode == TIMER_TSC_DEADLINE and self.tsc_deadline and self.read_tsc() >= self.tsc_deadline:
            self._expire()  # a deadline already in the past fires at once
            return
        when = self._next_expiry_ps()
        if when is not None:
            self._timer_event = self.clock.schedule(when, self._on_timer, "lapic-timer")

    def _on_timer(self) -> None:
        self._timer_event = None
        self._expire()

    def _expire(self) -> None:
        entry = self.lvt[LVT_TIMER]
        if self.timer_mode == TIMER_TSC_DEADLINE:
            self.tsc_deadline = 0
        if not entry & LVT_MASKED and self.raise_vector(entry & 0xFF):
            self.trace.record("interrupt", device=self.name, address=LVT_TIMER, value=entry & 0xFF, detail="timer")
        if self.timer_mode == TIMER_PERIODIC:
            self._reschedule_timer()

    # -- register file (shared by MMIO and x2APIC MSRs) ------------------------------------------
    def _read_register(self, reg: int) -> int | None:
        """Value of the register at MMIO offset ``reg``; ``None`` if it does not exist."""
        if reg == REG_ID:
            return self.apic_id if self.x2apic else (self.apic_id & 0xFF) << 24
        if reg == REG_VER:
            return APIC_VERSION
        if reg == REG_TPR:
            return self._tpr
        if reg == REG_APR:
            return self.apr
        if reg == REG_PPR:
            return self.ppr
        if reg in (REG_EOI, REG_RRD):
            return 0
        if reg == REG_LDR:
            return self.logical_id() if self.x2apic else self.ldr
        if reg == REG_DFR:
            return self.dfr
        if reg == REG_SVR:
            return self.svr
        for first, bits in ((REG_ISR, self.isr), (REG_TMR, self.tmr), (REG_IRR, self.irr)):
            if first <= reg < first + 0x80:
                return (bits >> (32 * ((reg - first) >> 4))) & 0xFFFF_FFFF
        if reg == REG_ESR:
            return self.esr
        if reg == REG_ICR_LO:
            return self.icr & 0xFFFF_EFFF  # delivery status always idle
        if reg == REG_ICR_HI:
            return self.icr >> 32
        if reg in self.lvt:
            return self.lvt[reg]
        if reg == REG_TIMER_INITIAL:
            return self.timer_initial
        if reg == REG_TIMER_CURRENT:
            return self.current_count()
        if reg == REG_TIMER_DIVIDE:
            return self.timer_divide
        return None

    def _write_register(self, reg: int, value: int, source: int) -> bool:
        """Write the register at MMIO offset ``reg``; returns ``False`` if it is not writable."""
        if reg == REG_TPR:
            self._tpr = value & 0xFF
        elif reg == REG_EOI:
            self.eoi()
        elif reg == REG_LDR and not self.x2apic:
            self.ldr = value & 0xFF00_0000
        elif reg == REG_DFR and not self.x2apic:
            self.dfr = value | 0x0FFF_FFFF
        elif reg == REG_SVR:
            self.svr = value & 0x3FF
            if not self.svr & SVR_ENABLE:
                for lvt in self.lvt:
                    self.lvt[lvt] |= LVT_MASKED
                self._reschedule_timer()
        elif reg == REG_ESR:
            self.esr, self._esr_pending = self._esr_pending, 0
        elif reg == REG_ICR_LO:
            if self.x2apic:
                self.icr = value & 0xFFFF_FFFF_000C_CFFF
                self._send_ipi(self.icr & 0xFFFF_FFFF, self.icr >> 32, source)
            else:
                self.icr = (self.icr & ~0xFFFF_FFFF) | (value & 0x000C_CFFF)
                self._send_ipi(self.icr & 0xFFFF_FFFF, (self.icr >> 56) & 0xFF, source)
        elif reg == REG_ICR_HI and not self.x2apic:
            self.icr = (self.icr & 0xFFFF_FFFF) | ((value & 0xFF00_0000) << 32)
        elif reg in self.lvt:
            self._write_lvt(reg, value)
        elif reg == REG_TIMER_INITIAL:
            if self.timer_mode != TIMER_TSC_DEADLINE:
                self.timer_initial = value & 0xFFFF_FFFF
                self._start_countdown(self.timer_initial)
                self._reschedule_timer()
        elif reg == REG_TIMER_DIVIDE:
            remaining = self.current_count()
            self.timer_divide = value & 0xB
            # Keep the count where it is and continue at the new rate (an expired
            # one-shot count stays at 0).
            if self._t_running and remaining:
                self._start_countdown(remaining)
            else:
                self._t_running = False
            self._reschedule_timer()
        elif reg == REG_SELF_IPI and self.x2apic:
            self._send_ipi(value & 0xFF | (1 << 18), 0, source)
        else:
            return False
        return True

    def _write_lvt(self, reg: int, value: int) -> None:
        new = value & _LVT_WRITABLE[reg]
        if not self.software_enabled:
            new |= LVT_MASKED  # a software-disabled APIC keeps every LVT masked
        old = self.lvt[reg]
        if reg == LVT_TIMER:
            new_mode = (new >> 17) & 3
            if new_mode == 3:
                new &= ~(3 << 17)  # reserved mode: treated as one-shot
                self._note("reserved LVT timer mode 3", address=reg, value=value)
            if ((old >> 17) & 3 == TIMER_TSC_DEADLINE) != ((new >> 17) & 3 == TIMER_TSC_DEADLINE):
                # Switching into or out of TSC-deadline mode disarms the timer.
                self.timer_initial = 0
                self.tsc_deadline = 0
                self._t_running = False
        self.lvt[reg] = (old & ~_LVT_WRITABLE[reg]) | new
        if reg == LVT_TIMER:
            self._retire_passed_deadline()
            self._reschedule_timer()

    # -- xAPIC MMIO --------------------------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        """Read ``size`` bytes at ``offset`` in the APIC page (registers are 32 bits at 16-byte strides)."""
        mask = (1 << (8 * size)) - 1
        self._settle()
        if not self.mmio_enabled:
            self._note("xAPIC MMIO read while not in xAPIC mode", address=offset)
            return mask
        reg, sub = offset & 0xFF0, offset & 0xF
        value = self._read_register(reg) if offset < 0x400 else None
        if value is None or reg == REG_SELF_IPI:
            self._note("read of a reserved APIC register", address=offset)
            self._error(ESR_ILLEGAL_REGISTER)
            return 0
        if sub >= 4:
            return 0
        return (value >> (8 * sub)) & mask

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        """Write at ``offset`` in the APIC page; only aligned 32-bit writes take effect."""
        self._settle()
        if not self.mmio_enabled:
            self._note("xAPIC MMIO write while not in xAPIC mode", address=offset, value=value)
            return
        reg = offset & 0xFF0
        if size != 4 or offset & 0xF:
            self._note(
                f"{size}-byte APIC write at offset {offset:#x} ignored (registers take aligned 32-bit writes)",
                address=offset,
                value=value,
            )
            return
        if reg == REG_ID:
            self._note("APIC ID write ignored (IDs are fixed on Hyper-V)", address=offset, value=value)
            return
        if offset >= 0x400 or reg == REG_SELF_IPI or not self._write_register(reg, value, offset):
            if offset < 0x400 and self._read_register(reg) is not None:
                self._note("write to a read-only APIC register ignored", address=offset, value=value)
            else:
                self._note("write to a reserved APIC register", address=offset, value=value)
                self._error(ESR_ILLEGAL_REGISTER)

    # -- MSRs ----------------------------------------------------------------------------------------------
    @staticmethod
    def handles_msr(msr: int) -> bool:
        """Whether ``msr`` belongs to the local APIC (0x1B, 0x6E0, 0x800-0x8FF)."""
        return msr in (MSR_APIC_BASE, MSR_TSC_DEADLINE) or X2APIC_MSR_FIRST <= msr <= X2APIC_MSR_LAST

    def rdmsr(self, msr: int) -> int:
        """RDMSR of an APIC MSR; #GP for x2APIC MSRs outside x2APIC mode or write-only/absent ones."""
        self._settle()
        if msr == MSR_APIC_BASE:
            return self.apic_base_msr
        if msr == MSR_TSC_DEADLINE:
            if self.timer_mode != TIMER_TSC_DEADLINE:
                return 0
            self._retire_passed_deadline()
            return self.tsc_deadline
        reg = self._x2apic_register(msr)
        if reg not in _X2APIC_READABLE:
            raise GuestFault("#GP", f"RDMSR {msr:#x}: not a readable x2APIC register")
        if reg == REG_ICR_LO:
            return self.icr & 0xFFFF_FFFF_FFFF_EFFF  # one 64-bit register in x2APIC mode
        return self._read_register(reg)

    def wrmsr(self, msr: int, value: int) -> None:
        """WRMSR of an APIC MSR; #GP on reserved bits, invalid mode changes and read-only registers."""
        value &= 0xFFFF_FFFF_FFFF_FFFF
        self._settle()
        if msr == MSR_APIC_BASE:
            self._write_apic_base(value)
            return
        if msr == MSR_TSC_DEADLINE:
            if self.timer_mode != TIMER_TSC_DEADLINE or not self.enabled:
                self._note("TSC-deadline MSR written outside TSC-deadline mode; ignored", address=msr, value=value)
                return
            self.tsc_deadline = value
            self._reschedule_timer()
            return
        reg = self._x2apic_register(msr)
        if reg not in _X2APIC_WRITABLE:
            raise GuestFault("#GP", f"WRMSR {msr:#x}: not a writable x2APIC register")
        if reg != REG_ICR_LO and value >> 32:
            raise GuestFault("#GP", f"WRMSR {msr:#x}: reserved bits 63:32 set")
        if reg in (REG_EOI, REG_ESR) and value:
            raise GuestFault("#GP", f"WRMSR {msr:#x}: value must be 0")
        if reg == REG_SELF_IPI and value >> 8:
            raise GuestFault("#GP", f"WRMSR {msr:#x}: reserved bits set")
        self._write_register(reg, value, msr)

    def _x2apic_register(self, msr: int) -> int:
        if not self.x2apic:
            raise GuestFault("#GP", f"x2APIC MSR {msr:#x} accessed while x2APIC mode is off")
        return (msr - X2APIC_MSR_FIRST) << 4

    def _write_apic_base(self, value: int) -> None:
        if value & ~(_BASE_ADDR_MASK | BASE_BSP | BASE_EXTD | BASE_EN):
            raise GuestFault("#GP", f"APIC base {value:#x}: reserved bits set")
        en, extd = bool(value & BASE_EN), bool(value & BASE_EXTD)
        if extd and not en:
            raise GuestFault("#GP", "APIC base: EXTD set without EN (invalid state)")
        was_enabled, was_x2 = self.enabled, self.x2apic
        if was_x2 and en and not extd:
            raise GuestFault("#GP", "APIC base: x2APIC to xAPIC transition is not allowed")
        if not was_enabled and extd:
            raise GuestFault("#GP", "APIC base: disabled to x2APIC transition is not allowed")
        # The BSP flag is a fact of the processor, not something software changes.
        self.apic_base_msr = (value & ~BASE_BSP) | (self.apic_base_msr & BASE_BSP)
        if was_enabled and not en:
            self._reset_state()
            self._note("local APIC globally disabled", address=MSR_APIC_BASE, value=value)
        elif extd and not was_x2:
            self._note("local APIC switched to x2APIC mode", address=MSR_APIC_BASE, value=value)

    # -- fast-forward (gen2sim.ffplan) ---------------------------------------------------------------------
    def ff_state(self) -> tuple:
        """Everything an access or an event can change (see ``gen2sim.ffplan``)."""
        return (self.apic_base_msr, self.irr, self.isr, self.tmr, self._tpr, self.ldr, self.dfr, self.svr,
                tuple(sorted(self.lvt.items())), self.esr, self._esr_pending, self.icr, self.timer_initial,
                self.timer_divide, self.tsc_deadline, self._t_start, self._t_first, self._t_running, self.eoi_count,
                self.auto_eoi, self.implicit_eoi_count, getattr(self.eoi_assist, "lazy_vector", None))

    def _ff_current_count(self) -> tuple[int | Counter, int | None] | None:
        """The current-count register as a counter until its next expiry (or reload), or a constant 0."""
        if not self._t_running or self.timer_mode == TIMER_TSC_DEADLINE:
            return 0, None
        div = divide_value(self.timer_divide)
        if PS_PER_S % APIC_TIMER_HZ or APIC_TIMER_HZ % div:
            return None  # the count would not be an exact Counter
        ps_per_tick = PS_PER_S // APIC_TIMER_HZ
        e = (self._bus_ticks() - self._t_start) // div
        if e < self._t_first:
            begin, count = self._t_start, self._t_first
        elif self.timer_mode == TIMER_PERIODIC and self.timer_initial:
            k = (e - self._t_first) // self.timer_initial
            begin, count = self._t_start + (self._t_first + k * self.timer_initial) * div, self.timer_initial
        else:
            return 0, None  # an expired one-shot count stays 0
        # current = count - (bus ticks since begin) // div, exact as a counter at APIC_TIMER_HZ / div.
        counter = Counter(APIC_TIMER_HZ // div, t0=begin * ps_per_tick, base=count, sign=-1, mask=0xFFFF_FFFF)
        return counter, (begin + count * div) * ps_per_tick

    def _ff_register(self, reg: int) -> tuple[int | Counter, int | None] | None:
        if reg == REG_TIMER_CURRENT:
            return self._ff_current_count()
        value = self._read_register(reg)
        return None if value is None else (value, None)

    def ff_plan(self, space: str, accesses: list[Access]) -> Plan | None:
        """Reads of the register file (xAPIC page or x2APIC MSRs); the current count is a counter.  Writes and
        reads that note an error (reserved registers, the wrong mode) refuse."""
        until = None
        reads: dict = {}
        for i, acc in enumerate(accesses):
            if acc.op != "r":
                return None
            if space == "mmio":
                reg, sub = acc.key & 0xFF0, acc.key & 0xF
                if not self.mmio_enabled or acc.key >= 0x400 or reg == REG_SELF_IPI:
                    return None
                answer = self._ff_register(reg)
                if answer is None:
                    return None
                value, reg_until = answer
                mask = (1 << (8 * acc.size)) - 1
                if sub >= 4:
                    value = 0
                elif isinstance(value, Counter):
                    value = Counter(value.hz, value.t0, value.base, value.sign, 8 * sub, (value.mask >> (8 * sub)) & mask)
                else:
                    value = (value >> (8 * sub)) & mask
            elif space == "msr":
                if acc.key == MSR_APIC_BASE:
                    value, reg_until = self.apic_base_msr, None
                elif acc.key == MSR_TSC_DEADLINE:
                    if self.timer_mode == TIMER_TSC_DEADLINE:
                        return None  # the read retires a passed deadline
                    value, reg_until = 0, None
                elif self.x2apic and X2APIC_MSR_FIRST <= acc.key <= X2APIC_MSR_LAST:
                    reg = (acc.key - X2APIC_MSR_FIRST) << 4
                    if reg not in _X2APIC_READABLE:
                        return None
                    if reg == REG_ICR_LO:
                        value, reg_until = self.icr & 0xFFFF_FFFF_FFFF_EFFF, None
                    else:
                        answer = self._ff_register(reg)
                        if answer is None:
                            return None
                        value, reg_until = answer
                else:
                    return None
            else:
                return None
            reads[i] = value
            until = earliest(until, reg_until)
        return Plan(until, reads)
