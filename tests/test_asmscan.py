"""generator.asmscan: small assembly files written here (calls, port and MSR constants, definition lines, a file
that does not assemble), hal_src's own trap stubs, and upstream ReactOS's amd64 HAL assembly (copied to a
temporary folder; skipped, saying so, when the upstream subset is absent)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from generator.asmscan import AsmScan, AsmScanError, scan_asm
from generator.unit import Source, open_unit

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ROOT.parent / "shared" / "upstream" / "reactos"
CPP = ("-x", "assembler-with-cpp")


def _scan(tmp_path: Path, text: str, name: str = "t.S", **kwargs) -> AsmScan:
    """Write ``text`` to tmp_path/src/name and scan it with the C preprocessor, as a build would."""
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return scan_asm(Source(path, "asm", "test", (), (), CPP), tmp_path / "work", **kwargs)


def _line(text: str, needle: str) -> int:
    """The 1-based number of the only line of ``text`` containing ``needle``."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


# ---- calls and addresses ----------------------------------------------------------------------------------------

CALLS = """\
        .text
        .globl Entry
Entry:
        call    ExternalWorker              /* relocation to an undefined symbol */
        call    Sibling                     /* same section: the assembler resolves it, no relocation */
        leaq    HandlerInC(%rip), %rax      /* a C function's address (only known from the C side) */
        leaq    Sibling(%rip), %rcx         /* a function of this file handed out */
        leaq    Counter(%rip), %rdx         /* a variable */
        call    *__imp_KeBugCheckEx(%rip)   /* an import called through its slot */
        jmp     TailTarget                  /* a tail jump leaves the function too */
        .globl Sibling
Sibling:
        call    Helper                      /* a local label that is called: a function */
        ret
Helper:
        ret
        .data
        .globl HandlerTable
HandlerTable:
        .quad   Entry, Helper
Counter:
        .long   0
"""


def test_calls_tail_jumps_imports_and_addresses(tmp_path):
    scan = _scan(tmp_path, CALLS, known_functions=["HandlerInC"])
    assert [(f.name, f.is_global) for f in scan.functions] == [("Entry", True), ("Sibling", True),
                                                              ("Helper", False)]
    assert {f.name: f.line for f in scan.functions} == {
        "Entry": _line(CALLS, "Entry:"), "Sibling": _line(CALLS, "Sibling:"), "Helper": _line(CALLS, "Helper:")}
    assert scan.callees("Entry") == ["ExternalWorker", "KeBugCheckEx", "Sibling", "TailTarget"]
    assert scan.callees("Entry", "address") == ["HandlerInC", "Sibling"]
    assert scan.callees("Sibling") == ["Helper"]
    assert scan.callees("Helper") == []
    assert scan.callees("HandlerTable", "address") == ["Entry", "Helper"]
    assert [(r.function, r.symbol) for r in scan.data_refs] == [("Entry", "Counter")]
    # the call's offset is the instruction's, in its section
    first = next(c for c in scan.calls if c.callee == "ExternalWorker")
    assert (first.caller, first.kind, first.section, first.offset, first.line) == \
        ("Entry", "call", ".text", 0, _line(CALLS, "Entry:"))
    assert first.text.startswith("call") and "<ExternalWorker>" in first.text


def test_an_undefined_name_only_loaded_is_data_unless_the_c_side_knows_it(tmp_path):
    scan = _scan(tmp_path, CALLS)
    assert scan.callees("Entry", "address") == ["Sibling"]
    assert ("Entry", "HandlerInC") in [(r.function, r.symbol) for r in scan.data_refs]


def test_fall_through_into_the_next_function_is_a_call(tmp_path):
    text = """\
        .text
        .globl First
First:
        cli
        .globl Second
Second:
        hlt
        jmp     Second
"""
    scan = _scan(tmp_path, text)
    assert [(c.caller, c.callee, c.kind) for c in scan.calls] == [("First", "Second", "call")]
    assert [(c.function, c.mnemonic, c.count) for c in scan.counts] == [("First", "cli", 1), ("Second", "hlt", 1)]


# ---- ports ------------------------------------------------------------------------------------------------------

