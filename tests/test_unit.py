"""Build units: the CMake interpreter on small snippets, ReactOS's HAL read from an upstream tree (copied to a
temporary folder), a configured build's compile_commands.json, hal_src's unit.toml and load_unit's dispatch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from generator.unit import UnitError, load_unit
from generator.unit.cmake import CMakeProject
from generator.unit.cmakelang import Arg, expand, parse, split_list
from generator.unit.local import read_local_unit
from generator.unit.reactos import read_compile_commands, read_reactos_units

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ROOT.parent / "shared" / "upstream" / "reactos"
needs_upstream = pytest.mark.skipif(not (UPSTREAM / "hal" / "halx86" / "CMakeLists.txt").is_file(),
                                    reason=f"the upstream ReactOS subset is not at {UPSTREAM}")


# ---- the CMake language --------------------------------------------------------------------------------------------

def _project(tmp_path: Path, files: dict[str, str], cache: dict[str, str] | None = None) -> CMakeProject:
    """A project over ``files`` (path -> text) in tmp_path/src, binary folder tmp_path/bin."""
    for rel, text in files.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_text(text, encoding="utf-8")
    return CMakeProject(tmp_path / "src", tmp_path / "bin", cache)


def _run(tmp_path: Path, text: str, cache: dict[str, str] | None = None) -> CMakeProject:
    project = _project(tmp_path, {})
    project.cache.update(cache or {})
    project.run_source(text, "snippet.cmake")
    return project


def test_arguments_quoted_unquoted_bracket_comments_and_nested_parens():
    cmd = parse('foo(a "b c" [=[d ]] e]=] #[[ bracket\ncomment ]] (x y) "q\\"r" -DX="1 2" # tail\n  z)\n',
                Path("f.cmake"))[0]
    assert cmd.name == "foo" and cmd.line == 1
    assert [(a.text, a.kind) for a in cmd.args] == [
        ("a", "unquoted"), ("b c", "quoted"), ("d ]] e", "bracket"), ("(", "unquoted"), ("x", "unquoted"),
        ("y", "unquoted"), (")", "unquoted"), ('q\\"r', "quoted"), ('-DX="1 2"', "unquoted"), ("z", "unquoted")]
    assert cmd.args[-1].line == 3


def test_expansion_nesting_lists_and_escapes():
    variables = {"b": "x", "a_x": "one;two", "empty": ""}
    look = variables.get
    assert expand(Arg("${a_${b}}", "unquoted", 1), look, lambda n: None, "w") == ["one", "two"]
    assert expand(Arg("${a_${b}}", "quoted", 1), look, lambda n: None, "w") == ["one;two"]
    assert expand(Arg("${empty}", "unquoted", 1), look, lambda n: None, "w") == []
    assert expand(Arg("${empty}", "quoted", 1), look, lambda n: None, "w") == [""]
    assert expand(Arg("a\\;b;c", "unquoted", 1), look, lambda n: None, "w") == ["a;b", "c"]
    assert expand(Arg("t\\tn\\(", "quoted", 1), look, lambda n: None, "w") == ["t\tn("]
    assert expand(Arg("${nope}x", "unquoted", 1), look, lambda n: None, "w") == ["x"]
    assert expand(Arg("$<TARGET_OBJECTS:lib_${b}>", "unquoted", 1), look, lambda n: None, "w") \
        == ["$<TARGET_OBJECTS:lib_x>"]
    assert split_list("a;;b;[c;d];e") == ["a", "b", "[c;d]", "e"]


def test_set_unset_cache_and_list(tmp_path):
    p = _run(tmp_path, """
set(A 1 2 3)
set(B "")
set(C x)
unset(C)
set(PRESET mine CACHE STRING "doc")
set(NEW v CACHE STRING "doc")
set(FORCED old CACHE STRING "doc")
set(FORCED new CACHE STRING "doc" FORCE)
list(APPEND A 4 5)
list(REMOVE_ITEM A 2)
list(INSERT A 0 zero)
list(LENGTH A LEN)
list(GET A 1 -1 PICK)
list(FIND A 4 AT)
list(APPEND D x y x)
list(REMOVE_DUPLICATES D)
list(JOIN D "+" JOINED)
""", cache={"PRESET": "given"})
    v = p.variable
    assert v("A") == "zero;1;3;4;5" and v("LEN") == "5" and v("PICK") == "1;5" and v("AT") == "3"
    assert v("B") == "" and v("C") is None
    assert v("PRESET") == "given" and v("NEW") == "v" and v("FORCED") == "new"
    assert v("JOINED") == "x+y"


def test_if_operators_auto_dereference_and_precedence(tmp_path):
    p = _run(tmp_path, r"""
