"""The analyzer (`gen2hal analyze`): touch points, call paths, lints, JSON, refusal of bad input.

Each legacy behaviour the reference HAL is documented to have (docs: product.md, "The reference HAL") is checked on
two build units: our ReactOS-layout fixture (``tests/fixtures/reactos_like/hal/halx86/unit.toml``) and the
reference HAL ``hal_src`` itself (``hal_src/unit.toml``); ``tests/test_analyze_upstream.py`` runs the same facts on
upstream ReactOS. A behaviour missing from hal_src fails its test on purpose: either hal_src lacks the function (a real
finding) or the analyzer misses it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generator import analyze
from generator.unit import open_unit

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "reactos_like" / "hal" / "halx86"
HAL_SRC = REPO / "hal_src"
TREES = {"fixture": FIXTURE, "hal_src": HAL_SRC}


def unit_model(src: Path, target: str = "reactos-amd64", **kwargs) -> analyze.Model:
    """The analysis of the build unit at ``src``."""
    return analyze.analyze(open_unit(src, target), target, **kwargs)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``gen2hal`` with this interpreter from the repository."""
    return subprocess.run([sys.executable, "-m", "generator.cli", *args], cwd=REPO, capture_output=True, text=True)


@pytest.fixture(scope="module", params=sorted(TREES))
def model(request) -> analyze.Model:
    """The model of each tree (analysed once per module)."""
    return unit_model(TREES[request.param])


def _defined(model: analyze.Model, name: str) -> None:
    assert name in model.functions, f"{name} is not defined in the tree (unit {model.profile})"


def _reached(model: analyze.Model, name: str, cls: str) -> list[analyze.TouchPoint]:
    _defined(model, name)
    found = model.touches(name, cls, transitive=True)
    assert found, f"no {cls} touch point in {name} or what it calls (unit {model.profile})"
    return found


# ---- one test per documented legacy behaviour ---------------------------------------------------------------------

def test_8259_programmed_in_legacy_pic_init(model):
    ports = {t.port for t in _reached(model, "HalpInitializeLegacyPICs", "8259")}
    assert {0x20, 0x21, 0xA0, 0xA1} <= ports


def test_rtc_register_a_polled_in_stall_calibration(model):
    points = _reached(model, "HalpCalibrateStallExecution", "rtc")
    assert any(t.number == 0x0A and t.access == "read" and t.in_loop for t in points), \
        [t.detail for t in points]
    assert all(t.rtc_use == "interrupt" for t in points if t.number == 0x0A and t.function != "HalpReadCmos")
    scope = model.reach("HalpCalibrateStallExecution")
    assert any(lint.kind == "legacy-port-poll" and lint.function in scope and "rtc" in lint.message
               for lint in model.lints)


def test_pm_timer_through_legacy_fadt_field_in_read_pm_timer(model):
    points = _reached(model, "HalpReadPmTimer", "pm-timer-legacy-fadt")
    assert any("PM_TMR_BLK" in t.detail for t in points)


def test_rtc_periodic_interrupt_programmed_in_initialize_clock(model):
    points = _reached(model, "HalpInitializeClock", "rtc")
    writes = {t.number for t in points if t.access == "write"}
    assert 0x0B in writes, f"register B (PIE) not written: {[t.detail for t in points]}"
    assert any(t.rtc_use == "interrupt" for t in points if t.number == 0x0B)


def test_smi_cmd_and_sci_en_in_acpi_enable(model):
    details = " | ".join(t.detail for t in _reached(model, "HalpAcpiEnable", "acpi-enable"))
    assert "SMI_CMD" in details
    assert "PM1a_CNT_BLK" in details  # the SCI_EN wait through the legacy PM1a control field


def test_madt_pcat_check_in_verify_pcat_compatibility(model):
    points = _reached(model, "HalpVerifyPcatCompatibility", "madt-pcat")
    assert all("PCAT_COMPAT" in t.detail for t in points)


def test_i8042_reset_in_reboot(model):
    points = _reached(model, "HalpReboot", "i8042")
    assert any(t.port == 0x64 and t.access == "write" and "0xFE" in t.detail for t in points)


def test_time_of_day_reader_is_not_interrupt_use(model):
    points = _reached(model, "HalQueryRealTimeClock", "rtc")
    assert {t.rtc_use for t in points if t.function == "HalQueryRealTimeClock"} == {"time-of-day"}


# ---- model properties -----------------------------------------------------------------------------------------------

def test_call_paths_start_at_an_export(model):
    edges = {(c.caller, c.callee) for c in model.calls}
    reachable = [t for t in model.touch_points if t.reachable]
    assert reachable
    for t in reachable:
        assert t.call_path[0] in model.exports, t
        assert t.call_path[-1] == t.function
        for pair in zip(t.call_path, t.call_path[1:]):
            assert pair in edges, (pair, t)
    assert "HalInitSystem" in model.exports


def test_port_macros_resolved_to_numbers(model):
    bare_macro = re.compile(r"`\(?[A-Z0-9_]+\)?`")
    for t in model.touch_points:
        if t.cls == "port-unknown":
            assert not bare_macro.search(t.detail), f"a port macro left unresolved: {t.detail}"
        if t.cls in ("8259", "pit", "rtc", "i8042") and t.port is not None:
            assert isinstance(t.port, int)


