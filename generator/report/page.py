"""The report page and the plain-text verdict table, made from checked inputs (``inputs.Run`` and friends).

Everything shown is formatted here into plain strings; the Jinja2 template (``templates/report/index.html.j2``,
autoescaping on) only lays them out, so every value from a JSON file is escaped.  The only markup that is not
escaped is what this package makes itself: the SVG pictures and the rendered change list (whose text is escaped
before the few Markdown constructs are turned into tags).

Same inputs, same bytes: runs are ordered by what they are (HAL, target, variant, platform), never by the order
of the arguments; no timestamps; paths are shown relative to the runs' common folder.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

from .. import __version__
from .inputs import KNOWN_VERDICTS, Run
from gen2sim.report import waits_text
from gen2sim.timeline import EXIT_CLASSES

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "report"
#: Platforms in the matrix's column order; others follow, sorted.
PLATFORM_ORDER = ("gen1", "gen2")
#: Touch-point classes of hardware Generation 2 does not have, or has differently (``generator.analyze``'s names).
LEGACY_CLASSES = ("8259", "pit", "rtc", "i8042", "pm-timer-legacy-fadt", "acpi-enable", "madt-pcat")
OUTPUT_LINES = 20  # debug/serial output lines shown per boot


# ---- formatting ---------------------------------------------------------------------------------------------------

def hexa(v) -> str:
    """An integer as 0x..., anything else as text."""
    return f"{v:#x}" if isinstance(v, int) and not isinstance(v, bool) else ("—" if v is None else str(v))


def count(v) -> str:
    """An integer with thousands separators."""
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else ("—" if v is None else str(v))


def number(v, digits: int = 3) -> str:
    """A number with at most ``digits`` decimals (trailing zeros dropped)."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    text = f"{v:,.{digits}f}".rstrip("0").rstrip(".") if isinstance(v, float) else f"{v:,}"
    return text


def duration_us(us) -> str:
    """Virtual microseconds in the unit that reads best (µs, ms, s)."""
    if us is None:
        return "—"
    if us >= 1_000_000:
        return f"{us / 1_000_000:.6f} s"
    if us >= 1_000:
        return f"{us / 1_000:.3f} ms"
    return f"{us} µs"


def period_ms(stats) -> str:
    """A tick-period statistic {mean, min, max} in ns as milliseconds."""
    if not isinstance(stats, dict):
        return "—"
    return (f"{stats.get('mean', 0) / 1e6:.4f} ms (min {stats.get('min', 0) / 1e6:.4f}, "
            f"max {stats.get('max', 0) / 1e6:.4f})")


def variant_of(result: dict) -> str:
    """The boot options that make runs of the same HAL, target and platform differ ("" for the defaults)."""
    parts = []
    if result.get("hv_clear"):
        parts.append("hv-clear " + ",".join(str(f) for f in result["hv_clear"]))
    if result.get("madt_pcat") is not None:
        parts.append(f"madt-pcat {'on' if result['madt_pcat'] else 'off'}")
    if result.get("seconds") not in (None, 1, 1.0):
        parts.append(f"{number(result['seconds'])} s idle")
    return "; ".join(parts)


def polls_text(polls) -> str:
    """What a hang polled: device, port or address, register."""
    if not isinstance(polls, dict):
        return ""
    text = f"{polls.get('device') or '?'} {hexa(polls.get('port_or_address'))}"
    if polls.get("register"):
        text += f" ({polls['register']})"
    return text


