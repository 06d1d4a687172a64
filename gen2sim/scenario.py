"""The boot scenario and its verdict.

HalInitializeProcessor(0, LoaderBlock) → HalInitSystem(0, LoaderBlock) (FALSE → bug check 0x5C) →
HalInitSystem(1, LoaderBlock) (FALSE → 0x61) → interrupts on, CR8 = 0, HalProcessorIdle in a loop for
``seconds`` of virtual time (KeQueryPerformanceCounter before and after it: the counter's rate) →
KeQueryPerformanceCounter ×64 (exits per call, monotonic) → KeStallExecutionProcessor(1000) ×4 → judged
(``gen2sim.judge``): ``booted`` when clock, counter, stall, idle and exports keep the bounds of
``specs/verdict_bounds.toml``, else ``misbehaved`` naming each broken property with its figure.

``boot(...)`` returns a ``BootResult``: ``result`` is the JSON-able dict (deterministic: virtual time only) and
``machine`` the machine (its ``trace`` holds every intercepted operation).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from unicorn import x86_const as X

from specs import SpecError, bugcheck_names, load_target

from .clock import PS_PER_NS, PS_PER_S, PS_PER_US
from .cpu import RunStop
from .errors import ModelError
from .judge import broken_text, judge
from .kernel import kernel_class
from .loader import LoadError, load_image
from .machine import LAPIC_GPA, Machine
from .timeline import timeline_summary
from .trace import EXIT_CLASSES, REPEAT, TRACE_FORMAT

RTC_REGISTERS = {0x0: "seconds", 0x2: "minutes", 0x4: "hours", 0xA: "RTC register A", 0xB: "RTC register B",
                 0xC: "RTC register C", 0xD: "RTC register D"}
LEGACY_PORTS = {0x20: "8259", 0x21: "8259", 0xA0: "8259", 0xA1: "8259", 0x4D0: "8259 ELCR", 0x4D1: "8259 ELCR",
                0x40: "PIT", 0x41: "PIT", 0x42: "PIT", 0x43: "PIT", 0x61: "PIT port B", 0x60: "i8042",
                0x64: "i8042"}
QPC_CALLS = 64
STALL_CALLS = 4
STALL_US = 1000
#: HalProcessorIdle calls after which the idle window ends early: an idle that halts returns once per interrupt
#: (65 times in a second of a 64 Hz clock); one that returns at once would otherwise be called millions of times.
MAX_IDLE_CALLS = 10_000


@dataclass
class BootResult:
    """What a boot produced: the JSON-able ``result`` and the ``machine`` (trace, devices)."""

    result: dict
    machine: Machine | None


#: Fewer device reads than this in a hang window are set-up before the loop, not the loop polling the device.
MIN_POLL_READS = 16


def _waits(cpu, machine) -> dict:
    """What a loop that reads no device waits on: the interrupt flag and the unmasked IOAPIC inputs (pin, vector)
    through which an interrupt could still end it."""
    flags = cpu.reg(X.UC_X86_REG_EFLAGS)
    pins = [{"pin": pin, "vector": entry & 0xFF} for pin, entry in enumerate(machine.ioapic.entries)
            if not entry & (1 << 16)]
    return {"memory_only": True, "interrupts_enabled": bool(flags & 0x200), "unmasked_ioapic_pins": pins}


def _hang_polls(trace, since: int, rtc_selected: int | None = None) -> dict | None:
    """The port/MMIO/MSR location read most often in the trace records since index ``since``.

    ``rtc_selected`` is the CMOS index the RTC holds now: when the loop never rewrites port 0x70, it is the
    register every read of port 0x71 in the window went to.
    """
    reads = Counter()
    rtc_index = None
    where: dict[tuple, str | None] = {}
    window = max(since, trace.count() - 20000)
    # The CMOS index may have been written before the window (indices count the expanded trace).
    last = trace.find_last(since, window, lambda rec: rec["kind"] == "port_out" and rec["address"] == 0x70)
    if last is not None:
        rtc_index = (last["value"] or 0) & 0x7F
    tail = list(trace.iter_expanded(window))
    if rtc_index is None and not any(rec["kind"] == "port_out" and rec["address"] == 0x70 for rec in tail):
        rtc_index = rtc_selected
    for rec in tail:
        kind = rec["kind"]
        if kind == "port_out" and rec["address"] == 0x70:
            rtc_index = (rec["value"] or 0) & 0x7F
        elif kind in ("port_in", "mmio_read", "msr_read"):
            register = None
            if kind == "port_in" and rec["address"] == 0x71 and rtc_index is not None:
                register = RTC_REGISTERS.get(rtc_index, f"CMOS register {rtc_index:#x}")
            key = (rec["device"], rec["address"], register)
            reads[key] += 1
            where.setdefault(key, rec["function"])
    if not reads:
        return None
    (device, address, register), count = max(reads.items(), key=lambda kv: (kv[1], str(kv[0])))
    out = {"device": device, "port_or_address": address, "reads": count}
    if register:
        out["register"] = register
    return out


def _weighted(trace, first: int, last: int | None, exclude=()):
    """``trace.weighted()`` over stored records ``first`` .. ``last`` only, skipping the ``exclude`` ranges."""
    records = trace.records
    stop = len(records) if last is None else last
    for i in range(first, stop):
        if any(a <= i < b for a, b in exclude):
            continue
        rec = records[i]
        if rec.get("kind") == REPEAT:
            for r in records[max(first, i - rec["records"]):i]:
                yield r, rec["count"]
        else:
            yield rec, 1


def _legacy_touches(trace, first: int = 0, last: int | None = None, exclude=()) -> list[dict]:
    """Touches of legacy PC hardware in trace records ``first`` .. ``last`` outside ``exclude`` (by device and
    port)."""
    touches: dict[tuple, dict] = {}
    rtc_index = None

    def touch(device: str, address: int, function):
        entry = touches.setdefault((device, address), {"device": device, "port_or_address": address, "count": 0,
                                                       "first_function": function})
        entry["count"] += weight

    for rec, weight in _weighted(trace, first, last, exclude):  # a fast-forwarded iteration counts as often as it ran
        kind = rec["kind"]
        if kind not in ("port_in", "port_out"):
            continue
        port = rec["address"]
        if kind == "port_out" and port == 0x70:
            rtc_index = (rec["value"] or 0) & 0x7F
        if port in LEGACY_PORTS:
            touch(LEGACY_PORTS[port], port, rec["function"])
        elif port == 0x71 and rtc_index in (0xA, 0xB, 0xC):
            touch(RTC_REGISTERS[rtc_index], port, rec["function"])
        elif rec["device"] == "absent":
            touch("absent", port, rec["function"])
        elif rec["device"] == "pm" and kind == "port_out" and port == 0xB2:
            touch("SMI_CMD", port, rec["function"])
    return sorted(touches.values(), key=lambda t: (t["device"], t["port_or_address"]))


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"mean": round(sum(values) / len(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


#: FIRMWARE_REENTRY HalRebootRoutine (DDK): the kernel's shutdown asks the HAL to reboot.
HAL_REBOOT_ROUTINE = 3
#: Samples KiCalculateCpuFrequency takes at most, and the stall of each (ROS ke/amd64/krnlinit.c).
FREQUENCY_SAMPLES = 10
FREQUENCY_STALL_US = 5000


def _sample_cpu_frequency(kernel, clock, call) -> int:
    """The ReactOS kernel's KiCalculateCpuFrequency after phase 0: the TSC counted against the HAL's performance
    counter across KeStallExecutionProcessor(5000), until two samples agree within 1 MHz (else their average);
    the result goes to KPRCB.MHz."""
    freq_va = kernel.mem.alloc(0x1000)
    samples: list[int] = []
    for _ in range(FREQUENCY_SAMPLES):
        p0, t0 = call("KeQueryPerformanceCounter", [0]), clock.tsc()
        call("KeStallExecutionProcessor", [FREQUENCY_STALL_US])
        p1 = call("KeQueryPerformanceCounter", [freq_va])
        t1 = clock.tsc()
        freq, delta = kernel.mem.vu(freq_va, 8), (p1 - p0) & 0xFFFF_FFFF_FFFF_FFFF
        mhz = ((t1 - t0) * freq + 500000) // (delta * 1000000) if delta else 0
        samples.append(mhz)
        if len(samples) > 1 and abs(samples[-1] - samples[-2]) <= 1:
            break
    else:
        samples.append(sum(samples) // len(samples))
    kernel._put_field(kernel.prcb, "kprcb", "MHz", samples[-1])
    return samples[-1]


def _phase1_calls(kernel, image, call, tgt, trace) -> dict:
    """Phase 1 after HalInitSystem(1): the boot time from the RTC, the processors, the HAL's resource report."""
    out: dict = {}
    if "HalQueryRealTimeClock" in image.exports:
        # The boot time comes from the CMOS clock, which Generation 2 has too: its register reads are reported
        # here, not as the HAL's legacy touches (``rtc_query_records`` leaves them out of those).
        fields = kernel.mem.alloc(0x1000)
        first = len(trace.records)
        ok = call("HalQueryRealTimeClock", [fields]) & 0xFF
        out["rtc_query_records"] = (first, len(trace.records))
        y, mo, d, h, mi, s = (kernel.get(fields, "time_fields", n) for n in
                              ("Year", "Month", "Day", "Hour", "Minute", "Second"))
        out["HalQueryRealTimeClock"] = f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}" if ok else None
        out["HalQueryRealTimeClock_touches"] = _legacy_touches(trace, first, len(trace.records))
    if "HalAllProcessorsStarted" in image.exports:
        if not call("HalAllProcessorsStarted") & 0xFF:
            raise RunStop({"verdict": "bugcheck", "bugcheck": {
                "code": tgt.bugcheck.get("hal1_initialization_failed", 0x61), "params": [0, 0, 0, 0],
                "reported_via": "scenario (HalAllProcessorsStarted FALSE)"}})
        out["HalAllProcessorsStarted"] = True
    if "HalReportResourceUsage" in image.exports:
        call("HalReportResourceUsage")
        out["HalReportResourceUsage"] = kernel.state.get("io", {}).get("hal_resources")
    return out


