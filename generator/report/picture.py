"""The timeline picture of one boot: virtual time across, intercepted operations by class stacked, clock ticks
marked below, the verdict point marked.

Rendered with matplotlib's object API and the Agg backend selected (no display, no pyplot state) into SVG that is
the same bytes for the same input: a fixed ``svg.hashsalt`` (matplotlib derives clip-path ids from it), no date or
creator metadata, glyphs drawn as paths (the page needs no font), XML comments removed, and every id prefixed
with the boot's anchor so several pictures can share one HTML page.
"""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")  # headless; a no-op when another part of the process already chose a non-GUI backend

from matplotlib.figure import Figure  # noqa: E402  (after the backend choice)
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from gen2sim.timeline import EXIT_CLASSES  # noqa: E402

#: Label and colour of each exit class (Okabe-Ito palette: tells classes apart with any colour vision).
CLASS_STYLE = {
    "port_io": ("port I/O", "#D55E00"),
    "msr": ("MSR", "#0072B2"),
    "mmio": ("MMIO", "#009E73"),
    "cpuid": ("CPUID", "#CC79A7"),
    "hlt": ("HLT", "#56B4E9"),
    "hypercall": ("hypercall", "#E69F00"),
}
VERDICT_COLOUR = {"booted": "#1A7F37", "bugcheck": "#CF222E", "hang": "#9A6700", "fault": "#8250DF",
                  "reset": "#BC4C00"}