def verdict_lines(result: dict) -> tuple[str, list[str]]:
    """The verdict's headline and its detail lines (bug-check code and parameters, hang location, ...)."""
    verdict = result["verdict"]
    lines: list[str] = []
    head = verdict
    if verdict == "booted":
        tp = result.get("tick_period_ns")
        lines.append(f"{count(result.get('ticks'))} ticks" + (f", {tp['mean'] / 1e6:.3f} ms"
                                                              if isinstance(tp, dict) and "mean" in tp else ""))
        if result.get("drift_ppm") is not None:
            lines.append(f"drift {number(result['drift_ppm'])} ppm")
    elif verdict == "misbehaved":
        lines += [f"{p['property']}: {p['detail']}" for p in result.get("properties") or [] if not p["ok"]] \
            or [str(result["misbehaved"].get("detail") or "")]
    elif verdict == "bugcheck":
        b = result["bugcheck"]
        head = f"bugcheck {hexa(b['code'])}" + (f" {b['name']}" if b.get("name") else "")
        lines.append("(" + ", ".join(hexa(p) for p in b["params"]) + ")")
        if b.get("function"):
            lines.append(f"in {b['function']}")
        if b.get("reported_via"):
            lines.append(f"via {b['reported_via']}")
    elif verdict == "hang":
        h = result["hang"]
        lines.append(f"in {h.get('function') or '?'}" + (f" at {hexa(h['address'])}" if h.get("address") else ""))
        if h.get("polls"):
            lines.append(f"polling {polls_text(h['polls'])}")
        elif h.get("waits"):
            lines.append(waits_text(h["waits"]))
        elif h.get("detail"):
            lines.append(str(h["detail"]))
        if h.get("virtual_time_us") is not None:
            lines.append(f"stuck {duration_us(h['virtual_time_us'])}" +
                         (f" in {h['called']}" if h.get("called") else ""))
    elif verdict == "fault":
        f = result["fault"]
        head = f"fault {f.get('kind') or ''}".strip()
        lines.append(f"in {f.get('function') or '?'}" + (f" at {hexa(f['address'])}" if f.get("address") else ""))
        if f.get("detail"):
            lines.append(str(f["detail"]))
    elif verdict == "reset":
        r = result["reset"]
        lines.append(str(r.get("reason") or ""))
        if r.get("function"):
            lines.append(f"in {r['function']}")
    elif verdict == "load-error":
        lines.append(str(result["load_error"].get("reason") or ""))
    elif verdict == "model-error":
        lines.append(str(result["model_error"].get("detail") or ""))
    ended = result.get("ended_as")
    if isinstance(ended, dict) and ended.get("verdict"):
        lines.append(f"(the run itself ended as {ended['verdict']})")
    return head, [line for line in lines if line]


# ---- the page's view of the inputs -----------------------------------------------------------------------------

@dataclass
class Cell:
    """One boot in the verdict matrix."""

    anchor: str
    verdict: str
    css: str
    head: str
    lines: list[str]
    data: dict[str, str]


@dataclass
class Row:
    """One (HAL, target, variant) row of the matrix: a list of cells per platform."""

    hal: str
    target: str
    variant: str
    cells: dict[str, list[Cell]] = field(default_factory=dict)


def _sort_key(run: Run) -> tuple:
    r = run.result
    platform = r["platform"]
    order = PLATFORM_ORDER.index(platform) if platform in PLATFORM_ORDER else len(PLATFORM_ORDER)
    return (r["hal"], r["target"], variant_of(r), order, platform, run.label)


