"""CPU core: MSR/CR8/HLT/RDTSC interception, interrupt delivery through the guest IDT, virtual time."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from unicorn import x86_const as X

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from gen2sim.clock import PS_PER_US  # noqa: E402
from gen2sim.cpu import RunStop, scan_privileged  # noqa: E402
from gen2sim.kernel import kernel_class  # noqa: E402
from gen2sim.machine import Machine  # noqa: E402
from gen2sim.scenario import boot  # noqa: E402
from specs import load_target  # noqa: E402

pytestmark = pytest.mark.skipif(not build.toolchain_present(), reason="mingw-w64 not installed")


def asm(tmp_path, text: str) -> bytes:
    """Assemble Intel-syntax ``text`` with mingw's as into raw bytes."""
    s, o, b = tmp_path / "a.s", tmp_path / "a.o", tmp_path / "a.bin"
    s.write_text(".intel_syntax noprefix\n" + text + "\n")
    subprocess.run(["x86_64-w64-mingw32-as", str(s), "-o", str(o)], check=True)
    subprocess.run(["x86_64-w64-mingw32-objcopy", "-O", "binary", "-j", ".text", str(o), str(b)], check=True)
    return b.read_bytes()


def harness(tmp_path, code_text: str, platform: str = "gen2"):
    """A machine + win7 mini kernel running ``code_text`` (``{idt}`` is replaced by the IDT's VA)."""
    m = Machine(platform)
    tgt = load_target("win7sp1-amd64")
    k = kernel_class(tgt.name)(tgt, m.memory, m.cpu, m.trace, m.clock, acpi_root_gpa=m.acpi.root_gpa)
    code = asm(tmp_path, code_text.replace("{idt}", hex(k.idt_va)))
    va = m.memory.alloc(0x2000)
    m.memory.vwrite(va, code)
    m.cpu.add_code(va, code)
    m.memory.tables.map(0xFFFFFFFFFFFE0000, 0xFEE00000, 0x1000, uncached=True)
    m.cpu.enable_paging(k.gdt_va, k.idt_va, k.pcr)
    m.cpu.set_reg(X.UC_X86_REG_RSP, k.stack_top)
    m.cpu.set_reg(X.UC_X86_REG_EFLAGS, 2)
    return m, k, va


def test_scan_finds_cr8_forms():
    found = scan_privileged(b"\x44\x0f\x22\xc0\x44\x0f\x20\xc1\x0f\x32\x0f\x30\xf4", 0x1000)
    assert found["cr8_write"] == [0x1000] and found["cr8_read"] == [0x1004]
    assert found["rdmsr"] == [0x1008] and found["wrmsr"] == [0x100A] and found["hlt"] == [0x100C]


def test_msr_and_cr8(tmp_path):
    m, k, va = harness(tmp_path, """
        mov ecx, 0x1b
        rdmsr
        mov r10, rax
        mov eax, 9
        mov cr8, rax
        mov rdx, cr8
        mov r11, rdx
        mov ecx, 0x40000000
        rdmsr
        mov rax, r10
        ret""")
    value = m.cpu.call(va)
    assert value & 0xFFFFF000 == 0xFEE00000
    assert m.lapic.tpr >> 4 == 9
    assert m.cpu.reg(X.UC_X86_REG_R11) == 9
    kinds = [(r["kind"], r["address"]) for r in m.trace.records]
    assert ("msr_read", 0x1B) in kinds and ("msr_read", 0x40000000) in kinds


def test_unknown_msr_is_gp_fault(tmp_path):
    m, k, va = harness(tmp_path, "mov ecx, 0x12345\n rdmsr\n ret")
    with pytest.raises(RunStop) as info:
        m.cpu.call(va)
    assert info.value.verdict["fault"]["kind"] == "#GP"


def test_hlt_with_interrupts_off_hangs(tmp_path):
    m, k, va = harness(tmp_path, "cli\n hlt\n ret")
    with pytest.raises(RunStop) as info:
        m.cpu.call(va)
    assert info.value.verdict["verdict"] == "hang"


