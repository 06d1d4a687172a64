"""The gen2hal report: a verdict matrix, each boot's figures and timeline picture, the analyzed sources' legacy
touch points and the generator's change list, as one offline HTML page (``DIR/index.html``) made from the boot
JSON results only, plus the plain-text verdict table.

Modules: ``timeline`` (the compact per-boot timeline summary gen2sim can put in its JSON; no heavy imports),
``inputs`` (reading and checking the inputs), ``picture`` (matplotlib SVG), ``page`` (HTML and text table),
``progress`` (progress lines), ``boots`` (the main job's boots), ``cli`` (``gen2hal report``).

``make_report`` is the one call the main job and the command line share.
"""

from __future__ import annotations

from pathlib import Path

from .inputs import ReportInputError
from .progress import Progress
from gen2sim.timeline import timeline_summary

__all__ = ["make_report", "ReportInputError", "Progress", "timeline_summary"]


def _paths(value) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [Path(v) for v in value]


def make_report(runs: list[str | Path], out_dir: str | Path, *, analysis=None, changes=None,
                progress: Progress | None = None) -> tuple[Path, str]:
    """Write ``out_dir/index.html`` from boot JSONs (files, or folders searched for ``boot-*.json``).

    ``analysis`` and ``changes`` are a path or a list of paths (e.g. one per target): ``gen2hal analyze --json``
    documents and change lists (``CHANGES.md`` or a JSON manifest).  Returns the page's path and the plain-text
    verdict table.  Raises ``ReportInputError`` (naming the file and field) before anything is written when an
    input is missing or invalid.
    """
    from . import inputs, page, picture

    paths = inputs.find_runs(runs)
    if not paths:
        raise ReportInputError("RUNS", None, "no boot JSON given")

    loaded = [inputs.load_run(path, read_trace=False) for path in paths]
    analysis_paths, changes_paths = _paths(analysis), _paths(changes)
    # Every input is checked before the (slow) traces are read.  (label, data): labels are the paths relative to
    # their common folder, the same wherever the inputs live.
    analyses = list(zip(page.short_labels(analysis_paths), [inputs.load_analysis(p) for p in analysis_paths]))
    change_lists = list(zip(page.short_labels(changes_paths), [inputs.load_changes(p) for p in changes_paths]))
    for run in loaded:
        if run.timeline is None and run.trace is not None:
            if progress is None:
                inputs.add_trace_timeline(run)
                continue
            # A trace is read at about a quarter of a million records a second: worth a progress line.
            with progress.step(f"timeline from {run.trace}") as step:
                inputs.add_trace_timeline(run)
                step.result(f"{sum(sum(c) for c in run.timeline['exits'].values()):,} exits")

    ordered = page.order_runs(loaded)
    svgs = {}
    for run in ordered:
        svgs[run.anchor] = picture.render_timeline(run.result, run.timeline, id_prefix=run.anchor)
    listed = [{"name": run.label, "what": f"boot JSON ({run.anchor}), timeline from {run.timeline_source}",
               "sha256": page.file_sha256(run.path)} for run in ordered]
    listed += [{"name": label, "what": "analysis JSON", "sha256": page.file_sha256(p)}
               for (label, _), p in zip(analyses, analysis_paths)]
    listed += [{"name": label, "what": "change list", "sha256": page.file_sha256(p)}
               for (label, _), p in zip(change_lists, changes_paths)]
    text = page.render_html(ordered, svgs, analyses=analyses, changes=change_lists, inputs=listed)
    out = Path(out_dir) / "index.html"
    page.write_atomic(out, text)
    return out, page.verdict_table(ordered)