def short_labels(paths: list[Path]) -> list[str]:
    """Each path relative to the folder all of them share: the same labels wherever the inputs live."""
    if not paths:
        return []
    resolved = [Path(p).resolve() for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    return [p.relative_to(common).as_posix() for p in resolved]


def order_runs(runs: list[Run]) -> list[Run]:
    """Sort runs by what they are, give each its label (path relative to the runs' common folder) and anchor."""
    for run, label in zip(runs, short_labels([run.path for run in runs])):
        run.label = label
    ordered = sorted(runs, key=_sort_key)
    for i, run in enumerate(ordered, 1):
        run.anchor = f"boot-{i}"
    return ordered


def _cell(run: Run) -> Cell:
    r = run.result
    verdict = r["verdict"]
    head, lines = verdict_lines(r)
    data = {"verdict": verdict, "boot": run.anchor}
    if verdict == "bugcheck":
        data["code"] = hexa(r["bugcheck"]["code"])
        data["params"] = ",".join(hexa(p) for p in r["bugcheck"]["params"])
    elif verdict == "hang":
        h = r["hang"]
        data["function"] = h.get("function") or ""
        polls = h.get("polls") or {}
        data["polls"] = polls_text(polls) if polls else ""
        data["register"] = polls.get("register") or ""
    css = verdict if verdict in KNOWN_VERDICTS else "other"
    return Cell(run.anchor, verdict, css, head, lines, data)


def matrix(runs: list[Run]) -> tuple[list[str], list[Row], bool]:
    """The verdict matrix: platform columns, (HAL, target, variant) rows, and whether any row has a variant."""
    platforms = sorted({run.result["platform"] for run in runs},
                       key=lambda p: (PLATFORM_ORDER.index(p) if p in PLATFORM_ORDER else len(PLATFORM_ORDER), p))
    rows: dict[tuple, Row] = {}
    for run in runs:
        r = run.result
        key = (r["hal"], r["target"], variant_of(r))
        row = rows.setdefault(key, Row(*key))
        row.cells.setdefault(r["platform"], []).append(_cell(run))
    return platforms, list(rows.values()), any(row.variant for row in rows.values())


def _fig(label: str, text: str, field_name: str, raw) -> dict:
    """One figure row: what is shown and, in data attributes, which JSON field it came from and its raw value."""
    return {"label": label, "text": text, "field": field_name,
            "raw": json.dumps(raw, sort_keys=True, separators=(",", ":"))}


def _bound_text(bound) -> str:
    """A property's bound as recorded in the boot JSON: "|drift| <= 500 ppm, >= 2 idle ticks"."""
    if not isinstance(bound, dict):
        return "no bound: any occurrence breaks it"
    words = {"max_drift_ppm": "|drift| <= {} ppm", "min_idle_ticks": ">= {} idle ticks",
             "max_rate_error_ppm": "|rate error| <= {} ppm", "max_error_ppm": "|error| <= {} ppm",
             "min_halts_per_call": ">= {} halts per call", "boot": "exported and called: {}"}
    return ", ".join(words.get(k, k + " {}").format(", ".join(v) if isinstance(v, list) else number(v))
                     for k, v in bound.items())


def property_figures(result: dict) -> list[dict]:
    """One figure row per judged property (gen2sim/judge.py): kept or BROKEN with its figure, the bound the boot
    was judged by and the bound's reason (both as recorded in the boot JSON)."""
    rows = []
    for p in result.get("properties") or []:
        figure = p.get("figure")
        shown = p["detail"] if not p["ok"] else (", ".join(f"{k} {v}" for k, v in figure.items())
                                                    if isinstance(figure, dict) else "—")
        text = (f"{'kept' if p['ok'] else 'BROKEN'}: {shown}; bound {_bound_text(p.get('bound'))}"
                + (f" ({p['reason']})" if p.get("reason") else ""))
        rows.append(_fig(f"judged: {p['property']}", text, "properties", p))
    return rows


def boot_view(run: Run, svg: str) -> dict:
    """Everything the page shows for one boot."""
    r = run.result
    head, lines = verdict_lines(r)
    figures = [
        _fig("verdict", "; ".join([head] + lines), "verdict", r["verdict"]),
        _fig("virtual time", duration_us(r["virtual_time_us"]), "virtual_time_us", r["virtual_time_us"]),
        _fig("guest instructions", count(r.get("guest_instructions")), "guest_instructions",
             r.get("guest_instructions")),
        _fig("HAL init time (virtual)", duration_us(r.get("hal_init_virtual_us")), "hal_init_virtual_us",
             r.get("hal_init_virtual_us")),
        _fig("clock ticks", count(r.get("ticks")), "ticks", r.get("ticks")),
        _fig("tick period", period_ms(r.get("tick_period_ns")), "tick_period_ns", r.get("tick_period_ns")),
    ]
    inc = r.get("time_increment_100ns")
    if isinstance(inc, dict):
        announced = inc.get("announced")
        per_tick = inc.get("per_tick")
        text = ("announced " + (" / ".join(count(v) for v in announced) if announced else "—")
                + (f"; per tick mean {number(per_tick.get('mean'))}" if isinstance(per_tick, dict) else "")
                + " (100 ns units)")
        figures.append(_fig("time increment", text, "time_increment_100ns", inc))
    figures += [
        _fig("drift", f"{number(r['drift_ppm'])} ppm" if r.get("drift_ppm") is not None else "—", "drift_ppm",
             r.get("drift_ppm")),
        _fig("exits per QPC call", number(r.get("exits_per_qpc")), "exits_per_qpc", r.get("exits_per_qpc")),
        _fig("exits per tick", number(r.get("exits_per_tick")), "exits_per_tick", r.get("exits_per_tick")),
    ]
    qpc = r.get("qpc")
    if isinstance(qpc, dict):
        text = (f"{count(qpc.get('frequency'))} Hz, {'monotonic' if qpc.get('monotonic') else 'NOT monotonic'}"
                + (f", rate error {number(qpc['rate_error_ppm'])} ppm" if qpc.get("rate_error_ppm") is not None
                   else ""))
        figures.append(_fig("performance counter", text, "qpc", qpc))
    stall = r.get("stall")
    if isinstance(stall, dict):
        measured = stall.get("measured_us") or []
        text = (f"{number(stall.get('requested_us'))} µs asked, measured "
                + ", ".join(number(m) for m in measured) + " µs")
        figures.append(_fig("KeStallExecutionProcessor", text, "stall", stall))
    figures += property_figures(r)
    options = variant_of(r) or "defaults"
    figures.append(_fig("boot options", options, "seconds", r.get("seconds")))
    figures.append(_fig("trace", f"{count(r.get('trace_records'))} records, sha256 {r.get('trace_sha256') or '—'}",
                        "trace_sha256", r.get("trace_sha256")))
    exits = r.get("exits") or {}
    exit_cols = [c for c in EXIT_CLASSES] + sorted(k for k in exits if k not in EXIT_CLASSES and k != "total")
    exit_cols.append("total")
    exit_cells = [{"cls": c, "text": count(exits.get(c)), "raw": json.dumps(exits.get(c))} for c in exit_cols]
    touches = [{"device": t.get("device"), "port": hexa(t.get("port_or_address")), "count": count(t.get("count")),
                "raw_count": t.get("count"), "function": t.get("first_function") or "—"}
               for t in (r.get("legacy_touches") or [])]
    tl = run.timeline
    busiest = [{"function": name, "exits": count(n)} for name, n in (tl or {}).get("functions", [])]
    source = {"json": "the boot JSON's timeline", "none": "none (no timeline in the JSON, no trace beside it)",
              "trace": f"computed from the trace {run.path.with_suffix('.jsonl').name}"}[run.timeline_source]
    caption = (f"Timeline of {r['hal']} ({r['target']}) on {r['platform']}: exits by class per time bin, clock "
               f"ticks below, the verdict as a vertical line" + (", the hang shaded" if r["verdict"] == "hang"
                                                                    else "") + f". Source: {source}.")
    if tl and tl.get("interrupts"):
        caption += f" Interrupt records: {count(sum(tl['interrupts']))}."

    def tail(key: str) -> list[str]:
        value = r.get(key) or []
        text_lines = value.splitlines() if isinstance(value, str) else [str(v).rstrip("\n") for v in value]
        return text_lines[:OUTPUT_LINES] + ([f"... {len(text_lines) - OUTPUT_LINES} more lines"]
                                            if len(text_lines) > OUTPUT_LINES else [])

    return {"anchor": run.anchor, "label": run.label, "hal": r["hal"], "target": r["target"],
            "platform": r["platform"], "variant": variant_of(r), "verdict": r["verdict"],
            "css": r["verdict"] if r["verdict"] in KNOWN_VERDICTS else "other", "head": head, "lines": lines,
            "figures": figures, "exits": exit_cells, "touches": touches, "busiest": busiest,
            "svg": Markup(svg), "caption": caption, "debug": tail("debug_output"), "serial": tail("serial_output")}


def touch_view(label: str, analysis: dict) -> dict:
    """The analysis JSON's touch points (legacy ones first, the rest apart) and lints, as table rows."""
    def row(t: dict) -> dict:
        flags = []
        if t.get("rtc_use"):
            flags.append(str(t["rtc_use"]))
        if t.get("in_loop"):
            flags.append("in loop")
        if t.get("poll_loop_line"):
            flags.append(f"polls (loop at line {t['poll_loop_line']})")
        path = t.get("call_path") or []
        return {"cls": t["class"], "where": f"{t['file']}:{t['line']}", "file": t["file"], "line": t["line"],
                "function": t["function"], "detail": t["detail"], "flags": ", ".join(flags),
                "path": " → ".join(str(p) for p in path) if path else "(not reachable from an export)",
                "reachable": bool(path)}

    points = analysis["touch_points"]
    legacy = [row(t) for t in points if t["class"] in LEGACY_CLASSES]
    other = [row(t) for t in points if t["class"] not in LEGACY_CLASSES]
    lints = [{"kind": x["kind"], "where": f"{x['file']}:{x.get('line', '?')}", "function": x.get("function", ""),
              "message": x["message"],
              "path": " → ".join(str(p) for p in x.get("call_path") or []) or "—"}
             for x in analysis.get("lints", [])]
    totals: dict[str, int] = {}
    for t in points:
        totals[t["class"]] = totals.get(t["class"], 0) + 1
    return {"label": label, "profile": analysis.get("profile"), "target": analysis.get("target"),
            "files": len(analysis.get("files") or []), "legacy": legacy, "other": other, "lints": lints,
            "totals": ", ".join(f"{k} {v}" for k, v in totals.items())}


# ---- the change list -----------------------------------------------------------------------------------------------

_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline(text: str) -> str:
    """Escape a line of Markdown, then turn `code` and **bold** into tags (nothing else is interpreted)."""
    out = html.escape(text, quote=True)
    out = _INLINE_CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def markdown_html(text: str) -> Markup:
    """A small, safe Markdown subset for the change list: headings, lists, fenced code, paragraphs.

    Every character of the input is escaped first; links and raw HTML stay text (the page loads nothing).
    """
    out: list[str] = []
    para: list[str] = []
    in_list = False
    in_code = False

    def flush():
        nonlocal in_list
        if para:
            out.append("<p>" + " ".join(para) + "</p>")
            para.clear()
        if in_list:
            out.append("</ul>")
            in_list = False

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("```"):
            if in_code:
                out.append("</code></pre>")
                in_code = False
            else:
                flush()
                out.append("<pre><code>")
                in_code = True
            continue
        if in_code:
            out.append(html.escape(raw) + "\n")
            continue
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        item = re.match(r"\s*(?:[-*+]|\d+\.)\s+(.*)", line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 2, 6)  # the section is an h2
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif item:
            if para:
                out.append("<p>" + " ".join(para) + "</p>")
                para.clear()
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(item.group(1))}</li>")
        elif not line.strip():
            flush()
        elif in_list and raw[:1].isspace():
            out[-1] = out[-1][:-5] + " " + _inline(line.strip()) + "</li>"  # a list item's continuation line
        else:
            if in_list:
                flush()
            para.append(_inline(line.strip()))
    if in_code:
        out.append("</code></pre>")
    flush()
    # The escaped-then-tagged text is safe by construction; join without newlines inside <pre>.
    return Markup("\n".join(out).replace("<pre><code>\n", "<pre><code>").replace("\n</code></pre>", "</code></pre>"))