OTHER_COLOUR = "#57606A"
#: Busiest bin / quietest non-empty bin from which the exits axis is logarithmic.
LOG_RANGE = 100
_RC = {
    "svg.hashsalt": "gen2hal-report",  # deterministic clip-path and marker ids
    "svg.fonttype": "path",  # text as paths: identical everywhere, no font needed by the browser
    "text.parse_math": False,  # a '$' in a function name is text, not mathtext
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.formatter.useoffset": False,
    "path.simplify": False,  # keep every bin edge (simplification depends on the data's extent)
}
_UNITS = ((1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs"), (1, "ns"))


def time_unit(span_ns: int) -> tuple[int, str]:
    """The largest unit (ns per unit, name) in which ``span_ns`` is at least 1."""
    for scale, name in _UNITS:
        if span_ns >= scale:
            return scale, name
    return 1, "ns"


def verdict_time_ns(result: dict, timeline: dict | None) -> int:
    """Where the verdict falls in virtual time: the bug-check record for a bug check, else the end of the run."""
    if result.get("verdict") == "bugcheck" and timeline:
        for event in timeline.get("events", []):
            if event.get("kind") == "bugcheck":
                return event["t_ns"]
    return result.get("virtual_time_us", 0) * 1000


def verdict_label(result: dict) -> str:
    """A short label of the verdict for the picture."""
    verdict = result.get("verdict")
    if verdict == "bugcheck" and isinstance(result.get("bugcheck"), dict):
        return f"bugcheck {result['bugcheck'].get('code', 0):#x}"
    if verdict == "hang" and isinstance(result.get("hang"), dict):
        h = result["hang"]
        where = f"hang in {h.get('function') or '?'}"
        polls = h.get("polls") or {}
        if polls.get("register"):
            where += f" polling {polls['register']}"
        elif polls.get("device"):
            where += f" polling {polls['device']} {hex_or(polls.get('port_or_address'))}"
        elif h.get("detail"):
            where += f" ({h['detail']})"
        return where
    if verdict == "fault" and isinstance(result.get("fault"), dict):
        return f"fault {result['fault'].get('kind')} in {result['fault'].get('function') or '?'}"
    return str(verdict)


def hex_or(v) -> str:
    """An integer in hex, anything else as text (empty for None)."""
    return f"{v:#x}" if isinstance(v, int) and not isinstance(v, bool) else ("" if v is None else str(v))


def _grouped(value, _pos=None) -> str:
    return f"{value:,.0f}"


def render_timeline(result: dict, timeline: dict | None, *, id_prefix: str) -> str:
    """The timeline picture of one boot as an inline ``<svg>`` element (text, deterministic)."""
    verdict = result.get("verdict")
    colour = VERDICT_COLOUR.get(verdict, OTHER_COLOUR)
    end_ns = result.get("virtual_time_us", 0) * 1000
    span = timeline["span_ns"] if timeline else max(end_ns + 1000, 1000)
    scale, unit = time_unit(span)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(10, 3.4))
        grid = fig.add_gridspec(2, 1, height_ratios=(5, 1), hspace=0.08, left=0.1, right=0.985, top=0.86,
                                bottom=0.15)
        ax = fig.add_subplot(grid[0])
        ticks_ax = fig.add_subplot(grid[1], sharex=ax)
        # A little room on the right: the verdict point of a run that ends at the span stays off the frame.
        ax.set_xlim(0, span * 1.01 / scale)
        ax.tick_params(labelbottom=False)
        ax.grid(axis="y", color="#D0D7DE", linewidth=0.5)
        ax.set_axisbelow(True)
        ticks_ax.set_yticks([])
        ticks_ax.set_ylim(0, 1)
        ticks_ax.set_xlabel(f"virtual time ({unit})")
        if timeline:
            bins = timeline["bins"]
            edges = [i * span / bins / scale for i in range(bins + 1)]
            bottom = [0] * bins
            handles = []
            for cls in EXIT_CLASSES:
                counts = timeline["exits"].get(cls)
                if not counts:
                    continue
                top = [b + c for b, c in zip(bottom, counts)]
                label, fill = CLASS_STYLE[cls]
                handles.append(ax.stairs(top, edges, baseline=bottom, fill=True, color=fill, linewidth=0,
                                         label=f"{label} {sum(counts):,}"))
                bottom = top
            peak = max(bottom) if bottom else 0
            quiet = min((n for n in bottom if n), default=0)
            bin_ns = span / bins
            b_scale, b_unit = time_unit(int(bin_ns) or 1)
            ylabel = f"exits per {bin_ns / b_scale:.3g} {b_unit}"
            if quiet and peak / quiet >= LOG_RANGE:
                # A storm next to quiet stretches (a poll loop, then idle ticks) would flatten the quiet part to
                # nothing on a linear axis; symlog keeps 0 at the baseline and shows both.
                ax.set_yscale("symlog", linthresh=1, linscale=0.4)
                ax.set_ylim(0, peak * 3)
                ylabel += "\n(log scale)"
            else:
                ax.set_ylim(0, max(peak * 1.15, 1))
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_formatter(FuncFormatter(_grouped))
            ax.set_ylabel(ylabel)
            if handles:
                ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(handles), frameon=False,
                          fontsize=8, handlelength=1.2, borderaxespad=0.2)
            else:
                ax.text(0.5, 0.5, "no intercepted operations", transform=ax.transAxes, ha="center", va="center",
                        color=OTHER_COLOUR)
            ticks = timeline["ticks"]
            if ticks.get("per_bin") is not None:
                per_bin = ticks["per_bin"]
                most = max(per_bin) or 1
                ticks_ax.stairs([n / most for n in per_bin], edges, fill=True, color="#24292F", linewidth=0)
            elif ticks["t_ns"]:
                ticks_ax.vlines([t / scale for t in ticks["t_ns"]], 0.1, 0.9, color="#24292F", linewidth=0.7)
            ticks_ax.set_ylabel(f"ticks\n{ticks['count']:,}", rotation=0, ha="right", va="center", fontsize=8)
        else:
            ax.set_ylim(0, 1)
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no timeline: the boot JSON has no 'timeline' and no trace (.jsonl) lies beside it",
                    transform=ax.transAxes, ha="center", va="center", color=OTHER_COLOUR)
            ticks_ax.set_ylabel("ticks\n?", rotation=0, ha="right", va="center", fontsize=8)

        hal_init = result.get("hal_init_virtual_us")
        if isinstance(hal_init, int) and verdict != "load-error":
            # The scenario starts HalInitializeProcessor at virtual time ~0, so the duration is also the instant.
            for a in (ax, ticks_ax):
                a.axvline(hal_init * 1000 / scale, color=OTHER_COLOUR, linestyle="--", linewidth=0.8)
            ax.annotate("HAL init done", (hal_init * 1000 / scale, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -10), textcoords="offset points", fontsize=7, color=OTHER_COLOUR)
        hang = result.get("hang") if verdict == "hang" else None
        if isinstance(hang, dict) and isinstance(hang.get("virtual_time_us"), int):
            start = max(end_ns - hang["virtual_time_us"] * 1000, 0)
            for a in (ax, ticks_ax):
                a.axvspan(start / scale, end_ns / scale, color=colour, alpha=0.12, linewidth=0)
        if verdict != "load-error":
            at = verdict_time_ns(result, timeline) / scale
            for a in (ax, ticks_ax):
                a.axvline(at, color=colour, linewidth=1.6)
            right = at > 0.6 * span / scale
            ax.annotate(verdict_label(result), (at, 0.97), xycoords=("data", "axes fraction"),
                        xytext=(-4 if right else 4, 0), textcoords="offset points",
                        ha="right" if right else "left", va="top", fontsize=8, color=colour, fontweight="bold")
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return _inline(buf.getvalue(), id_prefix)


_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'\b((?:xlink:)?href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")


def _inline(svg: str, prefix: str) -> str:
    """Make matplotlib's SVG document fit inside an HTML page: no prolog, comments or metadata; unique ids."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = _HREF.sub(lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"', svg)
    svg = _URL.sub(lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r"\n\s*\n", "\n", svg)
    return svg.replace("<svg ", '<svg role="img" class="timeline" ', 1).strip()