set(ARCH amd64)
set(VER 0x502)
set(TYPES kernel kerneldll)
set(FILE ../hal.spec)
if(ARCH STREQUAL "amd64")
    set(R1 yes)
endif()
if("ARCH" STREQUAL "amd64")
    set(R2 yes)
else()
    set(R2 no)
endif()
if(NOT DEFINED UNDEFINED_THING AND (ARCH STREQUAL i386 OR ARCH MATCHES "^amd(64)$"))
    set(R3 ${CMAKE_MATCH_1})
endif()
if(VER LESS 0x600)
    set(R4 less)
endif()
if(12.2 VERSION_GREATER_EQUAL 11)
    set(R5 newer)
endif()
if(kerneldll IN_LIST TYPES)
    set(R6 listed)
endif()
if(ARCH STREQUAL "i386")
    set(R7 a)
elseif(ARCH STREQUAL "amd64")
    set(R7 b)
else()
    set(R7 c)
endif()
if(${FILE} MATCHES ".*\\.spec")
    set(R8 spec)
endif()
if(MSVC)
    set(R9 msvc)
endif()
if(TRUE OR FALSE AND FALSE)
    set(R10 left-to-right)
endif()
""")
    v = p.variable
    assert (v("R1"), v("R2"), v("R3"), v("R4"), v("R5"), v("R6"), v("R7"), v("R8")) == \
        ("yes", "no", "64", "less", "newer", "listed", "b", "spec")
    assert v("R9") is None and v("R10") is None      # AND/OR evaluate left to right: (TRUE OR FALSE) AND FALSE


def test_foreach_forms_break_continue_and_loop_variable_restored(tmp_path):
    p = _run(tmp_path, """
set(i outer)
set(L a b c)
foreach(i ${L})
    if(i STREQUAL b)
        continue()
    endif()
    list(APPEND SEEN ${i})
endforeach()
foreach(n RANGE 3)
    list(APPEND NUMS ${n})
    if(n EQUAL 2)
        break()
    endif()
endforeach()
foreach(x IN LISTS L ITEMS z)
    list(APPEND BOTH ${x})
endforeach()
""")
    assert p.variable("SEEN") == "a;c" and p.variable("NUMS") == "0;1;2" and p.variable("BOTH") == "a;b;c;z"
    assert p.variable("i") == "outer"


def test_function_scope_argn_parent_scope_and_parse_arguments(tmp_path):
    p = _run(tmp_path, """
function(add_thing name)
    cmake_parse_arguments(_d "FAST" "KIND" "SOURCES;COMPONENTS" ${ARGN})
    set(LOCAL_ONLY 1)
    set(OUT_${name} "${_d_KIND}|${_d_SOURCES}|${_d_COMPONENTS}|${_d_FAST}|${_d_UNPARSED_ARGUMENTS}|${ARGC}|${ARGV0}"
        PARENT_SCOPE)
endfunction()
add_thing(hal stray KIND module SOURCES COMPONENTS generic acpi FAST)
""")
    assert p.variable("OUT_hal") == "module||generic;acpi|TRUE|stray|9|hal"
    assert p.variable("LOCAL_ONLY") is None


def test_macro_replaces_parameters_textually_in_callers_scope(tmp_path):
    p = _run(tmp_path, """
macro(collect _target)
    foreach(_f ${ARGN})
        list(APPEND ${_target} pre_${_f})
    endforeach()
