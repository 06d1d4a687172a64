"""ReactOS's host tools in Python (generator.hosttools): each tool on small inputs written here, then on a copy of
the upstream ReactOS subset (../shared/upstream/reactos, skipped without it), including a comparison with
upstream's own C tools built from that copy with the host compiler."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from generator.hosttools import HostToolError, geninc, headers, hpp, mc, spec
from generator.hosttools.geninc import GenincError
from generator.hosttools.hpp import HppError
from generator.hosttools.mc import McError
from generator.hosttools.spec import SpecError

REPO = Path(__file__).resolve().parent.parent
UPSTREAM = REPO.parent / "shared" / "upstream" / "reactos"
HAL_EXPORTS = REPO.parent / "shared" / "reference" / "reactos-amd64" / "hal-exports.txt"
CC = headers.COMPILER


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def assert_names_line(error: type[Exception], run, path: Path, body: str, line: int, expected: str) -> None:
    """Writing ``body`` to ``path`` and running ``run(path)`` raises ``error`` naming ``path:line`` and ``expected``."""
    path.write_text(body)
    with pytest.raises(error) as err:
        run(path)
    assert f"{path}:{line}:" in str(err.value) and expected in str(err.value)


def need_mingw() -> None:
    if shutil.which(CC) is None:
        pytest.fail(f"{CC} missing: run scripts/setup.sh")


# ---------------------------------------------------------------------------------------------------- hpp


def test_hpp_define_if_and_variables(tmp_path):
    t = write(tmp_path / "t.template.h", """
        $$ a comment line, never in the output
        $define(_A_)
        $define(T=ULONG)
        first $T and $T;
        $if (_A_)
        kept-a
        $endif
        $if (_B_)
        dropped-b
        $define(_C_)
        $endif
        $if(!_B_ && _A_)
        kept-not-b
        $endif
        $if (_B_ || (_A_ & 1))
        kept-or
        $endif
        $if (_C_ + 0)
        dropped-c
        $endif
        $if (_B_ | 0) // comment after the expression
        dropped-zero
        $endif
        $if (_A_ && !(_B_ || 0))
        kept-nested
        $endif
        last
        """)
    out = hpp.preprocess(t).text.decode()
    assert out == "first ULONG and ULONG;\nkept-a\nkept-not-b\nkept-or\nkept-nested\nlast\n"


def test_hpp_include_and_open_if_closes_at_end_of_included_file(tmp_path):
    write(tmp_path / "inner.h", """
        inner-start
        $if (_NOPE_)
        inner-hidden
        """)
    write(tmp_path / "flag.h", "$define(_FROM_INCLUDE_)\n")
    t = write(tmp_path / "t.template.h", """
        $include (flag.h)
        $include(inner.h)
        after
        $if (_FROM_INCLUDE_)
        define-crossed-include
        $endif
        """)
    result = hpp.preprocess(t)
    assert result.text.decode() == "inner-start\nafter\ndefine-crossed-include\n"
    assert [p.name for p in result.files] == ["t.template.h", "flag.h", "inner.h"]


def test_hpp_nested_if_in_skipped_block_and_skipped_directives(tmp_path):
    t = write(tmp_path / "t.h", """
        $if (_OFF_)
        $if (_ALSO_)
        x
        $endif
        y
        $include(missing.h)
        $define(_SET_IN_SKIP_)
        $endif
        $if (_SET_IN_SKIP_)
        z
        $endif
        end
        """)
    assert hpp.preprocess(t).text == b"end\n"


def test_hpp_keeps_bytes_and_last_line_without_newline(tmp_path):
    t = tmp_path / "t.h"
    t.write_bytes(b"a\r\n\xe9\tb\nno newline")
    assert hpp.preprocess(t).text == b"a\r\n\xe9\tb\nno newline\n"


@pytest.mark.parametrize("body, line, expected", [
    ("ok\n$endif\n", 2, "$endif without an open $if"),
    ("$if (_A_\nx\n$endif\n", 1, "expected ')'"),
    ("$if _A_\n$endif\n", 1, "expected '('"),
    ("$if (_A_ ^ _B_)\n$endif\n", 1, "expected an operator"),
    ("$if (_A_) junk\n$endif\n", 1, "after the $if expression"),
    ("$define(_A_\n", 1, "expected $define(NAME)"),
    ("\n\nuses $UNDEFINED here\n", 3, "$UNDEFINED is not defined"),
    ("$include(nothere.h)\n", 1, "no such file"),
    ("$frobnicate(x)\n", 1, "unknown directive"),
])
def test_hpp_errors_name_file_and_line(tmp_path, body, line, expected):
    assert_names_line(HppError, hpp.preprocess, tmp_path / "bad.h", body, line, expected)


def test_hpp_include_loop_is_an_error(tmp_path):
    write(tmp_path / "a.h", "$include(b.h)\n")
    write(tmp_path / "b.h", "$include(a.h)\n")
    with pytest.raises(HppError, match="nests deeper"):
        hpp.preprocess(tmp_path / "a.h")


def test_xdk_header_list(tmp_path):
    cm = write(tmp_path / "CMakeLists.txt", """
        function(add_xdk_header _template _out)
        endfunction()
        add_xdk_header(wdm.template.h sdk/include/ddk/wdm.h)
          add_xdk_header( winnt.template.h  sdk/include/psdk/winnt.h )
        """)
    assert hpp.xdk_headers(cm) == [("wdm.template.h", "sdk/include/ddk/wdm.h"),
                                   ("winnt.template.h", "sdk/include/psdk/winnt.h")]
    write(cm, "add_xdk_header(x.template.h ../../etc/x.h)\n")
    with pytest.raises(HppError, match=":1: expected add_xdk_header"):
        hpp.xdk_headers(cm)
    write(cm, "project(x)\n")
    with pytest.raises(HppError, match="no add_xdk_header"):
        hpp.xdk_headers(cm)


# ----------------------------------------------------------------------------------------------------- mc

MC_SAMPLE = """
    ; /* copied comment */
    MessageIdTypedef=ULONG

    SeverityNames=(Success=0x0:STATUS_SEVERITY_SUCCESS
                   Informational=0x1:STATUS_SEVERITY_INFORMATIONAL
                   Warning=0x2
                   Error=0x3:STATUS_SEVERITY_ERROR
                  )
    FacilityNames=(System=0x0:FACILITY_SYSTEM
                   Io=0x4:FACILITY_IO_ERROR_CODE)
    LanguageNames=(English=0x409:MSG00409)

    MessageId=0x79
    Severity=Success
    Facility=System
    SymbolicName=FIRST
    Language=English
    text, with a = sign
    .

    MessageId=
    SymbolicName=SECOND
    Language=English
    two
    lines
    .

    MessageId=+0x10
    Severity=Error
    SymbolicName=THIRD
    Language=English
    .

    MessageId=
    Facility=Io
    SymbolicName=IO_FIRST
    Language=English
    io
    .

    MessageId=7
    Severity=Warning
    Facility=Io
    SymbolicName=IO_SEVEN
    Language=English
    seven
    .

    MessageId=
    Facility=System
    SymbolicName=BACK_TO_SYSTEM
    Language=English
    x
    .
    """


def test_mc_values_severity_facility_and_ids(tmp_path):
    parsed = mc.parse_mc(write(tmp_path / "b.mc", MC_SAMPLE))
    values = {m.symbol: m.value for m in parsed.messages}
    assert values == {
        "FIRST": 0x00000079,
        "SECOND": 0x0000007A,                   # omitted id: previous + 1, severity and facility carried over
        "THIRD": 0xC000008A,                    # +0x10; Error = 3 << 30
        "IO_FIRST": 0xC0040000,                 # first id of facility Io: 0; severity carried
        "IO_SEVEN": 0x80040007,
        "BACK_TO_SYSTEM": 0x8000008B,           # System's own counter continues after THIRD
    }
    header = mc.render_header(parsed).decode()
    assert re.search(r"^#define FIRST +\(\(ULONG\)0x00000079L\)$", header, re.M)
    assert re.search(r"^#define THIRD +\(\(ULONG\)0xC000008AL\)$", header, re.M)
    assert header.count("#define") == 6
    assert header.index(" /* copied comment */") < header.index("#define FIRST")


def test_mc_without_typedef_and_default_names(tmp_path):
    path = write(tmp_path / "d.mc", """
        MessageId=1
        Severity=Error
        Facility=Application
        SymbolicName=APP_ERROR
        Language=English
        x
        .
        """)
    assert "#define APP_ERROR                        0xCFFF0001L" in mc.generate_header(path).decode()


@pytest.mark.parametrize("body, line, expected", [
    ("Severity=Success\n", 1, "before the first MessageId"),
    ("MessageId=1\nSeverity=Fatal\nSymbolicName=X\nLanguage=English\nx\n.\n", 2, "unknown severity 'Fatal'"),
    ("MessageId=1\nFacility=Nowhere\n", 2, "unknown facility"),
    ("MessageId=0x10000\nSymbolicName=X\n", 1, "does not fit 16 bits"),
    ("MessageId=abc\n", 1, "expected MessageId=[number|+number]"),
    ("MessageId=1\nSymbolicName=X\nLanguage=English\nno end\n", 3, "not ended by a '.' line"),
    ("MessageId=1\nSymbolicName=X\nLanguage=Klingon\nx\n.\n", 3, "unknown language"),
    ("MessageId=1\nLanguage=English\nx\n.\n", 1, "has no SymbolicName"),
    ("MessageId=1\nSymbolicName=X\n", 1, "has no Language= text"),
    ("MessageId=1\nSymbolicName=X\nLanguage=English\n.\nMessageId=2\nSymbolicName=X\nLanguage=English\n.\n", 5,
     "already used at line 1"),
    ("MessageId=1\nSymbolicName=1X\n", 2, "expected a C identifier"),
    ("SeverityNames=(Success=0x0\n", 1, "not closed"),
    ("FacilityNames=(A=0x1000)\n", 1, "0..0xFFF"),
    ("this is not a statement\n", 1, "expected Keyword=value"),
    ("MessageId=1\nColour=Blue\n", 2, "unexpected Colour="),
])
def test_mc_errors_name_file_and_line(tmp_path, body, line, expected):
    assert_names_line(McError, mc.parse_mc, tmp_path / "bad.mc", body, line, expected)


# ------------------------------------------------------------------------------------------------- geninc

GENINC_C = r"""
typedef struct { char Type; char Name[55]; unsigned long long Value; } R;
struct S { int a; long long b; char c[3]; };
__attribute__((section(".asmdef"))) R Table[] = {
    {1, "#include <kx.inc>", 0},
    {3, "Sizes", 0},
    {2, "SizeofS", sizeof(struct S)},
    {2, "S_b", __builtin_offsetof(struct S, b)},
    {2, "Big", 0xFFFFF68000000000ULL},
    {0, "", 0},
    {2, "AfterEnd", 1},
};
"""


def _compile(tmp_path: Path, source: str, name: str = "t") -> Path:
    need_mingw()
    src = write(tmp_path / f"{name}.c", source)
    obj = tmp_path / f"{name}.o"
    deps = geninc.compile_object(src, obj, compiler=CC, include_dirs=[], defines=["UNUSED=1"], flags=["-O0"])
    assert src in deps
    return obj


def test_geninc_reads_object_and_image(tmp_path):
    obj = _compile(tmp_path, GENINC_C)
    records = geninc.asmdef_records(obj.read_bytes(), str(obj))
    assert geninc.render_inc(records).decode() == (
        "#include <kx.inc>\n\n/* Sizes */\nSizeofS = 0x18\nS_b = 0x8\nBig = 0xfffff68000000000\n")
    assert geninc.render_inc(records, ms_format=True).decode() == (
        "#include <kx.inc>\n\n; Sizes\nSizeofS equ 018h\nS_b equ 08h\nBig equ 0fffff68000000000h\n")
    dll = tmp_path / "t.dll"
    subprocess.run([CC, "-shared", "-nostdlib", "-Wl,--entry,0", "-o", str(dll), str(obj)], check=True)
    assert geninc.asmdef_records(dll.read_bytes(), str(dll)) == records


def test_geninc_refuses_relocations_missing_section_and_end(tmp_path):
    reloc = _compile(tmp_path, GENINC_C.replace('{2, "Big", 0xFFFFF68000000000ULL}',
                                                '{2, "Big", (unsigned long long)&Table}'), "reloc")
    with pytest.raises(GenincError, match="relocations"):
        geninc.asmdef_records(reloc.read_bytes(), "reloc.o")
    plain = _compile(tmp_path, "int x = 1;\n", "plain")
    with pytest.raises(GenincError, match="plain.o: no .asmdef section"):
        geninc.asmdef_records(plain.read_bytes(), "plain.o")
    noend = _compile(tmp_path, GENINC_C.replace('{0, "", 0},', "").replace('{2, "AfterEnd", 1},', ""), "noend")
    with pytest.raises(GenincError, match="without an end record"):
        geninc.asmdef_records(noend.read_bytes(), "noend.o")
    with pytest.raises(GenincError, match="truncated COFF header"):
        geninc.asmdef_records(b"\x64\x86", "tiny")
    with pytest.raises(GenincError, match="failed"):
        _compile(tmp_path, "this is not C\n", "broken")


# --------------------------------------------------------------------------------------------------- spec

SPEC_SAMPLE = """
    ; comment line
    # another comment line
    @ stdcall Plain(long ptr)
    @ cdecl Cdecl() # trailing comment
    @ varargs Printf(str)
    @ fastcall Fast(ptr)
    @ thiscall This(ptr)
    @ extern Data
    @ stdcall -arch=i386 OnlyX86(long)
    @ stdcall -i386 OnlyI386Too(long)
    @ stdcall -arch=i386,x86_64 Both(long) Internal
    @ stdcall -arch=win64 AllWin64()
    @ stdcall -arch=arm,arm64 NotHere()
    @ stdcall -version=0x502 -arch=x86_64 Versioned(ptr)
    @ stdcall -version=0x600+ Versioned(ptr)
    @ stdcall -version=0x400-0x501,0x601 Ranged()
    @ cdecl -private Priv()
    @ stdcall Fwd(ptr) ntdll.RtlFwd
    20 stdcall Numbered(long)
    30 stdcall -noname Hidden()
    40 cdecl -ordinal ByOrdinal()
    @ cdecl -impsym _imp_alias() realname
    @ stdcall -frobnicate Odd()
    @ stdcall _Decorated@8(long long)
    @ stdcall Spaced (long  long)
    """


@pytest.fixture
def sample_spec(tmp_path) -> spec.SpecFile:
    return spec.parse_spec(write(tmp_path / "m.spec", SPEC_SAMPLE))


def test_spec_parse_and_filter(sample_spec):
    assert sample_spec.warnings == [f"{sample_spec.path}:23: ignored option '-frobnicate'"]
    both = next(e for e in sample_spec.exports if e.name == "Both")
    assert (both.convention, both.args, both.target, both.arches) == ("stdcall", ("long",), "Internal",
                                                                       ("i386", "x86_64"))
    assert next(e for e in sample_spec.exports if e.name == "Printf").convention == "cdecl"
    assert next(e for e in sample_spec.exports if e.name == "Fwd").is_forwarder
    assert next(e for e in sample_spec.exports if e.name == "Plain").stack_bytes == 8
    common = ["Plain", "Cdecl", "Printf", "Fast", "This", "Data"]
    assert spec.exported_names(sample_spec, arch="x86_64", version=0x502) == common + [
        "Both", "AllWin64", "Versioned", "Priv", "Fwd", "Numbered", "ByOrdinal", "Odd", "Decorated", "Spaced"]
    assert spec.exported_names(sample_spec, arch="amd64", version=0x601) == common + [
        "Both", "AllWin64", "Versioned", "Ranged", "Priv", "Fwd", "Numbered", "ByOrdinal", "Odd", "Decorated",
        "Spaced"]
    assert spec.exported_names(sample_spec, arch="i386", version=0x400) == common + [
        "OnlyX86", "OnlyI386Too", "Both", "Ranged", "Priv", "Fwd", "Numbered", "ByOrdinal", "Odd", "Decorated",
        "Spaced"]
    assert "NotHere" in spec.exported_names(sample_spec, arch="arm64", version=0x502)


def test_spec_export_def(sample_spec):
    text = spec.render_def(sample_spec, "m.dll", arch="x86_64", version=0x502)
    lines = text.splitlines()
    assert lines[2:5] == ["NAME m.dll", "", "EXPORTS"]
    body = lines[5:]
    # file order; explicit ordinals kept, the others numbered 1, 2, ... around them
    assert body == [
        " Plain @1", " Cdecl @2", " Printf @3", " Fast @4", " This @5", " Data @6 DATA", " Both=Internal @7",
        " AllWin64 @8", " Versioned @9", " Priv @10 PRIVATE", " Fwd=ntdll.RtlFwd @11", " Numbered @20",
        # (ordinal 12 went to the import-library-only _imp_alias, as upstream numbers it too)
        " Hidden @30 NONAME", " ByOrdinal @40", " Odd @13", " Decorated @14", " Spaced @15"]


def test_spec_import_library_def(sample_spec, tmp_path):
    text = spec.render_def(sample_spec, "m.dll", arch="x86_64", version=0x502, implib=True)
    body = text.splitlines()[5:]
    assert " Priv" not in "\n".join(body) and "Priv" not in text
    assert body == [
        " Plain", " Cdecl", " Printf", " Fast", " This", " Data DATA", " Both=Internal", " AllWin64",
        " Versioned", " Fwd=ntdll.RtlFwd", " Numbered", " Hidden @30 NONAME", " ByOrdinal @40 NONAME",
        " _imp_alias==realname", " Odd", " Decorated", " Spaced"]
    if shutil.which("x86_64-w64-mingw32-dlltool"):
        (tmp_path / "m.def").write_text(text)
        subprocess.run(["x86_64-w64-mingw32-dlltool", "--input-def", str(tmp_path / "m.def"), "--dllname", "m.dll",
                        "--output-lib", str(tmp_path / "libm.a")], check=True, cwd=tmp_path)
        assert (tmp_path / "libm.a").stat().st_size > 0


def test_spec_stubs(tmp_path):
    s = spec.parse_spec(write(tmp_path / "s.spec", """
        @ stub Unimplemented
        @ stub StubArgs(long ptr)
        @ stub Sized@12
        @ stdcall -stub Flagged(long)
        """))
    conventions = [(e.name, e.convention, e.args, e.is_stub) for e in s.exports]
    assert conventions == [("Unimplemented", "stub", (), True), ("StubArgs", "stdcall", ("long", "ptr"), True),
                           ("Sized", "stdcall", ("long",) * 3, True), ("Flagged", "stdcall", ("long",), True)]
    assert spec.exported_names(s) == ["Unimplemented", "StubArgs", "Sized", "Flagged"]
    with pytest.raises(SpecError, match=r"s.spec:1: Unimplemented is a stub export"):
        spec.render_def(s, "s.dll")
    assert " Sized" in spec.render_def(s, "s.dll", implib=True)


def test_spec_duplicates_and_unsupported(tmp_path):
    dup = spec.parse_spec(write(tmp_path / "d.spec", "@ stdcall A()\n@ cdecl -arch=x86_64 A()\n"))
    with pytest.raises(SpecError, match=r"d.spec:2: A is exported twice .* line 1"):
        spec.exported_names(dup)
    assert spec.exported_names(dup, arch="i386") == ["A"]
    ords = spec.parse_spec(write(tmp_path / "o.spec", "5 stdcall A()\n5 stdcall B()\n"))
    with pytest.raises(SpecError, match=r"o.spec:2: ordinal 5 already used at line 1"):
        spec.render_def(ords, "o.dll")
    with pytest.raises(SpecError, match="not implemented"):
        spec.render_def(ords, "o.dll", arch="i386")
    with pytest.raises(SpecError, match="unknown architecture"):
        spec.exported_names(ords, arch="sparc")


@pytest.mark.parametrize("line, expected", [
    ("x stdcall A()", "expected '@' or an ordinal number"),
    ("70000 stdcall A()", "out of range"),
    ("@", "expected a calling convention"),
    ("@ pascal A()", "invalid calling convention 'pascal'"),
    ("@ stdcall -private", "expected the export name"),
    ("@ stdcall A", "expected '(' and the argument types"),
    ("@ stdcall A(long", "expected ')'"),
    ("@ stdcall A(long bogus)", "unrecognized argument type 'bogus'"),
    ("@ extern D()", "extern (data) export takes no argument list"),
    ("@ stdcall A() B C", "excess token(s)"),
    ("@ stdcall -version=0x600-0x502 A()", "start above end"),
    ("@ stdcall -version=vista A()", "expected -version=0xA"),
    ("@ stdcall -noname A()", "needs an ordinal number"),
    ("@ cdecl -impsym A()", "-impsym needs a target"),
    ("@ stub S@x", "expected a byte count"),
    ("@ stdcall A=B()", "expected an export name"),
])
def test_spec_bad_lines(tmp_path, line, expected):
    assert_names_line(SpecError, spec.parse_spec, tmp_path / "bad.spec", f"; first line is fine\n{line}\n", 2, expected)


# ------------------------------------------------------------------------------------------ upstream tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A private copy of the upstream ReactOS subset (the tools must never write into a tree)."""
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream ReactOS subset {UPSTREAM} not present (a user's clone has no ../shared)")
    copy = tmp_path_factory.mktemp("rx") / "reactos"
    shutil.copytree(UPSTREAM, copy)
    return copy


@pytest.fixture(scope="module")
def generated(tree, tmp_path_factory) -> Path:
    need_mingw()
    return headers.ensure_generated(tree, tmp_path_factory.mktemp("cache"))


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_generated_headers_contain_expected_facts(tree, generated):
    ddk, psdk = generated / "sdk/include/ddk", generated / "sdk/include/psdk"
    wdm = (ddk / "wdm.h").read_text(encoding="latin-1")
    assert re.search(r"\bKeStallExecutionProcessor\s*\(", wdm)
    assert re.search(r"^} IRP, \*PIRP;$", wdm, re.M) and "$" not in wdm
    ntddk = (ddk / "ntddk.h").read_text(encoding="latin-1")
    assert "#include <wdm.h>" in ntddk and re.search(r"\bHalGetInterruptVector\b", ntddk + wdm)
    assert "#include <bugcodes.h>" in (ddk / "ntifs.h").read_text(encoding="latin-1")
    assert "#define CTL_CODE(" in (psdk / "devioctl.h").read_text(encoding="latin-1")
    assert re.search(r"^typedef .*\bLONG NTSTATUS\b", (psdk / "ntdef.h").read_text(encoding="latin-1"), re.M)
    winnt = (psdk / "winnt.h").read_text(encoding="latin-1")
    assert "DWORD" in winnt and re.search(r"^typedef struct DECLSPEC_ALIGN\(16\) _CONTEXT \{", winnt, re.M)
    bug = (generated / "sdk/include/reactos/mc/bugcodes.h").read_text()
    assert re.search(r"^#define MISMATCHED_HAL +\(\(ULONG\)0x00000079L\)$", bug, re.M)
    assert re.search(r"^#define HAL_INITIALIZATION_FAILED +\(\(ULONG\)0x0000005CL\)$", bug, re.M)
    assert bug.count("#define") == (tree / "sdk/include/reactos/mc/bugcodes.mc").read_text().count("SymbolicName=")


def test_ksamd64_inc_agrees_with_target_description(generated):
    """Offsets in ksamd64.inc equal the ones the reactos-amd64 target description states (computed there by
    libclang from the same headers, checked by hand): two routes to the same facts."""
    text = (generated / "sdk/include/asm/ksamd64.inc").read_text()
    assert text.startswith("#include <kxamd64.inc>\n")
    values = {name: int(value, 16) for name, value in re.findall(r"^(\w+) = 0x([0-9a-f]+)$", text, re.M)}
    described = tomllib.loads((REPO / "specs/targets/reactos-amd64.toml").read_text())
    compared = 0
    for section, prefix in (("kpcr", "Pc"), ("kprcb", "Pb"), ("ktrap_frame", "KTRAP_FRAME_")):
        for field_name, fact in described[section].items():
            if isinstance(fact, dict) and prefix + field_name in values:
                assert values[prefix + field_name] == fact["offset"], f"{prefix}{field_name}"
                compared += 1
    assert compared >= 30
    assert values["KTRAP_FRAME_LENGTH"] == described["ktrap_frame"]["size"] == 0x190
    assert values["KTRAP_FRAME_Rip"] == 0x168 and values["PcCurrentPrcb"] == 0x20
    assert values["SizeofPointer"] == 8 and values["CR0_PG"] == 0x80000000


def test_hal_spec_amd64_exports(tree):
    if not HAL_EXPORTS.is_file():
        pytest.skip(f"{HAL_EXPORTS} not present (a user's clone has no ../shared)")
    hal = spec.parse_spec(tree / "hal/hal.spec")
    names = spec.exported_names(hal, arch="x86_64", version=0x502)
    assert sorted(names) == sorted(HAL_EXPORTS.read_text().split()) and len(names) == 62
    aliases = {plain: e.target for e in hal.selected("x86_64", 0x502) for plain in [e.name] if e.target}
    assert aliases == {"IoAssignDriveLetters": "HalpAssignDriveLetters",
                       "IoReadPartitionTable": "HalpReadPartitionTable",
                       "IoSetPartitionInformation": "HalpSetPartitionInformation",
                       "IoWritePartitionTable": "HalpWritePartitionTable"}
    text = spec.render_def(hal, "hal.dll")
    assert " IoReadPartitionTable=HalpReadPartitionTable @" in text and re.search(r" KdComPortInUse @\d+ DATA", text)


def test_ntoskrnl_import_library(tree, tmp_path):
    if shutil.which("x86_64-w64-mingw32-dlltool") is None:
        pytest.fail("x86_64-w64-mingw32-dlltool missing: run scripts/setup.sh")
    kernel = spec.parse_spec(tree / "ntoskrnl/ntoskrnl.spec")
    deffile = tmp_path / "ntoskrnl.def"
    deffile.write_text(spec.render_def(kernel, "ntoskrnl.exe", implib=True))
    lib = tmp_path / "libntoskrnl.a"
    subprocess.run(["x86_64-w64-mingw32-dlltool", "--input-def", str(deffile), "--dllname", "ntoskrnl.exe",
                    "--output-lib", str(lib)], check=True, cwd=tmp_path)
    symbols = subprocess.run(["x86_64-w64-mingw32-nm", str(lib)], capture_output=True, text=True, check=True).stdout
    for name in ("KeBugCheckEx", "ExAllocatePoolWithTag", "KeUpdateSystemTime", "HalPrivateDispatchTable"):
        assert re.search(rf"\b__imp_{name}$", symbols, re.M), name
    # -private exports (KeLowerIrql on x86_64) stay out of the import library, internal names never appear
    assert not re.search(r"\b__imp_(KeLowerIrql|KxLowerIrql)$", symbols, re.M)


def test_ensure_generated_is_cached_atomic_and_outside_the_tree(tree, tmp_path, monkeypatch):
    need_mingw()
    before = _snapshot(tree)
    cache = tmp_path / "cache"
    first = headers.ensure_generated(tree, cache)
    assert _snapshot(tree) == before
    expected = {"sdk/include/ddk/wdm.h", "sdk/include/ddk/ntddk.h", "sdk/include/ddk/ntifs.h",
                "sdk/include/psdk/devioctl.h", "sdk/include/psdk/ntdef.h", "sdk/include/psdk/winnt.h",
                "sdk/include/reactos/mc/bugcodes.h", "sdk/include/asm/ksamd64.inc", "manifest.json"}
    assert {str(p.relative_to(first)) for p in first.rglob("*") if p.is_file()} == expected
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]
    # a second call must not build: it only hashes the inputs
    monkeypatch.setattr(headers, "_build", lambda *a, **k: pytest.fail("cache miss on unchanged inputs"))
    start = time.perf_counter()
    assert headers.ensure_generated(tree, cache) == first
    assert time.perf_counter() - start < 2.0
    monkeypatch.undo()
    # a damaged dependency record means a rebuild into the same folder (the existing one is kept)
    for record in (cache / "deps").iterdir():
        record.write_text("{not json")
    assert headers.ensure_generated(tree, cache) == first
    assert json.loads(next((cache / "deps").iterdir()).read_text())["files"]
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]
    # same inputs in another cache: same bytes (deterministic)
    other = headers.ensure_generated(tree, tmp_path / "cache2")
    assert other.name == first.name
    for rel in expected:
        assert (other / rel).read_bytes() == (first / rel).read_bytes(), rel


