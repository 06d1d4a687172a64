"""Boot the reference HAL (build/<target>/reference/hal.dll) when it can be built; CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from gen2sim.scenario import boot  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("reactos-amd64", "win7sp1-amd64")


@pytest.fixture(scope="module")
def gen1_runs(reference_build):
    """One gen1 boot of each reference HAL (a boot polls the RTC for two virtual seconds: ~20 s of wall time),
    shared by the tests that read its figures."""
    return {t: boot(reference_build[t] / "hal.dll", t, "gen1").result for t in TARGETS}


@pytest.mark.parametrize("target", TARGETS)
def test_reference_gen1_boots(gen1_runs, target):
    r = gen1_runs[target]
    assert r["verdict"] == "booted", r
    assert r["drift_ppm"] is not None and abs(r["drift_ppm"]) < 10
    assert r["ticks"] > 0
    # Ticks at the programmed rate: the announced increment equals the measured period.
    per_tick = r["time_increment_100ns"]["per_tick"]["mean"]
    assert abs(r["tick_period_ns"]["mean"] - per_tick * 100) / (per_tick * 100) < 1e-4


@pytest.mark.parametrize("target", TARGETS)
def test_reference_gen2_bugchecks_79(reference_build, target):
    r = boot(reference_build[target] / "hal.dll", target, "gen2").result
    assert r["verdict"] == "bugcheck", r
    assert r["bugcheck"]["code"] == 0x79 and r["bugcheck"]["params"][0] == 6
    assert r["bugcheck"]["function"] == "HalpVerifyPcatCompatibility"
    assert r["bugcheck"]["name"] == "MISMATCHED_HAL"


@pytest.mark.parametrize("target", TARGETS)
def test_reference_gen2_pcat_hangs_in_calibration(reference_build, target):
    r = boot(reference_build[target] / "hal.dll", target, "gen2", madt_pcat=True, hang_limit_s=0.5).result
    assert r["verdict"] == "hang", r
    assert r["hang"]["function"] == "HalpCalibrateStallExecution"
    # Windows 7's PM-timer path: the FADT declares a PM timer (PM_TMR_LEN 4) but its legacy PM_TMR_BLK is 0 on
    # Gen2, so the count is read from port 0, which nothing answers (gen2-platform.md, product.md).
    assert r["hang"]["polls"]["device"] == "absent" and r["hang"]["polls"]["port_or_address"] == 0


def test_reference_deterministic(reference_build, gen1_runs):
    target = "win7sp1-amd64"
    again = boot(reference_build[target] / "hal.dll", target, "gen1").result
    assert again["trace_sha256"] == gen1_runs[target]["trace_sha256"]
    assert again == gen1_runs[target]


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
    def run(dll_path, *extra):
        return subprocess.run([sys.executable, "-m", "generator.cli", "boot", str(dll_path), "--target",
                               "win7sp1-amd64", "--platform", "gen2", *extra],
                              cwd=ROOT, capture_output=True, text=True)

    bad = run(dll, "--hv-clear", "nonsense")
    assert bad.returncode == 2 and "nonsense" in bad.stderr
    missing = run(tmp_path / "nope.dll")
    assert missing.returncode == 2 and "nope.dll" in missing.stderr
    p = run(build.build_minihal(tmp_path / "clibc", "BUGCHECK"))
    assert p.returncode == 1 and "0x79" in p.stdout
