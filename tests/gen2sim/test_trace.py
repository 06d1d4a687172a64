"""The trace's canonical JSON lines: the fast formatter gives exactly the generic encoder's bytes."""

from __future__ import annotations

import hashlib
import json

from gen2sim.clock import VirtualClock
from gen2sim.trace import Trace, canonical_line


def _generic(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True, separators=(",", ":"))


def test_fast_lines_equal_the_generic_encoder(tmp_path):
    clock = VirtualClock()
    trace = Trace(clock)
    trace.locate = lambda: "HalpCalibrateStallExecution"
    trace.record("port_in", device="rtc", address=0x71, value=0x80, size=1)
    trace.record("port_out", device="absent", address=0x20, value=None, size=1)
    clock.advance(1234567)
    trace.record("note", device="kernel", detail='DbgPrint "é\\n"\tdone')
    trace.record("kernel_call", device=None, address=None, value=None, size=None, detail="x")
    trace.records.append({"t_ns": 1, "kind": "odd", "value": 1.5, "extra": [1, {"b": True}]})  # generic path
    for rec in trace.records:
        assert canonical_line(rec) == _generic(rec)
    out = tmp_path / "t.jsonl"
    trace.write(out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == trace.sha256()


def test_bool_is_not_formatted_as_an_int():
    rec = {"t_ns": 0, "kind": "k", "device": "d", "address": True, "value": False, "size": 1, "function": None}
    assert canonical_line(rec) == _generic(rec)
