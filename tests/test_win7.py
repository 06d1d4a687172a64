"""The Windows 7 SP1 x64 target end to end: description, dispatch tables, import discipline, figures, compare.

Two HALs here are built on purpose by hand (the build's own validation would refuse them): one importing a name
the stock Windows 7 HAL does not import, one leaving a dispatch-table slot without a kernel default empty. Both
are copies of the generated Generation 2 variant (which boots on gen2 in about a second), built with the same
compiler flags as the main job, and the model must catch each.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import specs
from generator import pecheck, render, toolchain
from tests.conftest import REPO, run_scons

TARGET = "win7sp1-amd64"
WIN7_DOC_REQUIRED = {
    "HalDispatchTable": {"HalGetDmaAdapter", "HalGetCachedAcpiTable", "HalSetPciErrorHandlerCallback"},
    "HalPrivateDispatchTable": {"HalFindBusAddressTranslation", "HalResetDisplay", "KdGetPciDataByOffset",
                                "KdSetPciDataByOffset"},
}
EXTRA_IMPORT = "KeDelayExecutionThread"  # a kernel export the stock 6.1 HAL does not import


@pytest.fixture(scope="module")
def dlls() -> dict[str, Path]:
    """The win7 reference and variant, built (and the variant generated) by the main job's SConstruct."""
    if shutil.which(toolchain.CC) is None:
        pytest.fail(f"{toolchain.CC} missing: run scripts/setup.sh")
    run_scons(REPO, f"build/{TARGET}/reference/validation.json", f"build/{TARGET}/gen2/validation.json")
    return {f: REPO / "build" / TARGET / f / "hal.dll" for f in ("reference", "gen2")}


def _boot(dll, platform, **kw) -> dict:
    from gen2sim.scenario import boot

    return boot(str(dll), TARGET, platform, **kw).result


