"""The machine model's record of every intercepted operation.

Each record is one JSON line: virtual time, kind, the device it reached, the port /
MSR / address, the value, and the guest function that was running.  The records
are kept in memory (a boot is short) and hashed for the determinism check.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Callable, Iterable

from .clock import PS_PER_NS, VirtualClock

#: Which exit class each intercepted kind counts against (the ``exits`` figures).
EXIT_CLASS = {
    "port_in": "port_io",
    "port_out": "port_io",
    "msr_read": "msr",
    "msr_write": "msr",
    "mmio_read": "mmio",
    "mmio_write": "mmio",
    "cpuid": "cpuid",
    "hlt": "hlt",
    "hypercall": "hypercall",
}
EXIT_CLASSES = ("port_io", "msr", "mmio", "cpuid", "hlt", "hypercall")


class Trace:
    """Append-only list of trace records plus exit counters.

    ``locate`` is set by the CPU core: it returns the name of the guest function
    at the current instruction pointer, so devices never need to know about it.
    """

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.records: list[dict] = []
        self.exits: Counter[str] = Counter()
        self.locate: Callable[[], str | None] = lambda: None

    def record(
        self,
        kind: str,
        *,
        device: str | None = None,
        address: int | None = None,
        value: int | None = None,
        size: int | None = None,
        detail: str | None = None,
    ) -> dict:
        """Append one record; intercepted kinds also count as an exit of their class."""
        rec = {
            "t_ns": self.clock.now // PS_PER_NS,
            "kind": kind,
            "device": device,
            "address": address,
            "value": value,
            "size": size,
            "function": self.locate(),
        }
        if detail is not None:
            rec["detail"] = detail
        self.records.append(rec)
        cls = EXIT_CLASS.get(kind)
        if cls is not None:
            self.exits[cls] += 1
        return rec

    def exit_count(self) -> int:
        """Total intercepted operations so far."""
        return sum(self.exits.values())

    def lines(self) -> Iterable[str]:
        """The records as canonical JSON lines: ``json.dumps(rec, sort_keys=True, separators=(",", ":"))``."""
        for rec in self.records:
            yield canonical_line(rec)

    def sha256(self) -> str:
        """SHA-256 of the JSON-lines trace: equal for equal runs."""
        digest = hashlib.sha256()
        for line in self.lines():
            digest.update(line.encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def write(self, path) -> None:
        """Write the JSON-lines trace to ``path``."""
        with open(path, "w", encoding="utf-8") as fh:
            for line in self.lines():
                fh.write(line + "\n")


_STANDARD_KEYS = frozenset(("t_ns", "kind", "device", "address", "value", "size", "function"))
_encode_str = json.encoder.encode_basestring_ascii


def _int_or_null(value) -> str | None:
    if value is None:
        return "null"
    return str(value) if type(value) is int else None


def _str_or_null(value) -> str | None:
    if value is None:
        return "null"
    return _encode_str(value) if type(value) is str else None


def canonical_line(rec: dict) -> str:
    """One record as canonical JSON (sorted keys, no spaces).

    A boot that polls a port leaves millions of records, and hashing them through the generic encoder took longer
    than running the guest; records of ``Trace.record``'s shape are formatted directly, anything else goes through
    ``json.dumps``.  Both give the same bytes (a test compares them over a real boot's trace).
    """
    keys = rec.keys()
    if keys == _STANDARD_KEYS or (len(keys) == 8 and "detail" in rec and keys - {"detail"} == _STANDARD_KEYS):
        parts = (_int_or_null(rec["address"]), _str_or_null(rec.get("detail")), _str_or_null(rec["device"]),
                 _str_or_null(rec["function"]), _str_or_null(rec["kind"]), _int_or_null(rec["size"]),
                 _int_or_null(rec["t_ns"]), _int_or_null(rec["value"]))
        if None not in parts:
            address, detail, device, function, kind, size, t_ns, value = parts
            detail_part = f'"detail":{detail},' if "detail" in rec else ""
            return (f'{{"address":{address},{detail_part}"device":{device},"function":{function},"kind":{kind},'
                    f'"size":{size},"t_ns":{t_ns},"value":{value}}}')
    return json.dumps(rec, sort_keys=True, separators=(",", ":"))
