"""The target descriptions: complete, consistent with the shelf's name lists, and rendered deterministically."""

from __future__ import annotations

import pytest

import specs
from generator import render

SHELF_LISTS = {
    ("reactos-amd64", "exports"): "reactos-amd64/hal-exports.txt",
    ("reactos-amd64", "allowed_imports"): "reactos-amd64/ntoskrnl-exports.txt",
    ("win7sp1-amd64", "exports"): "win7sp1-x64/hal-exports.txt",
    ("win7sp1-amd64", "allowed_imports"): "win7sp1-x64/hal-imports.txt",
    ("win7sp1-amd64", "kernel_required_exports"): "win7sp1-x64/ntoskrnl-imports-from-hal.txt",
}


def _shelf_names(path):
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


@pytest.mark.parametrize("key", sorted(SHELF_LISTS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_name_lists_match_the_shelf(shelf, key):
    target = specs.load_target(key[0])
    ours = set(getattr(target, key[1]))
    assert ours == _shelf_names(shelf / SHELF_LISTS[key])


def test_export_counts():
    assert len(specs.load_target("reactos-amd64").exports) == 62
    win7 = specs.load_target("win7sp1-amd64")
    assert len(win7.exports) == 88
    assert len(win7.kernel_required_exports) == 50


def test_win7_foreign_modules():
    win7 = specs.load_target("win7sp1-amd64")
    assert win7.module_of("KdRestore") == "kdcom.dll"
    assert win7.module_of("PshedIsSystemWheaEnabled") == "PSHED.dll"
    assert win7.module_of("KeBugCheckEx") == "ntoskrnl.exe"


@pytest.mark.parametrize("name", specs.target_names())
def test_header_has_every_field_and_is_deterministic(name):
    target = specs.load_target(name)
    first = render.target_header(target)
    assert first == render.target_header(specs.load_target(name))
    for sname, struct in target.structs.items():
        for field in struct.fields.values():
            assert f"#define {sname.upper()}_{field.name} 0x{field.offset:03X}" in first
    assert f"#define VECTOR_CLOCK 0x{target.vectors['clock']:02X}" in first


def test_export_def_lists_exactly_the_exports_with_aliases():
    target = specs.load_target("win7sp1-amd64")
    text = render.export_def(target, {"IoReadPartitionTable": "HalpReadPartitionTable"})
    lines = [ln.strip() for ln in text.splitlines() if ln.startswith("    ")]
    assert len(lines) == 88
    assert "IoReadPartitionTable=HalpReadPartitionTable" in lines
    assert "KdComPortInUse DATA" in lines
    # IoAssignDriveLetters is a ReactOS-only export: its alias does not apply to Windows 7.
    text = render.export_def(target, {"IoAssignDriveLetters": "HalpAssignDriveLetters"})
    assert "IoAssignDriveLetters" not in text


def test_import_defs_split_by_module():
    defs = render.import_defs(specs.load_target("win7sp1-amd64"))
    assert set(defs) == {"ntoskrnl.exe", "PSHED.dll", "kdcom.dll"}
    assert "    HalDispatchTable DATA" in defs["ntoskrnl.exe"].splitlines()
    assert "KdRestore" in defs["kdcom.dll"]


def test_unknown_target_is_a_clear_error():
    with pytest.raises(specs.SpecError, match="unknown target 'nt4-alpha'.*reactos-amd64"):
        specs.load_target("nt4-alpha")


def test_bad_name_list_names_file_and_line(tmp_path):
    bad = tmp_path / "names.txt"
    bad.write_text("# comment\nHalInitSystem\nnot a name\n")
    with pytest.raises(specs.SpecError, match=r"names.txt:3: 'not a name' is not a symbol name"):
        specs.read_name_list(bad)
    bad.write_text("A\nA\n")
    with pytest.raises(specs.SpecError, match=r"names.txt:2: 'A' listed twice"):
        specs.read_name_list(bad)


def test_bugcheck_names():
    names = specs.bugcheck_names()
    assert names[0x79] == "MISMATCHED_HAL"
    assert names[0xA5] == "ACPI_BIOS_ERROR"
    assert names[0x5C] == "HAL_INITIALIZATION_FAILED"
