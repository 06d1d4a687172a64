"""Upstream ReactOS for real: the amd64 HAL build units read from the tree, analysed, patched, built.

Runs on a private copy of the upstream subset (``reactos_tree`` in conftest); every assertion is a fact from
``reactos_hal.md`` (§1 composition, §3 legacy dependencies) or from the tree's own files, never bytes captured
from an earlier run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_scons
from generator import analyze
from generator.hosttools import spec as specfile
from generator.unit import open_unit, open_units

TARGET = "reactos-amd64"
#: Folders whose files never belong to an amd64 hal.dll (reactos_hal.md §1, §12).
FOREIGN = ("pic/", "mp/", "minihal/", "xbox/", "pc98/", "/i386/", "i386/", "smp/mps/")


@pytest.fixture(scope="module")
def hal_model(reactos_tree) -> analyze.Model:
    return analyze.analyze(open_unit(reactos_tree, TARGET), TARGET)


def _points(model, cls, function):
    return [t for t in model.touch_points if t.cls == cls and t.function == function]


def test_every_c_file_parses_and_assembly_is_listed(reactos_tree, hal_model):
    unit = open_unit(reactos_tree, TARGET)
    c_files = [f for f in hal_model.files if f.endswith(".c")]
    assert len(c_files) == len(unit.c_sources) == 29                  # reactos_hal.md §1: 29 C files + 2 .S
    assert sorted(set(hal_model.files) - set(c_files)) == ["apic/apictrap.S", "apic/tsccal.S"]
    assert hal_model.not_analysed == []
    assert not any(f.startswith(FOREIGN) or "/i386/" in f for f in hal_model.files)
    known = {d["message"] for d in hal_model.known_diagnostics}
    assert known == {f"definition of builtin function '{n}'"
                     for n in ("_InterlockedCompareExchange128", "__cpuid", "__cpuidex")}


def test_legacy_dependencies_of_section_3_with_call_paths(hal_model):
    """Each amd64 legacy dependency reactos_hal.md §3 lists is found, reachable from an export."""
    pic = _points(hal_model, "8259", "HalpInitializeLegacyPICs")
    assert {0x20, 0x21, 0xA0, 0xA1} <= {t.port for t in pic}
    assert all(t.call_path[0] == "HalInitSystem" for t in pic)
    assert {t.port for t in _points(hal_model, "pit", "HalMakeBeep")} >= {0x61}
    assert {t.port for t in _points(hal_model, "pit", "HalHandleNMI")} == {0x61}
    assert any(t.number == 0x0B for t in hal_model.touches("HalpInitializeClock", "rtc", transitive=True))
    assert hal_model.touches("HalpCalibrateStallExecution", "rtc", transitive=True)
    assert any(t.call_path[:2] == ["HalInitSystem", "HalpCalibrateStallExecution"]
               for t in _points(hal_model, "rtc", "HalpInitializeTsc"))
    lints = {(lint.kind, lint.function) for lint in hal_model.lints}
    assert ("legacy-port-poll", "HalQueryRealTimeClock") in lints        # spins on register A UIP
    # The clock: RTC register C read on every tick, reached through the assembly trap stub (apictrap.S).
    tick = hal_model.touches("HalpClockInterruptHandler", "rtc")
    assert any(t.number == 0x0C for t in tick)
    assert tick[0].call_path[-2:] == ["HalpClockInterrupt", "HalpClockInterruptHandler"]
    # The calibration ISR does its own port I/O to the RTC (tsccal.S).
    isr = _points(hal_model, "rtc", "TscCalibrationISR")
    assert {(t.port, t.access) for t in isr} == {(0x70, "write"), (0x71, "read")}
    assert all("HalpCalibrateStallExecution" in t.call_path for t in isr)
    pm = _points(hal_model, "pm-timer-legacy-fadt", "HaliAcpiTimerInit")
    assert pm and pm[0].call_path == ["HalInitSystem", "HalpSetupAcpiPhase0", "HaliAcpiTimerInit"]
    reset = [t for t in hal_model.touch_points if t.cls == "i8042"]
    assert reset and all("HalpReboot" in t.call_path for t in reset) and {t.port for t in reset} == {0x64}
    msrs = {(t.function, t.number, t.access) for t in hal_model.touch_points if t.cls == "msr"}
    assert ("HalpInitializeTsc", 0x10, "write") in msrs                  # writes the TSC (§4)
    assert any(f == "ApicInitializeLocalApic" and n == 0x1B for f, n, _ in msrs)
    for cls in ("lapic-mmio", "ioapic-mmio"):
        assert any(t.reachable for t in hal_model.touch_points if t.cls == cls), cls


def test_cli_analyze_with_the_reactos_profile_binds_every_role(reactos_tree):
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "analyze", "--profile", "reactos",
                           str(reactos_tree)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    roles = dict(re.findall(r"^  ([a-z-]+) +(\S+) +bound$", proc.stdout, re.M))
    assert roles["legacy-pic-init"] == "HalpInitializeLegacyPICs" and roles["reboot"] == "HalpReboot"
    assert roles["clock-interrupt"] == "HalpClockInterruptHandler" and len(roles) == 11


def test_exports_are_hal_spec_amd64_entries(reactos_tree, hal_model):
    spec = specfile.parse_spec(reactos_tree / "hal" / "hal.spec")
    names = set(specfile.exported_names(spec, arch="x86_64", version=0x502))
    assert len(names) == 62
    implementing = set(analyze.entry_points(open_unit(reactos_tree, TARGET), None).values())
    assert set(hal_model.exports) <= implementing
    assert {"HalInitSystem", "HalInitializeProcessor", "KeQueryPerformanceCounter"} <= set(hal_model.exports)


def test_fast_path_gives_the_same_model(reactos_tree, hal_model):
    unit = open_unit(reactos_tree, TARGET)
    slow = analyze.analyze(unit, TARGET, use_pch=False, exhaustive=True)
    assert json.dumps(slow.to_json(), sort_keys=True) == json.dumps(hal_model.to_json(), sort_keys=True)


def test_halmp_is_its_own_link_unit(reactos_tree, hal_model):
    units = open_units(reactos_tree, TARGET)
    assert set(units) == {"hal", "halmp"}
    mp = analyze.analyze(units["halmp"], TARGET)
    assert "apic/apicsmp.c" in mp.files and "apic/apicsmp.c" not in hal_model.files
    assert "generic/up.c" in hal_model.files and "generic/up.c" not in mp.files
    smp = [s for s in units["halmp"].sources if "CONFIG_SMP" in s.defines]
    assert smp and all(s.component == "smp" for s in smp)


# ---- generate --profile reactos on the real tree -------------------------------------------------------------

def _generate(src: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli", "generate", str(src), "--profile", "reactos",
                           "--target", TARGET, "--out", str(out)], cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize("where", ["top", "halx86"])
def test_generate_patch_applies_at_the_checkout_top(reactos_tree, tmp_path, where):
    src = reactos_tree if where == "top" else reactos_tree / "hal" / "halx86"
    out = tmp_path / "variant"
    proc = _generate(src, out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["patch_prefix"] == "hal/halx86/"
    for role, function in {"legacy-pic-init": "HalpInitializeLegacyPICs", "stall-calibration":
                           "HalpCalibrateStallExecution", "clock-init": "HalpInitializeClock",
                           "clock-interrupt": "HalpClockInterruptHandler", "reboot": "HalpReboot",
                           "pm-timer-init": "HaliAcpiTimerInit"}.items():
        assert manifest["roles"][role] == function
    check = subprocess.run(["git", "apply", "--check", str(out / "variant.patch")], cwd=reactos_tree,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    # The new files are in the tree's own build list, so the patched tree builds them.
    cmake = (out / "src" / "apic.cmake").read_text()
    assert all(f"hyperv/{name}" in cmake for name in manifest["new_files"] if name.endswith(".c")
               for name in [Path(name).name])
    again = tmp_path / "again"
    assert _generate(src, again).returncode == 0
    assert (again / "variant.patch").read_bytes() == (out / "variant.patch").read_bytes()


def test_generate_refuses_a_binding_that_no_longer_matches(reactos_tree, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(reactos_tree, tree, ignore=shutil.ignore_patterns(".git"))
    pic = tree / "hal" / "halx86" / "generic" / "pic.c"
    text = pic.read_text()
    start = text.index("HalpInitializeLegacyPICs(")
    body = text.index("{", start)
    depth, end = 0, body
    for end in range(body, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    pic.write_text(text[:body] + "{\n}\n" + text[end + 1:])
    out = tmp_path / "out"
    proc = _generate(tree, out)
    assert proc.returncode == 2
    assert "role legacy-pic-init: HalpInitializeLegacyPICs (generic/pic.c:" in proc.stderr
    assert not out.exists()


# ---- the build: upstream and gen2, hal.dll and halmp.dll --------------------------------------------------------

@pytest.mark.parametrize("flavor", ["upstream", "gen2"])
@pytest.mark.parametrize("dll", ["hal", "halmp"])
def test_built_dlls_are_valid(reactos_tree, reactos_build, flavor, dll):
    suffix = "" if dll == "hal" else f"-{dll}"
    result = json.loads((reactos_build / flavor / f"validation{suffix}.json").read_text())
    assert result["problems"] == []
    spec = specfile.parse_spec(reactos_tree / "hal" / "hal.spec")
    assert sorted(result["exports"]) == sorted(specfile.exported_names(spec, arch="x86_64", version=0x502))
    assert list(result["imports"]) == ["ntoskrnl.exe"]
    kernel = set(specfile.exported_names(specfile.parse_spec(reactos_tree / "ntoskrnl" / "ntoskrnl.spec"),
                                         arch="x86_64", version=0x502))
    assert set(result["imports"]["ntoskrnl.exe"]) <= kernel


def test_gen2_variant_links_its_hyperv_code(reactos_build):
    """The patched tree's build lists brought the Hyper-V files into both DLLs; the crash-MSR reporting needs
    one kernel import upstream does not use (a bug-check callback)."""
    for dll in ("hal", "halmp"):
        linked = (reactos_build / "gen2" / f"{dll}.map").read_text()
        for name in ("hvclock", "hvcrash", "hvdetect", "hvtime"):
            assert f"hyperv/{name}.o" in linked, (dll, name)
    up = set(json.loads((reactos_build / "upstream" / "validation.json").read_text())["imports"]["ntoskrnl.exe"])
    gen2 = set(json.loads((reactos_build / "gen2" / "validation.json").read_text())["imports"]["ntoskrnl.exe"])
    assert gen2 - up == {"KeRegisterBugCheckCallback"}


def test_link_is_reproducible(reactos_tree, reactos_build):
    dll = reactos_build / "upstream" / "hal.dll"
    before = dll.read_bytes()
    dll.unlink()
    run_scons(REPO, f"reactos={reactos_tree}", "target=reactos-amd64", str(dll.relative_to(REPO)))
    assert dll.read_bytes() == before


# ---- the boots: upstream is a legacy-PC HAL, its gen2 variant boots on both platforms -----------------------------

def _boot(reactos_build: Path, flavor: str, dll: str, platform: str) -> dict:
    return json.loads((reactos_build / flavor / f"boot-{dll}-{platform}.json").read_text())


@pytest.mark.parametrize("dll", ["hal", "halmp"])
def test_upstream_boots_on_gen1_and_hangs_in_tsc_calibration_on_gen2(reactos_build, dll):
    gen1 = _boot(reactos_build, "upstream", dll, "gen1")
    assert gen1["verdict"] == "booted", gen1.get("verdict")
    assert abs(gen1["drift_ppm"]) < 10
    # Gen2 raises no RTC periodic interrupt: the TSC calibration (reactos_hal.md §4) waits for it forever.
    gen2 = _boot(reactos_build, "upstream", dll, "gen2")
    assert gen2["verdict"] == "hang"
    assert gen2["hang"]["function"] == "HalpInitializeTsc"


@pytest.mark.parametrize("dll", ["hal", "halmp"])
@pytest.mark.parametrize("platform", ["gen1", "gen2"])
def test_gen2_variant_boots_with_the_gen2_figures(reactos_build, dll, platform):
    result = _boot(reactos_build, "gen2", dll, platform)
    assert result["verdict"] == "booted", result.get("verdict")
    assert result["exits_per_qpc"] == 0                   # the reference TSC page: no exit per counter read
    assert abs(result["drift_ppm"]) < 10
    assert result["hal_init_virtual_us"] < 1000
    assert result["ticks"] >= 60                          # a virtual second of 15.625 ms ticks
    if dll == "hal":
        assert result["exits_per_tick"] <= 1              # halmp also broadcasts the clock IPI per tick
