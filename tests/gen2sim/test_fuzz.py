"""Fuzz: seeded mutants of a built hal.dll end in a verdict or load-error, never an exception.

The full run (1,000 mutants) is ``python -m gen2sim.fuzz build/<target>/reference/hal.dll --count 1000``
(or any hal.dll); this test runs 100 of them with the test HAL.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from gen2sim import fuzz  # noqa: E402

pytestmark = pytest.mark.skipif(not build.toolchain_present(), reason="mingw-w64 not installed")


def test_hundred_mutants_only_verdicts(tmp_path):
    dll = build.build_minihal(tmp_path / "fz")
    out = fuzz.run(dll, count=100, seed=20260101, target="win7sp1-amd64", workdir=str(tmp_path))
    assert not out["errors"], out["errors"][0][1]
    assert out["fuzzed"]["target"] == "win7sp1-amd64" and out["fuzzed"]["target_from"] == "given"
    assert sum(out["verdicts"].values()) == 100
    assert set(out["verdicts"]) <= fuzz.VERDICTS


def test_mutation_is_seeded():
    import random

    data = bytes(range(256)) * 8
    assert fuzz.mutate(data, random.Random(5)) == fuzz.mutate(data, random.Random(5))