PORTS = """\
        .text
        .globl Ports
Ports:
        movb    $0x0c, %al
        outb    %al, $0x70                  /* P1 immediate write of a known value */
        inb     $0x71, %al                  /* P2 immediate read */
        movw    $0x3f8, %dx
        outb    %al, (%dx)                  /* P3 through dx, value unknown (read above) */
        inw     (%dx), %ax                  /* P4 16-bit read */
        movl    $0xcf8, %edx
        movl    $0x80000000, %eax
        outl    %eax, (%dx)                 /* P5 32-bit write */
        testl   %ecx, %ecx
        jz      1f
        movw    $0x64, %dx
        jmp     2f
1:      movw    $0x64, %dx
2:      inb     (%dx), %al                  /* P6 both paths agree */
        testl   %ecx, %ecx
        jz      3f
        movw    $0x60, %dx
3:      inb     (%dx), %al                  /* P7 the paths disagree */
        movw    $0x60, %dx
        call    Elsewhere
        outb    %al, (%dx)                  /* P8 rdx does not survive a call */
        movw    $0x1f0, %dx
        movb    $0xf7, %dl
        inb     (%dx), %al                  /* P9 a byte write keeps the other byte */
        xorl    %edx, %edx
        movb    $0x64, %dl
4:      inb     (%dx), %al                  /* P10 a polling loop keeps its port */
        testb   $2, %al
        jnz     4b
        rep outsw                           /* P11 string output through dx */
        ret
"""


def test_ports_immediate_through_dx_joins_calls_and_loops(tmp_path):
    scan = _scan(tmp_path, PORTS)
    got = [(p.port, p.access, p.width, p.value, p.note) for p in scan.ports]
    assert got == [
        (0x70, "write", 1, 0x0C, ""),
        (0x71, "read", 1, None, ""),
        (0x3F8, "write", 1, None, ""),
        (0x3F8, "read", 2, None, ""),
        (0xCF8, "write", 4, 0x80000000, ""),
        (0x64, "read", 1, None, ""),
        (None, "read", 1, None, "port not constant"),
        (None, "write", 1, None, "port not constant"),
        (0x1F7, "read", 1, None, ""),
        (0x64, "read", 1, None, ""),
        (0x64, "write", 2, None, ""),
    ]
    assert {p.function for p in scan.ports} == {"Ports"}
    assert all(p.line == _line(PORTS, "Ports:") for p in scan.ports)
    assert scan.ports[0].text.startswith("out") and "0x70" in scan.ports[0].text
    assert scan.callees("Ports") == ["Elsewhere"]


def test_intel_syntax_file(tmp_path):
    text = """\
        .intel_syntax noprefix
        .text
        .globl Pic
Pic:
        mov     al, 0xff
        out     0xa1, al
        mov     dx, 0x4d0
        in      al, dx
        ret
"""
    scan = _scan(tmp_path, text)
    assert [(p.port, p.access, p.width, p.value) for p in scan.ports] == [(0xA1, "write", 1, 0xFF),
                                                                         (0x4D0, "read", 1, None)]


# ---- MSRs and counted instructions ---------------------------------------------------------------------------------

def test_msrs_and_counts(tmp_path):
    text = """\
        .text
        .globl Msrs
Msrs:
        movl    $0x1b, %ecx
        rdmsr
        orl     $0x800, %eax
        wrmsr                               /* eax changed: value unknown */
        movl    $0x40000001, %ecx
        xorl    %edx, %edx
        movl    $0x1000, %eax
        wrmsr                               /* value known */
        cpuid
        rdmsr                               /* cpuid wrote ecx */
        cli
        hlt
        sti
        rdtsc
        ret
"""
    scan = _scan(tmp_path, text)
    assert [(m.msr, m.access, m.value, m.note) for m in scan.msrs] == [
        (0x1B, "read", None, ""), (0x1B, "write", None, ""), (0x40000001, "write", 0x1000, ""),
        (None, "read", None, "MSR not constant")]
    assert sorted((c.mnemonic, c.count) for c in scan.counts) == [
        ("cli", 1), ("cpuid", 1), ("hlt", 1), ("rdtsc", 1), ("sti", 1)]


# ---- definition lines, determinism, errors ------------------------------------------------------------------------

def test_definition_lines_follow_the_preprocessor_and_macros(tmp_path):
    text = """\
#if 0
        .globl Early
Early:
#endif
        .text
.macro STUB name
        .globl \\name
\\name:
        ret
.endm
        /* Plain: named in a comment before its label */
        .globl Plain
Plain:
        ret
STUB Early
"""
    scan = _scan(tmp_path, text)
    lines = text.splitlines()
    assert {f.name: f.line for f in scan.functions} == {"Plain": lines.index("Plain:") + 1,
                                                        "Early": lines.index("STUB Early") + 1}


def test_same_input_same_result(tmp_path):
    first = _scan(tmp_path / "a", PORTS)
    path = tmp_path / "a" / "src" / "t.S"
    second = scan_asm(Source(path, "asm", "test", (), (), CPP), tmp_path / "other-workdir")
    assert first == second and first.as_dict() == second.as_dict()
    assert first.assemble_seconds > 0 and first.scan_seconds > 0


