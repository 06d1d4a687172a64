"""The fuzzer takes the kernel ABI from the DLL's exports, or requires ``--target``, and says what it fuzzed.

Before issue 11 it fuzzed every DLL as a Windows 7 HAL. The DLLs here are the project's own: the test HAL
(five exports every target has: undecidable), and small DLLs exporting names only one target has, or both.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from gen2sim import fuzz  # noqa: E402
from specs import load_target, target_names  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not build.toolchain_present(), reason="mingw-w64 not installed")


def _own_names() -> dict[str, list[str]]:
    """Per target, the export names no other target has (sorted)."""
    lists = {t: set(load_target(t).exports) for t in target_names()}
    return {t: sorted(n - set().union(*(o for u, o in lists.items() if u != t))) for t, n in lists.items()}


def _dll_exporting(tmp_path: Path, names: list[str], stem: str) -> Path:
    """A tiny x64 DLL exporting ``names`` (each a function returning 0)."""
    src = tmp_path / f"{stem}.c"
    src.write_text("".join(f"__declspec(dllexport) int {n}(void) {{ return 0; }}\n" for n in names))
    dll = tmp_path / f"{stem}.dll"
    subprocess.run([build.CC, "-shared", "-nostdlib", "-Wl,--no-insert-timestamp", "-Wl,--entry,0", str(src),
                    "-o", str(dll)], check=True)
    return dll


def test_each_target_is_told_by_its_own_names(tmp_path):
    for target, own in _own_names().items():
        assert own, f"{target} has no export of its own: the exports could never tell it"
        dll = _dll_exporting(tmp_path, ["HalInitSystem", *own[:3]], target)
        found, why = fuzz.infer_target(dll)
        assert found == target, (target, why)
        assert target in why and own[0] in why


def test_win7_export_list_tells_win7():
    # The real list (88 names, HalDispatchTable-era ones among them) tells the Windows 7 target.
    own = _own_names()["win7sp1-amd64"]
    assert {"HalBugCheckSystem", "HalEnumerateProcessors"} <= set(own)
    assert len(load_target("win7sp1-amd64").exports) == 88


def test_undecidable_exports_need_target(tmp_path):
    minihal = build.build_minihal(tmp_path / "mini")
    with pytest.raises(fuzz.TargetError, match="give --target"):
        fuzz.infer_target(minihal)
    own = _own_names()
    mixed = _dll_exporting(tmp_path, [names[0] for names in own.values()], "mixed")
    with pytest.raises(fuzz.TargetError, match="several targets"):
        fuzz.infer_target(mixed)
    not_pe = tmp_path / "not.dll"
    not_pe.write_bytes(b"MZ but not really")
    with pytest.raises(fuzz.TargetError, match="not a PE image"):
        fuzz.infer_target(not_pe)


def test_cli_requires_target_or_tells_it_and_prints_what_it_fuzzed(tmp_path):
    minihal = build.build_minihal(tmp_path / "mini")
    run = [sys.executable, "-m", "gen2sim.fuzz", str(minihal), "--count", "2", "--seed", "7"]
    refused = subprocess.run(run, cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "give --target" in refused.stderr, refused.stderr
    given = subprocess.run(run + ["--target", "reactos-amd64"], cwd=REPO, capture_output=True, text=True)
    assert given.returncode == 0, given.stderr
    first = given.stdout.splitlines()[0]
    assert first.startswith(f"fuzzed: {minihal} (") and "target reactos-amd64 (given)" in first, first
    assert "2 mutants, seed 7" in first and "platform gen2" in first, first
    told = _dll_exporting(tmp_path, ["HalInitSystem", _own_names()["reactos-amd64"][0]], "ros")
    out = subprocess.run([sys.executable, "-m", "gen2sim.fuzz", str(told), "--count", "1"], cwd=REPO,
                         capture_output=True, text=True)
    assert "target reactos-amd64 (from its exports" in out.stdout, (out.stdout, out.stderr)
