"""Reading and checking the report's inputs: boot JSONs (with their traces), an analysis JSON, a change list.

Every problem is a ``ReportInputError`` that names the file and the field, so ``gen2hal report`` can say exactly
what to fix (exit status 2).  Nothing here re-runs a boot: the report is made from the JSON results alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from gen2sim.timeline import DEFAULT_BINS, TimelineError, check_timeline, timeline_from_trace

#: Verdicts gen2sim gives today; another non-empty verdict string is shown as it is (a newer model may add some).
KNOWN_VERDICTS = ("booted", "misbehaved", "bugcheck", "hang", "fault", "reset", "load-error", "model-error")
#: Where the details of each verdict live in the boot JSON.
VERDICT_DETAIL = {"misbehaved": "misbehaved", "bugcheck": "bugcheck", "hang": "hang", "fault": "fault",
                  "reset": "reset", "load-error": "load_error", "model-error": "model_error"}
RUN_GLOB = "boot-*.json"


class ReportInputError(Exception):
    """An input the report cannot use: ``path`` and ``field`` say where, the message says why."""

    def __init__(self, path: str | Path, field: str | None, message: str):
        where = f"{path}: field {field!r}: " if field else f"{path}: "
        super().__init__(where + message)
        self.path = str(path)
        self.field = field


@dataclass
class Run:
    """One boot: its JSON result, where it came from, and its timeline (from the JSON or from the trace)."""

    path: Path
    result: dict
    timeline: dict | None
    timeline_source: str  # "json", "trace" or "none"
    label: str = ""  # the path as shown in the report (relative to the runs' common folder)
    anchor: str = ""  # the HTML id of its section
    trace: Path | None = None  # the JSON-lines trace beside the JSON, when the timeline must come from it


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _need(result: dict, path, key: str, kinds: tuple, what: str, *, nullable: bool = False, parent: str = ""):
    """``result[key]`` checked against ``kinds``; raises naming ``parent.key``."""
    name = f"{parent}.{key}" if parent else key
    if key not in result:
        raise ReportInputError(path, name, f"missing ({what})")
    value = result[key]
    if value is None and nullable:
        return None
    # JSON true/false are Python ints too; a flag is never a count.
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
        return value
    raise ReportInputError(path, name, f"must be {what}, not {json.dumps(value)[:60]}")


def _check_properties(result: dict, path) -> None:
    """The judged properties (gen2sim/judge.py), when the boot has them: a list of {property, ok, detail, ...}."""
    props = result.get("properties")
    if props is None:
        return
    if not isinstance(props, list):
        raise ReportInputError(path, "properties", "must be a list of judged properties or null")
    for i, p in enumerate(props):
        if not isinstance(p, dict) or not isinstance(p.get("property"), str) or not isinstance(p.get("ok"), bool):
            raise ReportInputError(path, f"properties[{i}]", "must be an object with a \"property\" name and "
                                                             "an \"ok\" boolean")
        if p.get("detail") is not None and not isinstance(p["detail"], str):
            raise ReportInputError(path, f"properties[{i}].detail", "must be a string or null")


def check_boot(result, path) -> dict:
    """Check the fields of a boot JSON the report relies on; returns it or raises ``ReportInputError``."""
    if not isinstance(result, dict):
        raise ReportInputError(path, None, "not a boot result (the top level must be a JSON object)")
    verdict = _need(result, path, "verdict", (str,), "a verdict string such as \"booted\"")
    if not verdict.strip():
        raise ReportInputError(path, "verdict", "must not be empty")
    for key in ("hal", "target", "platform"):
        _need(result, path, key, (str,), "a string")
    detail_key = VERDICT_DETAIL.get(verdict)
    if detail_key is not None:
        detail = _need(result, path, detail_key, (dict,), f"an object (the verdict is {verdict})")
        if verdict == "bugcheck":
            _need(detail, path, "code", (int,), "an integer", parent="bugcheck")
            params = _need(detail, path, "params", (list,), "a list of integers", parent="bugcheck")
            for i, p in enumerate(params):
                if not _is_int(p):
                    raise ReportInputError(path, f"bugcheck.params[{i}]", f"must be an integer, not {p!r}")
        elif verdict == "misbehaved":
            _need(detail, path, "detail", (str,), "a string naming the broken properties", parent="misbehaved")
        elif verdict == "hang":
            _need(detail, path, "function", (str,), "a function name or null", nullable=True, parent="hang")
            polls = _need(detail, path, "polls", (dict,), "an object or null", nullable=True, parent="hang") \
                if "polls" in detail else None
            if polls is not None:
                _need(polls, path, "device", (str,), "a device name", nullable=True, parent="hang.polls")
    _need(result, path, "virtual_time_us", (int,), "a non-negative integer")
    if result["virtual_time_us"] < 0:
        raise ReportInputError(path, "virtual_time_us", "must not be negative")
    if verdict != "load-error":
        exits = _need(result, path, "exits", (dict,), "an object {class: count}")
        for cls, n in exits.items():
            if not _is_int(n) or n < 0:
                raise ReportInputError(path, f"exits.{cls}", f"must be a non-negative integer, not {n!r}")
    for key in ("ticks", "hal_init_virtual_us", "guest_instructions", "trace_records"):
        if result.get(key) is not None and not _is_int(result[key]):
            raise ReportInputError(path, key, f"must be an integer or null, not {result[key]!r}")
    for key in ("drift_ppm", "exits_per_qpc", "exits_per_tick"):
        value = result.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise ReportInputError(path, key, f"must be a number or null, not {result[key]!r}")
    for key in ("tick_period_ns", "time_increment_100ns", "qpc", "stall"):
        if result.get(key) is not None and not isinstance(result[key], dict):
            raise ReportInputError(path, key, "must be an object or null")
    _check_properties(result, path)
    touches = result.get("legacy_touches")
    if touches is not None:
        if not isinstance(touches, list):
            raise ReportInputError(path, "legacy_touches", "must be a list")
        for i, t in enumerate(touches):
            if not isinstance(t, dict) or not isinstance(t.get("device"), str) or not _is_int(t.get("count")):
                raise ReportInputError(path, f"legacy_touches[{i}]", "must be an object with device and count")
    for key in ("debug_output",):
        if result.get(key) is not None and not isinstance(result[key], list):
            raise ReportInputError(path, key, "must be a list of strings")
    return result


def _read_json(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportInputError(path, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(path, None, f"cannot read: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ReportInputError(path, None, f"not valid JSON: {exc}") from None


def find_runs(args: list[str | Path]) -> list[Path]:
    """The boot JSONs named by ``args``: files as given, folders searched (recursively) for ``boot-*.json``.

    Duplicates (the same file reached twice) are dropped; the order is sorted by path, so it does not depend on
    the order of the arguments or of the file system.
    """
    found: dict[Path, Path] = {}
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            matches = sorted(q for q in p.rglob(RUN_GLOB) if q.is_file())
            if not matches:
                raise ReportInputError(p, None, f"folder holds no {RUN_GLOB}")
            for q in matches:
                found.setdefault(q.resolve(), q)
        elif p.is_file():
            found.setdefault(p.resolve(), p)
        else:
            raise ReportInputError(p, None, "no such file or folder")
    return [found[k] for k in sorted(found)]


def load_run(path: str | Path, *, bins: int = DEFAULT_BINS, read_trace: bool = True) -> Run:
    """Read and check one boot JSON; take its ``timeline``, else compute it from the trace beside it.

    The trace beside ``boot-x.json`` is ``boot-x.jsonl``; it is checked against the JSON's ``trace_sha256``.  With
    ``read_trace=False`` the trace is only located (``Run.trace``), for ``add_trace_timeline`` to read later
    (a trace can take seconds per million records: the caller may want to show progress).
    """
    path = Path(path)
    result = check_boot(_read_json(path), path)
    if result.get("timeline") is not None:
        try:
            return Run(path, result, check_timeline(result["timeline"]), "json")
        except TimelineError as exc:
            raise ReportInputError(path, exc.field, exc.reason) from None
    trace = path.with_suffix(".jsonl")
    run = Run(path, result, None, "none")
    if trace.is_file() and result["verdict"] != "load-error":
        run.trace = trace
        if read_trace:
            add_trace_timeline(run, bins)
    return run


def add_trace_timeline(run: Run, bins: int = DEFAULT_BINS) -> Run:
    """Compute ``run.timeline`` from ``run.trace`` (checked against the JSON's ``trace_sha256``)."""
    try:
        run.timeline = timeline_from_trace(run.trace, run.result["virtual_time_us"], bins,
                                           expect_sha256=run.result.get("trace_sha256"))
    except TimelineError as exc:
        raise ReportInputError(run.trace, exc.field, exc.reason) from None
    except OSError as exc:
        raise ReportInputError(run.trace, None, f"cannot read: {exc}") from None
    run.timeline_source = "trace"
    return run


def load_analysis(path: str | Path) -> dict:
    """Read and check a ``gen2hal analyze --json`` document (touch points, lints)."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ReportInputError(path, None, "not an analysis JSON (the top level must be an object)")
    points = data.get("touch_points")
    if not isinstance(points, list):
        raise ReportInputError(path, "touch_points", "missing or not a list (is this `gen2hal analyze --json` output?)")
    for i, t in enumerate(points):
        if not isinstance(t, dict):
            raise ReportInputError(path, f"touch_points[{i}]", "must be an object")
        for key in ("class", "file", "function", "detail"):
            if not isinstance(t.get(key), str):
                raise ReportInputError(path, f"touch_points[{i}].{key}", "missing or not a string")
        if not _is_int(t.get("line")):
            raise ReportInputError(path, f"touch_points[{i}].line", "missing or not an integer")
        if not isinstance(t.get("call_path", []), list):
            raise ReportInputError(path, f"touch_points[{i}].call_path", "must be a list of function names")
    lints = data.get("lints", [])
    if not isinstance(lints, list):
        raise ReportInputError(path, "lints", "must be a list")
    for i, lint in enumerate(lints):
        if not isinstance(lint, dict) or not all(isinstance(lint.get(k), str) for k in ("kind", "file", "message")):
            raise ReportInputError(path, f"lints[{i}]", "must be an object with kind, file and message")
    return data


def load_changes(path: str | Path) -> dict:
    """Read a change list: ``CHANGES.md`` (Markdown text) or a JSON document (the generator's manifest).

    Returns ``{"name", "format": "markdown" | "json", "text" | "data"}``.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        return {"name": path.name, "format": "json", "data": _read_json(path)}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportInputError(path, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(path, None, f"cannot read as UTF-8 text: {exc}") from None
    return {"name": path.name, "format": "markdown", "text": text}