def test_ensure_generated_key_follows_every_input(tree, tmp_path):
    need_mingw()
    work = tmp_path / "reactos"
    shutil.copytree(tree, work)
    cache = tmp_path / "cache"
    base = headers.ensure_generated(work, cache)
    # a header only genincdata.c reads (found through the compiler's dependency list)
    with (work / "sdk/include/ndk/ketypes.h").open("a") as f:
        f.write("\n/* changed */\n")
    changed = headers.ensure_generated(work, cache)
    assert changed != base
    with (work / "sdk/include/reactos/mc/bugcodes.mc").open("a") as f:
        f.write("\r\nMessageId=0x1FF\r\nSymbolicName=ADDED_FOR_TEST\r\nLanguage=English\r\nx\r\n.\r\n")
    again = headers.ensure_generated(work, cache)
    assert again not in (base, changed)
    assert re.search(r"#define ADDED_FOR_TEST +\(\(ULONG\)0x000001FFL\)",
                     (again / "sdk/include/reactos/mc/bugcodes.h").read_text())


def test_ensure_generated_bad_input_leaves_nothing(tree, tmp_path, monkeypatch):
    work = tmp_path / "reactos"
    shutil.copytree(tree, work)
    (work / "sdk/include/xdk/haltypes.h").write_text("fine\n$endif\n")
    cache = tmp_path / "cache"
    with pytest.raises(HppError, match=r"haltypes.h:2: \$endif without"):
        headers.ensure_generated(work, cache)
    assert [p.name for p in cache.iterdir()] == []
    with pytest.raises(HostToolError, match="not supported"):
        headers.ensure_generated(work, cache, arch="arm")
    (work / "sdk/include/reactos/mc/bugcodes.mc").unlink()
    with pytest.raises(HostToolError, match="bugcodes.mc: missing"):
        headers.ensure_generated(work, cache)


