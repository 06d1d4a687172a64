"""Boot a list of HALs on the machine model for the main job, with a progress line per boot, writing boot JSONs.

The JSONs carry their timeline (gen2sim puts it in every result), so the report never needs the
multi-hundred-megabyte traces. This only calls gen2sim (``gen2sim.scenario.boot``, ``gen2sim.report.write_json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .progress import Progress


@dataclass(frozen=True)
class BootJob:
    """One boot of the main job: which HAL, for which target, on which platform, and where its JSON goes."""

    hal: str
    target: str
    platform: str
    json_out: str
    options: dict = field(default_factory=dict)  # extra keyword arguments of gen2sim.scenario.boot


def short_verdict(result: dict) -> str:
    """The verdict in a few words for a progress line."""
    verdict = result.get("verdict")
    if verdict == "bugcheck" and isinstance(result.get("bugcheck"), dict):
        return f"bugcheck {result['bugcheck'].get('code', 0):#x}"
    if verdict == "hang" and isinstance(result.get("hang"), dict):
        return f"hang in {result['hang'].get('function') or '?'}"
    if verdict == "fault" and isinstance(result.get("fault"), dict):
        return f"fault {result['fault'].get('kind')} in {result['fault'].get('function') or '?'}"
    return str(verdict)


def boot_all(jobs: list[BootJob], progress: Progress | None = None) -> list[dict]:
    """Boot each job in turn (progress line per boot), write its JSON with a ``timeline``; returns the results."""
    from gen2sim.report import write_json
    from gen2sim.scenario import boot

    progress = progress or Progress(len(jobs))
    results = []
    for job in jobs:
        with progress.step(f"booting {job.hal} on {job.platform}") as step:
            run = boot(job.hal, job.target, job.platform, **job.options)
            result = run.result
            Path(job.json_out).parent.mkdir(parents=True, exist_ok=True)
            write_json(result, job.json_out)
            step.result(short_verdict(result))
        results.append(result)
    return results