def _return_to_firmware(image, call, trace) -> dict | None:
    """The orderly end: HalReturnToFirmware(HalRebootRoutine); a reset is the expected outcome, recorded."""
    if "HalReturnToFirmware" not in image.exports:
        return None
    first = len(trace.records)
    try:
        call("HalReturnToFirmware", [HAL_REBOOT_ROUTINE], limit_ps=PS_PER_S // 2)
        outcome = {"ended": "returned"}
    except RunStop as stop:
        v = stop.verdict
        outcome = {"ended": v.get("verdict")}
        detail = v.get("reset") or v.get("hang") or v.get("fault") or v.get("bugcheck")
        if isinstance(detail, dict):
            outcome.update({k: detail.get(k) for k in ("reason", "function", "kind", "code") if detail.get(k)})
    outcome["touches"] = _legacy_touches(trace, first)
    return outcome


def boot(hal_path, target: str, platform: str = "gen2", *, hv_clear=(), seconds: float = 1.0,
         madt_pcat: bool | None = None, acpi_dir=None, hang_limit_s: float = 3.0,
         max_instructions: int = 2_000_000_000, fast_forward: bool | None = None,
         kernel_build: str = "up", host: str | None = None, rtc_interrupts: bool | None = None,
         tsc_page_invalid: bool = False, tsc_sequence_changes_us: tuple[int, ...] = ()) -> BootResult:
    """Boot ``hal_path`` for ``target`` on ``platform`` and return the verdict and figures.

    ``fast_forward`` turns polling-loop fast-forward on or off (default: on unless ``GEN2SIM_NO_FASTFORWARD``);
    the result is the same either way, only the wall time differs. ``kernel_build`` chooses the kernel build the
    model stands in for ("up", or "mp" for a multiprocessor HAL such as ReactOS's halmp.dll). ``host`` names a
    Hyper-V host profile of ``specs/hosts/`` (CPUID leaves and TSC rate; default ``gen2sim.hosts.DEFAULT_HOST``);
    ``rtc_interrupts`` turns the RTC's interrupts on or off (default: on for gen1, off for gen2).
    ``tsc_page_invalid`` / ``tsc_sequence_changes_us``: the reference TSC page is invalid (sequence 0) from the start
    / gets a new sequence at these virtual microseconds (``HyperV.plan_reference_tsc_page``).

    Raises ``SpecError``/``ModelError`` for bad options (unknown target, platform or Hyper-V feature).
    """
    tgt = load_target(target)
    machine = Machine(platform, hv_clear=hv_clear, madt_pcat=madt_pcat, acpi_dir=acpi_dir, host=host,
                      rtc_interrupts=rtc_interrupts)
    machine.hyperv.plan_reference_tsc_page(invalid=tsc_page_invalid, sequence_changes_us=tsc_sequence_changes_us)
    clock, trace, cpu, mem = machine.clock, machine.trace, machine.cpu, machine.memory
    if fast_forward is not None:
        cpu.set_fast_forward(fast_forward)
    kernel = kernel_class(tgt.name)(tgt, mem, cpu, trace, clock, acpi_root_gpa=machine.acpi.root_gpa,
                                    efi=platform == "gen2", acpi=machine.acpi, build=kernel_build)
    addrs = tgt.addresses
    # The loader's page tables for the HAL's VA window (top 4 MB) and the local APIC page it maps there.
    mem.tables.ensure_tables(0xFFFF_FFFF_FFC0_0000, 0x40_0000)
    mem.tables.map(addrs["apic_base_va"], LAPIC_GPA, 0x1000, uncached=True)

    result: dict = {"hal": str(hal_path), "target": tgt.name, "platform": platform,
                    "hv_clear": sorted(hv_clear), "madt_pcat": madt_pcat, "seconds": seconds,
                    "kernel_build": kernel_build, "host": machine.host.name, "tsc_hz": machine.host.tsc_hz,
                    "rtc_interrupts": machine.rtc.legacy_interrupts}
    try:
        image = load_image(hal_path, mem, tgt, kernel)
    except LoadError as exc:
        result.update(verdict="load-error", load_error={"reason": exc.reason})
        return BootResult(_finish(result, machine, kernel, None), machine)

    stub_names = {addr: name for addr, (name, _fn) in kernel._by_address.items()}

    def locate(address: int) -> str | None:
        name = image.function_at(address) if image.base <= address < image.base + image.size else None
        if name is None and address in stub_names:
            name = f"kernel!{stub_names[address]}"
        return name

    cpu.locate = locate
    for start, code in image.code_ranges:
        cpu.add_code(start, code)
    cpu.enable_paging(kernel.gdt_va, kernel.idt_va, kernel.pcr)
    cpu.set_reg(X.UC_X86_REG_RSP, kernel.stack_top)
    cpu.set_reg(X.UC_X86_REG_EFLAGS, 0x2)

    # Per-tick exit accounting: exits between a clock interrupt's delivery and its IRETQ.
    tick_exits: list[int] = []
    delivered_at: list[int] = []
    cpu.on_deliver = lambda vector: delivered_at.append(len(kernel.ticks))

    def on_iret(vector: int, exits: int) -> None:
        ticks_before = delivered_at.pop() if delivered_at else len(kernel.ticks)
        if len(kernel.ticks) > ticks_before:
            tick_exits.append(exits)

    cpu.on_iret = on_iret
    hang_ps = int(hang_limit_s * PS_PER_S)
    # What the verdict's judge needs besides the figures (gen2sim/judge.py).
    called: Counter = Counter()
    evidence = {"exports": sorted(image.exports), "called": called,
                "stub_reads": _watch_stub_reads(kernel, cpu, mem)}

    def call(name: str, args=(), limit_ps: int = hang_ps):
        address = image.exports.get(name)
        if address is None:
            raise RunStop({"verdict": "fault", "fault": {"kind": "missing-export", "function": name,
                                                         "address": None, "detail": f"the HAL does not export {name}"}})
        called[name] += 1
        return call_at(address, args, limit_ps, name)

    def call_at(address: int, args=(), limit_ps: int = hang_ps, name: str | None = None):
        """Run guest code at ``address`` as a top-level call (an export, or a dispatch-table slot)."""
        name = name or locate(address) or f"{address:#x}"
        first = trace.count()

        def hang_info(start: int, rip: int) -> dict:
            polls = _hang_polls(trace, first, getattr(machine.rtc, "index", None))
            hang = {"function": locate(rip), "address": rip, "called": name, "polls": polls,
                    "virtual_time_us": (clock.now - start) // PS_PER_US}
            if polls is None or polls["reads"] < MIN_POLL_READS:
                # A loop that reads no device (a few reads before it are not a poll) waits for something else
                # to change memory: with interrupts on, an interrupt handler. Name what could still deliver one.
                hang["polls"] = None
                hang["waits"] = _waits(cpu, machine)
            return {"verdict": "hang", "hang": hang}

        return cpu.call(address, args, limit_ps=limit_ps, max_instructions=max_instructions, hang_info=hang_info)

    lb = kernel.loader_block
    figures: dict = {}
    init_ps = 0

    def step_state(step: str) -> None:
        """The IRQL (CR8) and interrupt flag the target's kernel calls ``step`` with ([kernel.boot])."""
        machine.lapic.tpr = kernel.boot_irql(step) << 4
        flags = cpu.reg(X.UC_X86_REG_EFLAGS)
        cpu.set_reg(X.UC_X86_REG_EFLAGS, (flags | 0x200) if kernel.boot_interrupts(step) else (flags & ~0x200))

    def timed(name: str, args=()):
        nonlocal init_ps
        start = clock.now
        try:
            return call(name, args)
        finally:
            init_ps += clock.now - start

    try:
        # Kernel phase 0: the PCR is set up, HalInitializeProcessor, then executive phase 0 (HalInitSystem(0)).
        step_state("HalInitializeProcessor")
        timed("HalInitializeProcessor", [0, lb])
        kernel.phase = "phase0"
        step_state("HalInitSystem0")
        if not timed("HalInitSystem", [0, lb]) & 0xFF:
            raise RunStop({"verdict": "bugcheck", "bugcheck": {
                "code": tgt.bugcheck.get("hal_initialization_failed", 0x5C), "params": [0, 0, 0, 0],
                "reported_via": "scenario (HalInitSystem(0) FALSE)"}})
        # The kernel calls the dispatch-table slots it has no default for without checking them.
        empty = kernel.empty_required_slots(set(image.imports))
        if empty:
            raise RunStop({"verdict": "fault", "fault": {
                "kind": "dispatch-slot-empty", "function": "HalInitSystem", "address": None, "slots": empty,
                "detail": f"after HalInitSystem(0) these dispatch-table slots, which the {tgt.name} kernel has no "
                          f"default for, are empty: {', '.join(empty)}"}})
        kernel.run_deferred()
        if kernel.kernel_data("boot").get("cpu_frequency_samples") and \
                {"KeQueryPerformanceCounter", "KeStallExecutionProcessor"} <= set(image.exports):
            figures["cpu_mhz"] = _sample_cpu_frequency(kernel, clock, call)
        # Phase 1, in the kernel's phase-1 system thread.
        kernel.phase = "phase1"
        step_state("HalInitSystem1")
        if not timed("HalInitSystem", [1, lb]) & 0xFF:
            raise RunStop({"verdict": "bugcheck", "bugcheck": {
                "code": tgt.bugcheck.get("hal1_initialization_failed", 0x61), "params": [0, 0, 0, 0],
                "reported_via": "scenario (HalInitSystem(1) FALSE)"}})
        figures["hal_init_virtual_us"] = init_ps // PS_PER_US
        figures["phase1_calls"] = _phase1_calls(kernel, image, call, tgt, trace)
        kernel.run_deferred()
        kernel.phase = "running"

        # Through the dispatch tables, as the kernel and boot drivers call them (targets that describe them).
        calls, problems = kernel.dispatch_calls(call_at, {sig: entry for sig, entry in machine.acpi.tables.items()})
        figures["dispatch_calls"] = calls
        if problems:
            raise RunStop({"verdict": "fault", "fault": {
                "kind": "dispatch-call-failed", "function": None, "address": None,
                "detail": "; ".join(problems)}})
        pnp_driver = kernel.hal_slot("hal_dispatch_table", "HalInitPnpDriver")
        if pnp_driver:
            from .kernel import pnp

            kernel.set_irql(0)
            status = call_at(pnp_driver, []) & 0xFFFFFFFF
            figures["pnp"] = {"HalInitPnpDriver": status}
            if status < 0x80000000:
                figures["pnp"].update(pnp.start_hal_devices(kernel))
            kernel.run_deferred()

        # Idle with interrupts on at PASSIVE_LEVEL.
        machine.lapic.tpr = 0
        kernel.mem.vput(kernel.pcr + tgt.structs["kpcr"].offset("Irql"), 1, 0)
        cpu.set_reg(X.UC_X86_REG_EFLAGS, 0x202)
        has_qpc = "KeQueryPerformanceCounter" in image.exports
        freq_va = kernel.mem.alloc(0x1000) if has_qpc else None
        # The counter's rate is judged across the idle window (a virtual second by default): back-to-back calls
        # span microseconds, too short for a counter that ticks every 100 ns or 280 ns.
        qpc_idle = [(clock.now, call("KeQueryPerformanceCounter", [freq_va]))] if has_qpc else []
        idle_start, ticks_before = clock.now, len(kernel.ticks)
        idle_end = idle_start + int(seconds * PS_PER_S)
        idle_first, idle_calls = len(trace.records), 0
        while clock.now < idle_end and idle_calls < MAX_IDLE_CALLS:
            call("HalProcessorIdle", [], limit_ps=hang_ps)
            idle_calls += 1
            cpu.set_reg(X.UC_X86_REG_EFLAGS, cpu.reg(X.UC_X86_REG_EFLAGS) | 0x200)
            kernel.run_deferred()
        evidence["idle"] = {"calls": idle_calls, "halts": _halts(trace, idle_first, len(trace.records)),
                            "ticks": len(kernel.ticks) - ticks_before}
        evidence["increments"] = kernel.tick_increments[ticks_before:]
        if has_qpc:
            qpc_idle.append((clock.now, call("KeQueryPerformanceCounter", [freq_va])))
        figures["idle_ticks"] = len(kernel.ticks) - ticks_before
        figures["idle_window"] = (ticks_before, idle_start, idle_end)

        if has_qpc:
            values, times, exits = [], [], []
            for _ in range(QPC_CALLS):
                before = trace.exit_count()
                values.append(call("KeQueryPerformanceCounter", [freq_va]))
                exits.append(trace.exit_count() - before)
                times.append(clock.now)
            freq = kernel.mem.vu(freq_va, 8)
            qpc = {"frequency": freq, "monotonic": all(b >= a for a, b in zip(values, values[1:])),
                   "exits_per_call": round(sum(exits) / len(exits), 3)}
            (t0, v0), (t1, v1) = qpc_idle
            if freq and t1 > t0:
                measured = (v1 - v0) / freq
                reference = (t1 - t0) / PS_PER_S
                qpc["rate_error_ppm"] = round((measured - reference) / reference * 1e6, 3)
            figures["qpc"] = qpc
        if "KeStallExecutionProcessor" in image.exports:
            taken = []
            for _ in range(STALL_CALLS):
                start = clock.now
                call("KeStallExecutionProcessor", [STALL_US])
                taken.append((clock.now - start) / PS_PER_US)
            figures["stall"] = {"requested_us": STALL_US, "measured_us": [round(t, 3) for t in taken]}
        result["verdict"] = "booted"
        figures["boot_records"] = len(trace.records)
        figures["judge_evidence"] = evidence
        figures["return_to_firmware"] = _return_to_firmware(image, call, trace)
    except RunStop as stop:
        result.update(stop.verdict)
    except ModelError as exc:
        result.update(verdict="model-error", model_error={"detail": str(exc)})
    figures["tick_exits"] = tick_exits
    return BootResult(_finish(result, machine, kernel, figures), machine)


def _finish(result: dict, machine: Machine, kernel, figures: dict | None) -> dict:
    figures = figures or {}
    trace, clock = machine.trace, machine.clock
    crash = machine.hyperv.crash
    if crash is not None:
        p = list(crash.get("p", [0] * 5))
        if result.get("verdict") == "bugcheck" and result["bugcheck"].get("code") == (p[0] & 0xFFFFFFFF):
            result["bugcheck"]["reported_via"] = "both"
        else:
            if result.get("verdict") not in (None, "bugcheck"):
                result["ended_as"] = {k: result.pop(k) for k in ("verdict", "hang", "fault") if k in result}
            result["verdict"] = "bugcheck"
            result["bugcheck"] = {"code": p[0] & 0xFFFFFFFF, "params": p[1:5], "reported_via": "crash-msrs"}
    for key in ("bugcheck", "hang", "fault", "load_error"):
        result.setdefault(key, None)
    if result["bugcheck"] is not None:
        result["bugcheck"]["name"] = bugcheck_names().get(result["bugcheck"]["code"])
    ticks = kernel.ticks
    periods = [(b - a) / PS_PER_NS for a, b in zip(ticks, ticks[1:])]
    result["ticks"] = len(ticks)
    result["tick_period_ns"] = _stats(periods)
    result["time_increment_100ns"] = {
        "announced": list(kernel.time_increment) if kernel.time_increment else None,
        "per_tick": _stats([float(i) for i in kernel.tick_increments]),
    }
    drift = None
    window = figures.get("idle_window")
    if window is not None:
        first = window[0]
        idle_ticks = ticks[first:]
        incs = kernel.tick_increments[first:]
        if len(idle_ticks) >= 2:
            elapsed_ps = idle_ticks[-1] - idle_ticks[0]
            system_ps = sum(incs[1:]) * 100 * PS_PER_NS
            drift = round((system_ps - elapsed_ps) / elapsed_ps * 1e6, 3) if elapsed_ps else None
    result["drift_ppm"] = drift
    result["hal_init_virtual_us"] = figures.get("hal_init_virtual_us")
    exits = {cls: trace.exits.get(cls, 0) for cls in EXIT_CLASSES}
    exits["total"] = sum(exits.values())
    result["exits"] = exits
    result["exits_per_qpc"] = figures.get("qpc", {}).get("exits_per_call")
    tick_exits = figures.get("tick_exits") or []
    result["exits_per_tick"] = round(sum(tick_exits) / len(tick_exits), 3) if tick_exits else None
    result["qpc"] = figures.get("qpc")
    result["stall"] = figures.get("stall")
    _judge_verdict(result, figures.get("judge_evidence"))
    rtc_query = (figures.get("phase1_calls") or {}).pop("rtc_query_records", None)
    result["legacy_touches"] = _legacy_touches(trace, 0, figures.get("boot_records"),
                                               [rtc_query] if rtc_query else ())
    if kernel is not None and kernel.dispatch_state():
        result["dispatch"] = {"tables": kernel.dispatch_state(), "calls": figures.get("dispatch_calls")}
    result["debug_output"] = kernel.debug_output if kernel is not None else []
    if kernel is not None:
        result["kernel"] = _kernel_summary(kernel, figures)
    result["serial_output"] = machine.uart.text() if hasattr(machine.uart, "text") else ""
    result["virtual_time_us"] = clock.now // PS_PER_US
    result["guest_instructions"] = machine.cpu.instructions
    result["trace_records"] = trace.count()
    result["trace_format"] = TRACE_FORMAT
    result["trace_sha256"] = trace.sha256()
    result["timeline"] = timeline_summary(trace.records, result["virtual_time_us"])
    return result


def _watch_stub_reads(kernel, cpu, mem) -> list[dict]:
    """Record every data read of the kernel's code stubs: a HAL that reads a kernel function's name as a variable
    gets code bytes, not a value (judged as the ``kernel-data`` property). Returns the list the reads go to."""
    from unicorn import UC_HOOK_MEM_READ

    from .kernel.base import STUB_AREA, STUB_SLOT

    reads: list[dict] = []
    gpa = mem.translate(kernel.stub_va)

    def hook(uc, access, address, size, value, _ud):
        slot = kernel.stub_va + (address - gpa) // STUB_SLOT * STUB_SLOT
        name = kernel._by_address.get(slot, ("an unused stub slot", None))[0]
        if len(reads) < 64 and not any(r["name"] == name for r in reads):
            data = uc.mem_read(address, size)
            reads.append({"name": name, "function": cpu.locate(cpu.rip) if cpu.locate else None,
                          "address": cpu.rip, "value": int.from_bytes(bytes(data), "little")})

    cpu.uc.hook_add(UC_HOOK_MEM_READ, hook, None, gpa, gpa + STUB_AREA - 1)
    return reads


def _halts(trace, first: int, last: int) -> int:
    """Halts in stored trace records ``first`` .. ``last``: HLT exits and Hyper-V GUEST_IDLE reads."""
    return sum(weight for rec, weight in _weighted(trace, first, last)
               if rec.get("kind") == "hlt" or (rec.get("kind") == "note" and rec.get("detail") == "guest idle"))


def _judge_verdict(result: dict, evidence: dict | None) -> None:
    """A boot that ran to its end is judged (gen2sim/judge.py): ``properties`` lists each property; breaking
    any makes the verdict ``misbehaved`` with the broken ones under ``misbehaved``."""
    result.setdefault("misbehaved", None)
    if result.get("verdict") != "booted" or evidence is None:
        result.setdefault("properties", None)
        return
    properties = judge(result, evidence)
    result["properties"] = properties
    broken = [p for p in properties if not p["ok"]]
    if broken:
        result["verdict"] = "misbehaved"
        result["misbehaved"] = {"broken": [p["property"] for p in broken], "detail": broken_text(properties)}


def _kernel_summary(kernel, figures: dict) -> dict:
    """The kernel's side of the boot: exports the HAL called (with counts), PCR/PRCB accesses outside the
    description, the phase-1 and PnP results, display output, pool use."""
    pcr = kernel.pcr_watch.summary()
    pool_state = kernel.state.get("pool")
    out = {"calls_reached": dict(sorted(kernel.reached.items())),
           "pcr_undescribed": pcr, "pcr_undescribed_count": len(pcr),
           "cpu_mhz": figures.get("cpu_mhz"), "phase1": figures.get("phase1_calls"), "pnp": figures.get("pnp"),
           "return_to_firmware": figures.get("return_to_firmware"),
           "display_output": kernel.display_output}
    if pool_state is not None:
        hal = [b for b in pool_state.live.values() if b.caller is not None]
        out["pool"] = {"live": len(hal), "freed": len(pool_state.freed), "live_bytes": sum(b.size for b in hal)}
    return out


__all__ = ["boot", "BootResult", "SpecError", "LoadError"]
