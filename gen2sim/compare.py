"""``gen2hal compare A B``: two boots of the machine model side by side.

A and B are each a boot result (``boot.json``, with its JSON-lines trace beside it as ``boot.jsonl``: ``gen2hal
boot --json boot.json --trace boot.jsonl``) or a hal.dll, which is booted here with ``--target``/``--platform``.
Any x64 HAL works, including the stock ``hal.dll`` of a Windows 7 SP1 install (docs/windows7.md).

What is compared:

* **verdicts** and **figures** side by side (HAL init time, ticks, tick period, drift, exits per QPC and per tick,
  exits by class, legacy touches, dispatch-table slots the HAL filled);
* **touch counts by device**: intercepted operations (port, MSR, MMIO, CPUID, HLT, hypercall) per device;
* **the first divergence**: the traces walked record by record; the first record whose *operation* differs.
  An operation is (kind, device, port/MSR/address, value for writes, called kernel routine for kernel calls,
  bug-check code, guest function). Read values and times are not part of it: they differ between any two runs
  that are not bit-identical, without the HALs doing anything different;
* **the first divergence that matters**: the two operation sequences are aligned (runs of a repeated operation,
  e.g. a polling loop, count once; ``difflib`` finds the longest common blocks). A stretch that only one HAL
  executes, entirely in guest functions the other HAL never runs, is a *detour* (the variant's Hyper-V set-up,
  bookkeeping of one HAL): it is listed but skipped. The first other difference -- both run the same code but do
  different things, or one stops where the other goes on -- is the divergence that matters. It is reported with
  the guest function on each side and, when the function plays a role of the generator's hal_src profile (e.g.
  ``HalpVerifyPcatCompatibility`` = ``madt-check``), that role.

Deterministic: same inputs, same text and JSON.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .trace import EXIT_CLASS, TraceFormatError, expand_records

#: Beyond this many collapsed operations per side the alignment is skipped (quadratic worst case); the literal
#: first divergence is still reported.
MAX_ALIGN = 60000
WRITE_KINDS = {"port_out", "msr_write", "mmio_write"}
PROFILE = Path(__file__).resolve().parent.parent / "generator" / "profiles" / "hal_src.toml"


class CompareError(Exception):
    """An input cannot be read or booted (exit status 2)."""


@dataclass
class Run:
    """One side of the comparison: its label, the boot result and the trace records (None when absent)."""

    label: str
    result: dict
    records: list[dict] | None
    source: str = ""
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- inputs
def _read_trace(path: Path) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise CompareError(f"{path}:{lineno}: not a JSON line: {exc.msg}") from None
    try:
        return list(expand_records(records, f"{path}: record"))  # repeat records (trace format 2) expanded
    except TraceFormatError as exc:
        raise CompareError(str(exc)) from None


def load_json_run(path: Path, label: str) -> Run:
    """A boot JSON and the trace beside it (same name, ``.jsonl``); a ``.jsonl`` path names the pair too."""
    if path.suffix == ".jsonl":
        path = path.with_suffix(".json")
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}: not JSON: {exc.msg}") from None
    if not isinstance(result, dict) or "verdict" not in result:
        raise CompareError(f"{path}: not a gen2hal boot result (no 'verdict')")
    trace = path.with_suffix(".jsonl")
    run = Run(label, result, None, str(path))
    if trace.is_file():
        run.records = _read_trace(trace)
    else:
        run.notes.append(f"no trace beside {path.name} ({trace.name}): no divergence, touch counts from exits only")
    return run


def boot_run(dll: Path, label: str, target: str, platform: str, **kw) -> Run:
    """Boot ``dll`` on the model and keep its trace in memory."""
    from .scenario import boot

    run = boot(str(dll), target, platform, **kw)
    records = list(run.machine.trace.iter_expanded()) if run.machine is not None else None
    return Run(label, run.result, records, str(dll))


def load_input(text: str, label: str, target: str | None, platform: str, **kw) -> Run:
    """``text`` is a boot JSON (or its trace) or a DLL; a DLL needs ``target``."""
    path = Path(text)
    if not path.is_file():
        raise CompareError(f"{text}: no such file")
    if path.suffix.lower() in (".json", ".jsonl"):
        return load_json_run(path, label)
    if target is None:
        raise CompareError(f"{text}: booting a DLL needs --target")
    return boot_run(path, label, target, platform, **kw)


# ---------------------------------------------------------------------------------------------------- operations
def _called(detail: str | None) -> str:
    """The kernel routine a ``kernel_call`` record names ("KeBugCheckEx(0x79, ...)" -> "KeBugCheckEx")."""
    text = (detail or "").strip()
    for sep in ("(", " "):
        text = text.split(sep, 1)[0]
    return text


def op_key(rec: dict) -> tuple:
    """The operation a record stands for (what two HALs doing the same thing have in common)."""
    kind = rec.get("kind")
    if kind == "kernel_call":
        what = _called(rec.get("detail"))
    elif kind in WRITE_KINDS or kind in ("bugcheck", "tick"):
        what = rec.get("value") if kind != "tick" else None
    else:
        what = None
    return (kind, rec.get("device"), rec.get("address") if kind != "kernel_call" else None, what,
            rec.get("function"))


def describe(rec: dict | None) -> str:
    """One line for a record: operation, device, address, value."""
    if rec is None:
        return "(trace ended)"
    kind = rec.get("kind")
    if kind == "kernel_call":
        return f"kernel call {rec.get('detail')}"
    parts = [str(kind)]
    if rec.get("device"):
        parts.append(str(rec["device"]))
    if rec.get("address") is not None:
        parts.append(f"{rec['address']:#x}")
    if rec.get("value") is not None:
        parts.append(("<- " if kind in WRITE_KINDS else "= ") + f"{rec['value']:#x}")
    if rec.get("detail"):
        parts.append(str(rec["detail"]))
    return " ".join(parts)


def _collapse(keys: list[tuple]) -> tuple[list[tuple], list[int]]:
    """Runs of one repeated operation, and of a repeated pair (index write + data read), count once.

    Returns the collapsed keys and, for each, the index of its first record.
    """
    out: list[tuple] = []
    starts: list[int] = []
    i, n = 0, len(keys)
    while i < n:
        out.append(keys[i])
        starts.append(i)
        j = i + 1
        while j < n and keys[j] == keys[i]:
            j += 1
        if j == i + 1 and i + 3 < n and keys[i + 2] == keys[i] and keys[i + 3] == keys[i + 1]:
            # A repeated pair: keep one pair.
            out.append(keys[i + 1])
            starts.append(i + 1)
            j = i + 2
            while j + 1 < n and keys[j] == keys[i] and keys[j + 1] == keys[i + 1]:
                j += 2
        i = j
    return out, starts


def _roles() -> dict[str, str]:
    """Guest function -> generator role (hal_src profile), for naming what a divergence is about."""
    try:
        raw = tomllib.loads(PROFILE.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {r["function"]: r["name"] for r in raw.get("roles", []) if r.get("function") and r.get("action") == "replace"}


def _point(run: Run, index: int | None) -> dict:
    """A trace position as JSON: record index, virtual time, guest function, operation."""
    recs = run.records or []
    rec = recs[index] if index is not None and index < len(recs) else None
    return {"index": index if rec is not None else len(recs), "t_ns": rec.get("t_ns") if rec else None,
            "function": rec.get("function") if rec else None, "operation": describe(rec)}


def first_divergence(a: Run, b: Run) -> dict | None:
    """The first record whose operation differs (or where one trace ends); None when the traces are equal."""
    ra, rb = a.records, b.records
    if ra is None or rb is None:
        return None
    for i in range(min(len(ra), len(rb))):
        if op_key(ra[i]) != op_key(rb[i]):
            return {"a": _point(a, i), "b": _point(b, i)}
    if len(ra) == len(rb):
        return None
    i = min(len(ra), len(rb))
    return {"a": _point(a, i), "b": _point(b, i)}


def divergence_that_matters(a: Run, b: Run) -> dict | None:
    """The first difference after detours are skipped (module docstring); None when there is none."""
    if a.records is None or b.records is None:
        return None
    ka, kb = [op_key(r) for r in a.records], [op_key(r) for r in b.records]
    ca, sa = _collapse(ka)
    cb, sb = _collapse(kb)
    if len(ca) > MAX_ALIGN or len(cb) > MAX_ALIGN:
        return {"skipped": f"traces too long to align ({len(ca)} and {len(cb)} distinct steps; limit {MAX_ALIGN})"}
    funcs_a = {k[4] for k in ka}
    funcs_b = {k[4] for k in kb}
    roles = _roles()
    detours = []
    matcher = difflib.SequenceMatcher(None, ca, cb, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        only_a = {k[4] for k in ca[i1:i2]}
        only_b = {k[4] for k in cb[j1:j2]}
        if tag == "insert" and not (only_b & funcs_a) and j2 < len(cb):
            detours.append({"side": "b", "functions": sorted(f or "?" for f in only_b), "steps": j2 - j1,
                            "from": _point(b, sb[j1])})
            continue
        if tag == "delete" and not (only_a & funcs_b) and i2 < len(ca):
            detours.append({"side": "a", "functions": sorted(f or "?" for f in only_a), "steps": i2 - i1,
                            "from": _point(a, sa[i1])})
            continue
        pa = _point(a, sa[i1] if i1 < len(sa) else len(a.records))
        pb = _point(b, sb[j1] if j1 < len(sb) else len(b.records))
        out = {"a": pa, "b": pb, "detours_skipped": detours}
        role = roles.get(pa["function"]) or roles.get(pb["function"])
        if role:
            out["role"] = role
        return out
    return {"a": None, "b": None, "detours_skipped": detours} if detours else None


# ---------------------------------------------------------------------------------------------------- figures
def touches_by_device(run: Run) -> dict[str, int]:
    """Intercepted operations per device (from the trace; from the exit classes when there is none)."""
    if run.records is None:
        return {f"({cls})": n for cls, n in (run.result.get("exits") or {}).items() if cls != "total" and n}
    counts = Counter(str(r.get("device")) for r in run.records if r.get("kind") in EXIT_CLASS)
    return dict(sorted(counts.items()))


def verdict_text(result: dict) -> str:
    """The verdict in one line: code and parameters of a bug check, where a hang or fault happened."""
    verdict = result.get("verdict")
    if verdict == "bugcheck" and result.get("bugcheck"):
        b = result["bugcheck"]
        text = f"bugcheck {b.get('code', 0):#x} ({', '.join(hex(p) for p in b.get('params', []))})"
        return text + (f" in {b['function']}" if b.get("function") else "") + f" via {b.get('reported_via')}"
    if verdict == "hang" and result.get("hang"):
        h = result["hang"]
        polls = h.get("polls") or {}
        where = polls.get("port_or_address")
        return f"hang in {h.get('function')}" + (f" polling {polls.get('device')} {where:#x}" if where is not None else "")
    if verdict == "fault" and result.get("fault"):
        f = result["fault"]
        return f"fault {f.get('kind')} in {f.get('function')}: {f.get('detail')}"
    if verdict == "load-error" and result.get("load_error"):
        return f"load-error: {result['load_error'].get('reason')}"
    if verdict == "misbehaved" and result.get("misbehaved"):
        return f"misbehaved: {result['misbehaved'].get('detail')}"
    return str(verdict)


def figures(result: dict) -> dict:
    """The figures compared side by side."""
    period = result.get("tick_period_ns") or {}
    inc = (result.get("time_increment_100ns") or {}).get("announced")
    error = None
    if period.get("mean") and inc:
        error = round((period["mean"] - inc[0] * 100) / (inc[0] * 100) * 100, 6)
    tables = (result.get("dispatch") or {}).get("tables") or {}
    filled = sum(1 for t in tables.values() for owner in (t.get("slots") or {}).values() if owner == "hal")
    return {
        "hal_init_virtual_us": result.get("hal_init_virtual_us"),
        "ticks": result.get("ticks"),
        "tick_period_ms": round(period["mean"] / 1e6, 6) if period.get("mean") else None,
        "tick_period_error_percent": error,
        "time_increment_announced": inc[0] if inc else None,
        "drift_ppm": result.get("drift_ppm"),
        "exits_per_qpc": result.get("exits_per_qpc"),
        "exits_per_tick": result.get("exits_per_tick"),
        "exits_total": (result.get("exits") or {}).get("total"),
        "qpc_frequency": (result.get("qpc") or {}).get("frequency"),
        "legacy_touches": sum(t.get("count", 0) for t in result.get("legacy_touches") or []),
        "dispatch_slots_filled_by_hal": filled if tables else None,
        "virtual_time_us": result.get("virtual_time_us"),
        "guest_instructions": result.get("guest_instructions"),
        "trace_records": result.get("trace_records"),
    }


def compare(a: Run, b: Run) -> dict:
    """The comparison as a JSON-able dict."""
    ta, tb = touches_by_device(a), touches_by_device(b)
    return {
        "a": {"label": a.label, "source": a.source, "hal": a.result.get("hal"), "target": a.result.get("target"),
              "platform": a.result.get("platform"), "verdict": a.result.get("verdict"),
              "verdict_text": verdict_text(a.result), "notes": a.notes},
        "b": {"label": b.label, "source": b.source, "hal": b.result.get("hal"), "target": b.result.get("target"),
              "platform": b.result.get("platform"), "verdict": b.result.get("verdict"),
              "verdict_text": verdict_text(b.result), "notes": b.notes},
        "same_trace": (a.result.get("trace_sha256") is not None
                       and a.result.get("trace_sha256") == b.result.get("trace_sha256")),
        "first_divergence": first_divergence(a, b),
        "first_divergence_that_matters": divergence_that_matters(a, b),
        "touches_by_device": {dev: [ta.get(dev, 0), tb.get(dev, 0)] for dev in sorted(set(ta) | set(tb))},
        "figures": {k: [v, figures(b.result)[k]] for k, v in figures(a.result).items()},
    }


# ---------------------------------------------------------------------------------------------------- text
def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _point_text(p: dict | None) -> str:
    if p is None:
        return "-"
    t = f"t={p['t_ns'] / 1000:.3f} us" if p.get("t_ns") is not None else "t=-"
    return f"record {p['index']}, {t}, in {p.get('function') or '?'}: {p['operation']}"


def text(cmp: dict) -> str:
    """The comparison as readable text."""
    a, b = cmp["a"], cmp["b"]
    lines = [f"A: {a['source']}  ({a['target']} on {a['platform']})",
             f"B: {b['source']}  ({b['target']} on {b['platform']})",
             "", "verdicts",
             f"  A  {a['verdict_text']}",
             f"  B  {b['verdict_text']}"]
    for side in (a, b):
        for note in side["notes"]:
            lines.append(f"  note ({side['label']}): {note}")
    lines += ["", "first divergence (record by record)"]
    fd = cmp["first_divergence"]
    if cmp["same_trace"]:
        lines.append("  none: the traces are identical")
    elif fd is None:
        lines.append("  not available (a trace is missing)" if any(s["notes"] for s in (a, b)) else "  none")
    else:
        lines += [f"  A  {_point_text(fd['a'])}", f"  B  {_point_text(fd['b'])}"]
    lines += ["", "first divergence that matters (detours of one HAL skipped)"]
    dm = cmp["first_divergence_that_matters"]
    if dm is None:
        lines.append("  none" if fd is None else "  none beyond detours")
    elif "skipped" in dm:
        lines.append(f"  not computed: {dm['skipped']}")
    else:
        for d in dm.get("detours_skipped", []):
            lines.append(f"  detour in {d['side'].upper()} only: {d['steps']} step(s) in "
                         f"{', '.join(d['functions'][:6])}{' ...' if len(d['functions']) > 6 else ''}")
        if dm.get("a") is None:
            lines.append("  none beyond detours")
        else:
            if dm.get("role"):
                lines.append(f"  role: {dm['role']} (generator profile hal_src)")
            lines += [f"  A  {_point_text(dm['a'])}", f"  B  {_point_text(dm['b'])}"]
    lines += ["", "touches by device (intercepted operations)", f"  {'device':<20} {'A':>12} {'B':>12}"]
    for dev, (na, nb) in cmp["touches_by_device"].items():
        lines.append(f"  {dev:<20} {na:>12} {nb:>12}")
    lines += ["", "figures", f"  {'figure':<30} {'A':>16} {'B':>16}"]
    for name, (va, vb) in cmp["figures"].items():
        lines.append(f"  {name:<30} {_fmt(va):>16} {_fmt(vb):>16}")
    return "\n".join(lines)


def to_json(cmp: dict) -> str:
    """Canonical JSON (sorted keys)."""
    return json.dumps(cmp, indent=2, sort_keys=True, default=str)