def test_a_file_that_does_not_assemble_names_its_first_error(tmp_path):
    text = "        .text\n        .globl Bad\nBad:\n        movq %rax, %nosuchreg\n        bogus\n"
    with pytest.raises(AsmScanError) as info:
        _scan(tmp_path, text, "bad.S")
    message = str(info.value)
    assert message.startswith(str(tmp_path / "src" / "bad.S"))
    assert "bad.S:4: Error:" in message and "nosuchreg" in message and "bogus" not in message


def test_a_missing_include_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(AsmScanError, match=r"inc\.S: does not assemble: .*missing\.inc"):
        _scan(tmp_path, '#include "missing.inc"\n', "inc.S")


def test_wrong_language_and_unmade_generated_file(tmp_path):
    c_file = tmp_path / "x.c"
    c_file.write_text("int x;\n", encoding="utf-8")
    with pytest.raises(AsmScanError, match=r"x\.c: language 'c', expected \"asm\""):
        scan_asm(Source(c_file, "c", "test", (), ()), tmp_path / "work")
    made = Source(tmp_path / "gen" / "a.asm.s", "asm", "test", (), (), (), generated_from=tmp_path / "a.asm",
                  generator="asmpp")
    with pytest.raises(AsmScanError, match=r"a\.asm\.s: no such file \(made at build time from .*a\.asm by asmpp"):
        scan_asm(made, tmp_path / "work")


# ---- real files ------------------------------------------------------------------------------------------------------

def test_hal_src_trap_stubs_dispatch_through_the_c_side(tmp_path):
    unit = open_unit(ROOT / "hal_src", "reactos-amd64")
    assert unit.asm_sources, "hal_src has no assembly files"
    for source in unit.asm_sources:
        scan = scan_asm(source, tmp_path)
        text = source.path.read_text(encoding="utf-8")
        # each macro use defines a stub; the stubs only build frames and call the C dispatcher
        stubs = re.findall(r"^HALP_TRAP_STUB\s+(\w+)\s*,", text, re.M)
        assert stubs
        for name in stubs:
            fn = scan.function(name)
            assert fn is not None and fn.is_global and fn.line == _line(text, f"HALP_TRAP_STUB {name},")
            assert scan.callees(name) == ["HalpDispatchInterrupt"]
        assert not scan.ports and not scan.msrs


@pytest.fixture(scope="module")
def upstream_scans(tmp_path_factory) -> dict[str, AsmScan]:
    """Every assembly file of upstream ReactOS's amd64 hal.dll, scanned from a temporary copy of the subset."""
    if not (UPSTREAM / "hal" / "halx86" / "CMakeLists.txt").is_file():
        pytest.skip(f"the upstream ReactOS subset is not at {UPSTREAM} (a user's clone has no ../shared)")
    tree = tmp_path_factory.mktemp("reactos") / "reactos"
    shutil.copytree(UPSTREAM, tree)
    unit = open_unit(tree, "reactos-amd64")
    work = tmp_path_factory.mktemp("asmscan")
    return {unit.relative(s.path): scan_asm(s, work) for s in unit.asm_sources}


def test_upstream_trap_stubs_call_their_handlers(upstream_scans):
    scan = upstream_scans["apic/apictrap.S"]
    text = scan.path.read_text(encoding="utf-8")
    for stub in ("HalpClockInterrupt", "HalpClockIpi", "HalpProfileInterrupt"):
        assert scan.callees(stub) == [f"{stub}Handler"]
        # the first TRAP_ENTRY use (the amd64 branch; the i386 one is preprocessed away)
        first = min(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(f"TRAP_ENTRY {stub},"))
        assert scan.function(stub).line == first
    spurious = scan.function("ApicSpuriousService")
    assert spurious is not None and spurious.is_global
    assert spurious.line == text.splitlines().index("ApicSpuriousService:") + 1
    assert scan.callees("ApicSpuriousService") == []


def test_upstream_tsc_calibration_isr_reads_cmos_register_c(upstream_scans):
    scan = upstream_scans["apic/tsccal.S"]
    assert [f.name for f in scan.functions] == ["TscCalibrationISR"]
    # it selects CMOS register C (acknowledging the RTC's periodic interrupt), reads it, then sends the EOI
    assert [(p.function, p.port, p.access, p.width, p.value) for p in scan.ports] == [
        ("TscCalibrationISR", 0x70, "write", 1, 0x0C), ("TscCalibrationISR", 0x71, "read", 1, None)]
    assert scan.callees("TscCalibrationISR") == ["HalpSendEOI"]
    assert {r.symbol for r in scan.data_refs} == {"TscCalibrationPhase", "TscCalibrationArray"}
    assert [(c.mnemonic, c.count) for c in scan.counts] == [("rdtsc", 1)]
