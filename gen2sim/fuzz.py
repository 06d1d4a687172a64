"""Fuzz the loader and the machine with randomly mutated copies of a hal.dll (seeded: reproducible).

``python -m gen2sim.fuzz HAL.DLL --count 1000 [--seed N] [--target T] [--platform P]`` boots each mutant under a
small virtual-time and instruction budget and checks that every run ends in a verdict (or load-error), never an
exception.  Exit 1 when any mutant raised, 2 when the target cannot be told.

The kernel ABI is taken from the DLL's own export table when ``--target`` is not given: a target whose export list
(``specs/targets/*/hal-exports.txt``) has names no other target has, and the DLL exports some of them while it
exports none of any other target's own names, is the DLL's target (the Windows 7 HAL's 88 exports include
``HalBugCheckSystem``, ``HalEnumerateProcessors``...; ReactOS's 62 ``HalEnableSystemInterrupt``...).  A DLL
whose exports decide nothing needs ``--target``; the fuzzer never guesses.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import traceback
from collections import Counter
from hashlib import sha256
from pathlib import Path

VERDICTS = {"booted", "misbehaved", "bugcheck", "hang", "fault", "load-error", "reset"}


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


class TargetError(ValueError):
    """The DLL's exports do not tell which kernel ABI it is built for (and none was given)."""


def dll_exports(dll) -> set[str]:
    """The names in ``dll``'s export directory (empty for an image without one); a clear error for a non-PE file."""
    import pefile

    try:
        pe = pefile.PE(str(dll), fast_load=True)
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"]])
    except pefile.PEFormatError as exc:
        raise TargetError(f"{dll}: not a PE image ({exc}); cannot read its exports") from None
    directory = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
    if directory is None:
        return set()
    return {s.name.decode("ascii", "replace") for s in directory.symbols if s.name}


def infer_target(dll) -> tuple[str, str]:
    """(target, why) for ``dll`` from its exports; raises ``TargetError`` saying what was found when they do not
    decide (no target-specific name exported, or names of two targets)."""
    from specs import load_target, target_names

    exports = dll_exports(dll)
    lists = {name: set(load_target(name).exports) for name in target_names()}
    own = {name: names - set().union(*(o for n, o in lists.items() if n != name)) for name, names in lists.items()}
    hits = {name: sorted(exports & names) for name, names in own.items() if exports & names}
    if len(hits) == 1:
        (name, found), = hits.items()
        return name, (f"from its exports: {len(exports)} exported, {len(found)} of the {len(own[name])} names only "
                      f"{name} exports (e.g. {', '.join(found[:3])})")
    if not hits:
        raise TargetError(f"{dll}: its {len(exports)} exports include no name only one target exports "
                          f"({', '.join(sorted(lists))}); give --target")
    both = "; ".join(f"{n}: {', '.join(f[:3])}" for n, f in sorted(hits.items()))
    raise TargetError(f"{dll}: its exports name several targets ({both}); give --target")


def run(dll, *, count: int = 100, seed: int = 1, target: str | None = None, platform: str = "gen2",
        seconds: float = 0.02, hang_limit_s: float = 0.05, max_instructions: int = 2_000_000,
        workdir: str | None = None) -> dict:
    """Boot ``count`` mutants of ``dll`` for ``target`` (None: from the DLL's exports, ``infer_target``); returns
    ``{'verdicts': Counter, 'errors': [(index, traceback)], 'fuzzed': what was fuzzed}``."""
    from .scenario import boot

    data = Path(dll).read_bytes()
    why = "given"
    if target is None:
        target, why = infer_target(dll)
    fuzzed = {"dll": str(dll), "bytes": len(data), "sha256": sha256(data).hexdigest(), "target": target,
              "target_from": why, "platform": platform, "count": count, "seed": seed}
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
    return {"verdicts": verdicts, "errors": errors, "fuzzed": fuzzed}


def main(argv: list[str] | None = None) -> int:
    """Command line of the fuzzer."""
    p = argparse.ArgumentParser(prog="python -m gen2sim.fuzz", description=__doc__)
    p.add_argument("dll")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    from specs import target_names

    p.add_argument("--target", choices=target_names(), help="kernel ABI of the DLL (default: told by its exports; required when they "
                                     "do not tell)")
    p.add_argument("--platform", default="gen2")
    args = p.parse_args(argv)
    try:
        out = run(args.dll, count=args.count, seed=args.seed, target=args.target, platform=args.platform)
    except (TargetError, OSError) as exc:
        print(f"python -m gen2sim.fuzz: {exc}", file=sys.stderr)
        return 2
    f = out["fuzzed"]
    print(f"fuzzed: {f['dll']} ({f['bytes']} bytes, sha256 {f['sha256'][:16]}...), target {f['target']} "
          f"({f['target_from']}), platform {f['platform']}, {f['count']} mutants, seed {f['seed']}")
    print("verdicts:", dict(sorted(out["verdicts"].items(), key=lambda kv: str(kv[0]))))
    for i, tb in out["errors"][:5]:
        print(f"--- mutant {i}\n{tb}")
    print(f"errors: {len(out['errors'])}")
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
