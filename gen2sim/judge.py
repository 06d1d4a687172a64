"""Judging a boot that ran to its end: is it correct, or did it misbehave?

A boot without a fault, hang or bug check is ``booted`` only when it keeps every property below within the bounds
of ``specs/verdict_bounds.toml`` (each bound with its reason); otherwise it is ``misbehaved`` and each broken
property is named with its figure:

- ``clock``: the clock ticked during idle, at the period the HAL announced (KeSetTimeIncrement): the increments it
  passed are within the announced range and system time drifts from virtual time by at most the bound;
- ``qpc``: KeQueryPerformanceCounter is monotonic, reports a frequency and counts at it (rate error bound);
- ``stall``: KeStallExecutionProcessor stalls for the time asked (error bound);
- ``idle``: HalProcessorIdle halts (HLT or Hyper-V GUEST_IDLE) on every call;
- ``exports``: every export the kernel calls at boot is present and was called;
- ``kernel-data``: the HAL read no kernel function's code as though it were a variable.

``load_bounds()`` reads the bounds, ``judge(result, evidence)`` lists the properties, ``bounds_text()`` says the
bounds and their reasons in prose (for ``--help`` and the report).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from specs import SPECS_DIR, SpecError

BOUNDS_PATH = SPECS_DIR / "verdict_bounds.toml"
#: The properties, in the order they are judged and printed.
PROPERTIES = ("clock", "qpc", "stall", "idle", "exports", "kernel-data")
_SECTIONS = {"clock": "clock", "qpc": "qpc", "stall": "stall", "idle": "idle", "exports": "exports",
             "kernel-data": "kernel_data"}


@dataclass(frozen=True)
class Bounds:
    """The bounds a ``booted`` verdict requires, with the reason of each property (by property name)."""

    max_drift_ppm: float
    min_idle_ticks: int
    max_qpc_rate_error_ppm: float
    max_stall_error_ppm: float
    min_halts_per_call: float
    boot_exports: tuple[str, ...]
    reasons: dict[str, str]
    path: str


def _number(table: dict, key: str, where: str, *, integer: bool = False) -> float:
    value = table.get(key)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        raise SpecError(f"{where}.{key}: expected a non-negative {'integer' if integer else 'number'}, "
                        f"got {value!r}")
    return value


def load_bounds(path: str | Path | None = None) -> Bounds:
    """Read and check the bounds file (default ``specs/verdict_bounds.toml``).

    Raises ``SpecError`` naming the file and field when it is missing, unreadable or a field is not what it
    should be.
    """
    path = Path(path) if path is not None else BOUNDS_PATH
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the verdict bounds: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    tables = {}
    for prop, section in _SECTIONS.items():
        table = data.get(section)
        if not isinstance(table, dict):
            raise SpecError(f"{path}: [{section}]: missing section (expected the bounds of property {prop!r})")
        reason = table.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise SpecError(f"{path}: [{section}].reason: expected a non-empty string saying why")
        tables[prop] = table
    exports = tables["exports"].get("boot")
    if not isinstance(exports, list) or not exports or not all(isinstance(n, str) and n for n in exports):
        raise SpecError(f"{path}: [exports].boot: expected a non-empty list of export names, got {exports!r}")
    return Bounds(
        max_drift_ppm=_number(tables["clock"], "max_drift_ppm", f"{path}: [clock]"),
        min_idle_ticks=int(_number(tables["clock"], "min_idle_ticks", f"{path}: [clock]", integer=True)),
        max_qpc_rate_error_ppm=_number(tables["qpc"], "max_rate_error_ppm", f"{path}: [qpc]"),
        max_stall_error_ppm=_number(tables["stall"], "max_error_ppm", f"{path}: [stall]"),
        min_halts_per_call=_number(tables["idle"], "min_halts_per_call", f"{path}: [idle]"),
        boot_exports=tuple(exports),
        reasons={prop: " ".join(tables[prop]["reason"].split()) for prop in PROPERTIES},
        path=str(path))


def bounds_text(bounds: Bounds | None = None) -> list[str]:
    """One line per property: its bound and its reason (printed by ``gen2hal boot --help`` and the report)."""
    b = bounds or load_bounds()
    figures = {
        "clock": f"|drift| <= {_n(b.max_drift_ppm)} ppm, >= {b.min_idle_ticks} ticks in idle, increments within "
                 f"the announced range",
        "qpc": f"monotonic, |rate error| <= {_n(b.max_qpc_rate_error_ppm)} ppm",
        "stall": f"|error| <= {_n(b.max_stall_error_ppm)} ppm of the time asked",
        "idle": f">= {_n(b.min_halts_per_call)} halt per HalProcessorIdle call",
        "exports": "present and called: " + ", ".join(b.boot_exports),
        "kernel-data": "no read of a kernel function as a variable",
    }
    return [f"{prop}: {figures[prop]} ({b.reasons[prop]})" for prop in PROPERTIES]


def _n(value: float) -> str:
    """A figure as people read it: 14,625,000 / -0.06 / 500."""
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _property(name: str, broken: list[str], figure, bound) -> dict:
    return {"property": name, "ok": not broken, "figure": figure, "bound": bound,
            "detail": "; ".join(broken) if broken else None}


def _clock(result: dict, evidence: dict, b: Bounds) -> dict:
    broken = []
    ticks = evidence.get("idle", {}).get("ticks", 0)
    drift = result.get("drift_ppm")
    announced = (result.get("time_increment_100ns") or {}).get("announced")
    increments = evidence.get("increments") or []
    if ticks < b.min_idle_ticks:
        broken.append(f"{ticks} clock ticks in the idle window (at least {b.min_idle_ticks} expected)")
    if not announced:
        broken.append("the HAL never announced its clock period (KeSetTimeIncrement not called)")
    elif increments:
        high, low = max(announced), min(announced)
        outside = sorted({i for i in increments if not low <= i <= high})
        if outside:
            broken.append(f"increments {', '.join(map(str, outside[:4]))} x100 ns passed to the kernel lie outside "
                          f"the announced range {low}..{high}")
    if drift is None:
        if ticks >= b.min_idle_ticks:
            broken.append("drift could not be measured")
    elif abs(drift) > b.max_drift_ppm:
        broken.append(f"drift {_n(drift)} ppm (bound {_n(b.max_drift_ppm)})")
    return _property("clock", broken, {"drift_ppm": drift, "idle_ticks": ticks, "announced": announced},
                     {"max_drift_ppm": b.max_drift_ppm, "min_idle_ticks": b.min_idle_ticks})


def _qpc(result: dict, b: Bounds) -> dict:
    qpc = result.get("qpc")
    broken = []
    if not qpc:
        broken.append("not measured: the HAL does not export KeQueryPerformanceCounter")
    else:
        if not qpc.get("monotonic"):
            broken.append("the counter went backwards")
        if not qpc.get("frequency"):
            broken.append("the reported frequency is 0")
        error = qpc.get("rate_error_ppm")
        if error is None and qpc.get("frequency"):
            broken.append("rate could not be measured")
        elif error is not None and abs(error) > b.max_qpc_rate_error_ppm:
            broken.append(f"rate error {_n(error)} ppm at reported frequency {qpc.get('frequency')} Hz "
                          f"(bound {_n(b.max_qpc_rate_error_ppm)})")
    figure = None if not qpc else {k: qpc.get(k) for k in ("frequency", "monotonic", "rate_error_ppm")}
    return _property("qpc", broken, figure, {"max_rate_error_ppm": b.max_qpc_rate_error_ppm})


def _stall(result: dict, b: Bounds) -> dict:
    stall = result.get("stall")
    broken, errors = [], []
    if not stall:
        broken.append("not measured: the HAL does not export KeStallExecutionProcessor")
    else:
        asked = stall["requested_us"]
        errors = [round((t - asked) / asked * 1e6, 3) for t in stall["measured_us"]]
        worst = max(errors, key=abs)
        if abs(worst) > b.max_stall_error_ppm:
            taken = stall["measured_us"][errors.index(worst)]
            broken.append(f"KeStallExecutionProcessor({asked}) took {_n(taken)} us: error {_n(worst)} ppm "
                          f"(bound {_n(b.max_stall_error_ppm)})")
    return _property("stall", broken, {"error_ppm": errors} if stall else None,
                     {"max_error_ppm": b.max_stall_error_ppm})


def _idle(evidence: dict, b: Bounds) -> dict:
    idle = evidence.get("idle", {})
    calls, halts = idle.get("calls", 0), idle.get("halts", 0)
    broken = []
    if calls and halts < b.min_halts_per_call * calls:
        broken.append(f"{halts} halts in {calls} HalProcessorIdle calls (at least {_n(b.min_halts_per_call)} per "
                      f"call expected)")
    elif not calls:
        broken.append("HalProcessorIdle was not called")
    return _property("idle", broken, {"calls": calls, "halts": halts}, {"min_halts_per_call": b.min_halts_per_call})


def _exports(evidence: dict, b: Bounds) -> dict:
    present, called = set(evidence.get("exports", ())), evidence.get("called", {})
    missing = [n for n in b.boot_exports if n not in present]
    uncalled = [n for n in b.boot_exports if n in present and not called.get(n)]
    broken = []
    if missing:
        broken.append("not exported: " + ", ".join(missing))
    if uncalled:
        broken.append("never called: " + ", ".join(uncalled))
    return _property("exports", broken, {"missing": missing, "not_called": uncalled},
                     {"boot": list(b.boot_exports)})


def _kernel_data(evidence: dict) -> dict:
    reads = evidence.get("stub_reads") or []
    broken = [f"{r['function'] or 'HAL code'} read {r['name']} as data (a kernel function: its code bytes "
              f"{r['value']:#x}, not a value)" for r in reads[:4]]
    return _property("kernel-data", broken, {"function_reads": len(reads)}, None)


def judge(result: dict, evidence: dict, bounds: Bounds | None = None) -> list[dict]:
    """Each property of a boot that ran to its end, judged against the bounds.

    ``result`` carries the scenario's figures (``drift_ppm``, ``time_increment_100ns``, ``qpc``, ``stall``);
    ``evidence`` what the scenario saw: ``exports`` (the HAL's export names), ``called`` ({export: calls by the
    boot}), ``idle`` ({calls, halts, ticks} in the idle window), ``increments`` (the increments passed with each
    idle tick), ``stub_reads`` ([{name, function, value}]).  Returns one dict per property: ``property``, ``ok``,
    ``figure``, ``bound``, ``detail`` (what broke, with its figure; None when ok) and ``reason`` (why the bound).
    """
    b = bounds or load_bounds()
    properties = [_clock(result, evidence, b), _qpc(result, b), _stall(result, b), _idle(evidence, b),
                  _exports(evidence, b), _kernel_data(evidence)]
    for p in properties:
        p["reason"] = b.reasons[p["property"]]
    return properties


def broken_text(properties: list[dict]) -> str:
    """The broken properties in one line: "clock: drift 14625000 ppm (bound 500); idle: ..."."""
    return "; ".join(f"{p['property']}: {p['detail']}" for p in properties if not p["ok"])


__all__ = ["Bounds", "BOUNDS_PATH", "PROPERTIES", "load_bounds", "bounds_text", "judge", "broken_text"]
