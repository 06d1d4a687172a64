"""``gen2hal bench``: the figures per boot, the standard suite, the dead-port tables it boots with."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from gen2sim import acpi
from gen2sim.bench import (ALL_CLOCKS_CLEARED, DEAD_PORT, BootSpec, Figures, dead_pm_timer_tables, measure, suite,
                           table)
from gen2sim.errors import ModelError
from gen2sim.memory import ACPI_GPA

from tests.conftest import REPO, TARGETS, run_scons

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "generator.cli", "bench", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.mark.parametrize("platform", ["gen1", "gen2"])
def test_dead_pm_timer_tables_move_both_fadt_fields(tmp_path, platform):
    d = dead_pm_timer_tables(platform, tmp_path / platform)
    image = acpi.load_tables(d, ACPI_GPA)  # checksums and lengths are checked on load
    fadt = image.tables["FACP"][1]
    assert struct.unpack_from("<I", fadt, acpi.FADT_OFFSETS["PM_TMR_BLK"])[0] == DEAD_PORT
    assert struct.unpack_from("<Q", fadt, acpi.FADT_OFFSETS["X_PM_TMR_BLK"] + 4)[0] == DEAD_PORT
    assert acpi.checksum_ok(fadt)


def test_suite_names_the_missing_dll(tmp_path):
    with pytest.raises(ModelError, match=r"reference[/\\]hal.dll missing"):
        suite(tmp_path / "nobuild", tmp_path)


def test_table_lays_out_every_figure():
    spec = BootSpec("x.dll", "win7sp1-amd64", "gen1", label="a boot")
    rows = [Figures(spec, "booted", 0.5, 10_000_000, 2_000_000, 3_000_000, 2_000_000, 10, 3),
            Figures(spec, "hang", 2.0, 100, 0, 5, 0, 0, 0, slow_wall_seconds=4.0, same_result=True)]
    lines = table(rows).splitlines()
    assert lines[0].split() == ["boot", "verdict", "wall", "s", "guest", "insns", "insns/s", "exits", "exits/s",
                                "ff", "skipped", "ff", "run", "ff", "ratio", "slow", "wall", "s", "same", "result"]
    assert lines[1].split()[2:] == ["booted", "0.500", "10000000", "20000000", "2000000", "4000000", "2000000",
                                    "10", "200000.0", "-", "-"]
    assert lines[2].split()[-4:] == ["0", "-", "4.000", "yes"]
    assert rows[1].as_dict()["ff_ratio"] is None and rows[0].as_dict()["exits_per_second"] == 4_000_000


def test_bench_of_a_list_of_boots_prints_and_writes_the_figures(reference_build, tmp_path):
    # The reference HAL of one target, and the other target's, which this target's loader refuses.
    dlls = [reference_build[t] / "hal.dll" for t in ("win7sp1-amd64", "reactos-amd64")]
    out = tmp_path / "bench.json"
    p = _cli(*dlls, "--target", "win7sp1-amd64", "--platform", "gen2", "--check", "--json", out)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("boot") and "ff ratio" in lines[0] and "same result" in lines[0]
    assert len(lines) == 3 and all(line.endswith("yes") for line in lines[1:])
    assert " bugcheck " in lines[1] and " load-error " in lines[2]
    data = json.loads(out.read_text())
    assert [d["verdict"] for d in data] == ["bugcheck", "load-error"] and all(d["same_result"] for d in data)
    assert data[0]["guest_instructions"] > 0 and data[0]["instructions_per_second"] > 0


def test_bench_usage_errors(tmp_path):
    assert _cli().returncode == 2
    p = _cli(tmp_path / "none.dll", "--target", "win7sp1-amd64")
    assert p.returncode == 2 and "none.dll: no such file" in p.stderr
    p = _cli("--suite", "--build", tmp_path)
    assert p.returncode == 2 and "missing" in p.stderr
    assert _cli("--suite", tmp_path / "x.dll").returncode == 2


def test_suite_runs_fast_forwarded(reference_build, tmp_path):
    run_scons(REPO, *[f"build/{t}/gen2/validation.json" for t in TARGETS])
    specs = suite(REPO / "build", tmp_path)
    assert len(specs) == 4 * len(TARGETS)
    rows = [measure(s) for s in specs]
    for r in rows:
        # Every boot of the suite spends most of its guest instructions in loops fast-forward skips.
        assert r.verdict in ("booted", "hang", "bugcheck"), r.as_dict()
        assert r.iterations_skipped > 10_000 and r.ff_ratio and r.ff_ratio > 100, r.as_dict()
    dead = [r for r in rows if r.spec.acpi_dir]
    assert len(dead) == 2 * len(TARGETS)
    assert all(r.spec.hv_clear == ALL_CLOCKS_CLEARED for r in dead if r.spec.platform == "gen2")
