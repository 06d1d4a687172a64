"""The reference HAL builds into valid, reproducible hal.dll files for both targets, and the validation catches
what a kernel loader would refuse."""

from __future__ import annotations

import json
import shutil

import pefile
import pytest

import specs
from generator import pecheck

from conftest import REPO, TARGETS, run_scons


@pytest.mark.parametrize("name", TARGETS)
def test_reference_hal_is_valid(reference_build, name):
    dll = reference_build[name] / "hal.dll"
    target = specs.load_target(name)
    result = pecheck.validate(dll, target)
    assert result.problems == []
    assert result.exports == sorted(target.exports)
    recorded = json.loads((reference_build[name] / "validation.json").read_text())
    assert recorded["problems"] == [] and recorded["checksum"] == result.checksum
    for module, names in result.imports.items():
        assert all(target.module_of(n).lower() == module.lower() for n in names)


@pytest.mark.parametrize("name", TARGETS)
def test_reference_hal_imports_subset_of_shelf(shelf, reference_build, name):
    lists = {"reactos-amd64": "reactos-amd64/ntoskrnl-exports.txt", "win7sp1-amd64": "win7sp1-x64/hal-imports.txt"}
    allowed = set((shelf / lists[name]).read_text().split())
    result = pecheck.validate(reference_build[name] / "hal.dll", specs.load_target(name))
    imported = {n for names in result.imports.values() for n in names}
    assert imported and imported <= allowed


def test_build_in_another_folder_is_byte_identical(reference_build, tmp_path):
    copy = tmp_path / "elsewhere" / "gen2hal"
    copy.mkdir(parents=True)
    for part in ("SConstruct", "specs", "templates", "generator", "gen2sim", "hal_src"):
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, copy / part)
    run_scons(copy, "variant=0")  # the reference HALs only: the variant and boots are tested elsewhere
    for name in TARGETS:
        ours = (reference_build[name] / "hal.dll").read_bytes()
        theirs = (copy / "build" / name / "reference" / "hal.dll").read_bytes()
        assert ours == theirs, f"{name}: build in {copy} differs"


def _patched(tmp_path, reference_build, mutate):
    data = bytearray((reference_build["win7sp1-amd64"] / "hal.dll").read_bytes())
    pe = pefile.PE(data=bytes(data))
    mutate(data, pe)
    out = tmp_path / "hal.dll"
    out.write_bytes(bytes(data))
    return pecheck.validate(out, specs.load_target("win7sp1-amd64"))


def test_validation_catches_timestamp_and_checksum(tmp_path, reference_build):
    def set_timestamp(data, pe):
        off = pe.FILE_HEADER.get_file_offset() + 4
        data[off:off + 4] = (0x4CE7C669).to_bytes(4, "little")
    result = _patched(tmp_path, reference_build, set_timestamp)
    assert any("timestamp 0x4CE7C669" in p for p in result.problems)
    assert any("checksum" in p for p in result.problems)


def test_validation_catches_disallowed_import(tmp_path, reference_build):
    def rename_import(data, pe):
        name = b"KeBugCheckEx\x00"
        at = data.find(name)
        assert at > 0
        data[at:at + len(name)] = b"KeBugCheckEz\x00"
    result = _patched(tmp_path, reference_build, rename_import)
    assert any("ntoskrnl.exe!KeBugCheckEz is not allowed" in p for p in result.problems)


def test_validation_catches_wrong_subsystem_and_exports(tmp_path, reference_build):
    def console(data, pe):
        off = pe.OPTIONAL_HEADER.get_file_offset() + 0x44  # Subsystem in PE32+
        data[off:off + 2] = (3).to_bytes(2, "little")
    result = _patched(tmp_path, reference_build, console)
    assert any("subsystem 3, expected native" in p for p in result.problems)
    reactos = pecheck.validate(reference_build["win7sp1-amd64"] / "hal.dll", specs.load_target("reactos-amd64"))
    assert any(p.startswith("missing exports (3)") for p in reactos.problems)


def test_validation_of_garbage_is_a_report_not_a_crash(tmp_path):
    junk = tmp_path / "junk.dll"
    junk.write_bytes(b"MZ" + b"\x00" * 100)
    result = pecheck.validate(junk, specs.load_target("reactos-amd64"))
    assert not result.ok and result.problems[0].startswith("not a PE image")
