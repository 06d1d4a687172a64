"""JSON output, the JSON-lines trace and the one-screen human summary of a boot."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def waits_text(waits: dict) -> str:
    """How a hang that reads no device waits: "spinning on memory, interrupts on; waiting for an interrupt
    through pin 8 vector 0xd1" (the scenario's ``hang.waits``)."""
    pins = ", ".join(f"pin {p['pin']} vector {p['vector']:#x}" for p in waits.get("unmasked_ioapic_pins", []))
    return ("spinning on memory, interrupts " + ("on" if waits.get("interrupts_enabled") else "off")
            + f"; waiting for an interrupt through {pins or 'no unmasked IOAPIC input'}")


def _atomic_write(path: str | Path, write) -> None:
    """Write through a temporary file in the same directory, then rename (no half-written outputs)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent or Path(".")))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def to_json(result: dict) -> str:
    """Canonical JSON of a result (sorted keys): equal for equal runs."""
    return json.dumps(result, indent=2, sort_keys=True, default=str)


def write_json(result: dict, path: str | Path) -> None:
    """Write the result JSON atomically."""
    _atomic_write(path, lambda fh: fh.write(to_json(result) + "\n"))


def write_trace(trace, path: str | Path) -> None:
    """Write the JSON-lines trace atomically."""
    def write(fh):
        for line in trace.lines():
            fh.write(line + "\n")
    _atomic_write(path, write)


def _hex(v) -> str:
    return f"{v:#x}" if isinstance(v, int) else str(v)


def properties_lines(result: dict) -> list[str]:
    """The judged properties of a boot that ran to its end: one line naming those kept, one per broken property
    with its figure; none for a boot that was not judged."""
    props = result.get("properties") or []
    if not props:
        return []
    kept = [p["property"] for p in props if p.get("ok")]
    out = [f"properties kept: {', '.join(kept) or 'none'} (bounds: specs/verdict_bounds.toml)"]
    out += [f"  BROKEN {p['property']}: {p.get('detail')}" for p in props if not p.get("ok")]
    return out


def summary(result: dict) -> str:
    """A short human-readable summary (one screen)."""
    lines = [f"{result.get('hal')}  target {result.get('target')}  platform {result.get('platform')}"
             + (f"  hv-clear {','.join(result['hv_clear'])}" if result.get("hv_clear") else "")]
    verdict = result.get("verdict")
    line = f"verdict: {verdict}"
    if verdict == "bugcheck" and result.get("bugcheck"):
        b = result["bugcheck"]
        name = f" {b['name']}" if b.get("name") else ""
        params = ", ".join(_hex(p) for p in b.get("params", []))
        line += f"  code {_hex(b.get('code'))}{name} ({params})  reported via {b.get('reported_via')}"
        if b.get("function"):
            line += f"  in {b['function']}"
    elif verdict == "hang" and result.get("hang"):
        h = result["hang"]
        line += f"  in {h.get('function')} at {_hex(h.get('address'))} after {h.get('virtual_time_us')} us"
        polls = h.get("polls")
        if h.get("waits"):
            line += "  " + waits_text(h["waits"])
        if polls:
            line += f"  polling {polls.get('device')} {_hex(polls.get('port_or_address'))}"
            if polls.get("register"):
                line += f" ({polls['register']})"
        elif h.get("detail"):
            line += f"  ({h['detail']})"
    elif verdict == "fault" and result.get("fault"):
        f = result["fault"]
        line += f"  {f.get('kind')} in {f.get('function')} at {_hex(f.get('address'))}: {f.get('detail')}"
    elif verdict == "load-error" and result.get("load_error"):
        line += f"  {result['load_error'].get('reason')}"
    elif verdict == "misbehaved" and result.get("misbehaved"):
        line += f"  {result['misbehaved'].get('detail')}"
    lines.append(line)
    lines.extend(properties_lines(result))
    if verdict != "load-error":
        tp = result.get("tick_period_ns")
        inc = result.get("time_increment_100ns") or {}
        lines.append(f"ticks: {result.get('ticks')}"
                     + (f"  period {tp['mean'] / 1e6:.4f} ms (min {tp['min'] / 1e6:.4f}, max {tp['max'] / 1e6:.4f})"
                        if tp else "")
                     + (f"  increment announced {inc.get('announced')}" if inc.get("announced") else "")
                     + (f"  drift {result['drift_ppm']} ppm" if result.get("drift_ppm") is not None else ""))
        lines.append(f"HAL init: {result.get('hal_init_virtual_us')} us virtual   guest instructions: "
                     f"{result.get('guest_instructions')}   virtual time: {result.get('virtual_time_us')} us")
        ex = result.get("exits") or {}
        lines.append("exits: " + "  ".join(f"{k} {v}" for k, v in ex.items())
                     + f"   per QPC {result.get('exits_per_qpc')}   per tick {result.get('exits_per_tick')}")
        touches = result.get("legacy_touches") or []
        if touches:
            lines.append("legacy touches:")
            for t in touches[:10]:
                lines.append(f"  {t['device']:<16} {_hex(t['port_or_address']):>8} x{t['count']:<8} "
                             f"first in {t['first_function']}")
            if len(touches) > 10:
                lines.append(f"  ... {len(touches) - 10} more")
        if result.get("debug_output"):
            lines.append("debug output: " + " | ".join(s.strip() for s in result["debug_output"][:5]))
    lines.append(f"trace sha256: {result.get('trace_sha256')}")
    return "\n".join(lines)