def json_html(value, depth: int = 0) -> Markup:
    """Any JSON document (e.g. the generator's manifest) as nested, escaped HTML: objects as definition lists,
    lists of like objects as tables, other lists as bullet lists."""
    esc = html.escape
    if isinstance(value, dict):
        items = "".join(f"<dt>{esc(str(k))}</dt><dd>{json_html(v, depth + 1)}</dd>" for k, v in value.items())
        return Markup(f"<dl>{items}</dl>")
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            keys: list[str] = []
            for v in value:
                keys += [k for k in v if k not in keys]
            head = "".join(f"<th>{esc(str(k))}</th>" for k in keys)
            body = "".join("<tr>" + "".join(f"<td>{json_html(v.get(k), depth + 1) if k in v else ''}</td>"
                                            for k in keys) + "</tr>" for v in value)
            return Markup(f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        return Markup("<ul>" + "".join(f"<li>{json_html(v, depth + 1)}</li>" for v in value) + "</ul>")
    if value is None:
        return Markup("—")
    if isinstance(value, bool):
        return Markup("true" if value else "false")
    return Markup(esc(str(value)))


def changes_view(label: str, changes: dict) -> dict:
    """The change list as safe HTML."""
    body = markdown_html(changes["text"]) if changes["format"] == "markdown" else json_html(changes["data"])
    return {"name": label, "format": changes["format"], "html": body}


# ---- the page and the table ----------------------------------------------------------------------------------------

def _environment() -> jinja2.Environment:
    if not TEMPLATES_DIR.is_dir():
        raise FileNotFoundError(f"report templates folder not found: {TEMPLATES_DIR}")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def render_html(runs: list[Run], svgs: dict[str, str], *, analyses: list[tuple[str, dict]] = (),
                changes: list[tuple[str, dict]] = (), inputs: list[dict] | None = None) -> str:
    """The report page: verdict matrix, each boot's figures and timeline, touch points, change list."""
    env = _environment()
    css = (TEMPLATES_DIR / "report.css").read_text(encoding="utf-8")
    platforms, rows, has_variant = matrix(runs)
    totals: dict[str, int] = {}
    for run in runs:
        totals[run.result["verdict"]] = totals.get(run.result["verdict"], 0) + 1
    page = env.get_template("index.html.j2").render(
        version=__version__, css=Markup(css), platforms=platforms, rows=rows, has_variant=has_variant,
        boots=[boot_view(run, svgs[run.anchor]) for run in runs],
        verdict_totals=", ".join(f"{n} {v}" for v, n in sorted(totals.items())),
        touches=[touch_view(label, a) for label, a in analyses],
        changes=[changes_view(label, c) for label, c in changes],
        inputs=inputs or [], exit_classes=EXIT_CLASSES)
    return page


def _one_line(result: dict) -> tuple[str, str]:
    head, lines = verdict_lines(result)
    detail = "; ".join(lines)
    if result["verdict"] == "booted" and result.get("hal_init_virtual_us") is not None:
        detail += f"; HAL init {duration_us(result['hal_init_virtual_us'])}"
    return head, detail


def verdict_table(runs: list[Run]) -> str:
    """The plain-text verdict table printed at the end of the main job and of ``gen2hal report``."""
    has_variant = any(variant_of(run.result) for run in runs)
    header = ["HAL", "target"] + (["variant"] if has_variant else []) + ["platform", "verdict", "detail"]
    rows = []
    for run in runs:
        r = run.result
        head, detail = _one_line(r)
        rows.append([r["hal"], r["target"]] + ([variant_of(r) or "-"] if has_variant else [])
                    + [r["platform"], head, detail])
    widths = [max(len(str(x[i])) for x in [header] + rows) for i in range(len(header) - 1)]
    out = []
    for x in [header] + rows:
        out.append("  ".join(str(v).ljust(w) for v, w in zip(x, widths)) + "  " + str(x[-1]))
    out.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * max(len(str(x[-1])) for x in [header] + rows))
    return "\n".join(line.rstrip() for line in out)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, for the inputs list (which JSON the page was made from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the report is for reading
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