def test_invalid_instruction_is_ud(tmp_path):
    m, k, va = harness(tmp_path, "ud2\n ret")
    with pytest.raises(RunStop) as info:
        m.cpu.call(va)
    assert info.value.verdict["fault"]["kind"] == "#UD"


def test_timer_interrupt_through_idt_and_hlt_fast_forward(tmp_path):
    m, k, va = harness(tmp_path, """
        lea rax, [rip + isr]
        mov rcx, rax
        movabs rdx, {idt}
        add rdx, 0x400
        mov word ptr [rdx], cx
        mov word ptr [rdx+2], 0x10
        mov word ptr [rdx+4], 0x8e00
        shr rcx, 16
        mov word ptr [rdx+6], cx
        shr rcx, 16
        mov dword ptr [rdx+8], ecx
        movabs rbx, 0xFFFFFFFFFFFE0000
        mov dword ptr [rbx+0xf0], 0x1ff
        mov dword ptr [rbx+0x3e0], 0xb
        mov dword ptr [rbx+0x320], 0x20040
        mov dword ptr [rbx+0x380], 200000
        xor r12, r12
        sti
    wait:
        hlt
        cmp r12, 3
        jb wait
        cli
        ret
    isr:
        inc r12
        mov dword ptr [rbx+0xb0], 0
        iretq
    """)
    start = m.clock.now
    m.cpu.call(va)
    assert m.cpu.reg(X.UC_X86_REG_R12) == 3
    elapsed_us = (m.clock.now - start) / PS_PER_US
    assert 3000 <= elapsed_us < 3100  # three 1 ms periods (200000 / 200 MHz), fast-forwarded by HLT
    assert sum(1 for r in m.trace.records if r["kind"] == "interrupt" and r["device"] == "cpu") == 3
    assert m.cpu.in_interrupt == []  # every IRETQ seen


def test_virtual_time_is_deterministic(tmp_path):
    dll = build.build_minihal(tmp_path / "det")
    a = boot(dll, "win7sp1-amd64", "gen2", seconds=0.2).result
    b = boot(dll, "win7sp1-amd64", "gen2", seconds=0.2).result
    assert a["verdict"] == "booted"
    assert a["trace_sha256"] == b["trace_sha256"]
    assert a["guest_instructions"] == b["guest_instructions"]
    assert a["ticks"] == 20 and a["tick_period_ns"]["mean"] == 10_000_000


def test_bugcheck_and_crash_msrs(tmp_path):
    r = boot(build.build_minihal(tmp_path / "bc", "BUGCHECK"), "win7sp1-amd64", "gen2").result
    assert r["verdict"] == "bugcheck" and r["bugcheck"]["code"] == 0x79 and r["bugcheck"]["params"][0] == 6
    assert r["bugcheck"]["reported_via"] == "KeBugCheckEx"
    r = boot(build.build_minihal(tmp_path / "cm", "CRASHMSR"), "win7sp1-amd64", "gen2").result
    assert r["verdict"] == "bugcheck" and r["bugcheck"]["reported_via"] == "both", r["bugcheck"]


def test_rtc_poll_hang_names_register(tmp_path):
    r = boot(build.build_minihal(tmp_path / "rh", "RTCHANG"), "win7sp1-amd64", "gen2", hang_limit_s=0.05).result
    assert r["verdict"] == "hang"
    assert r["hang"]["function"] == "HalInitSystem"
    assert r["hang"]["polls"]["register"] == "RTC register A"


def test_top_level_calls_give_their_stack_back(tmp_path):
    # The idle loop calls HalProcessorIdle thousands of times: a call from the model must leave RSP as it was.
    m, k, va = harness(tmp_path, """
        push rbx
        pop rbx
        ret
    """)
    before = m.cpu.reg(X.UC_X86_REG_RSP)
    for _ in range(1000):
        m.cpu.call(va)
    assert m.cpu.reg(X.UC_X86_REG_RSP) == before