def hand_build(src: Path, out: Path, *, extra_imports: tuple[str, ...] = ()) -> Path:
    """Compile and link the HAL tree ``src`` for win7sp1-amd64 the way the main job does, except that the kernel's
    import library also offers ``extra_imports`` (so a call to a name outside the allowed list links)."""
    target = specs.load_target(TARGET)
    inc = out / "include"
    inc.mkdir(parents=True, exist_ok=True)
    (inc / "target_abi.h").write_text(render.target_header(target))
    libs = []
    for module, text in render.import_defs(target).items():
        if module == target.kernel_module:
            text += "".join(f"    {name}\n" for name in extra_imports)
        stem = module.rsplit(".", 1)[0].lower()
        (out / f"{stem}.def").write_text(text)
        lib = out / f"lib{stem}.a"
        subprocess.run([toolchain.DLLTOOL, "--input-def", str(out / f"{stem}.def"), "--dllname", module,
                        "--output-lib", str(lib)], check=True)
        libs.append(lib)
    import tomllib

    aliases = tomllib.loads((src / "exports.toml").read_text()).get("aliases", {})
    (out / "hal.def").write_text(render.export_def(target, aliases))
    flags = [f"-D{d}" for d in toolchain.defines(target)] + [f"-I{p}" for p in (inc, src / "include",
                                                                                toolchain.sysroot_include() / "ddk")]
    sources = sorted(src.rglob("*.c")) + sorted(src.rglob("*.S"))

    def compile_one(path: Path) -> Path:
        obj = out / "obj" / path.relative_to(src).with_suffix(".o")
        obj.parent.mkdir(parents=True, exist_ok=True)
        cflags = toolchain.CFLAGS if path.suffix == ".c" else ["-Wall", "-Werror"]
        proc = subprocess.run([toolchain.CC, "-c", *cflags, *flags, str(path), "-o", str(obj)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"
        return obj

    with ThreadPoolExecutor(max_workers=8) as pool:
        objects = list(pool.map(compile_one, sources))
    dll = out / "hal.dll"
    proc = subprocess.run([toolchain.CC, "-o", str(dll), *toolchain.link_flags(target), f"-Wl,-Map,{out / 'hal.map'}",
                           *map(str, objects), str(out / "hal.def"), *map(str, libs), "-lgcc"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return dll


def _variant_copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(REPO / "build" / TARGET / "gen2" / "generated" / "src", src)
    return src


# ---- the description ---------------------------------------------------------------------------------------------

def test_description_dispatch_tables_and_header():
    target = specs.load_target(TARGET)
    tables = {t.constants["data_import"]: t for t in target.dispatch_tables.values()}
    assert tables["HalDispatchTable"].constants["version"] == 4
    assert tables["HalDispatchTable"].constants["size"] == 0xB8
    assert tables["HalPrivateDispatchTable"].constants["version"] == 13
    assert tables["HalPrivateDispatchTable"].constants["size"] == 0x170
    for name, required in WIN7_DOC_REQUIRED.items():
        assert {s.name for s in tables[name].slots(kernel_default=False)} == required
    assert tables["HalDispatchTable"].offset("HalGetCachedAcpiTable") == 0xA8
    assert tables["HalPrivateDispatchTable"].offset("KdSetPciDataByOffset") == 0xA8
    assert tables["HalPrivateDispatchTable"].offset("HalQueryIoPortAccessSupported") == 0x168
    header = render.target_header(target)
    assert "#define HAL_DISPATCH_TABLE_HalGetDmaAdapter 0x070" in header
    assert "#define HAL_DISPATCH_TABLE_HalGetDmaAdapter_KERNEL_DEFAULT 0" in header
    assert "#define HAL_PRIVATE_DISPATCH_TABLE_HalHaltSystem_KERNEL_DEFAULT 1" in header
    assert "#define BUGCHECK_MISMATCHED_HAL 0x79" in header
    assert "#define VECTOR_CLOCK 0xD1" in header
    # KPRCB/loader block at the 6.1.7601 offsets the HAL touches.
    assert target.structs["kprcb"].offset("MajorVersion") == 0x63A
    assert target.structs["loader_block"].constants["size"] == 0xF0
    assert target.structs["loader_extension"].constants["size"] == 0x148
    # ReactOS: no tables described, nothing rendered (its kernel is left as it was).
    assert specs.load_target("reactos-amd64").dispatch_tables == {}


# ---- the HALs on the model ---------------------------------------------------------------------------------------

def test_reference_gen2_bugchecks_79_6(dlls):
    r = _boot(dlls["reference"], "gen2")
    assert r["verdict"] == "bugcheck"
    assert r["bugcheck"]["code"] == 0x79 and r["bugcheck"]["params"] == [6, 0, 0, 0]
    assert r["bugcheck"]["function"] == "HalpVerifyPcatCompatibility"


def test_variant_gen2_figures_and_dispatch(dlls):
    r = _boot(dlls["gen2"], "gen2")
    assert r["verdict"] == "booted", r
    assert r["exits_per_qpc"] == 0
    assert r["exits_per_tick"] is not None and r["exits_per_tick"] <= 1
    legacy = {"8259", "8259 ELCR", "PIT", "PIT port B", "RTC register A", "RTC register B", "RTC register C"}
    assert not [t for t in r["legacy_touches"] if t["device"] in legacy]
    assert r["hal_init_virtual_us"] < 1000
    announced = r["time_increment_100ns"]["announced"][0]
    assert abs(r["tick_period_ns"]["mean"] - announced * 100) / (announced * 100) < 1e-4
    assert abs(r["drift_ppm"]) < 10
    tables = r["dispatch"]["tables"]
    assert tables["HalDispatchTable"]["version"] == 4 and tables["HalPrivateDispatchTable"]["version"] == 13
    for name, required in WIN7_DOC_REQUIRED.items():
        assert all(tables[name]["slots"][s] == "hal" for s in required)
    assert tables["HalDispatchTable"]["slots"]["HalQuerySystemInformation"] == "hal"
    assert tables["HalPrivateDispatchTable"]["slots"]["HalHaltSystem"] == "hal"
    calls = {(c["slot"].split(".")[1], c["call"]): c for c in r["dispatch"]["calls"]}
    profile = calls[("HalQuerySystemInformation", "HalProfileSourceInformation(ProfileTime)")]
    assert profile["status"] == 0 and profile["supported"] and profile["returned_length"] == 12
    assert calls[("HalGetCachedAcpiTable", "FACP")]["found"] is True
    assert calls[("HalGetCachedAcpiTable", "APIC")]["found"] is True
    assert calls[("HalGetCachedAcpiTable", "GNHX")]["result"] == 0
    translation = calls[("HalFindBusAddressTranslation", "0xFEBF0000 first bus")]
    assert translation["result"] is True and translation["translated"] == 0xFEBF0000


def test_variant_drift_ten_seconds(dlls):
    r = _boot(dlls["gen2"], "gen2", seconds=10.0)
    assert r["verdict"] == "booted", r.get("fault")
    assert abs(r["drift_ppm"]) < 10 and r["ticks"] >= 639


def test_variant_gen1_boots(dlls):
    r = _boot(dlls["gen2"], "gen1")
    assert r["verdict"] == "booted", r
    assert all(s == "hal" for s in (r["dispatch"]["tables"]["HalDispatchTable"]["slots"][n]
                                    for n in WIN7_DOC_REQUIRED["HalDispatchTable"]))


# ---- HALs that break the contract on purpose ---------------------------------------------------------------------

def test_import_outside_the_stock_list_is_a_load_error(dlls, tmp_path):
    assert EXTRA_IMPORT not in specs.load_target(TARGET).allowed_imports
    src = _variant_copy(tmp_path)
    halinit = src / "generic" / "halinit.c"
    text = halinit.read_text()
    anchor = "static BOOLEAN HalpInitSystemPhase1(PLOADER_PARAMETER_BLOCK LoaderBlock)\n{\n"
    assert anchor in text
    halinit.write_text(text.replace(anchor, anchor + "    LARGE_INTEGER Zero = {{0, 0}};\n\n"
                                    f"    {EXTRA_IMPORT}(KernelMode, FALSE, &Zero);\n"))
    dll = hand_build(src, tmp_path / "out", extra_imports=(EXTRA_IMPORT,))
    # The build's own check refuses it ...
    check = pecheck.validate(str(dll), specs.load_target(TARGET))
    assert not check.ok and any(EXTRA_IMPORT in p for p in check.problems)
    # ... and the model will not load it.
    r = _boot(dll, "gen2")
    assert r["verdict"] == "load-error"
    assert f"ntoskrnl.exe!{EXTRA_IMPORT}" in r["load_error"]["reason"]


def test_required_dispatch_slot_left_empty_is_caught(dlls, tmp_path):
    src = _variant_copy(tmp_path)
    dispatch = src / "generic" / "dispatch.c"
    text = dispatch.read_text()
    line = "    HALP_SLOT(Table, HAL_DISPATCH_TABLE_HalGetCachedAcpiTable) = (PVOID)HalpGetCachedAcpiTable;\n"
    assert line in text
    # Keep the function referenced (-Werror=unused-function) but never store it.
    dispatch.write_text(text.replace(line, "    (VOID)HalpGetCachedAcpiTable;\n"))
    dll = hand_build(src, tmp_path / "out")
    assert pecheck.validate(str(dll), specs.load_target(TARGET)).ok  # nothing the build could see
    r = _boot(dll, "gen2")
    assert r["verdict"] == "fault", r
    assert r["fault"]["kind"] == "dispatch-slot-empty"
    assert r["fault"]["slots"] == ["HalDispatchTable.HalGetCachedAcpiTable"]


# ---- compare -----------------------------------------------------------------------------------------------------

def _compare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli", "compare", *args], cwd=REPO,
                          capture_output=True, text=True)


def test_compare_reference_vs_variant_on_gen2_names_the_madt_check(dlls, tmp_path):
    out = tmp_path / "cmp.json"
    proc = _compare(str(dlls["reference"]), str(dlls["gen2"]), "--target", TARGET, "--platform", "gen2",
                    "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    cmp = json.loads(out.read_text())
    assert cmp["a"]["verdict"] == "bugcheck" and cmp["b"]["verdict"] == "booted"
    matters = cmp["first_divergence_that_matters"]
    assert matters["role"] == "madt-check"
    assert matters["a"]["function"] == "HalpVerifyPcatCompatibility"
    assert "KeBugCheckEx(0x79, 0x6" in matters["a"]["operation"]
    # The Hyper-V set-up the variant does first is a detour, not the divergence.
    assert any("HalpHvInitialize" in d["functions"] for d in matters["detours_skipped"])
    first = cmp["first_divergence"]
    assert first["a"]["index"] == first["b"]["index"] and first["a"]["t_ns"] is not None
    assert cmp["touches_by_device"]["hyperv"][0] == 0 and cmp["touches_by_device"]["hyperv"][1] > 0
    assert cmp["figures"]["exits_per_qpc"] == [None, 0.0]
    assert "role: madt-check" in proc.stdout and "HalpVerifyPcatCompatibility" in proc.stdout
    # Same inputs, same answer.
    again = _compare(str(dlls["reference"]), str(dlls["gen2"]), "--target", TARGET, "--platform", "gen2")
    assert again.stdout == proc.stdout


def test_compare_boot_jsons_with_and_without_trace(dlls, tmp_path):
    for name in ("x", "y"):
        proc = subprocess.run([sys.executable, "-m", "generator.cli", "boot", str(dlls["gen2"]), "--target", TARGET,
                               "--platform", "gen2", "--seconds", "0.2", "--json", str(tmp_path / f"{name}.json"),
                               "--trace", str(tmp_path / f"{name}.jsonl")], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    proc = _compare(str(tmp_path / "x.json"), str(tmp_path / "y.json"), "--json", str(tmp_path / "c.json"))
    assert proc.returncode == 0, proc.stderr
    cmp = json.loads((tmp_path / "c.json").read_text())
    assert cmp["same_trace"] and cmp["first_divergence"] is None and cmp["first_divergence_that_matters"] is None
    (tmp_path / "y.jsonl").unlink()
    proc = _compare(str(tmp_path / "x.json"), str(tmp_path / "y.json"))
    assert proc.returncode == 0 and "no trace beside y.json" in proc.stdout
    assert _compare(str(tmp_path / "x.json"), str(tmp_path / "missing.json")).returncode == 2
    assert _compare(str(dlls["gen2"]), str(dlls["gen2"])).returncode == 2  # a DLL needs --target
