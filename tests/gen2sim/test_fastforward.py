"""Polling-loop fast-forward: exact against the step-by-step run, and each of its parts against the real thing.

- the interpreter (``gen2sim.ffeval``) against Unicorn on straight-line code, flags included, and its range
  arithmetic against sampled exact values;
- each device's plan against what the device really returns when the read is repeated;
- the compact ``repeat`` trace record against the records it stands for (hash, timeline, readers);
- whole boots both ways -- the gen1 reference HAL of both targets, the variant calibrating with frequency-msrs
  cleared, the variant hanging on a dead PM timer port -- with every figure of the result compared.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn import x86_const as X

from gen2sim import ffeval
from gen2sim.bus import AbsentDevice, IoBus
from gen2sim.clock import APIC_TIMER_HZ, PM_TIMER_HZ, PS_PER_NS, PS_PER_S, PS_PER_US, VirtualClock, ps_for_ticks
from gen2sim.devices.i8042 import I8042
from gen2sim.devices.ioapic import IoApic
from gen2sim.devices.lapic import LocalApic
from gen2sim.devices.pmblock import PmBlock
from gen2sim.devices.rtc import Rtc
from gen2sim.devices.uart import Uart16550
from gen2sim.fastforward import ENV_DISABLE
from gen2sim.ffplan import Access, Counter
from gen2sim.scenario import boot
from gen2sim.timeline import TimelineError, read_trace, timeline_summary
from gen2sim.trace import Trace, canonical_line, expand_records

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from tests.conftest import REPO, TARGETS, run_scons  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GPRS = (X.UC_X86_REG_RAX, X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_RBX, X.UC_X86_REG_RSP,
        X.UC_X86_REG_RBP, X.UC_X86_REG_RSI, X.UC_X86_REG_RDI, X.UC_X86_REG_R8, X.UC_X86_REG_R9,
        X.UC_X86_REG_R10, X.UC_X86_REG_R11, X.UC_X86_REG_R12, X.UC_X86_REG_R13, X.UC_X86_REG_R14,
        X.UC_X86_REG_R15)
M64 = (1 << 64) - 1


# ----------------------------------------------------------------------------------------------- the interpreter
def assemble(text: str) -> bytes:
    """Intel-syntax instructions to machine code with binutils (the project's toolchain)."""
    if not build.toolchain_present():
        pytest.skip("mingw-w64 binutils not installed: run scripts/setup.sh")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src, obj, raw = Path(d) / "a.s", Path(d) / "a.o", Path(d) / "a.bin"
        src.write_text(".intel_syntax noprefix\n.text\n" + text + "\n")
        subprocess.run(["x86_64-w64-mingw32-as", "-o", str(obj), str(src)], check=True, capture_output=True)
        subprocess.run(["x86_64-w64-mingw32-objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)],
                       check=True, capture_output=True)
        return raw.read_bytes()


SNIPPETS = {
    "add-adc-sub-sbb-cmp": "add rax, rbx\nadc rcx, rdx\nsub rsi, rdi\nsbb r8, r9\ncmp r10, r11\nadc r12d, r13d",
    "byte-and-word-arith": "add al, bl\nsub cx, dx\nadc sil, dil\nsbb r8w, r9w\ncmp al, 0x80\nadd ah, ch",
    "logic": "and eax, ebx\nor cx, dx\nxor r8b, r9b\ntest rsi, rdi\nand rdx, -16\nxor r10d, r10d",
    "inc-dec-neg-not": "inc rax\ndec ecx\nneg rdx\nnot rbx\ninc sil\ndec r9w\nneg r10d",
    "shifts": "shl rax, 5\nshr rbx, 1\nsar rcx, 63\nshl edx, 31\nshr si, 3\nsar dil, 2\nshl r8, 1\nsar r9d, 1",
    "shift-by-cl": "and ecx, 63\nshl rax, cl\nshr rbx, cl\nsar rdx, cl",
    "mul-imul": "mul rbx\nmov r8, rax\nmul ecx\nimul rsi, rdi\nimul r9, r10, 0x1234\nimul r11d, r12d, -7",
    "mul-byte-word": "mul bl\nmov r8, rax\nmul cx",
    "cmov-set": "cmp rax, rbx\ncmovb rcx, rdx\ncmovle esi, edi\nsetg r8b\nseta r9b\ntest r10, r10\n"
                "sete r11b\ncmovs r12d, r13d\nsetp r14b\nsetno r15b",
    "widen": "movzx eax, bl\nmovsx rcx, dx\nmovsxd rdx, esi\ncdqe\nmov r8, rax\ncqo\nmov r9, rdx\ncdq\ncwde",
    "lea-xchg": "lea rax, [rbx + rcx*4 + 8]\nlea esi, [rdi - 3]\nxchg r8, r9\nxchg eax, ecx",
    "stack-flags": "push rax\npush rbx\npop rcx\npop rdx\ncmp r8, r9\npushfq\npop rsi\nsub rsp, 16\n"
                   "mov qword ptr [rsp + 8], rdi\nmov r10, qword ptr [rsp + 8]\nadd rsp, 16",
    "memory-operands": "add qword ptr [rsp - 8], rax\nmov rbx, qword ptr [rsp - 8]\nsub dword ptr [rsp - 16], ecx\n"
                       "mov edx, dword ptr [rsp - 16]\ncmp byte ptr [rsp - 24], 7\nsetb r11b",
}
EDGES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
         0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, M64)


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_interpreter_replays_exactly_what_unicorn_does(name):
    code = assemble(SNIPPETS[name])
    base, stack = 0x10000, 0x80000
    steps = ffeval.path_steps([(base, ffeval.decode_block(code, base))], base + len(code))
    rng = random.Random(name)
    for trial in range(40):
        regs = [rng.choice(EDGES) if rng.random() < 0.4 else rng.getrandbits(64) for _ in range(16)]
        regs[4] = stack + 0x800
        flags = 0x2 | sum(1 << b for b in ffeval.FLAG_BITS.values() if rng.random() < 0.5)
        memory = bytearray(rng.getrandbits(8) for _ in range(0x1000))
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map(base, 0x1000)
        uc.mem_map(stack, 0x1000)
        uc.mem_write(base, code)
        uc.mem_write(stack, bytes(memory))
        for reg, value in zip(GPRS, regs):
            uc.reg_write(reg, value)
        uc.reg_write(X.UC_X86_REG_EFLAGS, flags)
        uc.emu_start(base, base + len(code))

        class Mem:
            @staticmethod
            def is_device(va, size):
                return False

            @staticmethod
            def read(va, size):
                return bytes(memory[va - stack:va - stack + size])

        result = ffeval.Machine(steps, regs, flags, Mem(), None, lambda b: 0, lambda s: 0, lambda s: 0).run(loop=False)
        where = f"{name} trial {trial}: registers {[hex(r) for r in regs]} flags {flags:#x}"
        assert result.regs == [uc.reg_read(r) for r in GPRS], where
        assert result.rflags == uc.reg_read(X.UC_X86_REG_EFLAGS), where
        after = uc.mem_read(stack, 0x1000)
        for addr, byte in result.stores.items():
            assert after[addr - stack] == byte, where


def test_range_arithmetic_contains_every_exact_result():
    """Sound over-approximation: for values inside the input ranges, the exact result lies in the range result
    and a flag the range arithmetic claims to know has the exact value."""
    rng = random.Random(7)
    for _ in range(400):
        bits = rng.choice((8, 16, 32, 64))
        m = (1 << bits) - 1
        lo = rng.getrandbits(bits)
        hi = min(m, lo + rng.choice((1, 3, 100, 1 << (bits - 4))))
        c = rng.choice((0, 1, 0x80 & m, m, rng.getrandbits(bits)))
        a = ffeval.Iv(lo, hi)
        cases = [(ffeval.add_sub(a, c, 0, bits, True), lambda x: (x - c) & m),
                 (ffeval.add_sub(a, c, 0, bits, False), lambda x: (x + c) & m),
                 (ffeval.add_sub(c, a, 0, bits, True), lambda x: (c - x) & m),
                 (ffeval.logic("and", a, c, bits), lambda x: x & c),
                 (ffeval.logic("or", a, c, bits), lambda x: x | c),
                 (ffeval.shift("shr", a, 3, bits), lambda x: x >> 3),
                 (ffeval.shift("shl", a, 2, bits), lambda x: (x << 2) & m)]
        for (result, flags), exact in cases:
            rlo, rhi = ffeval.bounds(result)
            for x in {lo, hi, (lo + hi) // 2, rng.randint(lo, hi)}:
                assert rlo <= exact(x) <= rhi
        # Conditions decided on ranges agree with every exact comparison.
        for cc in ("b", "ae", "a", "be", "e", "ne", "l", "ge", "g", "le"):
            verdict = ffeval._cond_from_compare(cc, a, c, bits)
            if verdict is None:
                continue
            for x in (lo, hi, (lo + hi) // 2):
                exact_flags = ffeval.add_sub(x, c, 0, bits, True)[1]
                assert ffeval._cond_from_flags(cc, exact_flags) == verdict


def test_unsupported_and_carried_state_are_refused():
    with pytest.raises(ffeval.Unsupported):
        ffeval.path_steps([(0x1000, ffeval.decode_block(b"\xf3\xa4", 0x1000))], 0x1000)  # rep movsb
    code = bytes.fromhex("4883c00175fa")  # add rax, 1; jne back: a counter carried from iteration to iteration
    steps = ffeval.path_steps([(0x1000, ffeval.decode_block(code, 0x1000))], 0x1000)

    class Mem:
        is_device = staticmethod(lambda va, size: False)
        read = staticmethod(lambda va, size: bytes(size))

    with pytest.raises(ffeval.Diverges, match="rax carries state"):
        ffeval.Machine(steps, [5] + [0] * 15, 2, Mem(), None, lambda b: 0, lambda s: 0, lambda s: 0).run()


# ----------------------------------------------------------------------------------------------- counters, plans
@pytest.mark.parametrize("counter", [
    Counter(PM_TIMER_HZ, mask=0xFF_FFFF), Counter(PM_TIMER_HZ, shift=8, mask=0xFF),
    Counter(APIC_TIMER_HZ // 4, t0=12_345_000, base=1000, sign=-1, mask=0xFFFF_FFFF),
    Counter(10_000_000, base=-5), Counter(3, t0=0, base=7, sign=-1, mask=3)])
def test_counter_wraps_exactly_where_stepping_finds_the_first_wrap(counter):
    for now in (max(counter.t0, 0), counter.t0 + 999_999_937, counter.t0 + 3 * PS_PER_S // 7):
        wrap = counter.wraps_at(now)
        assert wrap > now
        before = counter.value(now)
        # Monotone up to the wrap, and the value right at it breaks the monotony.
        probes = sorted({now, (now + wrap) // 2, wrap - 1})
        values = [counter.value(t) for t in probes]
        assert values == (sorted(values) if counter.sign > 0 else sorted(values, reverse=True)), counter
        after = counter.value(wrap)
        assert (after < values[-1]) if counter.sign > 0 else (after > values[-1] or counter.raw(wrap) < 0), counter
        assert before == values[0]


def _reads_hold(clock, device, do_read, plan_value, until, samples=7):
    """Repeating the read at instants before ``until`` returns the plan's value and leaves the device as it was."""
    state = device.ff_state()
    start = clock.now
    stop = until if until is not None else start + PS_PER_S
    for i in range(samples):
        clock.now = start + (stop - 1 - start) * i // (samples - 1)
        expected = plan_value.value(clock.now) if isinstance(plan_value, Counter) else plan_value
        assert do_read() == expected, (clock.now, expected)
        assert device.ff_state() == state
    clock.now = start


def test_rtc_plans_follow_the_uip_edge_and_the_periodic_flag():
    clock = VirtualClock()
    trace = Trace(clock)
    rtc = Rtc(clock, trace, legacy_interrupts=True)
    bus = IoBus(trace)
    bus.add(rtc)
    clock.now = PS_PER_S // 3
    plan = rtc.ff_plan("io", [Access("w", 0x70, 1, 0x0A), Access("r", 0x71, 1)])
    assert plan.until == PS_PER_S - 244 * PS_PER_US and plan.reads == {1: 0x26}
    bus.write(0x70, 1, 0x0A)
    _reads_hold(clock, rtc, lambda: bus.read(0x71, 1), 0x26, plan.until)
    clock.now = plan.until
    assert bus.read(0x71, 1) & 0x80  # UIP rises exactly at the promised instant
    assert rtc.ff_plan("io", [Access("r", 0x71, 1)]).until == PS_PER_S  # and falls at the update
    # Register C: unread flags refuse (the read changes state); once read, 0 until the next periodic tick.
    bus.write(0x70, 1, 0x0C)
    clock.now = PS_PER_S + PS_PER_S // 3
    assert rtc.ff_plan("io", [Access("r", 0x71, 1)]) is None
    bus.read(0x71, 1)
    plan = rtc.ff_plan("io", [Access("r", 0x71, 1)])
    assert plan.reads == {0: 0} and plan.until == ps_for_ticks(clock.now * 1024 // PS_PER_S + 1, 1024)
    _reads_hold(clock, rtc, lambda: bus.read(0x71, 1), 0, plan.until)
    clock.now = plan.until
    assert bus.read(0x71, 1) & 0x40  # PF
    assert rtc.ff_plan("io", [Access("w", 0x71, 1, 0)]) is None  # register writes have side effects


def test_pm_timer_and_status_plans():
    clock = VirtualClock()
    trace = Trace(clock)
    pm = PmBlock(clock, trace, timer_24bit=True)
    clock.now = 4 * PS_PER_S + 12345
    accesses = [Access("r", 0x408, 4), Access("r", 0x409, 1), Access("r", 0x400, 2)]
    assert pm.ff_plan("io", accesses) is None  # PM1_STS has timer carries to fold in: the first read changes it
    pm.io_read(0x400, 2)
    plan = pm.ff_plan("io", accesses)
    timer, byte1, status = plan.reads[0], plan.reads[1], plan.reads[2]
    assert isinstance(timer, Counter) and isinstance(byte1, Counter)
    _reads_hold(clock, pm, lambda: pm.io_read(0x408, 4), timer, timer.wraps_at(clock.now))
    _reads_hold(clock, pm, lambda: pm.io_read(0x409, 1), byte1, byte1.wraps_at(clock.now))
    _reads_hold(clock, pm, lambda: pm.io_read(0x400, 2), status, plan.until)
    ticks = clock.now * PM_TIMER_HZ // PS_PER_S
    assert timer.wraps_at(clock.now) == ps_for_ticks(((ticks >> 24) + 1) << 24, PM_TIMER_HZ)
    assert pm.ff_plan("io", [Access("r", 0x40A, 4)]) is None  # timer and GPE0 bytes mixed
    assert pm.ff_plan("io", [Access("w", 0x404, 2, 1)]) is None


@pytest.mark.parametrize("periodic", [False, True])
def test_lapic_current_count_is_an_exact_counter(periodic):
    clock = VirtualClock()
    lapic = LocalApic(clock, Trace(clock))
    lapic.mmio_write(0xF0, 4, 0x1FF)  # software enable
    lapic.mmio_write(0x3E0, 4, 0x1)  # divide by 4
    lapic.mmio_write(0x320, 4, (1 << 16) | (periodic << 17) | 0xEF)
    clock.now = 777_777
    lapic.mmio_write(0x380, 4, 50_000)
    for skip in (0, 123_456_789, 1_700_000_000):
        clock.now += skip
        plan = lapic.ff_plan("mmio", [Access("r", 0x390, 4), Access("r", 0x391, 1), Access("r", 0x80, 4)])
        if not periodic and plan.reads[0] == 0:
            assert plan.until is None
            continue
        count = plan.reads[0]
        _reads_hold(clock, lapic, lambda: lapic.mmio_read(0x390, 4), count, plan.until)
        _reads_hold(clock, lapic, lambda: lapic.mmio_read(0x391, 1), plan.reads[1], plan.until)
        assert plan.reads[2] == lapic.tpr
    assert lapic.ff_plan("mmio", [Access("w", 0xB0, 4, 0)]) is None  # EOI writes change state


def test_constant_devices_and_refusals():
    clock = VirtualClock()
    trace = Trace(clock)
    kbd = I8042(clock, trace)
    assert kbd.ff_plan("io", [Access("r", 0x64, 1)]).reads == {0: kbd.read_byte(0x64)}
    kbd.write_byte(0x64, 0xAA)  # self-test: a byte waits in the output buffer
    assert kbd.ff_plan("io", [Access("r", 0x60, 1)]) is None  # reading it pops it
    uart = Uart16550(clock, trace)
    assert uart.ff_plan("io", [Access("r", 0x3FD, 1)]).reads == {0: 0x60}
    assert uart.ff_plan("io", [Access("w", 0x3F8, 1, 0x41)]) is None
    assert AbsentDevice.ff_plan("io", [Access("r", 0x1008, 4), Access("w", 0x80, 1, 0)]).reads == {0: 0xFFFF_FFFF}
    lapic = LocalApic(clock, trace)
    ioapic = IoApic(clock, trace, lapic)
    plan = ioapic.ff_plan("mmio", [Access("w", 0x00, 4, 0x01), Access("r", 0x10, 4)])
    assert plan.reads == {1: ioapic.read_register(0x01)} and plan.until is None


# ----------------------------------------------------------------------------------------------- the trace
def _plain(clock, trace, n):
    """``n`` iterations of 2.5 us: an index write, then a counter read (3 counts per ns)."""
    trace.locate = lambda: "Poll"
    for i in range(n):
        trace.record("port_out", device="rtc", address=0x70, value=0x0A, size=1)
        clock.now += 1000 * PS_PER_NS
        trace.record("port_in", device="pm", address=0x408, value=clock.now * 3 // 1000, size=4)
        clock.now += 1500 * PS_PER_NS


def test_repeat_record_stands_for_the_records_it_replaces(tmp_path):
    counter = Counter(3 * PS_PER_S // 1000)  # 3 per ns: value(t) = t * 3 // 1000
    compact, full = VirtualClock(), VirtualClock()
    a, b = Trace(compact), Trace(full)
    _plain(compact, a, 3)
    at_ps = compact.now - 1500 * PS_PER_NS  # the last iteration's read
    a.repeat(1000, 2, 2500, {1: (counter, at_ps)})
    compact.now += 1000 * 2500 * PS_PER_NS
    a.record("note", device="kernel", detail="after")
    _plain(full, b, 1003)
    b.record("note", device="kernel", detail="after")
    assert a.count() == len(b.records) and a.exits == b.exits
    assert [canonical_line(r) for r in a.iter_expanded()] == [canonical_line(r) for r in b.records]
    assert a.sha256() == b.sha256()
    assert list(a.iter_expanded(1500, 1503)) == b.records[1500:1503]
    is_out = lambda r: r["kind"] == "port_out"  # noqa: E731
    assert a.find_last(0, 1999, is_out) == b.records[1998]
    assert a.find_last(0, 1998, is_out) == b.records[1996]
    assert sum(w for r, w in a.weighted() if is_out(r)) == 1003
    assert timeline_summary(a.records, 3000) == timeline_summary(b.records, 3000)
    path = tmp_path / "t.jsonl"
    a.write(path)
    assert sum(1 for _ in open(path)) == len(a.records) < len(b.records)
    assert list(read_trace(path, expect_sha256=b.sha256())) == a.records
    assert list(expand_records(json.loads(line) for line in open(path))) == b.records
    with pytest.raises(TimelineError, match="trace_sha256"):
        list(read_trace(path, expect_sha256=a.sha256()[::-1]))
    lines = path.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines[6:]) + "\n")  # the repeat now lacks its records
    with pytest.raises(TimelineError, match="line 1: repeat of the last 2 records"):
        list(read_trace(broken))


# ----------------------------------------------------------------------------------------------- whole boots
def _both(dll, target, platform, **kw):
    fast = boot(dll, target, platform, fast_forward=True, **kw)
    slow = boot(dll, target, platform, fast_forward=False, **kw)
    return fast, slow


@pytest.mark.parametrize("target", TARGETS)
def test_reference_gen1_boot_is_identical_fast_forwarded(reference_build, target):
    fast, slow = _both(reference_build[target] / "hal.dll", target, "gen1")
    assert fast.result["verdict"] == "booted"
    assert fast.result == slow.result  # every figure, the virtual times, the trace hash and timeline
    stats = fast.machine.cpu.fastforward.stats
    # Nearly all of the boot is calibration polling, and nearly all of that is skipped.
    assert stats.instructions_skipped > 0.9 * fast.result["guest_instructions"], stats
    assert slow.machine.cpu.fastforward is None


@pytest.fixture(scope="module")
def variant_build():
    """The gen2 variant of each target (built by SCons, no-op when up to date)."""
    run_scons(REPO, *[f"build/{t}/gen2/validation.json" for t in TARGETS])
    return {t: REPO / "build" / t / "gen2" for t in TARGETS}


def test_variant_calibration_is_identical_fast_forwarded(variant_build):
    target = "win7sp1-amd64"
    fast, slow = _both(variant_build[target] / "hal.dll", target, "gen2", hv_clear=("frequency-msrs",))
    assert fast.result["verdict"] == "booted" and fast.result == slow.result
    assert fast.machine.cpu.fastforward.stats.iterations_skipped > 100_000


def test_dead_port_hang_is_certain_at_once_and_identical(reference_build, tmp_path):
    from gen2sim.bench import DEAD_PORT, dead_pm_timer_tables

    # The reference HAL calibrates against the PM timer at the FADT's legacy block: moved to a dead port, it polls
    # all ones until the hang limit.
    target = "win7sp1-amd64"
    dll = reference_build[target] / "hal.dll"
    acpi = str(dead_pm_timer_tables("gen1", tmp_path / "acpi"))
    full = boot(dll, target, "gen1", acpi_dir=acpi)
    hang = full.result["hang"]
    assert full.result["verdict"] == "hang" and hang["virtual_time_us"] >= 3_000_000
    assert hang["polls"]["device"] == "absent" and hang["polls"]["port_or_address"] == DEAD_PORT
    stats = full.machine.cpu.fastforward.stats
    assert stats.iterations_skipped > 2_800_000 and stats.skips == 1  # one skip to the time limit
    # Both ways with a shorter limit (the step-by-step run of three virtual seconds takes a minute).
    fast, slow = _both(dll, target, "gen1", acpi_dir=acpi, hang_limit_s=0.2)
    assert fast.result["verdict"] == "hang" and fast.result == slow.result
    fast_path, slow_path = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    fast.machine.trace.write(fast_path)
    slow.machine.trace.write(slow_path)
    assert fast_path.stat().st_size < slow_path.stat().st_size // 100  # the compact record
    expanded = "".join(canonical_line(r) + "\n" for r in expand_records(read_trace(fast_path,
                                                                                   fast.result["trace_sha256"])))
    assert expanded == slow_path.read_text()


def test_bounded_wait_on_a_dead_port_is_identical(variant_build, tmp_path):
    """The variant waits a bounded number of reads for the PM timer to move: a loop whose counter register
    grows by one each iteration (an induction register), skipped up to the last iterations before the bound."""
    from gen2sim.bench import ALL_CLOCKS_CLEARED, dead_pm_timer_tables

    target = "win7sp1-amd64"
    acpi = str(dead_pm_timer_tables("gen2", tmp_path / "acpi"))
    fast, slow = _both(variant_build[target] / "hal.dll", target, "gen2", hv_clear=ALL_CLOCKS_CLEARED,
                       acpi_dir=acpi)
    assert fast.result["verdict"] in ("hang", "bugcheck") and fast.result == slow.result
    assert fast.machine.cpu.fastforward.stats.iterations_skipped > 10_000


def test_induction_register_is_proven_over_its_range():
    """``in al, dx; test al, al; js out; add ecx, 1; cmp ecx, 1000; jne head``: with the read constant, K iterations
    are provable exactly while the counter's range stays below the bound."""
    code = bytes.fromhex("ec84c0780b83c10181f9e803000075f0")
    head = 0x1000
    insns = ffeval.decode_block(code, head)
    assert [i.mnemonic for i in insns] == ["in", "test", "js", "add", "cmp", "jne"]
    blocks = [(head, insns[:3]), (head + 5, insns[3:])]
    steps = ffeval.path_steps(blocks, head)

    class Mem:
        is_device = staticmethod(lambda va, size: False)
        read = staticmethod(lambda va, size: bytes(size))

    def run(ecx):
        regs = [0] * 16
        regs[1], regs[2] = ecx, 0x71
        machine = ffeval.Machine(steps, regs, 2, Mem(), lambda *a: 0x00, lambda b: 0, lambda s: 0, lambda s: 0,
                                 {1: 1})
        return machine.run()

    assert run(ffeval.Aff(1, 0, 10, 998)).regs[1].off == 1  # starts 10..998 never reach 1000 on the way
    with pytest.raises(ffeval.Diverges):
        run(ffeval.Aff(1, 0, 10, 999))  # the start 999 leaves the loop
    assert run(41).regs[1] == 42


@pytest.mark.parametrize("kind", ["code", "memory"])
def test_loops_another_hook_must_see_are_not_skipped(reference_build, monkeypatch, kind):
    """A hook added through ``uc.hook_add`` by another part of the model runs for every instruction or access
    it covers: a loop it would see runs step by step; one it would not see is still skipped."""
    from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE

    from gen2sim import scenario

    hits = []

    class Hooked(scenario.Machine):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            hits.append(0)
            htype = UC_HOOK_CODE if kind == "code" else UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE

            def hook(*_args):
                hits[-1] += 1
            self.cpu.uc.hook_add(htype, hook, None, 1, 0)  # everything

    monkeypatch.setattr(scenario, "Machine", Hooked)
    dll = reference_build["win7sp1-amd64"] / "hal.dll"
    # On gen2 with the MADT's PC-AT flag the reference HAL polls RTC register A forever: a register-only loop.
    fast, slow = _both(dll, "win7sp1-amd64", "gen2", madt_pcat=True, hang_limit_s=0.05)
    assert fast.result == slow.result and hits[0] == hits[1] > 0
    skipped = fast.machine.cpu.fastforward.stats.iterations_skipped
    assert (skipped == 0) if kind == "code" else (skipped > 10_000)


def test_switches_and_compact_trace_from_the_command_line(variant_build, reference_build, tmp_path, monkeypatch):
    # Calibration against TIME_REF_COUNT: a loop of MSR exits whose values follow a counter.
    dll = variant_build["win7sp1-amd64"] / "hal.dll"
    outs = {}
    for mode, extra in (("fast", []), ("slow", ["--no-fast-forward"])):
        out, trace = tmp_path / f"{mode}.json", tmp_path / f"{mode}.jsonl"
        p = subprocess.run([sys.executable, "-m", "generator.cli", "boot", str(dll), "--target", "win7sp1-amd64",
                            "--platform", "gen2", "--hv-clear", "reference-tsc-page,frequency-msrs", "--json",
                            str(out), "--trace", str(trace), *extra], cwd=ROOT, capture_output=True, text=True)
        assert p.returncode == 0 and "verdict: booted" in p.stdout, p.stderr
        outs[mode] = (json.loads(out.read_text()), trace)
    (fast, fast_trace), (slow, slow_trace) = outs["fast"], outs["slow"]
    assert fast == slow and fast["trace_format"] == 2
    assert any(json.loads(line)["kind"] == "repeat" for line in fast_trace.open())
    assert not any(json.loads(line)["kind"] == "repeat" for line in slow_trace.open())
    assert fast["trace_records"] == sum(1 for _ in slow_trace.open())
    repeats = [json.loads(line) for line in fast_trace.open() if '"repeat"' in line]
    assert any(r.get("counters") for r in repeats)  # the MSR's values were written as a counter
    ref = reference_build["win7sp1-amd64"] / "hal.dll"
    monkeypatch.setenv(ENV_DISABLE, "1")
    assert boot(ref, "win7sp1-amd64", "gen2").machine.cpu.fastforward is None
    monkeypatch.setenv(ENV_DISABLE, "0")
    assert boot(ref, "win7sp1-amd64", "gen2").machine.cpu.fastforward is not None