def test_default_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("GEN2HAL_CACHE", str(tmp_path / "a"))
    assert headers.default_cache_root() == tmp_path / "a"
    monkeypatch.delenv("GEN2HAL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert headers.default_cache_root() == tmp_path / "x" / "gen2hal" / "reactos-generated"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert headers.default_cache_root() == tmp_path / "h" / ".cache" / "gen2hal" / "reactos-generated"


def test_hal_file_compiles_with_generated_headers(tree, generated):
    """A HAL source parses with the generated headers and the top-level include order (plus the HAL's own)."""
    includes, defines = headers.reactos_global_args(tree, generated)
    assert includes[:2] == [tree / "sdk/include", tree / "sdk/include/psdk"]
    assert includes.index(generated / "sdk/include/ddk") < includes.index(tree / "sdk/include/ddk")
    includes += [tree / "hal/halx86/include", tree / "ntoskrnl/include", tree / "sdk/include/reactos/libs/fast486",
                 tree / "drivers/bus/acpi/acpica/include"]
    defines += ["_NTHALDLL_", "_NTHAL_"]
    for rel in ("hal/halx86/generic/beep.c", "hal/halx86/acpi/halacpi.c", "hal/halx86/apic/apictimer.c"):
        cmd = [CC, "-fsyntax-only", *headers.GLOBAL_GCC_FLAGS, *(f"-U{u}" for u in headers.GLOBAL_UNDEFINES),
               *(f"-I{d}" for d in includes), *(f"-D{d}" for d in defines), str(tree / rel)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{rel}:\n{proc.stderr[-3000:]}"


# ----------------------------------------------------- differential: upstream's own C tools on the same inputs


@pytest.fixture(scope="module")
def upstream_tools(tree, tmp_path_factory) -> Path:
    """Upstream's hpp, geninc and spec2def built from the tree copy with the host compiler (test use only)."""
    host_cc = shutil.which("gcc") or shutil.which("cc")
    if host_cc is None:
        pytest.skip("no host C compiler to build upstream's reference tools")
    out = tmp_path_factory.mktemp("tools")
    for tool in ("hpp", "geninc", "spec2def"):
        subprocess.run([host_cc, "-w", "-O1", "-o", str(out / tool), str(tree / f"sdk/tools/{tool}/{tool}.c")],
                       check=True)
    return out


def test_hpp_matches_upstream_tool(tree, generated, upstream_tools, tmp_path):
    xdk = tree / "sdk/include/xdk"
    for template, output in hpp.xdk_headers(xdk / "CMakeLists.txt"):
        reference = tmp_path / Path(output).name
        subprocess.run([str(upstream_tools / "hpp"), template, str(reference)], cwd=xdk, check=True,
                       capture_output=True)
        assert (generated / output).read_bytes() == reference.read_bytes(), output


def test_geninc_matches_upstream_tool(tree, generated, upstream_tools, tmp_path):
    includes, defines = headers.reactos_global_args(tree, generated)
    obj, dll = tmp_path / "genincdata.o", tmp_path / "genincdata.dll"
    geninc.compile_object(tree / "sdk/include/asm/genincdata.c", obj, compiler=CC, include_dirs=includes,
                          defines=defines, flags=[*headers.GLOBAL_GCC_FLAGS, "-U_X86_", "-UWIN32"])
    subprocess.run([CC, "-shared", "-nostdlib", "-Wl,--entry,0", "-o", str(dll), str(obj)], check=True)
    for extra, ms in (([], False), (["-ms"], True)):
        reference = tmp_path / f"ref{len(extra)}.inc"
        subprocess.run([str(upstream_tools / "geninc"), str(dll), str(reference), *extra], check=True)
        ours = geninc.render_inc(geninc.asmdef_records(dll.read_bytes(), str(dll)), ms_format=ms)
        assert ours == reference.read_bytes()
    assert (generated / "sdk/include/asm/ksamd64.inc").read_bytes() == (tmp_path / "ref0.inc").read_bytes()


@pytest.mark.parametrize("rel, dll", [("hal/hal.spec", "hal.dll"), ("ntoskrnl/ntoskrnl.spec", "ntoskrnl.exe")])
@pytest.mark.parametrize("implib", [False, True])
def test_spec_defs_match_upstream_tool(tree, upstream_tools, tmp_path, rel, dll, implib):
    reference = tmp_path / "ref.def"
    args = [str(upstream_tools / "spec2def"), f"-n={dll}", "-a=x86_64", "--version=0x502", f"-d={reference}"]
    args += ["--implib"] if implib else [f"-s={tmp_path / 'stubs.c'}"]
    subprocess.run([*args, str(tree / rel)], check=True, capture_output=True)
    ours = spec.render_def(spec.parse_spec(tree / rel), dll, implib=implib)
    # the first line is each tool's own "generated" comment
    assert ours.splitlines()[1:] == reference.read_text().splitlines()[1:]
