"""The machine model's record of every intercepted operation.

Each record is one JSON line: virtual time, kind, the device it reached, the port /
MSR / address, the value, and the guest function that was running.  The records
are kept in memory (a boot is short) and hashed for the determinism check.

Trace format 2 adds one compact record, ``repeat``: when the CPU core fast-forwards a
polling loop (``gen2sim.fastforward``), the iterations it skipped are not written one by
one.  ``{"kind": "repeat", "t_ns": T, "count": N, "records": K, "period_ns": P}`` says
that the K plain records just before it (one iteration) happen N more times, repetition
r (1..N) at ``t_ns + r * P`` each; a record listed in ``counters`` (``{"record": j,
"hz", "t0_ps", "base", "sign", "shift", "mask", "at_ps"}``) read a counter, and its
value in repetition r is the counter at ``at_ps + r * P * 1000`` (``gen2sim.ffplan.Counter``).
``T`` is the time of the first record of repetition 1.  Everything a boot reports
from its trace -- ``trace_records``, ``trace_sha256``, exit counts, the timeline -- is
defined over the *expanded* sequence, so a fast-forwarded run and a step-by-step run
of the same boot report the same figures and hash (the hash is that of the JSON lines
the step-by-step run writes).
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections import Counter
from itertools import chain
from typing import Callable, Iterable, Iterator

from .clock import PS_PER_NS, VirtualClock
from .ffplan import Counter as ValueCounter

#: Version of the JSON-lines trace layout (2: the compact ``repeat`` record).
TRACE_FORMAT = 2
REPEAT = "repeat"
#: The most plain records one repeat may refer to (a reader keeps this many).
MAX_TEMPLATE = 256

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


class TraceFormatError(ValueError):
    """A repeat record that cannot be expanded; ``where`` names the record."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


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
        self._extra = 0  # expanded records beyond len(records), from repeats

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

    # -- compact repetition -------------------------------------------------------------------------
    def repeat(self, count: int, records: int, period_ns: int, counters: dict[int, tuple] | None = None) -> dict:
        """Append a ``repeat`` record: the last ``records`` plain records happen ``count`` more times, every
        ``period_ns``; ``counters`` maps a record's index in that iteration to ``(Counter, at_ps)`` when its value
        follows a counter.  Their exits count ``count`` times more."""
        template = self.records[-records:] if records > 0 else []
        if count < 1 or len(template) != records or records > MAX_TEMPLATE \
                or any(r.get("kind") == REPEAT for r in template):
            raise ValueError(f"repeat of {records} records x {count}: the iteration must be the last plain records")
        rec = {"kind": REPEAT, "t_ns": template[0]["t_ns"] + period_ns, "count": count, "records": records,
               "period_ns": period_ns}
        if counters:
            rec["counters"] = [dict(counter.to_json(), record=j, at_ps=at_ps)
                               for j, (counter, at_ps) in sorted(counters.items())]
        self.records.append(rec)
        self._extra += count * records - 1
        for r in template:
            cls = EXIT_CLASS.get(r["kind"])
            if cls is not None:
                self.exits[cls] += count
        return rec

    def count(self) -> int:
        """Number of records of the expanded trace (what a step-by-step run records)."""
        return len(self.records) + self._extra

    def iter_expanded(self, start: int = 0, stop: int | None = None) -> Iterator[dict]:
        """The expanded records with index in ``[start, stop)`` (repeats turned into plain records)."""
        stop = self.count() if stop is None else stop
        pos = 0
        for i, rec in enumerate(self.records):
            if pos >= stop:
                return
            if rec.get("kind") != REPEAT:
                if pos >= start:
                    yield rec
                pos += 1
                continue
            k, n = rec["records"], rec["count"]
            end = pos + k * n
            if end > start:
                first = max(start - pos, 0)
                yield from _expand(self.records[i - k:i], rec, first, min(stop, end) - pos)
            pos = end

    def weighted(self) -> Iterator[tuple[dict, int]]:
        """``(record, weight)``: each plain record once, and for a repeat its iteration's records again with the
        repeat's count -- for consumers that count records and care about neither time nor counter values."""
        for i, rec in enumerate(self.records):
            if rec.get("kind") == REPEAT:
                for r in self.records[i - rec["records"]:i]:
                    yield r, rec["count"]
            else:
                yield rec, 1

    def find_last(self, start: int, stop: int, predicate: Callable[[dict], bool]) -> dict | None:
        """The last expanded record with index in ``[start, stop)`` that ``predicate`` accepts (which must depend
        on neither ``t_ns`` nor a counter's value: a repeat is judged by its iteration's records)."""
        end = self.count()
        for i in range(len(self.records) - 1, -1, -1):
            rec = self.records[i]
            repeat = rec.get("kind") == REPEAT
            size = rec["records"] * rec["count"] if repeat else 1
            first = end - size
            if first < stop and end > start:
                if not repeat:
                    if predicate(rec):
                        return rec
                else:
                    k = rec["records"]
                    template = self.records[i - k:i]
                    lo, hi = max(start, first) - first, min(stop, end) - first  # offsets inside the expansion
                    best = max((_last_offset(lo, hi, j, k) for j, r in enumerate(template) if predicate(r)),
                               default=None)
                    if best is not None and best >= 0:
                        return next(_expand(template, rec, best, best + 1))
            if first <= start:
                return None
            end = first
        return None

    # -- output ---------------------------------------------------------------------------------------
    def lines(self) -> Iterable[str]:
        """The records as written: canonical JSON lines (``json.dumps(rec, sort_keys=True, separators=(",",
        ":"))``), repeats compact."""
        for rec in self.records:
            yield canonical_line(rec)

    def sha256(self) -> str:
        """SHA-256 of the expanded JSON-lines trace: equal for equal runs, fast-forwarded or not."""
        with _Hasher() as digest:
            batch: list[str] = []
            for i, rec in enumerate(self.records):
                if rec.get("kind") == REPEAT:
                    digest.update("".join(batch).encode())
                    batch.clear()
                    for chunk in repeat_bytes(self.records[i - rec["records"]:i], rec):
                        digest.update(chunk)
                else:
                    batch.append(canonical_line(rec) + "\n")
                    if len(batch) >= 4096:
                        digest.update("".join(batch).encode())
                        batch.clear()
            digest.update("".join(batch).encode())
        return digest.hexdigest()

    def write(self, path) -> None:
        """Write the JSON-lines trace (format ``TRACE_FORMAT``: repeats compact) to ``path``."""
        with open(path, "w", encoding="utf-8") as fh:
            for line in self.lines():
                fh.write(line + "\n")