endmacro()
collect(FILES a.c b.c)
""")
    assert p.variable("FILES") == "pre_a.c;pre_b.c"


def test_include_is_relative_to_the_current_source_dir(tmp_path):
    p = _project(tmp_path, {
        "lib/CMakeLists.txt": "include(part/part.cmake)\nadd_library(x STATIC ${PART_SOURCE})\n"
                              "set(AFTER ${CMAKE_CURRENT_LIST_DIR})\n",
        "lib/part/part.cmake": "list(APPEND PART_SOURCE part/a.c)\nset(LIST_DIR ${CMAKE_CURRENT_LIST_DIR})\n",
    })
    d = p.evaluate_directory(tmp_path / "src" / "lib")
    assert [u.path for u in p.translation_units("x")] == [tmp_path / "src" / "lib" / "part" / "a.c"]
    assert d.state.variables["LIST_DIR"] == str(tmp_path / "src" / "lib" / "part")
    assert d.state.variables["AFTER"] == str(tmp_path / "src" / "lib")      # restored after the include


def test_directory_semantics_definitions_includes_options(tmp_path):
    p = _project(tmp_path, {
        "d/CMakeLists.txt": """
add_definitions(-DEARLY -DGONE)
add_compile_options(-fearly)
add_library(first OBJECT a.c)
include_directories(inc)
add_definitions(-DLATE -U_X86_)
remove_definitions(-DGONE)
add_compile_options(-flate)
add_library(second OBJECT b.c c.S)
target_compile_definitions(second PRIVATE ONLY_SECOND)
set_source_files_properties(b.c PROPERTIES COMPILE_DEFINITIONS "PER_FILE;X=1" COMPILE_FLAGS "-fpf -g")
add_subdirectory(sub)
""",
        "d/sub/CMakeLists.txt": "add_library(third OBJECT s.c)\nadd_definitions(-DCHILD)\n",
    })
    p.add_top_definitions(["TOP"], "top")
    p.evaluate_directory(tmp_path / "src" / "d")
    first, = p.translation_units("first")
    b, c = p.translation_units("second")
    third, = p.translation_units("third")
    src = tmp_path / "src" / "d"
    # add_definitions/remove_definitions: directory-wide, whenever the target was made; sorted and unique.
    assert first.defines == ("EARLY", "LATE", "TOP")
    assert b.defines == ("EARLY", "LATE", "ONLY_SECOND", "TOP", "PER_FILE", "X=1")
    assert c.defines == ("EARLY", "LATE", "ONLY_SECOND", "TOP")
    # include_directories reaches targets made before it; add_compile_options only later ones.
    assert first.include_dirs == (src / "inc",) and b.include_dirs == (src / "inc",)
    assert "-fearly" in first.flags and "-flate" not in first.flags and "-flate" in b.flags
    assert "-U_X86_" in first.flags and b.flags[-2:] == ("-fpf", "-g") and c.language == "ASM"
    # a subdirectory inherits the parent's properties as they were at add_subdirectory; its own stay its own.
    assert third.defines == ("CHILD", "EARLY", "LATE", "TOP") and third.include_dirs == (src / "inc",)
    assert "CHILD" not in b.defines


def test_target_objects_asm_files_facts_and_genex(tmp_path):
    p = _project(tmp_path, {"d/CMakeLists.txt": """
add_compile_options("$<$<NOT:$<COMPILE_LANGUAGE:CXX>>:-nostdinc>" "$<$<COMPILE_LANGUAGE:ASM>:-asm-only>")
add_asm_files(lib_asm x.S m/y.asm m/fm.inc)
add_library(lib_x OBJECT a.c ${lib_asm})
target_compile_definitions(lib_x PRIVATE IN_X)
add_library(dll MODULE $<TARGET_OBJECTS:lib_x> ${CMAKE_CURRENT_BINARY_DIR}/dll.def)
spec2def(dll.dll ../dll.spec ADD_IMPORTLIB)
add_importlibs(dll ntoskrnl)
set_module_type(dll kerneldll ENTRYPOINT DllEntry 8)
target_link_libraries(dll statlib -lgcc)
add_dependencies(dll something)
"""})
    p.evaluate_directory(tmp_path / "src" / "d")
    units = p.translation_units("dll")
    src, binary = tmp_path / "src" / "d", tmp_path / "bin" / "d"
    assert [(u.path, u.language, u.target) for u in units] == [
        (src / "a.c", "C", "lib_x"), (src / "x.S", "ASM", "lib_x"), (binary / "m/y.asm.s", "ASM", "lib_x")]
    assert units[2].generated_from == src / "m/y.asm" and units[2].generator == "asmpp"
    assert all("IN_X" in u.defines and "-nostdinc" in u.flags for u in units)
    assert "-asm-only" not in units[0].flags and "-asm-only" in units[1].flags
    assert p.module_definition_files("dll") == [binary / "dll.def"]
    fact, = p.facts.spec2def
    assert fact.spec == tmp_path / "src" / "dll.spec" and fact.def_file == binary / "dll.def"
    assert [e.value for e in p.facts.importlibs["dll"]] == ["ntoskrnl"]
    assert (p.facts.module_types["dll"].entry, p.facts.module_types["dll"].entry_args) == ("DllEntry", 8)
    assert p.link_items("dll") == ["statlib", "-lgcc"]


def test_flags_mode_reads_options_but_not_toolchain_setup(tmp_path):
    p = _project(tmp_path, {"gcc.cmake": """
