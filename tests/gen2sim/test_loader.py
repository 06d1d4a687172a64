"""Loader: sections, relocations, import binding and load errors."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from gen2sim.scenario import boot  # noqa: E402

pytestmark = pytest.mark.skipif(not build.toolchain_present(), reason="mingw-w64 not installed")
TARGET = "win7sp1-amd64"


@pytest.fixture(scope="module")
def halbuild(tmp_path_factory):
    return tmp_path_factory.mktemp("loader")


def test_sections_and_exports_at_preferred_base(halbuild):
    dll = build.build_minihal(halbuild / "plain")
    run = boot(dll, TARGET, "gen2", seconds=0.05)
    assert run.result["verdict"] == "booted"
    # No .reloc directory (RIP-relative code) loads fine at the preferred base.
    import pefile

    pe = pefile.PE(str(dll))
    mem = run.machine.memory
    for s in pe.sections:
        va = pe.OPTIONAL_HEADER.ImageBase + s.VirtualAddress
        n = min(s.SizeOfRawData, s.Misc_VirtualSize, 64)
        assert mem.vread(va, n) == s.get_data()[:n] or s.Name.startswith(b".idata")


def test_relocated_when_preferred_base_unusable(halbuild):
    # A user-space preferred base is not usable for a kernel image: the loader must relocate.
    dll = build.build_minihal(halbuild / "low", image_base=0x10000000, relocatable=True)
    run = boot(dll, TARGET, "gen2", seconds=0.05)
    assert run.result["verdict"] == "booted", run.result


def test_missing_imports_all_named(tmp_path):
    src = tmp_path / "m.c"
    src.write_text("__declspec(dllimport) void FooBar(void); __declspec(dllimport) void BazQux(void);\n"
                   "__declspec(dllexport) void HalInitSystem(void){FooBar();BazQux();}\n")
    (tmp_path / "n.def").write_text("LIBRARY ntoskrnl.exe\nEXPORTS\nFooBar\nBazQux\n")
    import subprocess

    subprocess.run([build.DLLTOOL, "-d", str(tmp_path / "n.def"), "-l", str(tmp_path / "l.a"), "-D", "ntoskrnl.exe"],
                   check=True)
    dll = tmp_path / "hal.dll"
    subprocess.run([build.CC, "-shared", "-nostdlib", "-Wl,--image-base,0xFFFFF80001600000", "-Wl,--entry,HalInitSystem",
                    str(src), str(tmp_path / "l.a"), "-o", str(dll)], check=True)
    r = boot(dll, TARGET, "gen2").result
    assert r["verdict"] == "load-error"
    assert "FooBar" in r["load_error"]["reason"] and "BazQux" in r["load_error"]["reason"]


def test_unimplemented_import_is_fault_naming_call(halbuild):
    r = boot(build.build_minihal(halbuild / "unimpl", "UNIMPL"), TARGET, "gen2").result
    assert r["verdict"] == "fault"
    assert r["fault"]["kind"] == "unimplemented-import"
    assert "KeSaveStateForHibernate" in r["fault"]["detail"]
    assert r["fault"]["function"] == "HalInitSystem"


@pytest.mark.parametrize("mutate", ["garbage", "machine", "magic", "truncate", "section"])
def test_malformed_is_load_error(halbuild, tmp_path, mutate):
    data = bytearray(build.build_minihal(halbuild / "plain2").read_bytes())
    pe_off = struct.unpack_from("<I", data, 0x3C)[0]
    if mutate == "garbage":
        data = bytearray(b"MZ" + bytes(200))
    elif mutate == "machine":
        struct.pack_into("<H", data, pe_off + 4, 0x14C)
    elif mutate == "magic":
        struct.pack_into("<H", data, pe_off + 24, 0x10B)
    elif mutate == "truncate":
        data = data[:0x400]
    elif mutate == "section":
        opt = pe_off + 24
        first = opt + struct.unpack_from("<H", data, pe_off + 20)[0]
        struct.pack_into("<I", data, first + 12, 0x7FFFF000)  # VirtualAddress far outside the image
    bad = tmp_path / "bad.dll"
    bad.write_bytes(bytes(data))
    r = boot(bad, TARGET, "gen2").result
    assert r["verdict"] == "load-error", r
    assert r["load_error"]["reason"]
