"""Speed figures of the model: guest instructions per second, wall time of a boot, exits by class.

Wall time is measured here only; it never enters the deterministic result or the trace.
"""

from __future__ import annotations

import time


def bench(dll, target: str, platform: str = "gen2", *, repeat: int = 1, **options) -> dict:
    """Boot ``dll`` ``repeat`` times; return the best wall time and derived rates (plus ``text``)."""
    from .scenario import boot

    best = None
    result = None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        run = boot(dll, target, platform, **options)
        wall = time.perf_counter() - start
        if best is None or wall < best:
            best, result = wall, run.result
    insns = result.get("guest_instructions") or 0
    figures = {
        "verdict": result.get("verdict"),
        "wall_seconds": round(best, 3),
        "guest_instructions": insns,
        "instructions_per_second": round(insns / best) if best else None,
        "virtual_time_us": result.get("virtual_time_us"),
        "exits": result.get("exits"),
        "trace_records": result.get("trace_records"),
    }
    ex = figures["exits"] or {}
    figures["text"] = "\n".join([
        f"{dll}  target {target}  platform {platform}  verdict {figures['verdict']}",
        f"wall time of a boot: {figures['wall_seconds']} s (best of {max(1, repeat)})",
        f"guest instructions: {insns}  ->  {figures['instructions_per_second']} instructions/s",
        f"virtual time: {figures['virtual_time_us']} us   trace records: {figures['trace_records']}",
        "exits: " + "  ".join(f"{k} {v}" for k, v in ex.items()),
    ])
    return figures
