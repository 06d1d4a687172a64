"""Shared fixtures: the repository, the team's reference shelf (when present) and the built reference HALs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHELF = REPO.parent / "shared" / "reference"
#: The unmodified upstream ReactOS subset (master 9ee30c57fd) the reactos tests run on, copied first.
UPSTREAM_REACTOS = REPO.parent / "shared" / "upstream" / "reactos"
TARGETS = ("reactos-amd64", "win7sp1-amd64")


@pytest.fixture(scope="session")
def shelf() -> Path:
    """The team's reference shelf (../shared/reference); tests that compare against it skip, saying so, without it."""
    if not SHELF.is_dir():
        pytest.skip(f"reference shelf {SHELF} not present (a user's clone has no ../shared); CI has it")
    return SHELF


@pytest.fixture(scope="session")
def reactos_tree(tmp_path_factory) -> Path:
    """A private git checkout of the upstream ReactOS subset (copied; the shelf itself is never written).

    Skips, saying so, where the shelf is absent (a user's clone); CI has it beside the clone.
    """
    if not (UPSTREAM_REACTOS / "hal" / "halx86" / "CMakeLists.txt").is_file():
        pytest.skip(f"upstream ReactOS subset {UPSTREAM_REACTOS} not present (a user's clone has no ../shared); "
                    f"CI has it")
    tree = tmp_path_factory.mktemp("reactos") / "reactos"
    shutil.copytree(UPSTREAM_REACTOS, tree)
    git = ["git", "-c", "user.name=gen2hal-tests", "-c", "user.email=tests@gen2hal.invalid"]
    subprocess.run(git + ["init", "-q"], cwd=tree, check=True)
    subprocess.run(git + ["add", "-A"], cwd=tree, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "upstream subset"], cwd=tree, check=True)
    return tree


@pytest.fixture(scope="session")
def reactos_build(reactos_tree) -> Path:
    """``scons reactos=<copy>`` for the reactos-amd64 target: upstream and gen2 hal.dll/halmp.dll, validated and
    booted (no-op when up to date); returns build/reactos-upstream."""
    if shutil.which("x86_64-w64-mingw32-gcc") is None:
        pytest.fail("x86_64-w64-mingw32-gcc missing: run scripts/setup.sh")
    run_scons(REPO, "-j2", f"reactos={reactos_tree}", "target=reactos-amd64", "build/reactos-upstream")
    return REPO / "build" / "reactos-upstream"


def run_scons(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run SCons in ``cwd`` with this interpreter; raises with the build's output on failure."""
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"scons {' '.join(args)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def reference_build() -> dict[str, Path]:
    """Build both reference HALs (no-op when up to date); returns {target: build folder}."""
    if shutil.which("x86_64-w64-mingw32-gcc") is None:
        pytest.fail("x86_64-w64-mingw32-gcc missing: run scripts/setup.sh")
    run_scons(REPO, "variant=0")
    return {t: REPO / "build" / t / "reference" for t in TARGETS}