add_compile_options(-fms-extensions)
execute_process(COMMAND gcc -print-file-name=libgcc.a OUTPUT_VARIABLE LOC)
string(STRIP ${LOC} LOC)
function(spec2def) 
    message(FATAL_ERROR "not to be run")
endfunction()
set(ARCH2 x86_64)
"""})
    p.include_file(tmp_path / "src" / "gcc.cmake", mode="flags")
    assert p.variable("ARCH2") == "x86_64"
    assert [e.value for e in p.top.state.compile_options] == ["-fms-extensions"]
    p.run_source("spec2def(a.dll a.spec)\n")          # the built-in fact, not the file's function
    assert len(p.facts.spec2def) == 1


@pytest.mark.parametrize("text, line, words", [
    ("set(A 1)\nfrobnicate(x)\n", 2, "unknown CMake command frobnicate()"),
    ("\nif(A)\n  set(B 1)\n", 2, "if() without endif()"),
    ("set(A \"open\n", 1, "unterminated quoted argument"),
    ("set(A \\q)\n", 1, "invalid escape sequence"),
    ("endif()\n", 1, "endif() without a matching if()"),
    ("set(A 1) set(B 2)\n", 1, "expected a newline"),
    ("message(FATAL_ERROR \"bad \" thing)\n", 1, "message(FATAL_ERROR): bad thing"),
    ("add_library(x a.c)\nadd_library(x b.c)\n", 2, "target 'x' already defined at snippet.cmake:1"),
    ("target_link_libraries(nothing foo)\n", 1, "no target 'nothing'"),
    ("if(A STREQUAL)\nendif()\n", 1, "unknown arguments"),
])
def test_errors_name_file_and_line(tmp_path, text, line, words):
    with pytest.raises(UnitError) as info:
        _run(tmp_path, text)
    assert f"snippet.cmake:{line}: " in str(info.value) and words in str(info.value)


def test_error_inside_function_names_the_call_site(tmp_path):
    with pytest.raises(UnitError) as info:
        _run(tmp_path, "function(f)\n  bogus()\nendfunction()\n\nf()\n")
    assert str(info.value) == "snippet.cmake:2: unknown CMake command bogus() (in f() called from snippet.cmake:5)"


def test_unknown_generator_expression_is_an_error(tmp_path):
    p = _project(tmp_path, {"d/CMakeLists.txt": "add_library(x OBJECT a.c)\n"
                                                "target_compile_options(x PRIVATE $<WEIRD:1>)\n"})
    p.evaluate_directory(tmp_path / "src" / "d")
    with pytest.raises(UnitError, match=r"d/CMakeLists.txt:2: generator expression \$<WEIRD:1> is not supported"):
        p.translation_units("x")


def test_path_mode_parent_decides_whether_a_folder_is_built(tmp_path):
    files = {"lib/CMakeLists.txt": "if(ARCH STREQUAL amd64)\n  add_subdirectory(x)\nendif()\nadd_subdirectory(y)\n"
                                   "add_definitions(-DLIBDIR)\n",
             "lib/x/CMakeLists.txt": "add_library(x a.c)\n", "lib/y/CMakeLists.txt": "add_library(y b.c)\n"}
    p = _project(tmp_path, files, {"ARCH": "amd64"})
    p.evaluate_directory(tmp_path / "src" / "lib" / "x")
    assert "y" not in p.targets and p.translation_units("x")[0].defines == ()   # x was added before the define
    p.evaluate_directory(tmp_path / "src" / "lib" / "y")
    assert p.translation_units("y")[0].defines == ()
    q = _project(tmp_path / "other", files, {"ARCH": "i386"})
    with pytest.raises(UnitError, match="lib/CMakeLists.txt: does not add x/ in this configuration"):
        q.evaluate_directory(tmp_path / "other" / "src" / "lib" / "x")


# ---- ReactOS upstream ------------------------------------------------------------------------------------------------

#: reactos_hal.md §1: hal.dll = generic + acpi + up + apic on amd64 (29 C files, 2 assembly files).
DOC_HAL_C = {
    "generic/halinit.c", "generic/cmos.c", "generic/pic.c", "generic/beep.c", "generic/reboot.c", "generic/nmi.c",
    "generic/dma.c", "generic/drive.c", "generic/kdpci.c", "generic/memory.c", "generic/misc.c",
    "generic/sysinfo.c", "generic/usage.c", "generic/x86bios.c", "generic/display.c",
    "acpi/halacpi.c", "acpi/madt.c", "acpi/busemul.c", "acpi/halpnpdd.c", "legacy/bus/pcibus.c",
    "apic/apic.c", "apic/rtctimer.c", "apic/tsc.c", "apic/apictimer.c", "apic/halinit.c", "apic/processor.c",
    "generic/up.c", "generic/spinlock.c", "generic/buildtype.c",
}
DOC_HAL_ASM = {"apic/tsccal.S", "apic/apictrap.S"}
#: reactos_hal.md §1: smp.cmake's files for halmp.dll (CONFIG_SMP).
DOC_SMP = {"apic/apicsmp.c", "smp/ipi.c", "smp/smp.c", "smp/amd64/spinup.c", "smp/amd64/apentry.S"}
#: Folders of other HAL flavours and architectures that must never reach an amd64 unit.
FOREIGN = {"pic", "mp", "minihal", "xbox", "pc98"}


@pytest.fixture(scope="module")
def upstream_copy(tmp_path_factory) -> Path:
    """The parts of the upstream subset the reader needs, in a temporary folder (the shelf stays untouched)."""
    if not (UPSTREAM / "hal" / "halx86" / "CMakeLists.txt").is_file():
        pytest.skip(f"the upstream ReactOS subset is not at {UPSTREAM}")
    top = tmp_path_factory.mktemp("reactos")
    for rel in ("hal", "sdk/cmake", "sdk/lib", "ntoskrnl"):
        shutil.copytree(UPSTREAM / rel, top / rel)
    return top


@pytest.fixture(scope="module")
def upstream_units(upstream_copy, tmp_path_factory):
    return read_reactos_units(upstream_copy / "hal" / "halx86", tmp_path_factory.mktemp("generated"))


def _rel(unit, sources) -> set[str]:
    return {unit.relative(s.path) for s in sources}


@needs_upstream
def test_upstream_hal_is_the_documented_file_set(upstream_units):
    assert list(upstream_units) == ["hal", "halmp"]
    hal = upstream_units["hal"]
    assert _rel(hal, hal.c_sources) == DOC_HAL_C and len(hal.c_sources) == 29
    assert _rel(hal, hal.asm_sources) == DOC_HAL_ASM
    assert [s.component for s in hal.sources[:1]] == ["generic"]
    assert {s.component for s in hal.sources} == {"generic", "acpi", "up", "apic"}


@needs_upstream
def test_upstream_halmp_takes_smp_with_config_smp_only_there(upstream_units):
    halmp = upstream_units["halmp"]
    files = _rel(halmp, halmp.sources)
    assert DOC_SMP <= files and "generic/up.c" not in files
    smp = {halmp.relative(s.path) for s in halmp.sources if "CONFIG_SMP" in s.defines}
    assert DOC_SMP <= smp
    assert all(s.component == "smp" for s in halmp.sources if "CONFIG_SMP" in s.defines)
    assert {s.component for s in halmp.sources} == {"generic", "acpi", "smp", "apic"}


@needs_upstream
def test_upstream_units_have_no_foreign_files(upstream_units):
    for unit in upstream_units.values():
        for lib_or_unit in [unit.sources] + [lib.sources for lib in unit.libraries]:
            for s in lib_or_unit:
                parts = Path(unit.relative(s.path)).parts
                assert "i386" not in parts and parts[0] not in FOREIGN, s.path


@needs_upstream
def test_upstream_compile_arguments(upstream_units, upstream_copy):
    hal = upstream_units["hal"]
    acpica = upstream_copy / "drivers" / "bus" / "acpi" / "acpica" / "include"
    for s in hal.sources:
        if s.component == "acpi":
            assert acpica in s.include_dirs and "WIN64" in s.defines
        assert {"_NTHALDLL_", "_NTHAL_", "__REACTOS__", "_M_AMD64"} <= set(s.defines)
        assert upstream_copy / "hal" / "halx86" / "include" in s.include_dirs
        assert "-fms-extensions" in s.extra_flags and "-fno-strict-aliasing" in s.extra_flags   # gcc.cmake
    asm = hal.asm_sources[0]
    assert asm.extra_flags[:2] == ("-x", "assembler-with-cpp") and asm.defines[-1] == "__ASM__"
    assert asm.include_dirs[0] == upstream_copy / "sdk" / "include" / "asm"


@needs_upstream
def test_upstream_libraries_exports_imports_entry(upstream_units, upstream_copy):
    hal, halmp = upstream_units["hal"], upstream_units["halmp"]
    assert [lib.name for lib in hal.libraries] == ["libcntpr", "arbiter", "fast486"]
    assert [lib.name for lib in halmp.libraries] == ["libcntpr", "fast486"]
    for lib in hal.libraries:
        assert lib.sources, lib.name
    libcntpr = hal.libraries[0]
    asm = [s for s in libcntpr.sources if s.language == "asm"]
    assert asm and all({"NO_RTL_INLINES", "_NTSYSTEM_", "_LIBCNT_", "CRTDLL", "_CRTBLD"} <= set(s.defines)
                       for s in asm)
    assert any(s.generator == "asmpp" and s.generated_from.suffix == ".asm" for s in asm)
    assert any(s.path.name == "chkstk_ms.s" for s in asm)
    assert hal.exports.spec == upstream_copy / "hal" / "hal.spec"
    assert (hal.exports.arch, hal.exports.version) == ("x86_64", 0x502)
    assert hal.imports == ["ntoskrnl"] and hal.import_spec == {"ntoskrnl": upstream_copy / "ntoskrnl" /
                                                                "ntoskrnl.spec"}
    assert (hal.entry, hal.entry_args_bytes) == ("HalInitSystem", 8) and hal.link_flags == ["-lgcc"]


@needs_upstream
def test_longhorn_shaped_tree_yields_the_extra_component(upstream_copy, tmp_path):
    top = tmp_path / "longhorn"
    shutil.copytree(upstream_copy, top)
    halx86 = top / "hal" / "halx86"
    (halx86 / "generic" / "halext.c").write_text("/* test file */\n", encoding="utf-8")
    (halx86 / "hal.cmake").write_text("list(APPEND HAL_HAL_SOURCE generic/halext.c)\n"
                                      "add_library(lib_hal_hal OBJECT ${HAL_HAL_SOURCE})\n"
                                      "target_compile_definitions(lib_hal_hal PRIVATE HAL_EXT)\n", encoding="utf-8")
    text = (halx86 / "CMakeLists.txt").read_text(encoding="utf-8")
    text = text.replace("include(smp.cmake)", "include(smp.cmake)\ninclude(hal.cmake)")
    text = text.replace("add_hal(hal SOURCES ${HAL_SOURCE} COMPONENTS generic acpi up apic)",
                        "add_hal(hal SOURCES ${HAL_SOURCE} COMPONENTS generic acpi up apic hal)")
    (halx86 / "CMakeLists.txt").write_text(text, encoding="utf-8")
    units = read_reactos_units(top, tmp_path / "gen")
    hal, halmp = units["hal"], units["halmp"]
    extra = [s for s in hal.sources if s.path == halx86 / "generic" / "halext.c"]
    assert len(extra) == 1 and extra[0].component == "hal" and "HAL_EXT" in extra[0].defines
    assert len(hal.c_sources) == 30 and halx86 / "generic" / "halext.c" not in {s.path for s in halmp.sources}


@needs_upstream
def test_i386_configuration_evaluates_the_other_branch(upstream_copy, tmp_path):
    units = read_reactos_units(upstream_copy, tmp_path / "gen", arch="i386")
    assert "halxbox" in units and "halmp" not in units
    assert any(Path(units["hal"].relative(s.path)).parts[0] == "pic" for s in units["hal"].sources)
    assert units["hal"].exports.arch == "i386"


@needs_upstream
def test_compile_commands_give_each_files_arguments(upstream_copy, tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "CMakeCache.txt").write_text(f"CMAKE_HOME_DIRECTORY:INTERNAL={upstream_copy}\nARCH:STRING=amd64\n",
                                          encoding="utf-8")
    halx86 = upstream_copy / "hal" / "halx86"
    entries = []

    def add(target, folder, file, *extra, use_command=False):
        obj = f"{folder}/CMakeFiles/{target}.dir/{Path(file).name}.obj"
        args = ["x86_64-w64-mingw32-gcc", "-DFROM_DB=1", "-I", "include", *extra, "-o", obj, "-c", str(file)]
        entry = {"directory": str(build / folder), "file": str(file)}
        if use_command:
            entry["command"] = " ".join(args)
        else:
            entry["arguments"] = args
        entries.append(entry)

    for target, files in {"lib_hal_generic": ["generic/beep.c", "generic/cmos.c"], "lib_hal_acpi": ["acpi/madt.c"],
                          "lib_hal_up": ["generic/up.c"], "lib_hal_apic": ["apic/apic.c"],
                          "lib_hal_smp": ["smp/smp.c"]}.items():
        for f in files:
            add(target, "hal/halx86", halx86 / f, "-fdb-flag", use_command=target == "lib_hal_acpi")
    for lib, f in (("libcntpr", "sdk/lib/crt/string/strlen.c"), ("arbiter", "sdk/lib/drivers/arbiter/arbiter.c"),
                   ("fast486", "sdk/lib/fast486/fast486.c")):
        add(lib, str(Path(f).parent), upstream_copy / f)
    (build / "compile_commands.json").write_text(json.dumps(entries), encoding="utf-8")

    units = read_compile_commands(build)
    hal = units["hal"]
    assert [hal.relative(s.path) for s in hal.c_sources] == ["generic/beep.c", "generic/cmos.c", "acpi/madt.c",
                                                              "generic/up.c", "apic/apic.c"]
    beep = hal.c_sources[0]
    assert beep.defines == ("FROM_DB=1",) and beep.include_dirs == (build / "hal/halx86/include",)
    assert beep.extra_flags == ("-fdb-flag",) and beep.component == "generic" and beep.target == "lib_hal_generic"
    # No assembly in the database: apic's .S files keep the CMake reading's arguments.
    assert _rel(hal, hal.asm_sources) == DOC_HAL_ASM and "__ASM__" in hal.asm_sources[0].defines
    assert [(lib.name, len(lib.sources)) for lib in hal.libraries][1:] == [("arbiter", 1), ("fast486", 1)]
    assert "generic/up.c" not in _rel(units["halmp"], units["halmp"].sources)
    assert load_unit(build, name="halmp").sources[-1].target == "lib_hal_apic"

    entries = [e for e in entries if "lib_hal_smp" not in json.dumps(e)]
    (build / "compile_commands.json").write_text(json.dumps(entries), encoding="utf-8")
    with pytest.raises(UnitError, match=r"compile_commands.json: no entries for target lib_hal_smp"):
        read_compile_commands(build, upstream_copy)
    (build / "compile_commands.json").write_text(json.dumps([{"directory": "/x"}]), encoding="utf-8")
    with pytest.raises(UnitError, match=r"compile_commands.json: entry 0: expected an object"):
        read_compile_commands(build, upstream_copy)


@needs_upstream
def test_load_unit_dispatches_on_what_is_at_the_path(upstream_copy, tmp_path):
    gen = tmp_path / "gen"
    assert load_unit(upstream_copy, generated=gen).name == "hal"
    assert load_unit(upstream_copy / "hal" / "halx86", generated=gen, name="halmp").name == "halmp"
    with pytest.raises(UnitError, match="no unit 'halfoo'.*it has: hal, halmp"):
        load_unit(upstream_copy, generated=gen, name="halfoo")
    with pytest.raises(UnitError, match="needs the folder of its generated headers"):
        load_unit(upstream_copy)


# ---- hal_src's unit.toml ---------------------------------------------------------------------------------------------

def test_hal_src_unit_states_what_scons_and_analyze_built(tmp_path):
    from generator import toolchain
    from specs import load_target
    try:
        ddk = toolchain.sysroot_include() / "ddk"
    except toolchain.ToolchainError as exc:
        pytest.skip(str(exc))
    target = load_target("reactos-amd64")
    hal_src = ROOT / "hal_src"
    unit = load_unit(hal_src, target=target, generated=tmp_path)
    assert [s.path for s in unit.c_sources] == sorted(hal_src.rglob("*.c"))      # what analyze parsed
    assert [s.path for s in unit.asm_sources] == sorted(hal_src.rglob("*.S"))    # what SConstruct assembled
    c = unit.c_sources[0]
    assert c.include_dirs == (tmp_path / "include", hal_src / "include", ddk)
    assert list(c.defines) == toolchain.defines(target) and list(c.extra_flags) == toolchain.CFLAGS
    assert unit.asm_sources[0].extra_flags == ("-Wall", "-Werror")
    assert {s.component for s in unit.sources} == {"acpi", "apic", "generic"}
    assert unit.exports.names == list(target.exports)
    assert unit.exports.aliases["IoReadPartitionTable"] == "HalpReadPartitionTable"
    assert unit.imports == ["ntoskrnl"] and unit.entry == target.link["entry"] and unit.libraries == []


@pytest.mark.parametrize("text, words", [
    ('[unit]\nname = "hal"\nnmae = "x"\n[compile]\n[[sources]]\nglob = "*.c"\nlanguage = "c"\n',
     "[unit].nmae: unknown key"),
    ('[unit]\nname = "hal"\n[compile]\n[[sources]]\nglob = "*.c"\nlanguage = "cobol"\n',
     "[[sources]][0].language: expected"),
    ('[unit]\nname = "hal"\n[compile]\n[[sources]]\nglob = "*.nothing"\nlanguage = "c"\n',
     "[[sources]][0].glob: '*.nothing' matches no file"),
    ('[unit]\nname = "hal"\n[compile]\ndefines = ["{target.defines}"]\n[[sources]]\nglob = "*.c"\nlanguage = "c"\n',
     "[compile].defines[0] uses a target placeholder: a target is needed"),
    ('[unit]\nname = "hal"\n[compile]\ndefines = ["x{bogus}"]\n[[sources]]\nglob = "*.c"\nlanguage = "c"\n',
     "[compile].defines[0]: unknown placeholder {bogus}"),
    ('[unit]\nname = "hal"\n[compile]\ninclude_dirs = "include"\n[[sources]]\nglob = "*.c"\nlanguage = "c"\n',
     "[compile].include_dirs: expected a list"),
    ('[unit\nname = "hal"\n', "unit.toml: "),
])
def test_bad_unit_toml_names_file_and_field(tmp_path, text, words):
    (tmp_path / "a.c").write_text("int x;\n", encoding="utf-8")
    (tmp_path / "unit.toml").write_text(text, encoding="utf-8")
    with pytest.raises(UnitError) as info:
        read_local_unit(tmp_path / "unit.toml")
    assert str(tmp_path / "unit.toml") in str(info.value) and words in str(info.value)


def test_load_unit_rejects_what_it_does_not_know(tmp_path):
    with pytest.raises(UnitError, match="not a build description"):
        load_unit(tmp_path)
    with pytest.raises(UnitError, match="no such file or folder"):
        load_unit(tmp_path / "missing")
