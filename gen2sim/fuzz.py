"""Fuzz the loader and the machine with randomly mutated copies of a hal.dll (seeded: reproducible).

``python -m gen2sim.fuzz HAL.DLL --count 1000 [--seed N] [--target T] [--platform P]`` boots each mutant under a
small virtual-time and instruction budget and checks that every run ends in a verdict (or load-error), never an
exception.  Exit 1 when any mutant raised.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

VERDICTS = {"booted", "bugcheck", "hang", "fault", "load-error", "reset"}


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One mutant: a few random byte overwrites, bit flips or a truncation, biased toward the headers."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randrange(0x400) if rng.random() < 0.4 else rng.randrange(len(buf))
        pos = min(pos, len(buf) - 1)
        if op < 0.5:
            buf[pos] = rng.randrange(256)
        elif op < 0.9:
            buf[pos] ^= 1 << rng.randrange(8)
        else:
            del buf[rng.randrange(len(buf) // 2, len(buf)):]
    return bytes(buf)


def run(dll, *, count: int = 100, seed: int = 1, target: str = "win7sp1-amd64", platform: str = "gen2",
        seconds: float = 0.02, hang_limit_s: float = 0.05, max_instructions: int = 2_000_000,
        workdir: str | None = None) -> dict:
    """Boot ``count`` mutants of ``dll``; returns ``{'verdicts': Counter, 'errors': [(index, traceback)]}``."""
    from .scenario import boot

    data = Path(dll).read_bytes()
    rng = random.Random(seed)
    verdicts: Counter[str] = Counter()
    errors: list[tuple[int, str]] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "hal.dll"  # no hal.map beside it: names come from exports
        for i in range(count):
            path.write_bytes(mutate(data, rng))
            try:
                result = boot(path, target, platform, seconds=seconds, hang_limit_s=hang_limit_s,
                              max_instructions=max_instructions).result
            except Exception:  # noqa: BLE001 - that is what we are looking for
                errors.append((i, traceback.format_exc()))
                continue
            verdict = result.get("verdict")
            if verdict not in VERDICTS:
                errors.append((i, f"unexpected verdict {verdict!r}: {result.get('model_error')}"))
            verdicts[verdict] += 1
    return {"verdicts": verdicts, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    """Command line of the fuzzer."""
    p = argparse.ArgumentParser(prog="python -m gen2sim.fuzz", description=__doc__)
    p.add_argument("dll")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--target", default="win7sp1-amd64")
    p.add_argument("--platform", default="gen2")
    args = p.parse_args(argv)
    out = run(args.dll, count=args.count, seed=args.seed, target=args.target, platform=args.platform)
    print("verdicts:", dict(sorted(out["verdicts"].items(), key=lambda kv: str(kv[0]))))
    for i, tb in out["errors"][:5]:
        print(f"--- mutant {i}\n{tb}")
    print(f"errors: {len(out['errors'])}")
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
