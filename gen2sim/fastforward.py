"""Fast-forwarding polling loops in exact virtual time.

A HAL that waits for the RTC's update-in-progress edge, a counter to reach a value or a port that never answers
spins through the same few instructions millions of times, and each iteration costs the model microseconds of
Python (a block hook, an exit, a trace record).  This engine recognises such a loop while the CPU runs it and
replaces the iterations whose outcome is already certain by one step that changes the machine exactly as running
them would have: virtual time, the guest instruction count, exit counts, the trace (one compact ``repeat``
record, ``gen2sim.trace``), registers and memory.  Nothing the guest or the boot's figures can see differs from
the step-by-step run; ``GEN2SIM_NO_FASTFORWARD=1`` (or ``gen2hal boot --no-fast-forward``) turns it off to check.

How, in order, at the block hook of the loop's first block (the *head*):

1. *Detect*: a block address that recurs with the same distance (in blocks) twice is a loop head candidate.
2. *Observe*: snapshot registers, flags, clock, counts and every device's ``ff_state()``; let one iteration run;
   back at the head, decode the blocks it went through (capstone) and replay them with ``gen2sim.ffeval`` from
   the snapshot and the values the devices really returned.  The replay must reproduce Unicorn's registers,
   flags and stores, the trace records (kinds, ports, sizes, times), the time and instructions charged, and
   every device must be back in the state it was in: the iteration is *steady*.
3. *Plan*: ask each device the loop touched what repeating its accesses would return from now on
   (``gen2sim.ffplan``): constants, or counters as exact functions of time, valid until an edge.  The skip may
   not reach the next scheduled clock event, a device's edge, a counter's wrap, the run's time or instruction
   limit; the loop is not skipped while an interrupt is about to be delivered.
4. *Prove*: with each counter read given as the range it sweeps over the candidate iterations, the interpreter
   shows that every branch goes the observed way and the iteration's live-in state is unchanged (binary search
   for the largest such range).
5. *Apply*: advance the clock, instruction count and exits by K iterations, append the repeat record, and set the
   registers and memory to what the last skipped iteration leaves (an exact replay with its values).  The next
   iteration then runs for real -- the one that sees the edge, or exits -- and observation starts again.

A loop that can never end (a dead port, a counter that cannot reach its target before the limit) is thereby
skipped straight to the run's limit: the hang verdict comes at once, with the same figures as the slow run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from unicorn import (UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_MEM_FETCH, UC_HOOK_MEM_READ,
                     UC_HOOK_MEM_READ_AFTER, UC_HOOK_MEM_WRITE)
from unicorn import x86_const as X

from .bus import AbsentDevice
from .clock import COSTS, PS_PER_NS, REFERENCE_HZ
from .errors import GuestFault, ModelError
from .ffeval import Aff, Diverges, Iv, Machine, Step, Unsupported, decode_block, path_steps
from .ffplan import Access, Counter, Plan, earliest, plan_reads
from .trace import MAX_TEMPLATE

#: Environment switch: any value but empty or "0" disables fast-forward.
ENV_DISABLE = "GEN2SIM_NO_FASTFORWARD"
#: Longest loop (in executed blocks per iteration) considered.
MAX_BLOCKS = 64
#: Fewer iterations than this are not worth a skip.
MIN_SKIP = 2
#: Backoff after a failed attempt: wait 2**n loop-head arrivals, n capped here.
MAX_BACKOFF = 12

_GPRS = (X.UC_X86_REG_RAX, X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_RBX, X.UC_X86_REG_RSP,
         X.UC_X86_REG_RBP, X.UC_X86_REG_RSI, X.UC_X86_REG_RDI, X.UC_X86_REG_R8, X.UC_X86_REG_R9,
         X.UC_X86_REG_R10, X.UC_X86_REG_R11, X.UC_X86_REG_R12, X.UC_X86_REG_R13, X.UC_X86_REG_R14,
         X.UC_X86_REG_R15)
_RECORD_KIND = {("io", "r"): "port_in", ("io", "w"): "port_out", ("mmio", "r"): "mmio_read",
                ("mmio", "w"): "mmio_write", ("msr", "r"): "msr_read", ("msr", "w"): "msr_write"}
_EXIT_CLASS = {"io": "port_io", "mmio": "mmio", "msr": "msr"}
_MSR_FS_BASE, _MSR_GS_BASE = 0xC0000100, 0xC0000101
#: Hyper-V MSRs a loop may poll: reads without side effects, constant or following the reference counter.
_HV_COUNTERS = frozenset(("TIME_REF_COUNT", "VP_RUNTIME"))
_HV_CONSTANT = frozenset(("TSC_FREQUENCY", "APIC_FREQUENCY", "VP_INDEX", "GUEST_OS_ID", "HYPERCALL",
                          "REFERENCE_TSC"))


def enabled_by_default() -> bool:
    """Whether fast-forward is on unless told otherwise (``GEN2SIM_NO_FASTFORWARD``)."""
    return os.environ.get(ENV_DISABLE, "") in ("", "0")


@dataclass
class Stats:
    """What fast-forward did in a run (wall-time free, but not part of a boot's result: the figures of a run
    must not depend on whether it was fast-forwarded)."""

    loops: int = 0  # distinct loop heads skipped at least once
    skips: int = 0
    iterations_skipped: int = 0
    iterations_run: int = 0  # iterations of those loops observed step by step
    instructions_skipped: int = 0
    heads: set = field(default_factory=set, repr=False)


@dataclass
class _Arm:
    """A loop head being observed: the snapshot taken there and the blocks run since."""

    head: int
    head_size: int
    length: int  # blocks per iteration expected (the detected distance)
    regs: list
    rflags: int
    now: int
    instructions: int
    records: int  # len(trace.records) at the snapshot
    exits: dict
    states: dict
    blocks: list = field(default_factory=list)


@dataclass
class _Iteration:
    """A validated, steady iteration of a loop."""

    steps: list[Step]
    block_costs: list[int]
    accesses: list[tuple]  # (space, key, size, op, value, time offset)
    period: int  # ps
    instructions: int
    exits: dict
    template: list[dict]  # its trace records
    start: int  # virtual time it started at
    induction: dict[int, int]  # GPR -> what each iteration adds to it (a bounded wait's counter)


class FastForward:
    """The engine, owned by ``Cpu`` (``cpu.fastforward``); ``block`` is called at every block hook before the
    block is charged."""

    def __init__(self, cpu) -> None:
        self.cpu = cpu
        self.stats = Stats()
        self._seen: dict[int, int] = {}
        self._gap: dict[int, int] = {}
        self._seq = 0
        self._arm: _Arm | None = None
        self._paths: dict[tuple, list[Step] | str] = {}
        self._decoded: dict[tuple[int, int], list] = {}
        self._backoff: dict[int, list[int]] = {}  # head -> [failures, arrivals to wait]

    # ------------------------------------------------------------------ hot path
    def block(self, address: int, size: int) -> None:
        """Called by the block hook before the block at ``address`` is charged."""
        arm = self._arm
        if arm is not None:
            if address == arm.head:
                self._at_head(arm)
                return
            arm.blocks.append((address, size))
            if len(arm.blocks) >= arm.length:
                self._arm = None  # the iteration took another path (the loop ended, an interrupt came)
            return
        self._seq = seq = self._seq + 1
        seen = self._seen
        prev = seen.get(address)
        seen[address] = seq
        if prev is not None:
            gap = seq - prev
            if gap <= MAX_BLOCKS and self._gap.get(address) == gap:
                self._candidate(address, size, gap)
            self._gap[address] = gap

    # ------------------------------------------------------------------ observing
    def _candidate(self, head: int, size: int, length: int) -> None:
        wait = self._backoff.get(head)
        if wait is not None:
            if wait[1] > 0:
                wait[1] -= 1
                return
            if wait[0] < 0:
                return  # unsupported for good
        self._arm = self._snapshot(head, size, length)

    def _snapshot(self, head: int, size: int, length: int) -> _Arm:
        cpu = self.cpu
        uc = cpu.uc
        return _Arm(head, size, length, [uc.reg_read(r) for r in _GPRS], uc.reg_read(X.UC_X86_REG_EFLAGS),
                    cpu.clock.now, cpu.instructions, len(cpu.trace.records), dict(cpu.trace.exits),
                    self._device_states())

    def _devices(self) -> list:
        cpu = self.cpu
        out, seen = [], set()
        for dev in list(cpu.io.devices) + [r.device for r in cpu.mmio.regions] + [cpu.lapic]:
            if dev is not None and id(dev) not in seen:
                seen.add(id(dev))
                out.append(dev)
        return out

    def _device_states(self) -> dict:
        return {id(dev): (dev.ff_state() if hasattr(dev, "ff_state") else None) for dev in self._devices()}

    def _fail(self, head: int, forever: bool = False) -> None:
        self._arm = None
        entry = self._backoff.setdefault(head, [0, 0])
        if forever:
            entry[0] = -1
            return
        entry[0] = min(entry[0] + 1, MAX_BACKOFF)
        entry[1] = 1 << entry[0]

    def _at_head(self, arm: _Arm) -> None:
        """Back at the head one iteration after the snapshot: validate it, skip what is certain, observe again."""
        if len(arm.blocks) + 1 != arm.length:
            self._fail(arm.head)
            return
        path = ((arm.head, arm.head_size),) + tuple(arm.blocks)
        steps = self._steps(path)
        if isinstance(steps, str):
            self._fail(arm.head, forever=True)
            return
        try:
            it = self._validate(arm, path, steps)
        except Unsupported:
            self._paths[path] = "unsupported"
            self._fail(arm.head, forever=True)
            return
        except (Diverges, ModelError, GuestFault):
            it = None
        if it is None:
            self._fail(arm.head)
            return
        self.stats.iterations_run += 1
        count = self._skip_count(arm, it)
        if count < MIN_SKIP:
            self._fail(arm.head)  # nothing certain to skip now (an event or an edge is near): look again later
            return
        self._backoff.pop(arm.head, None)
        self._apply(arm, it, count)
        self._arm = self._snapshot(arm.head, arm.head_size, arm.length)

    def _hooked(self, kinds: int, *spans: tuple[int, int]) -> bool:
        """Whether a hook of another part of the model (``cpu.foreign_hooks``) of ``kinds`` covers any address of
        the inclusive ``spans`` (a hook whose begin exceeds its end covers everything, as in Unicorn)."""
        for htype, begin, end in self.cpu.foreign_hooks:
            if htype & kinds and (begin > end or any(lo <= end and begin <= hi for lo, hi in spans)):
                return True
        return False

    def _steps(self, path: tuple) -> list[Step] | str:
        cached = self._paths.get(path)
        if cached is not None:
            return cached
        cpu = self.cpu
        try:
            if self._hooked(UC_HOOK_INSN):
                raise Unsupported("an instruction hook of another part of the model")
            blocks = []
            for address, size in path:
                if any(lo <= address < hi for lo, hi in cpu.stub_ranges):
                    raise Unsupported("kernel stub in the loop")
                if self._hooked(UC_HOOK_CODE | UC_HOOK_BLOCK, (address, address + size - 1)):
                    raise Unsupported("code another part of the model hooks")
                key = (address, size)
                if key not in self._decoded:
                    self._decoded[key] = decode_block(cpu.mem.vread(address, size), address)
                blocks.append((address, self._decoded[key]))
            steps = path_steps(blocks, path[0][0])
        except (Unsupported, ModelError):
            steps = "unsupported"
        self._paths[path] = steps
        return steps

    # ------------------------------------------------------------------ the interpreter's environment
    def _machine(self, steps: list[Step], path: tuple, regs: list, rflags: int, oracle,
                 induction: dict[int, int] | None = None) -> Machine:
        cpu = self.cpu
        costs = [cpu._block_insns[key] * COSTS["instruction"] for key in path]

        hooked = self._hooked
        watch = UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE | UC_HOOK_MEM_FETCH | UC_HOOK_MEM_READ_AFTER

        class _Memory:
            @staticmethod
            def is_device(va: int, size: int) -> bool:
                gpa = cpu.mem.translate(va)
                if gpa is None:
                    raise Diverges(f"access to unmapped {va:#x}")
                if hooked(watch, (va, va + size - 1), (gpa, gpa + size - 1)):
                    raise Unsupported(f"memory at {va:#x} is watched by a hook")
                return not cpu.mem.ram.contains(gpa, size)

            @staticmethod
            def read(va: int, size: int) -> bytes:
                return cpu.mem.vread(va, size)

        bases = {"fs": cpu.uc.msr_read(_MSR_FS_BASE), "gs": cpu.uc.msr_read(_MSR_GS_BASE)}
        return Machine(steps, regs, rflags, _Memory(), oracle, lambda b: costs[b],
                       lambda space: COSTS[_EXIT_CLASS[space]], bases.__getitem__, induction)

    def _tsc(self) -> Counter:
        return Counter(self.cpu.clock.tsc_hz, base=self.cpu.tsc_offset)

    # ------------------------------------------------------------------ validation
    def _validate(self, arm: _Arm, path: tuple, steps: list[Step]) -> _Iteration | None:
        cpu = self.cpu
        trace = cpu.trace
        records = trace.records[arm.records:]
        if any(r.get("kind") not in _RECORD_KIND.values() for r in records):
            return None  # something else happened during the iteration (an interrupt, a note, a repeat)
        tsc = self._tsc()
        used = [0]

        def oracle(space, key, size, op, value, t_off):
            if space == "tsc":
                return tsc.value(arm.now + t_off)
            j = used[0]
            used[0] += 1
            if j >= len(records):
                raise Diverges("fewer trace records than accesses")
            rec = records[j]
            if rec["kind"] != _RECORD_KIND[(space, op)] or rec["address"] != key \
                    or (space != "msr" and rec["size"] != size) or rec["t_ns"] != (arm.now + t_off) // PS_PER_NS:
                raise Diverges("the trace does not match the iteration's accesses")
            if op == "w":
                if rec["value"] != value:
                    raise Diverges("a written value differs")
                return None
            if type(rec["value"]) is not int:
                raise Diverges("a read without a value")
            return rec["value"]

        machine = self._machine(steps, path, arm.regs, arm.rflags, oracle)
        result = machine.run(loop=False)
        # Registers the iteration reads and changes are candidate induction registers (the proof decides); any
        # other state it carries from one iteration to the next disqualifies it now.
        machine.induction = dict(result.carried)
        machine.check_invariant()
        uc = cpu.uc
        if used[0] != len(records):
            return None
        if result.regs != [uc.reg_read(r) for r in _GPRS] or result.rflags != uc.reg_read(X.UC_X86_REG_EFLAGS):
            return None
        for addr, byte in result.stores.items():
            if cpu.mem.vread(addr, 1)[0] != byte:
                return None
        instructions = sum(cpu._block_insns[key] for key in path)
        if cpu.clock.now - arm.now != result.time_ps or cpu.instructions - arm.instructions != instructions:
            return None
        exits: dict[str, int] = {}
        for space, *_ in result.accesses:
            if space != "tsc":
                exits[_EXIT_CLASS[space]] = exits.get(_EXIT_CLASS[space], 0) + 1
        if {k: v - arm.exits.get(k, 0) for k, v in trace.exits.items() if v != arm.exits.get(k, 0)} != exits:
            return None
        if self._device_states() != arm.states:
            return None
        costs = [cpu._block_insns[key] * COSTS["instruction"] for key in path]
        return _Iteration(steps, costs, result.accesses, result.time_ps, instructions, exits, records, arm.now,
                          dict(result.carried))

    # ------------------------------------------------------------------ planning
    def _device_for(self, space: str, key: int):
        """(device object, key as the device sees it) for an access."""
        cpu = self.cpu
        if space == "io":
            return cpu.io.device_at(key) or AbsentDevice, key
        if space == "mmio":
            region = cpu.mmio.find(key)
            if region is None:
                return AbsentDevice, key
            return region.device, key - region.base
        owner = cpu.msr_device(key)
        return {"hyperv": _HyperVMsrs(cpu.hyperv), "lapic": cpu.lapic, "cpu": _CpuMsrs(cpu)}[owner], key

    def _read_values(self, it: _Iteration, now: int) -> tuple[dict[int, int | Counter], int | None] | None:
        """Per access index: what each read returns from ``now`` on (value or counter), and the time until which
        that holds; ``None`` when a device refuses or disagrees with what the iteration saw."""
        groups: dict[int, tuple[object, str, list[int], list[Access]]] = {}
        for i, (space, key, size, op, value, _t) in enumerate(it.accesses):
            if space == "tsc":
                continue
            device, dkey = self._device_for(space, key)
            if device is None or not hasattr(device, "ff_plan"):
                return None
            g = groups.setdefault(id(device), (device, space, [], []))
            if g[1] != space:
                return None
            g[2].append(i)
            g[3].append(Access(op, dkey, size, value))
        reads: dict[int, int | Counter] = {}
        until = None
        for device, space, indices, accesses in groups.values():
            plan: Plan | None = device.ff_plan(space, accesses)
            if plan is None:
                return None
            last = max(it.accesses[i][5] for i in indices)
            if plan.until is not None:
                until = earliest(until, plan.until - last)  # bound on the iteration start time
            for local, value in plan.reads.items():
                reads[indices[local]] = value
        tsc = self._tsc()
        for i, (space, *_rest) in enumerate(it.accesses):
            if space == "tsc":
                reads[i] = tsc
        # What the iteration saw must be what the plan says it saw.
        recorded = iter(it.template)
        for i, (space, key, size, op, value, t_off) in enumerate(it.accesses):
            if space == "tsc":
                continue
            rec = next(recorded)
            if op != "r":
                continue
            v = reads.get(i)
            if v is None:
                return None
            seen = v.value(it.start + t_off) if isinstance(v, Counter) else v
            if seen != rec["value"]:
                return None
            if isinstance(v, Counter):
                until = earliest(until, v.wraps_at(now + t_off) - t_off)
        return reads, until

    def _skip_count(self, arm: _Arm, it: _Iteration) -> int:
        cpu = self.cpu
        now, period = cpu.clock.now, it.period
        if period <= 0 or period % PS_PER_NS or len(it.template) > MAX_TEMPLATE:
            return 0  # the repeat record counts whole ns and refers to at most MAX_TEMPLATE records
        if cpu.lapic.pending_vector() is not None and cpu.uc.reg_read(X.UC_X86_REG_EFLAGS) & 0x200:
            return 0  # the core delivers an interrupt at this very block
        planned = self._read_values(it, now)
        if planned is None:
            return 0
        reads, until = planned
        # K iterations occupy [now, now + K * period]: every instant they reach must stay before the next event,
        # the limits and (for the start of the last one) the devices' edges.
        limit = cpu._limit_ps
        deadline = cpu.clock.next_deadline()
        bounds = [(limit - now - 1) // period, (cpu._insn_limit - cpu.instructions - 1) // it.instructions]
        if deadline is not None:
            bounds.append((deadline - now - 1) // period)
        if until is not None:
            bounds.append((until - now - 1) // period + 1)
        kmax = min(bounds)
        if kmax < MIN_SKIP:
            return 0
        if self._prove(arm, it, reads, now, kmax):
            return kmax
        if not self._prove(arm, it, reads, now, MIN_SKIP):
            return 0  # not even two iterations: state carried from one iteration to the next, most likely
        lo, hi = MIN_SKIP, kmax  # lo proven, hi not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._prove(arm, it, reads, now, mid):
                lo = mid
            else:
                hi = mid
        return lo

    def _oracle(self, it: _Iteration, reads: dict, first: int, last: int):
        """Device answers for iterations ``first..last`` starting at ``first`` (ranges when they differ)."""
        writes = {i: a[4] for i, a in enumerate(it.accesses) if a[3] == "w"}
        index = [0]

        def oracle(space, key, size, op, value, t_off):
            i = index[0]
            index[0] += 1
            if i >= len(it.accesses) or it.accesses[i][:4] != (space, key, size, op):
                raise Diverges("the accesses differ from the observed iteration")
            if op == "w":
                if value != writes[i]:
                    raise Diverges("a written value differs")
                return None
            v = reads[i]
            if not isinstance(v, Counter):
                return v
            a, b = v.value(first + t_off), v.value(last + t_off)
            return a if a == b else Iv(min(a, b), max(a, b))

        return oracle

    def _prove(self, arm: _Arm, it: _Iteration, reads: dict, now: int, count: int) -> bool:
        path = self._path_of(arm)
        regs = [self.cpu.uc.reg_read(r) for r in _GPRS]
        for gpr, step in it.induction.items():
            # Over the range an induction register starts anywhere between its value now and (count - 1) steps on.
            ends = (regs[gpr], regs[gpr] + (count - 1) * step)
            if min(ends) < 0 or max(ends) > (1 << 64) - 1:
                return False
            regs[gpr] = Aff(gpr, 0, min(ends), max(ends))
        rflags = self.cpu.uc.reg_read(X.UC_X86_REG_EFLAGS)
        oracle = self._oracle(it, reads, now, now + (count - 1) * it.period)
        try:
            self._machine(it.steps, path, regs, rflags, oracle, it.induction).run()
        except (Diverges, Unsupported):
            return False
        return True

    @staticmethod
    def _path_of(arm: _Arm) -> tuple:
        return ((arm.head, arm.head_size),) + tuple(arm.blocks)

    # ------------------------------------------------------------------ applying
    def _apply(self, arm: _Arm, it: _Iteration, count: int) -> None:
        cpu = self.cpu
        uc = cpu.uc
        now, period = cpu.clock.now, it.period
        reads, _until = self._read_values(it, now)
        last = now + (count - 1) * period
        regs = [uc.reg_read(r) for r in _GPRS]
        start = list(regs)  # the last skipped iteration starts with the induction registers count - 1 steps on
        for gpr, step in it.induction.items():
            start[gpr] = (regs[gpr] + (count - 1) * step) & ((1 << 64) - 1)
        rflags = uc.reg_read(X.UC_X86_REG_EFLAGS)
        try:
            result = self._machine(it.steps, self._path_of(arm), start, rflags,
                                   self._oracle(it, reads, last, last), it.induction).run()
        except (Diverges, Unsupported) as exc:
            raise ModelError(f"fast-forward: the proven loop at {arm.head:#x} does not replay: {exc}") from None
        if any(type(v) is not int for v in result.regs) or result.rflags is None:
            raise ModelError("fast-forward: the last skipped iteration's state is not exact")
        counters = {}
        recorded = 0
        for i, (space, key, size, op, value, t_off) in enumerate(it.accesses):
            if space == "tsc":
                continue
            if isinstance(reads.get(i), Counter) and op == "r":
                counters[recorded] = (reads[i], it.start + t_off)
            recorded += 1
        if recorded:
            cpu.trace.repeat(count, recorded, period // PS_PER_NS, counters)
        for reg, old, new in zip(_GPRS, regs, result.regs):
            if old != new:
                uc.reg_write(reg, new)
        if result.rflags != rflags:
            uc.reg_write(X.UC_X86_REG_EFLAGS, result.rflags)
        for addr, byte in result.stores.items():
            if cpu.mem.vread(addr, 1)[0] != byte:
                cpu.mem.vwrite(addr, bytes((byte,)))
        cpu.clock.now += count * period  # no event is due before this instant (see _skip_count)
        cpu.instructions += count * it.instructions
        st = self.stats
        st.skips += 1
        st.iterations_skipped += count
        st.instructions_skipped += count * it.instructions
        if arm.head not in st.heads:
            st.heads.add(arm.head)
            st.loops += 1


class _CpuMsrs:
    """The processor's own MSRs a loop may read: the TSC (a counter) and the segment bases."""

    def __init__(self, cpu) -> None:
        self.cpu = cpu

    def ff_plan(self, space: str, accesses: list[Access]) -> Plan | None:
        """TSC MSR 0x10 follows the TSC; FS/GS bases and EFER are constant."""
        def answer(acc: Access):
            if acc.key == 0x10:
                return Counter(self.cpu.clock.tsc_hz, base=self.cpu.tsc_offset)
            if acc.key in (0xC0000080, 0xC0000100, 0xC0000101, 0xC0000102):
                return self.cpu.uc.msr_read(acc.key)
            return None
        return plan_reads(accesses, answer)


class _HyperVMsrs:
    """Synthetic MSRs a loop may poll: reads with no side effect, constant or the reference counter."""

    def __init__(self, hyperv) -> None:
        self.hyperv = hyperv

    def ff_plan(self, space: str, accesses: list[Access]) -> Plan | None:
        """Reference-counter MSRs as counters, a few configuration MSRs as constants; anything else refuses."""
        hv = self.hyperv

        def answer(acc: Access):
            m = hv.spec.msr_at(acc.key) if hv is not None else None
            name = m.name if m is not None else None
            if name not in _HV_COUNTERS and name not in _HV_CONSTANT:
                return None
            try:
                value = hv.rdmsr(acc.key)  # side-effect free for these; raises where the guest would fault
            except GuestFault:
                return None
            return Counter(REFERENCE_HZ) if name in _HV_COUNTERS else value
        return plan_reads(accesses, answer)
