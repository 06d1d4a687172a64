"""A boot's timeline as a compact, deterministic summary the boot JSON can carry.

A trace of a boot that polls the RTC for three virtual seconds has millions of records (hundreds of megabytes of
JSON lines); the report needs only their shape over virtual time.  ``timeline_summary`` folds the records into a
fixed number of equal virtual-time bins:

``version``
    1 (this layout).
``bins``, ``span_ns``
    the number of bins and the virtual time they cover, ``[0, span_ns)`` with ``span_ns`` =
    ``(virtual_time_us + 1) * 1000``; a record at ``t_ns`` is in bin ``t_ns * bins // span_ns`` (integer
    arithmetic: no rounding differences between machines).
``exits``
    ``{class: [count per bin]}`` for each exit class of ``gen2sim.trace.EXIT_CLASSES`` that occurred (a class with
    no exit is left out, so a short boot stays short in the JSON).
``interrupts``
    the ``interrupt`` records per bin (deliveries and device assertions), or ``None`` when there were none.
``ticks``
    ``count``; ``t_ns``, the virtual time of each clock tick the kernel saw (the first ``MAX_TICK_TIMES``);
    ``per_bin`` (ticks per bin) only when the times were cut, so a storm of ticks still shows.
``events``
    the first ``bugcheck`` and ``fault`` record (``{kind, t_ns, value, function}``), in trace order: where a
    bug check's verdict point lies.
``last_t_ns``
    the time of the last record.
``functions``
    the ``TOP_FUNCTIONS`` guest functions with the most exits, ``[name, exits]``, most first (ties by name).

The records are consumed in one pass, so a trace read line by line from disk never has to fit in memory.
A ``repeat`` record (trace format 2, ``gen2sim.trace``) is folded in arithmetically, as the records it stands for.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Iterator

# Neither this module nor gen2sim.trace imports the CPU (Unicorn): the report reads results without the model.
from .trace import EXIT_CLASS, EXIT_CLASSES, MAX_TEMPLATE, REPEAT, TraceFormatError, check_repeat, repeat_bytes

SUMMARY_VERSION = 1
DEFAULT_BINS = 200
MAX_TICK_TIMES = 1000
TOP_FUNCTIONS = 10

EVENT_KINDS = ("bugcheck", "fault")


class TimelineError(ValueError):
    """A timeline (or the trace it is computed from) is malformed; ``field`` names the offending part."""

    def __init__(self, field: str, message: str):
        super().__init__(f"field {field!r}: {message}")
        self.field = field
        self.reason = message


def timeline_summary(trace_records: Iterable[dict], virtual_time_us: int, bins: int = DEFAULT_BINS) -> dict:
    """Fold trace records (dicts with ``t_ns``, ``kind``, ``function``) into the timeline summary.

    ``virtual_time_us`` is the boot's ``virtual_time_us``: the run's final virtual time, truncated to the
    microsecond, so every record lies before ``(virtual_time_us + 1) * 1000`` ns, which is the span.  (A record
    past it, from a trace that does not belong to the run, is counted in the last bin rather than dropped.)
    """
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive integer, not {bins!r}")
    if not isinstance(virtual_time_us, int) or isinstance(virtual_time_us, bool) or virtual_time_us < 0:
        raise ValueError(f"virtual_time_us must be a non-negative integer, not {virtual_time_us!r}")
    span = (virtual_time_us + 1) * 1000
    last_bin = bins - 1
    exits = {cls: [0] * bins for cls in EXIT_CLASSES}
    interrupts = [0] * bins
    ticks_per_bin = [0] * bins
    tick_times: list[int] = []
    tick_count = 0
    events: list[dict] = []
    functions: dict[str | None, int] = {}
    # The loop runs once per trace record (millions for a polling HAL): one dict lookup finds the bins of an
    # exit's class, and type() is checked instead of isinstance (a bool is not a time).
    exit_bins = {kind: exits[cls] for kind, cls in EXIT_CLASS.items()}
    last = 0
    recent: list[dict] = []  # the plain records a repeat may refer to
    for index, rec in enumerate(trace_records):
        try:
            t = rec["t_ns"]
            kind = rec["kind"]
        except (KeyError, TypeError):
            raise TimelineError(f"record {index}", "not a trace record (needs t_ns and kind)") from None
        if type(t) is not int or t < 0:
            raise TimelineError(f"record {index}.t_ns", f"not a non-negative integer: {t!r}")
        if kind == REPEAT:
            try:
                check_repeat(rec, recent, f"record {index}")
            except TraceFormatError as exc:
                raise TimelineError(exc.where, str(exc)) from None
            k, n, period = rec["records"], rec["count"], rec["period_ns"]
            for r in recent[-k:]:
                counts = exit_bins.get(r["kind"])
                if counts is None:
                    raise TimelineError(f"record {index}", f"a repeat of a {r['kind']!r} record is not supported")
                _spread(counts, r["t_ns"] + period, period, n, bins, span)
                function = r.get("function")
                functions[function] = functions.get(function, 0) + n
                last = max(last, r["t_ns"] + n * period)
            continue
        recent.append(rec)
        if len(recent) > 2 * MAX_TEMPLATE:
            del recent[:MAX_TEMPLATE]
        if t > last:
            last = t
        b = t * bins // span
        if b > last_bin:
            b = last_bin
        counts = exit_bins.get(kind)
        if counts is not None:
            counts[b] += 1
            function = rec.get("function")
            functions[function] = functions.get(function, 0) + 1
        elif kind == "interrupt":
            interrupts[b] += 1
        elif kind == "tick":
            tick_count += 1
            ticks_per_bin[b] += 1
            if len(tick_times) < MAX_TICK_TIMES:
                tick_times.append(t)
        elif kind in EVENT_KINDS and all(e["kind"] != kind for e in events):
            events.append({"kind": kind, "t_ns": t, "value": rec.get("value"), "function": rec.get("function")})
    named: dict[str, int] = {}
    for function, n in functions.items():
        key = function or "(unknown)"
        named[key] = named.get(key, 0) + n
    return {
        "version": SUMMARY_VERSION,
        "bins": bins,
        "span_ns": span,
        "exits": {cls: counts for cls, counts in exits.items() if any(counts)},
        "interrupts": interrupts if any(interrupts) else None,
        "ticks": {"count": tick_count, "t_ns": tick_times,
                  "per_bin": ticks_per_bin if tick_count > len(tick_times) else None},
        "events": events,
        "last_t_ns": last,
        "functions": [[name, n] for name, n in sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))
                      [:TOP_FUNCTIONS]],
    }


def _spread(counts: list[int], t_first: int, step: int, n: int, bins: int, span: int) -> None:
    """Add ``n`` records at ``t_first, t_first + step, ...`` to their bins (the last bin takes anything later)."""
    last_bin = bins - 1
    m = 0
    while m < n:
        t = t_first + m * step
        b = t * bins // span
        if b >= last_bin:
            counts[last_bin] += n - m
            return
        t_next = -(-(b + 1) * span // bins)  # the first time of the next bin
        m_next = min(n, m + max(1, -(-(t_next - t) // step)))
        counts[b] += m_next - m
        m = m_next


def read_trace(path: str | Path, expect_sha256: str | None = None) -> Iterator[dict]:
    """Yield the records of a JSON-lines trace (``gen2hal boot --trace``), one line at a time (a ``repeat`` record
    as it is: ``timeline_summary`` folds it, ``gen2sim.trace.expand_records`` expands it).

    With ``expect_sha256`` (the boot JSON's ``trace_sha256``) the trace's SHA-256 is checked once the last line is
    read: the hash of its lines with every repeat expanded, which is what a step-by-step run writes, so a trace that
    belongs to another run is refused.  Raises ``TimelineError`` (field ``line N`` or ``trace_sha256``) and
    ``OSError``.
    """
    digest = hashlib.sha256()
    recent: list[dict] = []
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                digest.update(line)
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise TimelineError(f"line {number}", f"not JSON: {exc}") from None
            if not isinstance(rec, dict):
                raise TimelineError(f"line {number}", "not a JSON object")
            if rec.get("kind") == REPEAT:
                try:
                    check_repeat(rec, recent, f"line {number}")
                    for chunk in repeat_bytes(recent[-rec["records"]:], rec):
                        digest.update(chunk)
                except (TraceFormatError, ValueError) as exc:
                    raise TimelineError(f"line {number}", str(exc)) from None
            else:
                digest.update(line)
                recent.append(rec)
                if len(recent) > 2 * MAX_TEMPLATE:
                    del recent[:MAX_TEMPLATE]
            yield rec
    if expect_sha256 is not None and digest.hexdigest() != expect_sha256:
        raise TimelineError("trace_sha256", f"the trace's SHA-256 is {digest.hexdigest()}, the boot JSON says "
                                            f"{expect_sha256}: the trace belongs to another run")


def timeline_from_trace(path: str | Path, virtual_time_us: int, bins: int = DEFAULT_BINS,
                        expect_sha256: str | None = None) -> dict:
    """``timeline_summary`` of a JSON-lines trace file (checked against ``expect_sha256`` when given)."""
    return timeline_summary(read_trace(path, expect_sha256), virtual_time_us, bins)


def _int_list(value, length: int, field: str) -> list[int]:
    if not isinstance(value, list) or len(value) != length:
        raise TimelineError(field, f"must be a list of {length} integers")
    for i, v in enumerate(value):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise TimelineError(f"{field}[{i}]", f"not a non-negative integer: {v!r}")
    return value


def check_timeline(data, field: str = "timeline") -> dict:
    """Validate a timeline summary read from JSON; returns it, or raises ``TimelineError`` naming the field."""
    if not isinstance(data, dict):
        raise TimelineError(field, "must be an object")
    if data.get("version") != SUMMARY_VERSION:
        raise TimelineError(f"{field}.version", f"must be {SUMMARY_VERSION}, not {data.get('version')!r}")
    bins = data.get("bins")
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise TimelineError(f"{field}.bins", f"must be a positive integer, not {bins!r}")
    span = data.get("span_ns")
    if not isinstance(span, int) or isinstance(span, bool) or span < 1:
        raise TimelineError(f"{field}.span_ns", f"must be a positive integer, not {span!r}")
    exits = data.get("exits")
    if not isinstance(exits, dict):
        raise TimelineError(f"{field}.exits", "must be an object {class: [count per bin]}")
    for cls, counts in exits.items():
        if cls not in EXIT_CLASSES:
            raise TimelineError(f"{field}.exits.{cls}", f"unknown exit class (known: {', '.join(EXIT_CLASSES)})")
        _int_list(counts, bins, f"{field}.exits.{cls}")
    if data.get("interrupts") is not None:
        _int_list(data["interrupts"], bins, f"{field}.interrupts")
    ticks = data.get("ticks")
    if not isinstance(ticks, dict):
        raise TimelineError(f"{field}.ticks", "must be an object {count, t_ns, per_bin}")
    count = ticks.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise TimelineError(f"{field}.ticks.count", f"must be a non-negative integer, not {count!r}")
    times = ticks.get("t_ns")
    if not isinstance(times, list) or len(times) > count:
        raise TimelineError(f"{field}.ticks.t_ns", "must be a list of at most ticks.count times")
    _int_list(times, len(times), f"{field}.ticks.t_ns")
    if ticks.get("per_bin") is not None:
        _int_list(ticks["per_bin"], bins, f"{field}.ticks.per_bin")
    elif len(times) < count:
        raise TimelineError(f"{field}.ticks.per_bin", "required when t_ns holds fewer times than count")
    events = data.get("events", [])
    if not isinstance(events, list):
        raise TimelineError(f"{field}.events", "must be a list")
    for i, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("t_ns"), int) or not event.get("kind"):
            raise TimelineError(f"{field}.events[{i}]", "must be an object with kind and t_ns")
    functions = data.get("functions", [])
    if not isinstance(functions, list) or not all(
            isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) and isinstance(f[1], int)
            for f in functions):
        raise TimelineError(f"{field}.functions", "must be a list of [name, exits]")
    return data