class _Hasher:
    """SHA-256 fed in order from this thread and computed in another: hashlib releases the GIL on large blocks, so
    hashing overlaps with formatting the next lines.  Use as a context manager; ``hexdigest`` after it."""

    BLOCK = 1 << 20

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(8)
        self._pending: list[bytes] = []
        self._size = 0
        self._thread = threading.Thread(target=self._work, name="trace-sha256", daemon=True)

    def _work(self) -> None:
        while True:
            block = self._queue.get()
            if block is None:
                return
            self._digest.update(block)

    def __enter__(self) -> "_Hasher":
        self._thread.start()
        return self

    def update(self, data: bytes) -> None:
        """Hash ``data`` after everything given before."""
        if len(data) >= self.BLOCK // 4:  # large enough to go as it is: no copy
            self._flush()
            self._queue.put(data)
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size >= self.BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._queue.put(b"".join(self._pending))
            self._pending, self._size = [], 0

    def __exit__(self, *exc) -> None:
        self._flush()
        self._queue.put(None)
        self._thread.join()

    def hexdigest(self) -> str:
        """The digest of everything given (once the ``with`` block is left)."""
        return self._digest.hexdigest()


def _last_offset(lo: int, hi: int, j: int, k: int) -> int:
    """The largest offset in ``[lo, hi)`` congruent to ``j`` modulo ``k`` (-1 if none)."""
    if hi <= lo:
        return -1
    top_ = hi - 1
    off = top_ - ((top_ - j) % k)
    return off if off >= lo else -1


def _counters(rep: dict) -> dict[int, tuple[ValueCounter, int]]:
    return {c["record"]: (ValueCounter.from_json(c), c["at_ps"]) for c in rep.get("counters", ())}