def test_fixture_casts_and_macros_fold(tmp_path):
    m = unit_model(FIXTURE)
    ports = {t.port for t in m.touch_points if t.cls == "8259"}
    assert ports == {0x20, 0x21, 0xA0, 0xA1, 0x4D0}  # 0x4D0 through (PUCHAR)(ULONG_PTR)EISA_ELCR_MASTER
    assert any(t.cls == "msr" and t.number == 0x1B for t in m.touch_points)
    assert {t.number for t in m.touch_points if t.cls == "cpuid"} == {1}


def test_msr_lint_needs_a_cpuid_on_the_path():
    m = unit_model(FIXTURE)
    flagged = {(lint.function, lint.line) for lint in m.lints if lint.kind == "msr-without-cpuid"}
    assert {f for f, _ in flagged} == {"HalpCalibrateStallExecution"}  # HalpReadApicBase checks CPUID first


def test_interrupt_handler_reached_through_its_registration():
    m = unit_model(FIXTURE)
    points = m.touches("HalpClockInterruptHandler", "rtc")
    assert points and points[0].call_path == ["HalInitSystem", "HalpInitializeClock", "HalpClockInterruptHandler"]


def test_function_extents_are_exact_bytes():
    m = unit_model(FIXTURE)
    for fn in m.functions.values():
        data = (FIXTURE / fn.file).read_bytes()[fn.start_offset:fn.end_offset]
        assert data.rstrip().endswith(b"}"), fn
        assert fn.name.encode() in data.split(b"(")[0], fn


# ---- CLI: output, determinism, bad input ------------------------------------------------------------------------

def test_cli_report_and_deterministic_json(tmp_path):
    out1, out2 = tmp_path / "a.json", tmp_path / "b.json"
    first = run_cli("analyze", str(FIXTURE), "--json", str(out1))
    second = run_cli("analyze", str(FIXTURE), "--json", str(out2))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert out1.read_bytes() == out2.read_bytes()
    assert "analysis time:" in first.stdout and "== 8259" in first.stdout and "== lints" in first.stdout
    text = out1.read_text()
    assert str(REPO) not in text and "/tmp" not in text
    doc = json.loads(text)
    assert all(not f.startswith("/") for f in doc["files"])
    assert doc["touch_points"] == sorted(doc["touch_points"], key=lambda t: (
        analyze._class_key(t["class"]), t["file"], t["line"], t["column"], t["detail"]))


def test_cli_missing_path_exits_2(tmp_path):
    out = tmp_path / "out.json"
    proc = run_cli("analyze", str(tmp_path / "nothing-here"), "--json", str(out))
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr
    assert not out.exists()


def _broken_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURE.parent.parent, tree)
    for rel, text in files.items():
        (tree / rel).write_text(text)
    return tree


def test_cli_syntax_error_refused_with_file_and_line(tmp_path):
    tree = _broken_tree(tmp_path, {"hal/halx86/generic/pic.c": "#include <ntddk.h>\n\nVOID Broken(VOID)\n{\n  int x = ;\n}\n"})
    out = tmp_path / "out.json"
    proc = run_cli("analyze", str(tree / "hal" / "halx86"), "--json", str(out))
    assert proc.returncode == 2
    assert re.search(r"generic/pic\.c:5:\d+: error:", proc.stderr), proc.stderr
    assert not out.exists() and not list(tmp_path.glob("out.json*"))


def test_cli_keep_going_lists_every_broken_file(tmp_path):
    tree = _broken_tree(tmp_path, {"hal/halx86/generic/pic.c": "int a = ;\n",
                                   "hal/halx86/generic/reboot.c": "void f(void) { return }\n"})
    out = tmp_path / "out.json"
    proc = run_cli("analyze", str(tree / "hal" / "halx86"), "--keep-going", "--json", str(out))
    assert proc.returncode == 2
    assert "generic/pic.c:1:" in proc.stderr and "generic/reboot.c:1:" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("option", [("--unit", "halxyz"), ("--target", "winxp-i386"), ("--profile", "linux")])
def test_cli_unknown_unit_target_or_profile_exits_2(option, tmp_path):
    proc = run_cli("analyze", str(FIXTURE), *option)
    assert proc.returncode == 2
    assert option[1] in proc.stderr


def test_bench_analyze_prints_both_paths_with_the_same_model():
    proc = run_cli("bench-analyze", str(FIXTURE), "--runs", "1", "--compare")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "over 1 runs" in line]
    assert len(lines) == 2 and "precompiled preamble" in lines[0] and "from scratch" in lines[1]
    # Both paths report the same model size (the fast path is an optimisation, not an approximation).
    assert lines[0].split(";")[1] == lines[1].split(";")[1]


def test_pch_and_token_scan_equal_the_reference_path_on_hal_src():
    fast = unit_model(HAL_SRC)
    slow = unit_model(HAL_SRC, use_pch=False, exhaustive=True)
    assert json.dumps(fast.to_json(), sort_keys=True) == json.dumps(slow.to_json(), sort_keys=True)


def test_cli_profile_checks_the_role_map():
    """--profile checks the role map generate would bind: hal_src's own map binds on hal_src; upstream ReactOS's
    map refuses it (its HalInitSystem has another shape), naming the role and function."""
    ok = run_cli("analyze", str(HAL_SRC), "--profile", "hal_src")
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"^  madt-check +HalpVerifyPcatCompatibility +bound$", ok.stdout, re.M)
    refused = run_cli("analyze", str(HAL_SRC), "--profile", "reactos")
    assert refused.returncode == 1
    assert "refused: role hv-init: HalInitSystem (generic/halinit.c:" in refused.stdout
