"""Boot the reference HAL (build/<target>/reference/hal.dll) when it can be built; CLI end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from gen2sim.scenario import boot  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("reactos-amd64", "win7sp1-amd64")


@pytest.fixture(scope="session")
def reference():
    """Paths of the reference hal.dll per target (runs ``scons -Q`` once when the toolchain is present)."""
    if shutil.which("scons") and build.toolchain_present() and (ROOT / "hal_src").is_dir():
        subprocess.run(["scons", "-Q"], cwd=ROOT, capture_output=True, timeout=900)
    found = {t: ROOT / "build" / t / "reference" / "hal.dll" for t in TARGETS}
    return {t: p for t, p in found.items() if p.is_file()}


def _ref(reference, target):
    if target not in reference:
        pytest.skip(f"reference HAL for {target} not built")
    return reference[target]


@pytest.mark.parametrize("target", TARGETS)
def test_reference_gen1_boots(reference, target):
    r = boot(_ref(reference, target), target, "gen1").result
    assert r["verdict"] == "booted", r
    assert r["drift_ppm"] is not None and abs(r["drift_ppm"]) < 10
    assert r["ticks"] > 0
    # Ticks at the programmed rate: the announced increment equals the measured period.
    per_tick = r["time_increment_100ns"]["per_tick"]["mean"]
    assert abs(r["tick_period_ns"]["mean"] - per_tick * 100) / (per_tick * 100) < 1e-4


@pytest.mark.parametrize("target", TARGETS)
def test_reference_gen2_bugchecks_79(reference, target):
    r = boot(_ref(reference, target), target, "gen2").result
    assert r["verdict"] == "bugcheck", r
    assert r["bugcheck"]["code"] == 0x79 and r["bugcheck"]["params"][0] == 6


@pytest.mark.parametrize("target", TARGETS)
def test_reference_gen2_pcat_hangs_in_calibration(reference, target):
    r = boot(_ref(reference, target), target, "gen2", madt_pcat=True).result
    assert r["verdict"] == "hang", r
    assert r["hang"]["function"] == "HalpCalibrateStallExecution"
    assert r["hang"]["polls"]["register"] == "RTC register A"


@pytest.mark.parametrize("target", TARGETS)
def test_reference_deterministic(reference, target):
    dll = _ref(reference, target)
    assert boot(dll, target, "gen1", seconds=0.2).result["trace_sha256"] == \
        boot(dll, target, "gen1", seconds=0.2).result["trace_sha256"]


@pytest.mark.skipif(not build.toolchain_present(), reason="mingw-w64 not installed")
def test_cli_boot_json_trace_and_exit_codes(tmp_path):
    dll = build.build_minihal(tmp_path / "cli")
    out, trace = tmp_path / "r.json", tmp_path / "t.jsonl"
    cmd = [sys.executable, "-m", "generator.cli", "boot", str(dll), "--target", "win7sp1-amd64", "--platform",
           "gen1", "--seconds", "0.1", "--json", str(out), "--trace", str(trace)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "verdict: booted" in p.stdout
    result = json.loads(out.read_text())
    assert result["verdict"] == "booted" and "wall_seconds" not in result
    assert len(trace.read_text().splitlines()) == result["trace_records"]
    bad = subprocess.run(cmd[:6] + ["--hv-clear", "nonsense"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "nonsense" in bad.stderr
    missing = subprocess.run(cmd[:3] + [str(tmp_path / "nope.dll")] + cmd[4:6], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2
    bc = build.build_minihal(tmp_path / "clibc", "BUGCHECK")
    p = subprocess.run(cmd[:3] + [str(bc)] + cmd[4:6], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 1 and "0x79" in p.stdout