def _expand(template: list[dict], rep: dict, first: int, stop: int) -> Iterator[dict]:
    """Records of a repeat's expansion with offset in ``[first, stop)`` (offset 0: repetition 1, record 0)."""
    k, period = rep["records"], rep["period_ns"]
    counters = _counters(rep)
    for off in range(first, stop):
        r, j = off // k + 1, off % k
        rec = dict(template[j])
        rec["t_ns"] = template[j]["t_ns"] + r * period
        if j in counters:
            counter, at_ps = counters[j]
            rec["value"] = counter.value(at_ps + r * period * PS_PER_NS)
        yield rec


def check_repeat(rec: dict, template: list[dict], where: str) -> None:
    """Check a repeat record read from a file against the plain records before it; raises ``TraceFormatError``."""
    for key in ("t_ns", "count", "records", "period_ns"):
        v = rec.get(key)
        if type(v) is not int or v < (1 if key in ("count", "records") else 0):
            raise TraceFormatError(where, f"repeat field {key!r} must be a {'positive' if key in ('count', 'records') else 'non-negative'} integer, not {v!r}")
    k = rec["records"]
    if k > MAX_TEMPLATE:
        raise TraceFormatError(where, f"repeat of {k} records: at most {MAX_TEMPLATE}")
    if len(template) < k:
        raise TraceFormatError(where, f"repeat of the last {k} records, but only {len(template)} plain records "
                                      f"precede it")
    if rec["t_ns"] != template[-k]["t_ns"] + rec["period_ns"]:
        raise TraceFormatError(where, "repeat t_ns is not the first repeated record's time")
    for c in rec.get("counters", ()):
        try:
            ValueCounter.from_json(c)
            ok = type(c["record"]) is int and 0 <= c["record"] < k and type(c["at_ps"]) is int
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise TraceFormatError(where, f"repeat counter {c!r} is malformed")


def expand_records(records: Iterable[dict], where: str = "record") -> Iterator[dict]:
    """Turn a trace's records (format 1 or 2, e.g. read from a file) into plain records."""
    recent: list[dict] = []
    for index, rec in enumerate(records):
        if rec.get("kind") == REPEAT:
            template = recent[-rec.get("records", 0):] if isinstance(rec.get("records"), int) else []
            check_repeat(rec, recent, f"{where} {index}")
            yield from _expand(template, rec, 0, rec["records"] * rec["count"])
        else:
            recent.append(rec)
            if len(recent) > 2 * MAX_TEMPLATE:
                del recent[:MAX_TEMPLATE]
            yield rec


_MARK_T, _MARK_V = "\x00T", "\x00V"


def _line_format(rec: dict, value_varies: bool) -> str:
    """The canonical line of ``rec`` as a %-format with ``%d`` for t_ns (and the value), newline included."""
    probe = dict(rec, t_ns=_MARK_T)
    if value_varies:
        probe["value"] = _MARK_V
    line = json.dumps(probe, sort_keys=True, separators=(",", ":")).replace("%", "%%")
    for mark in (_MARK_T, _MARK_V) if value_varies else (_MARK_T,):
        quoted = json.dumps(mark)
        if line.count(quoted) != 1:
            raise ValueError(f"record {rec!r} cannot be used as a repeat template")
        line = line.replace(quoted, "%d")
    return line + "\n"


def repeat_bytes(template: list[dict], rep: dict, chunk: int = 4096) -> Iterator[bytes]:
    """The canonical JSON lines of a repeat's expansion, as bytes in chunks: formatting many lines with one bytes
    %-operation is what keeps hashing millions of skipped iterations well under a second."""
    k, n, period = rep["records"], rep["count"], rep["period_ns"]
    counters = _counters(rep)
    unit = "".join(_line_format(template[j], j in counters) for j in range(k)).encode("ascii")
    r = 1
    while r <= n:
        c = min(chunk, n - r + 1)
        columns: list = []
        for j in range(k):
            t = template[j]["t_ns"]
            columns.append(range(t + r * period, t + (r + c) * period, period))
            if j in counters:
                counter, at_ps = counters[j]
                step = period * PS_PER_NS
                columns.append([counter.value(at_ps + q * step) for q in range(r, r + c)])
        yield (unit * c) % tuple(chain.from_iterable(zip(*columns)))
        r += c


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
