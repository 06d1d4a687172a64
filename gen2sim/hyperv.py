"""The Hyper-V guest interface of one virtual processor: CPUID leaves, synthetic MSRs, overlay pages, timers.

Every number (MSR, CPUID bit, field position, message type) comes from ``specs/hyperv.toml`` through
``gen2sim.hvspec``; this module holds only behaviour.  Rules cited as "TLFS <page>" are from the Hypervisor
Top-Level Functional Specification.

What the model decides where the TLFS leaves a choice (each is also said where it is implemented):

* An MSR whose CPUID precondition is clear -- because the model never grants it or because ``--hv-clear``
  removed it -- raises ``#GP``, as does any unknown MSR in 0x40000000-0x400001FF.
* Writing a RsvdZ bit raises ``#GP`` (x86 convention for reserved MSR bits; the TLFS says "must be zero").
* ``STIMERx_CONFIG.DirectMode`` is a reserved bit when CPUID 0x40000003 EDX[19] is clear, so setting it raises
  ``#GP``; so does enabling a direct-mode timer with a vector below 16 (the SINT vector rule applied to timers).
* Enabling a timer whose COUNT is 0 leaves it disabled (COUNT 0 means "stopped", TLFS timers).
* Changing an enabled timer is undefined (TLFS timers); the model restarts it with the new settings.
* A timer has one message buffer (TLFS inter-partition-communication): an expiry while the previous message is
  still queued is coalesced into it (counted in ``missed``).
* Queued messages are retried on the TLFS triggers only: a new message, an APIC EOI (EOI MSR or
  ``notify_eoi()``), an EOM write.  A disabled SCONTROL or SIM page keeps messages queued.
* AutoEOI (SINTx bit 17): the vector is raised as an edge interrupt the local APIC retires at once when the CPU
  takes it (the hypervisor's implicit EOI), so the guest must not EOI it (TLFS inter-partition-communication).
* EOI assist ("lazy EOI", TLFS virtual-interrupts): while the VP assist page is enabled, the model sets
  ApicAssist.NoEoiRequired when the CPU takes an edge interrupt and no other interrupt is requested.  The bit is
  valid until the next exit that observes the local APIC (a new interrupt, an APIC register access, a synthetic
  APIC MSR, a VP_ASSIST_PAGE write): there the model finishes the interrupt itself if the guest cleared the bit,
  and otherwise clears the bit, so the guest's conventional EOI is the one that counts (as KVM's implementation of
  the same page does).  One lazy EOI is outstanding at most, always for the highest in-service vector.
* The hypercall page contains Intel's VMCALL; a VMCALL without an enabled hypercall page raises ``#UD``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Protocol

from . import clock as clk
from .errors import GuestFault, MachineReset, ModelError
from .hvspec import HvSpec, load_hyperv_spec

#: Picoseconds in one unit of Hyper-V time (100 ns).
PS_PER_100NS = clk.PS_PER_S // clk.REFERENCE_HZ

#: The synthetic MSR range the model answers; unknown numbers inside it raise #GP.
MSR_FIRST = 0x40000000
MSR_LAST = 0x400001FF

#: CPUID leaves reserved for hypervisors (Intel SDM: 0x40000000-0x4FFFFFFF are never used by the processor).
CPUID_HV_FIRST = 0x40000000
CPUID_HV_LAST = 0x4FFFFFFF

PAGE = 4096
_MSR_INDEXED = re.compile(r"^(SINT|STIMER|CRASH_P)(\d+)(_[A-Z]+)?$")


class Memory(Protocol):
    """Guest-physical memory as the model needs it."""

    def read(self, gpa: int, size: int) -> bytes: ...

    def write(self, gpa: int, data: bytes) -> None: ...


class Lapic(Protocol):
    """The parts of the local APIC the model drives."""

    eoi_assist: Any  # this model while the VP assist page is enabled, else None

    def raise_vector(self, vector: int, level: bool = False, auto_eoi: bool = False) -> None: ...

    def eoi(self) -> None: ...

    def retire(self, vector: int) -> None: ...


@dataclass
class SyntheticTimer:
    """State of one synthetic timer (STIMERx_CONFIG / STIMERx_COUNT and its scheduling)."""

    index: int
    config: int = 0
    count: int = 0
    event: Any = None  # clock handle of the next expiry
    due_ps: int = 0  # the exact instant the next expiry is due (may be in the past for a late one-shot)
    start_ps: int = 0  # periodic: when the first period began
    period_ps: int = 0  # periodic: COUNT in picoseconds
    periods: int = 0  # periodic: index of the next expiry (1 = end of the first period)
    queued: tuple[int, int] | None = None  # message mode: (SINTx, ExpirationTime) waiting for its slot
    expirations: int = 0
    missed: int = 0


class HyperV:
    """Hyper-V as one virtual processor sees it (the partition has one VP, index 0).

    ``clock`` is the machine's ``VirtualClock``; ``trace`` its ``Trace`` (the model records only its own events:
    ``interrupt`` and ``note``; the CPU core records the accesses); ``memory`` offers ``read(gpa, size)`` /
    ``write(gpa, data)``; ``lapic`` offers ``raise_vector(vector, level=False)``, ``eoi()`` and ``tpr``.
    ``cleared`` names features of ``specs/hyperv.toml`` ([[features]]) to remove, as ``--hv-clear`` does.
    ``cpuid`` (a host profile's, ``gen2sim.hosts``) replaces registers of the default leaves before that; the TSC
    rate (TSC_FREQUENCY, the TSC page's scale) is ``clock.tsc_hz``.
    """

    def __init__(self, clock: clk.VirtualClock, trace, memory: Memory, lapic: Lapic,
                 cleared: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
                 spec: HvSpec | None = None, cpuid: dict[int, dict[int, int]] | None = None) -> None:
        self.clock = clock
        self.trace = trace
        self.memory = memory
        self.lapic = lapic
        self.spec = spec if spec is not None else load_hyperv_spec()
        known = set(self.spec.feature_names())
        unknown = sorted(set(cleared) - known)
        if unknown:
            raise ModelError(f"unknown Hyper-V feature(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        self.cleared = frozenset(cleared)

        # The CPUID the guest sees: model defaults minus every bit a cleared feature names.
        leaves = {leaf: list(regs) for leaf, regs in self.spec.default_cpuid().items()}
        # A host profile (gen2sim.hosts) replaces whole registers of the defaults: {leaf: {register index: value}}.
        for leaf, regs in (cpuid or {}).items():
            for index, value in regs.items():
                leaves[leaf][index] = value
        for name in sorted(self.cleared):
            for b in self.spec.feature(name).clears:
                if b.leaf in leaves:
                    leaves[b.leaf][b.register_index] &= ~b.mask
        self._cpuid = {leaf: tuple(regs) for leaf, regs in leaves.items()}
        present = self.spec.cpuid_bit("HypervisorPresent")
        self.present = bool(self._cpuid[present.leaf][present.register_index] & present.mask)

        d = self.spec.defaults
        self._lay = self.spec.layouts
        self._timer_msg_type = self.spec.message_type("HvMessageTimerExpired")
        self._slot_size = self.spec.section("synic")["message_slot_size"]
        self._first_vector = self.spec.section("synic")["first_valid_vector"]
        crash = self._lay["CRASH_CTL"]
        self._crash_supported = 0
        for n in d["crash_ctl_supported"]:
            self._crash_supported |= crash.field(n).mask
        self._tsc_initial_sequence = d["reference_tsc_initial_sequence"]
        hp = self.spec.section("hypercall_page")
        call = bytes(hp[d["hypercall_instruction"]]) + bytes(hp["ret"])
        self._hypercall_page = call + bytes([hp["fill"]]) * (PAGE - len(call))

        # Architectural state (TLFS reset values).
        self.guest_os_id = 0
        self.hypercall_msr = 0
        self.reference_tsc_msr = 0
        self.tsc_sequence = 0
        self._tsc_invalidated = False
        self._tsc_last_sequence = 0
        self.scontrol = 0
        self.siefp = 0
        self.simp = 0
        self.sints = [self.spec.section("synic")["sint_default"]] * self.spec.section("synic")["sint_count"]
        self.timers = [SyntheticTimer(i) for i in range(self.spec.section("synthetic_timers")["count"])]
        self.crash_p = [0] * 5
        self.vp_assist_page = 0
        #: The vector whose NoEoiRequired bit the model set and has not settled yet (see ``assist_sync``).
        self.lazy_vector: int | None = None
        #: Interrupts the model finished for the guest through the assist page (no exit each).
        self.lazy_eois = 0
        self.icr = 0
        self.vp_index = d["vp_index"]
        #: Set once CRASH_CTL is written with CrashNotify: {'p': [p0..p4], 'ctl': value[, 'message': bytes]}.
        self.crash: dict[str, Any] | None = None
        #: Set by a GUEST_IDLE read; the CPU core treats it like HLT and clears it.
        self.idle_requested = False
        #: The last hypercall handled: {'code', 'name', 'status', 'rax', 'detail'} for the core's trace record.
        self.last_hypercall: dict[str, Any] | None = None
        self._overlay_cleared: dict[str, int | None] = {"SIMP": None, "SIEFP": None}

        # One reader and one writer per modelled MSR, bound by the MSR's name in the spec.
        self._handlers: dict[int, tuple[Callable[[], int], Callable[[int], None]]] = {}
        for m in self.spec.msrs:
            if not m.modelled:
                continue
            match = _MSR_INDEXED.match(m.name)
            if match:
                base = match.group(1) + (match.group(3) or "")
                index = int(match.group(2))
                rd = getattr(self, f"_rd_{base}", None)
                wr = getattr(self, f"_wr_{base}", None)
                rd = rd and partial(rd, index)
                wr = wr and partial(wr, index)
            else:
                rd = getattr(self, f"_rd_{m.name}", None)
                wr = getattr(self, f"_wr_{m.name}", None)
            if (m.readable and m.access != "wo" and rd is None) or (m.writable and wr is None):
                raise ModelError(f"Hyper-V model has no handler for modelled MSR {m.name}")
            self._handlers[m.number] = (rd, wr)

    # =========================================================================================== CPUID
    def handles_cpuid(self, leaf: int) -> bool:
        """True for the leaves this model answers: 1 (ECX[31] only) and the hypervisor range."""
        return leaf == 1 or CPUID_HV_FIRST <= leaf <= CPUID_HV_LAST

    def hypervisor_present_bit(self) -> int:
        """CPUID.1:ECX bit 31 as a mask to OR into the processor's ECX (0 with ``--hv-clear hypervisor``)."""
        return self._cpuid[0x1][2]

    def cpuid(self, leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
        """``(eax, ebx, ecx, edx)`` for ``leaf``; for leaf 1 only ECX[31] is meaningful (the core merges it).

        Hypervisor leaves above the maximum leaf, and all of them when no hypervisor is presented, read 0.
        """
        if leaf == 1:
            return self._cpuid[0x1]
        if not CPUID_HV_FIRST <= leaf <= CPUID_HV_LAST:
            raise ModelError(f"CPUID leaf {leaf:#x} is not the Hyper-V model's")
        if not self.present:
            return (0, 0, 0, 0)
        return self._cpuid.get(leaf, (0, 0, 0, 0))

    def granted(self, bit_name: str) -> bool:
        """Whether the CPUID bit ``bit_name`` of the spec is set in what the guest sees."""
        b = self.spec.cpuid_bit(bit_name)
        if b.leaf != 0x1 and not self.present:
            return False
        regs = self._cpuid.get(b.leaf, (0, 0, 0, 0))
        return bool(regs[b.register_index] & b.mask)

    # ============================================================================================ MSRs
    def handles_msr(self, msr: int) -> bool:
        """True for MSR numbers in the synthetic range this model answers (0x40000000-0x400001FF)."""
        return MSR_FIRST <= msr <= MSR_LAST

    def _resolve(self, msr: int):
        if not self.handles_msr(msr):
            raise ModelError(f"MSR {msr:#x} is not a synthetic MSR")
        if not self.present:
            raise GuestFault("#GP", f"MSR {msr:#010x} not granted: HypervisorPresent clear (no hypervisor)")
        m = self.spec.msr_at(msr)
        if m is None:
            raise GuestFault("#GP", f"MSR {msr:#010x} not implemented")
        for r in m.requires:
            if not self.granted(r):
                # Real Hyper-V raises #GP for an MSR the partition has no privilege / feature for.
                raise GuestFault("#GP", f"MSR {msr:#010x} not granted: {r} clear")
        if msr not in self._handlers:
            raise ModelError(f"MSR {m.name} granted but not modelled (inconsistent [defaults])")
        return m

    def rdmsr(self, msr: int) -> int:
        """Read synthetic MSR ``msr``; raises ``GuestFault('#GP')`` where Hyper-V would."""
        m = self._resolve(msr)
        if m.access == "wo":
            if m.on_read == "zero":
                return 0
            raise GuestFault("#GP", f"MSR {msr:#010x} ({m.name}) is write-only")
        return self._handlers[msr][0]() & 0xFFFFFFFFFFFFFFFF

    def wrmsr(self, msr: int, value: int) -> None:
        """Write synthetic MSR ``msr``; raises ``GuestFault('#GP')`` / ``MachineReset`` where Hyper-V would."""
        if not 0 <= value < 1 << 64:
            raise ModelError(f"WRMSR value {value:#x} is not 64-bit")
        m = self._resolve(msr)
        if m.access == "ro":
            raise GuestFault("#GP", f"MSR {msr:#010x} ({m.name}) is read-only")
        if m.layout is not None:
            rsvdz = self._lay[m.layout].reserved_zero_mask
            if value & rsvdz:
                raise GuestFault("#GP", f"MSR {msr:#010x} ({m.name}): reserved bits {value & rsvdz:#x} set")
        self._handlers[msr][1](value)

    # -- identity and hypercall page ------------------------------------------------------------------
    def _rd_GUEST_OS_ID(self) -> int:
        return self.guest_os_id

    def _wr_GUEST_OS_ID(self, value: int) -> None:
        self.guest_os_id = value
        if value == 0:
            # TLFS hypercall-interface: zeroing the guest OS identity disables the hypercall page.
            self.hypercall_msr &= ~self._lay["HYPERCALL"].field("Enable").mask

    def _rd_HYPERCALL(self) -> int:
        return self.hypercall_msr

    def _wr_HYPERCALL(self, value: int) -> None:
        lay = self._lay["HYPERCALL"]
        enable, locked = lay.field("Enable"), lay.field("Locked")
        lock_available = self.granted("HypercallMsrLockAvailable")
        if lock_available and locked.get(self.hypercall_msr):
            raise GuestFault("#GP", "HYPERCALL MSR is locked")
        if enable.get(value) and self.guest_os_id == 0:
            # TLFS: without a guest OS identity the enable bit stays 0 even if a one is written.
            value = enable.put(value, 0)
        self.hypercall_msr = value
        if enable.get(value):
            gpa = lay.field("Gpfn").get(value) << 12
            self.memory.write(gpa, self._hypercall_page)
            self.trace.record("note", device="hyperv", address=gpa, detail="hypercall page enabled")

    @property
    def hypercall_enabled(self) -> bool:
        """Whether the hypercall page is enabled (HYPERCALL.Enable)."""
        return bool(self.hypercall_msr & 1)

    def hypercall(self, rcx: int, rdx: int, r8: int) -> int:
        """Handle a VMCALL from the hypercall page; returns the hypercall result value (RAX).

        Implements HvCallNotifyLongSpinWait (advisory, success); every other code returns
        HV_STATUS_INVALID_HYPERCALL_CODE.  The core records the ``hypercall`` exit; ``last_hypercall`` holds the
        detail for that record.
        """
        if not self.hypercall_enabled:
            raise GuestFault("#UD", "VMCALL without an enabled hypercall page")
        lay = self._lay["HYPERCALL_INPUT"]
        code = lay.field("CallCode").get(rcx)
        fast = lay.field("Fast").get(rcx)
        hc = self.spec.hypercall_by_code(code)
        st = self.spec.hv_status
        spin = None
        if rcx & lay.reserved_zero_mask:
            status = st("HV_STATUS_INVALID_HYPERCALL_INPUT")
        elif hc is None or not hc.modelled:
            status = st("HV_STATUS_INVALID_HYPERCALL_CODE")
        elif lay.field("RepCount").get(rcx) or lay.field("RepStartIndex").get(rcx) \
                or lay.field("VariableHeaderSize").get(rcx):
            # A simple call with a rep count or variable header (TLFS hypercall-interface status codes).
            status = st("HV_STATUS_INVALID_HYPERCALL_INPUT")
        elif not fast and rdx % 8:
            status = st("HV_STATUS_INVALID_ALIGNMENT")
        else:
            # HvCallNotifyLongSpinWait: input is a u32 spin count; the call is advisory and always succeeds.
            spin = (rdx if fast else int.from_bytes(self.memory.read(rdx, 8), "little")) & 0xFFFFFFFF
            status = st("HV_STATUS_SUCCESS")
        name = hc.name if hc is not None else "unknown"
        detail = f"{name} code={code:#06x} status={status:#x}" + (f" spin={spin}" if spin is not None else "")
        self.last_hypercall = {"code": code, "name": name, "status": status, "rax": status, "detail": detail}
        return status

    # -- simple registers ---------------------------------------------------------------------------------
    def _rd_VP_INDEX(self) -> int:
        return self.vp_index

    def _rd_RESET(self) -> int:
        return 0

    def _wr_RESET(self, value: int) -> None:
        if value == 1:
            raise MachineReset("Hyper-V RESET MSR written with 1")

    def _rd_VP_RUNTIME(self) -> int:
        # The single VP is charged for all virtual time the model runs it.
        return self.clock.reference_100ns()

    def _rd_TIME_REF_COUNT(self) -> int:
        return self.clock.reference_100ns()

    def _rd_TSC_FREQUENCY(self) -> int:
        return self.clock.tsc_hz

    def _rd_APIC_FREQUENCY(self) -> int:
        return clk.APIC_TIMER_HZ

    def _rd_GUEST_IDLE(self) -> int:
        # TLFS vp-properties: the read enters guest idle until an interrupt; the core halts the CPU.
        self.idle_requested = True
        self.trace.record("note", device="hyperv", detail="guest idle")
        return 0

    # -- reference TSC page --------------------------------------------------------------------------------
    def tsc_scale(self) -> int:
        """TscScale for the model's TSC: 100 ns units per TSC tick as a 64.64 fixed-point number."""
        return (clk.REFERENCE_HZ << 64) // self.clock.tsc_hz

    def _rd_REFERENCE_TSC(self) -> int:
        return self.reference_tsc_msr

    def _wr_REFERENCE_TSC(self, value: int) -> None:
        # The whole value is kept: bits 11:1 are RsvdP and read back as written (TLFS timers).
        self.reference_tsc_msr = value
        if value & 1:
            if self.tsc_sequence == 0 and not self._tsc_invalidated:
                self.tsc_sequence = self._tsc_initial_sequence
            self._write_tsc_page()
            self.trace.record("note", device="hyperv", address=self._tsc_page_gpa(),
                              detail="reference TSC page enabled")

    def _tsc_page_gpa(self) -> int:
        return self._lay["REFERENCE_TSC"].field("Gpfn").get(self.reference_tsc_msr) << 12

    def _write_tsc_page(self) -> None:
        page = self.spec.structure("REFERENCE_TSC_PAGE")
        head = bytearray(page.size)
        struct.pack_into("<I", head, page.member("TscSequence").offset, self.tsc_sequence)
        struct.pack_into("<Q", head, page.member("TscScale").offset, self.tsc_scale())
        struct.pack_into("<q", head, page.member("TscOffset").offset, 0)
        self.memory.write(self._tsc_page_gpa(), bytes(head))

    def invalidate_reference_tsc_page(self) -> None:
        """Mark the TSC page unusable (TscSequence = 0): readers must fall back to TIME_REF_COUNT."""
        if self.tsc_sequence:
            self._tsc_last_sequence = self.tsc_sequence
        self.tsc_sequence = 0
        self._tsc_invalidated = True
        if self.reference_tsc_msr & 1:
            off = self.spec.structure("REFERENCE_TSC_PAGE").member("TscSequence").offset
            self.memory.write(self._tsc_page_gpa() + off, struct.pack("<I", 0))

    def plan_reference_tsc_page(self, *, invalid: bool = False, sequence_changes_us: tuple[int, ...] = ()) -> None:
        """Boot options for the reference TSC page (TLFS timers allow both; the model's default does neither).

        ``invalid``: the page is published with TscSequence 0 from the start (readers must use TIME_REF_COUNT).
        ``sequence_changes_us``: virtual times (microseconds since power-on, increasing) at which the page is
        republished with a new sequence, as after a save/restore or migration; an invalid page becomes valid there.
        """
        times = tuple(sequence_changes_us)
        if any(t < 0 for t in times) or list(times) != sorted(set(times)):
            raise ModelError(f"TSC sequence change times must be increasing and non-negative (us): {times}")
        if invalid:
            self.invalidate_reference_tsc_page()
        for t in times:
            self.clock.schedule(t * clk.PS_PER_US, self._sequence_change, "tsc-sequence")

    def _sequence_change(self) -> None:
        self.refresh_reference_tsc_page()
        self.trace.record("note", device="hyperv", value=self.tsc_sequence, detail="reference TSC sequence changed")

    def refresh_reference_tsc_page(self) -> None:
        """Republish the TSC page with a new, non-zero sequence (0 is skipped: it means invalid)."""
        self._tsc_invalidated = False
        # Count on from the last valid sequence so a reader that straddled the update sees a change.
        last = self.tsc_sequence or self._tsc_last_sequence
        self.tsc_sequence = (last + 1) & 0xFFFFFFFF or 1
        if self.reference_tsc_msr & 1:
            self._write_tsc_page()

    # -- synthetic APIC registers --------------------------------------------------------------------------
    def _wr_EOI(self, value: int) -> None:
        # TLFS virtual-interrupts: the same as a write to the APIC's EOI register (the APIC settles a lazy EOI).
        self.lapic.eoi()
        self.notify_eoi()

    def notify_eoi(self) -> None:
        """Tell the SynIC the guest wrote an APIC EOI (any path): queued messages are retried (TLFS IPC)."""
        self._scan_messages()

    def _rd_ICR(self) -> int:
        self.assist_sync()
        return self.icr

    def _wr_ICR(self, value: int) -> None:
        self.assist_sync()
        self.icr = value & ~(1 << 12)  # delivery status always reads idle
        low = value & 0xFFFFFFFF
        vector, mode = low & 0xFF, (low >> 8) & 7
        shorthand, dest = (low >> 18) & 3, value >> 56
        # One VP: "self" and "all including self" reach it, as does a physical destination naming its APIC ID
        # (or broadcast 0xFF); the destination mode bit is not decoded further.
        own_id = getattr(self.lapic, "apic_id", 0)
        to_self = shorthand in (1, 2) or (shorthand == 0 and dest in (own_id, 0xFF))
        if not to_self:
            return  # the partition has one VP: IPIs to others reach nobody
        if mode != 0:
            raise ModelError(f"synthetic ICR delivery mode {mode} to self is not modelled")
        if vector < self._first_vector:
            # A fixed interrupt with vector 0-15 is illegal for the local APIC: it is not delivered.
            self.trace.record("note", device="hyperv", value=vector, detail="ICR illegal vector dropped")
            return
        self.lapic.raise_vector(vector, level=False)
        self.trace.record("interrupt", device="hyperv", value=vector, detail="ICR self IPI")

    def _rd_TPR(self) -> int:
        self.assist_sync()
        return getattr(self.lapic, "tpr", 0) & 0xFF

    def _wr_TPR(self, value: int) -> None:
        # TLFS virtual-interrupts: TPR[7:0] as the APIC's TPR register (the core derives CR8 from it).
        self.assist_sync()
        self.lapic.tpr = value & 0xFF

    def _rd_VP_ASSIST_PAGE(self) -> int:
        return self.vp_assist_page

    def _wr_VP_ASSIST_PAGE(self, value: int) -> None:
        # Zeroing the page before enabling is the guest's job (TLFS; Linux hv_cpu_init).  A lazy EOI outstanding on
        # the old page is settled first; the local APIC asks this model about every interrupt while it is enabled.
        self.assist_sync()
        self.vp_assist_page = value
        enabled = bool(self._lay["VP_ASSIST_PAGE"].field("Enable").get(value))
        self.lapic.eoi_assist = self if enabled else None
        self.trace.record("note", device="hyperv", address=self._assist_gpa() if enabled else None,
                          detail="VP assist page enabled" if enabled else "VP assist page disabled")

    # -- EOI assist (lazy EOI) ---------------------------------------------------------------------------
    def _assist_gpa(self) -> int:
        page = self.spec.structure("VP_ASSIST_PAGE")
        gpfn = self._lay["VP_ASSIST_PAGE"].field("Gpfn").get(self.vp_assist_page)
        return (gpfn << 12) + page.member("ApicAssist").offset

    def _assist_word(self) -> int:
        return int.from_bytes(self.memory.read(self._assist_gpa(), 4), "little")

    def assist_injected(self, vector: int, eligible: bool) -> None:
        """The CPU took ``vector`` while the VP assist page is enabled (called by the local APIC).

        ``eligible``: the interrupt is edge-triggered and no other one is requested -- the TLFS condition under
        which the hypervisor sets NoEoiRequired.  Otherwise the bit is left clear and the guest must EOI.
        """
        if self.lazy_vector is not None:
            raise ModelError(f"lazy EOI of vector {self.lazy_vector:#x} not settled before vector {vector:#x}")
        if not eligible:
            return
        bit = self._lay["APIC_ASSIST"].field("NoEoiRequired").mask
        self.memory.write(self._assist_gpa(), (self._assist_word() | bit).to_bytes(4, "little"))
        self.lazy_vector = vector

    def assist_sync(self) -> None:
        """Settle an outstanding lazy EOI at an exit that observes the local APIC.

        NoEoiRequired cleared by the guest: the guest ended the interrupt without an exit; the model retires the
        vector now and rescans SynIC messages as for any EOI.  Still set: the guest has not ended it yet; the model
        clears the bit, so the guest will EOI conventionally (TLFS: conventional EOIs remain valid).
        """
        vector = self.lazy_vector
        if vector is None:
            return
        self.lazy_vector = None
        bit = self._lay["APIC_ASSIST"].field("NoEoiRequired").mask
        word = self._assist_word()
        if word & bit:
            self.memory.write(self._assist_gpa(), (word & ~bit).to_bytes(4, "little"))
            return
        self.lazy_eois += 1
        self.lapic.retire(vector)
        self.notify_eoi()

    # -- SynIC ------------------------------------------------------------------------------------------
    def _rd_SCONTROL(self) -> int:
        return self.scontrol

    def _wr_SCONTROL(self, value: int) -> None:
        self.scontrol = value

    def _rd_SVERSION(self) -> int:
        return self.spec.section("synic")["version"]

    def _rd_SIEFP(self) -> int:
        return self.siefp

    def _wr_SIEFP(self, value: int) -> None:
        self.siefp = value
        self._materialize_overlay("SIEFP", value)

    def _rd_SIMP(self) -> int:
        return self.simp

    def _wr_SIMP(self, value: int) -> None:
        self.simp = value
        self._materialize_overlay("SIMP", value)

    def _materialize_overlay(self, name: str, value: int) -> None:
        # The SIM / SIEF pages are cleared at VP creation (TLFS IPC); the model shows that by clearing the
        # page at the first GPA the guest enables it at.
        if value & 1:
            gpa = self._lay[name].field("Gpfn").get(value) << 12
            if self._overlay_cleared[name] is None:
                self.memory.write(gpa, bytes(PAGE))
                self._overlay_cleared[name] = gpa

    def _wr_EOM(self, value: int) -> None:
        self._scan_messages()

    def _rd_SINT(self, index: int) -> int:
        return self.sints[index]

    def _wr_SINT(self, index: int, value: int) -> None:
        lay = self._lay["SINT"]
        if not lay.field("Masked").get(value) and lay.field("Vector").get(value) < self._first_vector:
            # TLFS IPC: valid vectors are 16-255; an invalid one raises #GP (a masked SINT may keep vector 0).
            raise GuestFault("#GP", f"SINT{index} vector {value & 0xFF} < {self._first_vector}")
        self.sints[index] = value

    # -- synthetic timers --------------------------------------------------------------------------------
    def _rd_STIMER_CONFIG(self, index: int) -> int:
        return self.timers[index].config

    def _rd_STIMER_COUNT(self, index: int) -> int:
        return self.timers[index].count

    def _wr_STIMER_CONFIG(self, index: int, value: int) -> None:
        t = self.timers[index]
        lay = self._lay["STIMER_CONFIG"]
        direct = lay.field("DirectMode").get(value)
        if direct and not self.granted("DirectSyntheticTimersAvailable"):
            # Model choice: without CPUID 0x40000003 EDX[19] the DirectMode bit is reserved -> #GP.
            raise GuestFault("#GP", f"STIMER{index}_CONFIG DirectMode not granted: "
                                    "DirectSyntheticTimersAvailable clear")
        vector = lay.field("ApicVector").get(value)
        arming = lay.field("Enable").get(value) or lay.field("AutoEnable").get(value)
        if direct and arming and vector < self._first_vector:
            # Model choice: the SINT rule (vectors 16-255, else #GP) applied to a direct-mode timer's vector.
            raise GuestFault("#GP", f"STIMER{index}_CONFIG direct-mode vector {vector} < {self._first_vector}")
        if value == t.config:
            return  # rewriting the same settings does not restart a running timer
        t.config = self._enable_rules(t, value)
        self._restart(t)

    def _wr_STIMER_COUNT(self, index: int, value: int) -> None:
        t = self.timers[index]
        enable = self._lay["STIMER_CONFIG"].field("Enable")
        t.count = value
        if value == 0:
            # TLFS timers: writing 0 stops the timer regardless of AutoEnable.
            t.config = enable.put(t.config, 0)
        elif self._lay["STIMER_CONFIG"].field("AutoEnable").get(t.config):
            t.config = self._enable_rules(t, enable.put(t.config, 1))
        self._restart(t)

    def _enable_rules(self, t: SyntheticTimer, config: int) -> int:
        """Apply the TLFS conditions under which an enable request leaves the timer disabled."""
        lay = self._lay["STIMER_CONFIG"]
        enable = lay.field("Enable")
        if enable.get(config):
            if not lay.field("DirectMode").get(config) and lay.field("Sintx").get(config) == 0:
                # TLFS timers: SINTx = 0 is not permitted for an enabled message-mode timer -> disabled at once.
                config = enable.put(config, 0)
            elif t.count == 0:
                config = enable.put(config, 0)  # nothing to count: COUNT 0 means stopped
        return config

    def _restart(self, t: SyntheticTimer) -> None:
        self.clock.cancel(t.event)
        t.event = None
        lay = self._lay["STIMER_CONFIG"]
        if not lay.field("Enable").get(t.config):
            return
        if lay.field("Periodic").get(t.config):
            # TLFS timers: the first period begins when the timer is enabled.  Every deadline is computed from
            # this start, so the period is exact and never drifts.
            t.start_ps = self.clock.now
            t.period_ps = t.count * PS_PER_100NS
            t.periods = 1
            t.due_ps = t.start_ps + t.period_ps
        else:
            # One-shot: COUNT is the absolute reference time; TIME_REF_COUNT >= COUNT first holds at
            # COUNT * 100 ns exactly.  A time in the past expires at once.
            t.due_ps = t.count * PS_PER_100NS
        t.event = self.clock.schedule(max(t.due_ps, self.clock.now), partial(self._expire, t), f"stimer{t.index}")

    def _expire(self, t: SyntheticTimer) -> None:
        lay = self._lay["STIMER_CONFIG"]
        t.event = None
        t.expirations += 1
        expiration = t.due_ps // PS_PER_100NS
        if lay.field("Periodic").get(t.config):
            t.periods += 1
            t.due_ps = t.start_ps + t.periods * t.period_ps
            t.event = self.clock.schedule(t.due_ps, partial(self._expire, t), f"stimer{t.index}")
        else:
            t.config = lay.field("Enable").put(t.config, 0)  # a one-shot timer disables itself on expiry
        if lay.field("DirectMode").get(t.config):
            vector = lay.field("ApicVector").get(t.config)
            # Direct mode asserts an ordinary edge interrupt; the guest must EOI the local APIC.
            self.lapic.raise_vector(vector, level=False)
            self.trace.record("interrupt", device="hyperv", value=vector, detail=f"stimer{t.index} direct")
            return
        sint = lay.field("Sintx").get(t.config)
        if t.queued is not None:
            t.missed += 1  # the timer's single message buffer is still queued: coalesce
            return
        t.queued = (sint, expiration)
        self._scan_messages()

    # -- message delivery ------------------------------------------------------------------------------------
    def _scan_messages(self) -> None:
        """Try to deliver every queued timer message (TLFS IPC message delivery rules)."""
        if not any(t.queued for t in self.timers):
            return
        if not (self.scontrol & 1) or not (self.simp & 1):
            return  # SynIC or SIM page disabled: messages stay queued
        base = self._lay["SIMP"].field("Gpfn").get(self.simp) << 12
        header = self.spec.structure("HV_MESSAGE_HEADER")
        payload = self.spec.structure("HV_TIMER_MESSAGE_PAYLOAD")
        flags_off = header.member("MessageFlags").offset
        pending = self._lay["MESSAGE_FLAGS"].field("MessagePending").mask
        sint_lay = self._lay["SINT"]
        for t in self.timers:
            if t.queued is None:
                continue
            sint, expiration = t.queued
            slot = base + sint * self._slot_size
            if int.from_bytes(self.memory.read(slot + header.member("MessageType").offset, 4), "little") != 0:
                # Slot occupied: the message stays queued; tell the guest to write EOM after emptying the slot.
                flags = self.memory.read(slot + flags_off, 1)[0]
                if not flags & pending:
                    self.memory.write(slot + flags_off, bytes([flags | pending]))
                continue
            msg = bytearray(header.size + payload.size)
            struct.pack_into("<I", msg, header.member("MessageType").offset, self._timer_msg_type)
            msg[header.member("PayloadSize").offset] = payload.size
            p = header.size
            struct.pack_into("<I", msg, p + payload.member("TimerIndex").offset, t.index)
            struct.pack_into("<Q", msg, p + payload.member("ExpirationTime").offset, expiration)
            struct.pack_into("<Q", msg, p + payload.member("DeliveryTime").offset, self.clock.reference_100ns())
            self.memory.write(slot, bytes(msg))
            t.queued = None
            sint_value = self.sints[sint]
            # TLFS IPC: the interrupt is lost if the SINT is masked; polling mode never interrupts.
            if not sint_lay.field("Masked").get(sint_value) and not sint_lay.field("Polling").get(sint_value):
                vector = sint_lay.field("Vector").get(sint_value)
                if sint_lay.field("AutoEoi").get(sint_value):
                    # TLFS IPC: the hypervisor performs the EOI when the interrupt is taken; the guest must not.
                    self.lapic.raise_vector(vector, level=False, auto_eoi=True)
                else:
                    self.lapic.raise_vector(vector, level=False)
                self.trace.record("interrupt", device="hyperv", value=vector,
                                  detail=f"stimer{t.index} message sint{sint}" + (" auto-EOI" if
                                         sint_lay.field("AutoEoi").get(sint_value) else ""))

    # -- crash MSRs ----------------------------------------------------------------------------------------
    def _rd_CRASH_P(self, index: int) -> int:
        return self.crash_p[index]

    def _wr_CRASH_P(self, index: int, value: int) -> None:
        self.crash_p[index] = value

    def _rd_CRASH_CTL(self) -> int:
        # TLFS partition-properties: a read reports the supported crash actions.
        return self._crash_supported

    def _wr_CRASH_CTL(self, value: int) -> None:
        lay = self._lay["CRASH_CTL"]
        if not lay.field("CrashNotify").get(value):
            return
        self.crash = {"p": list(self.crash_p), "ctl": value}
        if lay.field("CrashMessage").get(value) and self._crash_supported & lay.field("CrashMessage").mask:
            length = min(self.crash_p[4], self.spec.section("crash")["message_max_bytes"])
            self.crash["message"] = bytes(self.memory.read(self.crash_p[3], length)) if length else b""
        self.trace.record("note", device="hyperv", value=self.crash_p[0], detail="crash reported")
