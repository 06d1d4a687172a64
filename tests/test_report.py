"""The HTML report (``gen2hal report``, ``generator.report``): tables match the JSON they came from, every boot has
its picture, hangs and bug checks read as such, same input -> same bytes, bad input -> exit 2 naming file and field,
and the page renders in headless Chromium without console errors.

The boot JSONs are built here, shaped like gen2sim's results (``gen2sim.scenario._finish``); one more is made by a
real ``gen2hal boot`` of the built reference HAL on gen2 when the toolchain is present.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from generator import cli
from generator.report import Progress, make_report
from gen2sim.timeline import (EXIT_CLASSES, MAX_TICK_TIMES, TimelineError, check_timeline,
                                       timeline_from_trace, timeline_summary)

from conftest import REPO, run_scons

# ---- fake but schema-valid boots -------------------------------------------------------------------------------


def _rec(t_ns, kind, device=None, address=None, value=None, size=None, function=None, detail=None) -> dict:
    rec = {"t_ns": t_ns, "kind": kind, "device": device, "address": address, "value": value, "size": size,
           "function": function}
    if detail is not None:
        rec["detail"] = detail
    return rec


def _lines(records) -> bytes:
    """The trace as gen2sim writes it (canonical JSON lines); its SHA-256 is the boot JSON's trace_sha256."""
    return b"".join(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in records)


def _result(hal, target, platform, verdict, records, virtual_time_us, **extra) -> dict:
    """A boot result with every field gen2sim writes (values consistent with ``records``)."""
    exits = {cls: 0 for cls in EXIT_CLASSES}
    classes = {"port_in": "port_io", "port_out": "port_io", "msr_read": "msr", "msr_write": "msr",
               "mmio_read": "mmio", "mmio_write": "mmio", "cpuid": "cpuid", "hlt": "hlt", "hypercall": "hypercall"}
    for r in records:
        if r["kind"] in classes:
            exits[classes[r["kind"]]] += 1
    exits["total"] = sum(exits.values())
    ticks = sum(1 for r in records if r["kind"] == "tick")
    result = {
        "hal": hal, "target": target, "platform": platform, "hv_clear": [], "madt_pcat": None, "seconds": 1.0,
        "verdict": verdict, "bugcheck": None, "hang": None, "fault": None, "load_error": None,
        "ticks": ticks, "tick_period_ns": None, "time_increment_100ns": {"announced": None, "per_tick": None},
        "drift_ppm": None, "hal_init_virtual_us": None, "exits": exits, "exits_per_qpc": None,
        "exits_per_tick": None, "qpc": None, "stall": None, "legacy_touches": [], "debug_output": [],
        "serial_output": "", "virtual_time_us": virtual_time_us, "guest_instructions": 1000 + len(records) * 3,
        "trace_records": len(records), "trace_sha256": hashlib.sha256(_lines(records)).hexdigest(),
    }
    result.update(extra)
    return result


def booted_boot():
    """A Hyper-V-aware HAL on gen2: MSR/hypercall setup, then 64 Hz synthetic-timer ticks for a second."""
    recs = [_rec(1000, "cpuid", "cpu", 0x40000000, 0, None, "HvpDetect")]
    recs += [_rec(2000 + i * 1000, "msr_write", "hyperv", 0x40000000 + i, 1, None, "HvpInitialize") for i in range(5)]
    recs.append(_rec(8000, "hypercall", "hyperv", 0x1, 0, None, "HvpInitialize"))
    t = 20_000
    for i in range(64):
        t = 20_000 + i * 15_625_000
        recs.append(_rec(t, "interrupt", "synic", 0, 0xD1, None, "HalProcessorIdle", detail="STIMER0"))
        recs.append(_rec(t + 1000, "tick", "kernel", None, 156250, None, "kernel!KeUpdateSystemTime"))
        recs.append(_rec(t + 2000, "msr_write", "lapic", 0x80B, 0, None, "HalpClockInterrupt"))
        recs.append(_rec(t + 3000, "hlt", "cpu", None, None, None, "HalProcessorIdle"))
    for i in range(64):
        recs.append(_rec(t + 10_000 + i * 1000, "msr_read", "hyperv", 0x40000020, i, None, "KeQueryPerformanceCounter"))
    vt = (t + 80_000) // 1000
    return _result("build/reactos-amd64/gen2/hal.dll", "reactos-amd64", "gen2", "booted", recs, vt,
                   ticks=64, tick_period_ns={"mean": 15625000.0, "min": 15625000.0, "max": 15625000.0},
                   time_increment_100ns={"announced": [156250, 156250],
                                         "per_tick": {"mean": 156250.0, "min": 156250.0, "max": 156250.0}},
                   drift_ppm=0.0, hal_init_virtual_us=12, exits_per_qpc=1.0, exits_per_tick=2.0,
                   qpc={"frequency": 10000000, "monotonic": True, "exits_per_call": 1.0, "rate_error_ppm": 0.0},
                   stall={"requested_us": 1000, "measured_us": [1000.0, 1000.0, 1000.0, 1000.0]},
                   debug_output=["gen2hal: Hyper-V HAL <synthetic clock>\n"]), recs


def bugcheck_boot():
    """The reference HAL on gen2: the MADT PC-AT check bug-checks 0x79 (6, 0, 0, 0)."""
    recs = [_rec(1015, "cpuid", "cpu", 1, 0, None, "HalpInitializeLocalApic"),
            _rec(2022, "msr_read", "lapic", 0x1B, 0xFEE00900, None, "HalpInitializeLocalApic")]
    recs += [_rec(3065 + i * 1000, "mmio_read", "lapic", 0xFEE00020 + i * 16, 0, 4, "HalpInitializeLocalApic")
             for i in range(11)]
    recs.append(_rec(15212, "kernel_call", "kernel", None, None, None, "kernel!KeBugCheckEx",
                     detail="KeBugCheckEx(0x79, 0x6, 0x0, 0x0, 0x0)"))
    recs.append(_rec(15212, "bugcheck", "kernel", None, 0x79, None, "kernel!KeBugCheckEx"))
    return _result("build/reactos-amd64/reference/hal.dll", "reactos-amd64", "gen2", "bugcheck", recs, 15,
                   bugcheck={"code": 0x79, "params": [6, 0, 0, 0], "reported_via": "KeBugCheckEx",
                             "function": "HalpVerifyPcatCompatibility"}), recs


def hang_boot():
    """The reference HAL on gen2 with the PC-AT flag forced: it polls RTC register A's UIP bit forever."""
    recs = [_rec(1000, "port_out", "absent", 0x20, 0x11, 1, "HalpInitializeLegacyPICs"),
            _rec(2000, "port_out", "rtc", 0x70, 0x0A, 1, "HalpCalibrateStallExecution")]
    recs += [_rec(3000 + i * 1033, "port_in", "rtc", 0x71, 0x26, 1, "HalpCalibrateStallExecution")
             for i in range(5000)]
    vt = (3000 + 5000 * 1033) // 1000
    return _result("build/win7sp1-amd64/reference/hal.dll", "win7sp1-amd64", "gen2", "hang", recs, vt,
                   hang={"function": "HalpCalibrateStallExecution", "address": 0xFFFFF800016029D0,
                         "called": "HalInitSystem", "virtual_time_us": vt - 2,
                         "polls": {"device": "rtc", "port_or_address": 0x71, "reads": 5000,
                                   "register": "RTC register A"}},
                   legacy_touches=[{"device": "8259", "port_or_address": 0x20, "count": 1,
                                    "first_function": "HalpInitializeLegacyPICs"},
                                   {"device": "RTC register A", "port_or_address": 0x71, "count": 5000,
                                    "first_function": "HalpCalibrateStallExecution"}]), recs


def write_runs(folder: Path) -> dict[str, Path]:
    """The three fake boots: booted with its timeline in the JSON, the bug check with its trace beside it (the
    report computes the timeline), the hang with its timeline in the JSON.  Returns {verdict: json path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for make, with_timeline in ((booted_boot, True), (bugcheck_boot, False), (hang_boot, True)):
        result, recs = make()
        path = folder / f"boot-{result['verdict']}.json"
        if with_timeline:
            result["timeline"] = timeline_summary(recs, result["virtual_time_us"])
        else:
            path.with_suffix(".jsonl").write_bytes(_lines(recs))
        path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths[result["verdict"]] = path
    return paths


ANALYSIS = {
    "version": 1, "profile": "hal_src", "target": "reactos-amd64", "files": ["apic/tsc.c", "generic/pic.c"],
    "exports": ["HalInitSystem"], "functions": [], "call_graph": {}, "calls": [],
    "touch_points": [
        {"class": "8259", "detail": "write 0x20 master 8259 <- 0x11", "file": "generic/pic.c", "line": 15,
         "column": 5, "function": "HalpInitializeLegacyPICs", "access": "write", "port": 32, "in_loop": False,
         "legacy_read": False, "reachable": True,
         "call_path": ["HalInitSystem", "HalpInitSystemPhase0", "HalpInitializeLegacyPICs"]},
        {"class": "rtc", "detail": "read 0x71 CMOS/RTC 0x0A (register A)", "file": "apic/tsc.c", "line": 39,
         "column": 9, "function": "HalpCalibrateStallExecution", "access": "read", "port": 113, "in_loop": True,
         "legacy_read": True, "poll_loop_line": 38, "reachable": True, "rtc_use": "calibration",
         "call_path": ["HalInitSystem", "HalpInitSystemPhase0", "HalpCalibrateStallExecution"]},
        {"class": "pit", "detail": "write 0x43 8254 PIT <- 0xB6", "file": "generic/beep.c", "line": 27,
         "column": 5, "function": "HalpUnusedBeep", "access": "write", "port": 67, "in_loop": False,
         "legacy_read": False, "reachable": False, "call_path": []},
        {"class": "msr", "detail": "rdmsr 0x1B APIC base", "file": "apic/apic.c", "line": 50, "column": 5,
         "function": "HalpInitializeLocalApic", "access": "read", "number": 27, "in_loop": False,
         "legacy_read": False, "reachable": True, "call_path": ["HalInitializeProcessor", "HalpInitializeLocalApic"]},
    ],
    "lints": [{"kind": "legacy-port-poll", "file": "apic/tsc.c", "line": 39, "function": "HalpCalibrateStallExecution",
               "message": "loop polls a legacy rtc port <never ends>",
               "call_path": ["HalInitSystem", "HalpInitSystemPhase0", "HalpCalibrateStallExecution"]}],
    "totals": {},
}
CHANGES = """# Changes: Hyper-V Generation 2 variant of `hal_src`

Generated by gen2hal generate; features: `apic-only`.

## Edits

### acpi/madt.c:120 Replaced `HalpVerifyPcatCompatibility` <b>bold?</b>

- What: MADT check accepts flags = 0; no bug check 0x79/6.
- Why: a Generation 2 MADT has flags = 0 & <script>alert(1)</script>.
"""


# ---- parsing the page ---------------------------------------------------------------------------------------------

class Page(HTMLParser):
    """A small DOM: every element with its attributes, text and children (enough to read tables back)."""

    VOID = {"meta", "br", "img", "hr", "link", "input", "col", "path", "use", "rect", "line", "circle", "stop"}

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = {"tag": "#root", "attrs": {}, "children": [], "text": []}
        self.stack = [self.root]
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = {"tag": tag, "attrs": dict(attrs), "children": [], "text": []}
        self.stack[-1]["children"].append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1]["children"].append({"tag": tag, "attrs": dict(attrs), "children": [], "text": []})

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1]["text"].append(data)
        self.stack[-1]["children"].append(data)


def walk(node):
    """Every element under ``node`` (depth first, document order)."""
    for child in node["children"]:
        if isinstance(child, dict):
            yield child
            yield from walk(child)


def text(node) -> str:
    """The text content of an element (whitespace collapsed)."""
    parts = []

    def go(n):
        for child in n["children"]:
            if isinstance(child, str):
                parts.append(child)
            else:
                go(child)
    go(node)
    return " ".join(" ".join(parts).split())


def find(node, tag=None, **attrs):
    """Elements under ``node`` with ``tag`` whose attributes contain ``attrs`` (class_ matches one class)."""
    out = []
    for el in walk(node):
        if tag and el["tag"] != tag:
            continue
        ok = True
        for k, v in attrs.items():
            if k == "class_":
                ok = v in el["attrs"].get("class", "").split()
            else:
                ok = el["attrs"].get(k.replace("_", "-")) == v
            if not ok:
                break
        if ok:
            out.append(el)
    return out


def by_id(node, ident):
    hits = [el for el in walk(node) if el["attrs"].get("id") == ident]
    assert len(hits) == 1, f"id {ident!r}: {len(hits)} elements"
    return hits[0]


def render(tmp_path, runs, *extra) -> tuple[int, str, str, Path]:
    """Run ``gen2hal report`` in-process; returns (status, stdout, stderr, index.html)."""
    out = tmp_path / "out"
    import contextlib
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        status = cli.main(["report", *[str(r) for r in runs], "--out", str(out), *[str(e) for e in extra]])
    return status, so.getvalue(), se.getvalue(), out / "index.html"


@pytest.fixture()
def fake(tmp_path):
    """Three fake boots, an analysis and a change list, rendered; returns what a test needs."""
    paths = write_runs(tmp_path / "runs")
    (tmp_path / "analysis.json").write_text(json.dumps(ANALYSIS), encoding="utf-8")
    (tmp_path / "CHANGES.md").write_text(CHANGES, encoding="utf-8")
    status, stdout, stderr, index = render(tmp_path, [tmp_path / "runs"], "--analysis", tmp_path / "analysis.json",
                                           "--changes", tmp_path / "CHANGES.md")
    assert status == 0, stderr
    html = index.read_text(encoding="utf-8")
    results = {v: json.loads(p.read_text()) for v, p in paths.items()}
    return {"paths": paths, "results": results, "html": html, "page": Page(html).root, "stdout": stdout,
            "stderr": stderr, "index": index, "tmp": tmp_path}


# ---- the timeline summary -----------------------------------------------------------------------------------------

def test_timeline_summary_bins_counts_ticks_and_events():
    result, recs = booted_boot()
    s = timeline_summary(recs, result["virtual_time_us"], bins=50)
    assert check_timeline(s) is s
    assert s["bins"] == 50 and s["span_ns"] == (result["virtual_time_us"] + 1) * 1000
    for cls, n in result["exits"].items():
        if cls != "total":
            assert sum(s["exits"].get(cls, [0])) == n, cls
    assert "port_io" not in s["exits"]  # a class that never occurred is left out
    assert s["ticks"]["count"] == 64 and s["ticks"]["t_ns"] == [r["t_ns"] for r in recs if r["kind"] == "tick"]
    assert s["ticks"]["per_bin"] is None
    assert sum(s["interrupts"]) == 64
    # Most exits first, ties by name.
    assert s["functions"][:3] == [["HalProcessorIdle", 64], ["HalpClockInterrupt", 64],
                                  ["KeQueryPerformanceCounter", 64]]
    # The bug-check record is where the verdict point of a bug check goes.
    bresult, brecs = bugcheck_boot()
    assert timeline_summary(brecs, 15)["events"] == [
        {"kind": "bugcheck", "t_ns": 15212, "value": 0x79, "function": "kernel!KeBugCheckEx"}]
    # JSON round trip and determinism.
    assert json.loads(json.dumps(s)) == s == timeline_summary(iter(recs), result["virtual_time_us"], bins=50)


def test_timeline_summary_tick_storm_and_late_records():
    recs = [_rec(i * 100, "tick", "kernel") for i in range(MAX_TICK_TIMES + 500)]
    recs.append(_rec(10**9, "port_in", "rtc", 0x71))  # past virtual_time_us: counted in the last bin
    s = timeline_summary(recs, 1000, bins=10)
    assert s["ticks"]["count"] == MAX_TICK_TIMES + 500 and len(s["ticks"]["t_ns"]) == MAX_TICK_TIMES
    assert sum(s["ticks"]["per_bin"]) == MAX_TICK_TIMES + 500
    assert s["exits"]["port_io"][-1] == 1
    with pytest.raises(ValueError):
        timeline_summary([], -1)
    with pytest.raises(TimelineError):
        timeline_summary([{"kind": "tick"}], 10)


def test_timeline_from_trace_checks_the_hash(tmp_path):
    result, recs = bugcheck_boot()
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(_lines(recs))
    assert timeline_from_trace(trace, 15, expect_sha256=result["trace_sha256"]) == timeline_summary(recs, 15)
    with pytest.raises(TimelineError, match="trace_sha256"):
        timeline_from_trace(trace, 15, expect_sha256="0" * 64)


# ---- the page against its JSON ------------------------------------------------------------------------------------

def test_matrix_cells_match_the_json(fake):
    page, results = fake["page"], fake["results"]
    matrix = by_id(page, "verdict-matrix")
    cells = find(matrix, "a", class_="verdict")
    assert len(cells) == len(results)
    seen = set()
    for a in cells:
        row = next(tr for tr in find(matrix, "tr") if a in list(walk(tr)))
        td = next(td for td in find(row, "td", class_="cell") if a in list(walk(td)))
        r = next(r for r in results.values() if r["hal"] == row["attrs"]["data-hal"]
                 and r["target"] == row["attrs"]["data-target"] and r["platform"] == td["attrs"]["data-platform"])
        attrs = a["attrs"]
        assert attrs["data-verdict"] == r["verdict"]
        shown = text(a)
        if r["verdict"] == "bugcheck":
            assert attrs["data-code"] == hex(r["bugcheck"]["code"])
            assert attrs["data-params"].split(",") == [hex(p) for p in r["bugcheck"]["params"]]
            assert f"bugcheck {r['bugcheck']['code']:#x}" in shown and "(0x6, 0x0, 0x0, 0x0)" in shown
            assert r["bugcheck"]["function"] in shown
        elif r["verdict"] == "hang":
            assert attrs["data-function"] == r["hang"]["function"] and r["hang"]["function"] in shown
            assert attrs["data-register"] == r["hang"]["polls"]["register"] and "RTC register A" in shown
            assert "polling rtc 0x71" in shown
        else:
            assert shown.startswith("booted") and "64 ticks" in shown
        # The cell links to the boot's own section, which says the same verdict.
        article = by_id(page, attrs["href"][1:])
        assert article["attrs"]["data-verdict"] == r["verdict"]
        seen.add(r["verdict"])
    assert seen == {"booted", "bugcheck", "hang"}
    # Columns are the platforms the runs used; a (HAL, target) with no boot on a platform says so.
    assert [th["attrs"]["data-platform"] for th in find(matrix, "th") if "data-platform" in th["attrs"]] == ["gen2"]


def test_figures_match_the_json(fake):
    page, results = fake["page"], fake["results"]
    articles = find(page, "article", class_="boot")
    assert len(articles) == 3
    for article in articles:
        r = next(r for r in results.values() if r["verdict"] == article["attrs"]["data-verdict"])
        fields = {td["attrs"]["data-field"]: td for td in find(article, "td") if "data-field" in td["attrs"]}
        for name in ("virtual_time_us", "guest_instructions", "hal_init_virtual_us", "ticks", "tick_period_ns",
                     "drift_ppm", "exits_per_qpc", "exits_per_tick", "trace_sha256"):
            assert json.loads(fields[name]["attrs"]["data-value"]) == r[name], name
        for cls, n in r["exits"].items():
            cell = fields[f"exits.{cls}"]
            assert json.loads(cell["attrs"]["data-value"]) == n and text(cell) == f"{n:,}", cls
        assert f"{r['guest_instructions']:,}" == text(fields["guest_instructions"])
        assert r["trace_sha256"] in text(fields["trace_sha256"])
        touches = find(article, "table", class_="touches")
        if r["legacy_touches"]:
            rows = find(touches[0], "tbody")[0]
            got = [[text(td) for td in find(tr, "td")] for tr in find(rows, "tr")]
            assert got == [[t["device"], hex(t["port_or_address"]), f"{t['count']:,}", t["first_function"]]
                           for t in r["legacy_touches"]]
        else:
            assert not touches
    booted = next(a for a in articles if a["attrs"]["data-verdict"] == "booted")
    assert "15.6250 ms" in text(booted) and "10,000,000 Hz, monotonic" in text(booted)


def test_every_boot_has_its_picture(fake):
    page = fake["page"]
    for article in find(page, "article", class_="boot"):
        figure = find(article, "figure", class_="timeline")
        assert len(figure) == 1 and len(find(figure[0], "svg")) == 1, article["attrs"]["id"]
        assert find(figure[0], "path"), "the picture draws something"
    # Inline SVGs share one document: their ids must not collide.
    ids = [el["attrs"]["id"] for el in walk(page) if "id" in el["attrs"]]
    assert len(ids) == len(set(ids))
    # The bug check's timeline was computed from the trace beside its JSON, the others came in the JSON.
    inputs = text(by_id(page, "inputs"))
    assert "boot-bugcheck.json" in inputs and "timeline from trace" in inputs and "timeline from json" in inputs


def test_hang_and_bugcheck_are_shown_as_such(fake):
    page, stdout = fake["page"], fake["stdout"]
    hang = next(a for a in find(page, "article") if a["attrs"].get("data-verdict") == "hang")
    bug = next(a for a in find(page, "article") if a["attrs"].get("data-verdict") == "bugcheck")
    assert find(hang, "span", class_="v-hang")[0]["attrs"]["class"] == "badge v-hang"
    assert "hang" in text(find(hang, "h3")[0])
    assert "in HalpCalibrateStallExecution" in text(hang) and "polling rtc 0x71 (RTC register A)" in text(hang)
    assert "bugcheck 0x79" in text(find(bug, "h3")[0]) and "(0x6, 0x0, 0x0, 0x0)" in text(bug)
    # The plain-text verdict table says the same.
    lines = stdout.splitlines()
    assert lines[0].split()[:5] == ["HAL", "target", "platform", "verdict", "detail"]
    hang_line = next(line for line in lines if " hang " in line)
    assert "HalpCalibrateStallExecution" in hang_line and "RTC register A" in hang_line
    bug_line = next(line for line in lines if "bugcheck 0x79" in line)
    assert "(0x6, 0x0, 0x0, 0x0)" in bug_line and "HalpVerifyPcatCompatibility" in bug_line
    assert any(" booted " in line for line in lines)
    assert stdout.rstrip().endswith("index.html")


def test_touch_points_and_change_list(fake):
    page = fake["page"]
    table = by_id(page, "touch-points-1")
    rows = find(find(table, "tbody")[0], "tr")
    legacy = [t for t in ANALYSIS["touch_points"] if t["class"] in ("8259", "rtc", "pit")]
    assert len(rows) == len(legacy)
    for tr, t in zip(rows, legacy):
        cells = [text(td) for td in find(tr, "td")]
        assert cells[0] == t["class"] and cells[1] == f"{t['file']}:{t['line']}" and cells[2] == t["function"]
        assert cells[3] == t["detail"]
        assert cells[5] == (" → ".join(t["call_path"]) if t["call_path"] else "(not reachable from an export)")
    other = find(by_id(page, "other-touch-points-1"), "tr")[1:]
    assert [text(find(tr, "td")[2]) for tr in other] == ["HalpInitializeLocalApic"]
    lints = find(by_id(page, "lints-1"), "tr")[1:]
    assert "loop polls a legacy rtc port <never ends>" in text(lints[0])
    changes = by_id(page, "changes-1")
    assert "Replaced HalpVerifyPcatCompatibility <b>bold?</b>" in text(changes)
    assert "<script>alert(1)</script>" in text(changes)  # shown as text...
    assert not find(page, "script") and not find(changes, "b")  # ...never as markup


def test_same_json_same_bytes(fake, tmp_path):
    # Copies of the same inputs elsewhere, named in another order: identical page.
    again = tmp_path / "elsewhere"
    shutil.copytree(fake["tmp"] / "runs", again / "runs")
    shutil.copy(fake["tmp"] / "analysis.json", again / "analysis.json")
    shutil.copy(fake["tmp"] / "CHANGES.md", again / "CHANGES.md")
    runs = sorted((again / "runs").glob("boot-*.json"), reverse=True)
    status, _, stderr, index = render(again, runs, "--analysis", again / "analysis.json",
                                      "--changes", again / "CHANGES.md")
    assert status == 0, stderr
    assert index.read_bytes() == fake["index"].read_bytes()


def test_same_bytes_in_another_process(fake, tmp_path):
    # Another interpreter with another hash seed (set and dict order of strings) writes the same page.
    out = tmp_path / "proc"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "report", str(fake["tmp"] / "runs"), "--out",
                           str(out), "--analysis", str(fake["tmp"] / "analysis.json"), "--changes",
                           str(fake["tmp"] / "CHANGES.md")], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "index.html").read_bytes() == fake["index"].read_bytes()
    assert proc.stdout == fake["stdout"].replace(str(fake["index"]), str(out / "index.html"))


def test_page_is_self_contained_and_escaped(tmp_path):
    result, recs = bugcheck_boot()
    result["hal"] = 'evil<script>alert("x")</script>&.dll'
    result["bugcheck"]["function"] = "</td><img src=x onerror=alert(1)>"
    result["timeline"] = timeline_summary(recs, 15)
    path = tmp_path / "boot-evil.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    status, stdout, stderr, index = render(tmp_path, [path])
    assert status == 0, stderr
    html = index.read_text(encoding="utf-8")
    page = Page(html).root
    assert not find(page, "script") and not find(page, "img") and not find(page, "link")
    assert 'evil&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;.dll' in html
    assert result["bugcheck"]["function"] in text(by_id(page, "verdict-matrix"))
    # Nothing is fetched: no src attributes, links only within the page.
    for el in walk(page):
        assert "src" not in el["attrs"], el["tag"]
        href = el["attrs"].get("href") or el["attrs"].get("xlink:href")
        assert href is None or href.startswith("#"), href
    assert "@import" not in html and "url(http" not in html


def test_no_timeline_still_gets_a_picture(tmp_path):
    result, _ = bugcheck_boot()
    path = tmp_path / "boot-x.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    status, _, stderr, index = render(tmp_path, [path])
    assert status == 0, stderr
    article = find(Page(index.read_text(encoding="utf-8")).root, "article", class_="boot")[0]
    assert find(article, "svg") and "timeline from none" not in text(article)
    assert "no timeline in the JSON, no trace beside it" in text(article)


def _bad(tmp_path, mutate, name="boot-bad.json"):
    result, recs = hang_boot()
    result["timeline"] = timeline_summary(recs, result["virtual_time_us"])
    mutate(result)
    path = tmp_path / name
    path.write_text(json.dumps(result), encoding="utf-8")
    return path


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.pop("verdict"), "verdict"),
    (lambda r: r.update(verdict=3), "verdict"),
    (lambda r: r.pop("platform"), "platform"),
    (lambda r: r.update(verdict="bugcheck", bugcheck={"params": [6, 0, 0, 0]}), "bugcheck.code"),
    (lambda r: r.update(verdict="bugcheck", bugcheck={"code": 0x79, "params": [6, "x"]}), "bugcheck.params[1]"),
    (lambda r: r.update(hang=None), "hang"),
    (lambda r: r["exits"].update(port_io=-1), "exits.port_io"),
    (lambda r: r.update(virtual_time_us="soon"), "virtual_time_us"),
    (lambda r: r["timeline"]["exits"].update(port_io=[1, 2]), "timeline.exits.port_io"),
    (lambda r: r["timeline"].update(version=99), "timeline.version"),
])
def test_bad_boot_json_exits_2_naming_file_and_field(tmp_path, mutate, field):
    path = _bad(tmp_path, mutate)
    status, stdout, stderr, index = render(tmp_path, [path])
    assert status == 2 and not index.exists() and not stdout
    assert str(path) in stderr and f"field {field!r}" in stderr, stderr


def test_bad_inputs_exit_2(tmp_path):
    good = write_runs(tmp_path / "runs")
    cases = []
    cases.append(([tmp_path / "missing.json"], "missing.json: no such file or folder"))
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    cases.append(([tmp_path / "broken.json"], "broken.json: not valid JSON"))
    (tmp_path / "empty").mkdir()
    cases.append(([tmp_path / "empty"], "holds no boot-*.json"))
    (tmp_path / "a.json").write_text(json.dumps({"touch_points": "no"}), encoding="utf-8")
    cases.append(([good["booted"], "--analysis", tmp_path / "a.json"], "a.json: field 'touch_points'"))
    (tmp_path / "b.json").write_text(json.dumps({"touch_points": [{"class": "rtc", "file": "x.c"}]}),
                                     encoding="utf-8")
    cases.append(([good["booted"], "--analysis", tmp_path / "b.json"], "b.json: field 'touch_points[0].function'"))
    cases.append(([good["booted"], "--changes", tmp_path / "nope.md"], "nope.md: no such file"))
    for args, message in cases:
        status, stdout, stderr, index = render(tmp_path, args)
        assert status == 2, (args, stderr)
        assert message in stderr, (message, stderr)
        assert not index.exists()
    # A trace that belongs to another run is refused, naming the trace and the field.
    trace = good["bugcheck"].with_suffix(".jsonl")
    trace.write_bytes(trace.read_bytes() + b'{"t_ns":1,"kind":"note"}\n')
    status, _, stderr, _ = render(tmp_path, [good["bugcheck"]])
    assert status == 2 and str(trace) in stderr and "field 'trace_sha256'" in stderr
    trace.write_bytes(b"{oops\n")
    status, _, stderr, _ = render(tmp_path, [good["bugcheck"]])
    assert status == 2 and "field 'line 1'" in stderr


def test_progress_lines():
    out = io.StringIO()
    ticks = iter([10.0, 14.2, 20.0, 20.5])
    progress = Progress(2, stream=out, clock=lambda: next(ticks))
    with progress.step("booting build/win7sp1-amd64/gen2/hal.dll on gen2") as step:
        step.result("booted")
    with pytest.raises(RuntimeError):
        with progress.step("booting x on gen1"):
            raise RuntimeError("model error")
    assert out.getvalue() == ("[1/2] booting build/win7sp1-amd64/gen2/hal.dll on gen2 ... 4.2 s  booted\n"
                              "[2/2] booting x on gen1 ... failed after 0.5 s\n")


def test_make_report_api_accepts_lists(fake, tmp_path):
    out, table = make_report([fake["paths"]["hang"]], tmp_path / "api", analysis=[fake["tmp"] / "analysis.json"],
                             changes=[fake["tmp"] / "CHANGES.md"])
    assert out == tmp_path / "api" / "index.html" and out.is_file()
    assert "hang" in table and "RTC register A" in table


# ---- a real boot ----------------------------------------------------------------------------------------------------

REFERENCE = REPO / "build" / "reactos-amd64" / "reference" / "hal.dll"


@pytest.fixture(scope="module")
def real_boot(tmp_path_factory):
    """Boot the built reference HAL on gen2 with ``gen2hal boot --json --trace`` (building it first when the
    toolchain is there); the JSON has no timeline, so the report computes it from the trace."""
    if shutil.which("x86_64-w64-mingw32-gcc") is not None:
        run_scons(REPO, "variant=0", "target=reactos-amd64")
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not built (mingw-w64 missing: run scripts/setup.sh)")
    folder = tmp_path_factory.mktemp("real")
    out = folder / "boot-reference-gen2.json"
    status = cli.main(["boot", str(REFERENCE), "--target", "reactos-amd64", "--platform", "gen2",
                       "--json", str(out), "--trace", str(out.with_suffix(".jsonl"))])
    assert status in (0, 1) and out.is_file()
    return out


def test_real_boot_report(real_boot, tmp_path):
    result = json.loads(real_boot.read_text(encoding="utf-8"))
    status, stdout, stderr, index = render(tmp_path, [real_boot])
    assert status == 0, stderr
    page = Page(index.read_text(encoding="utf-8")).root
    cell = find(by_id(page, "verdict-matrix"), "a", class_="verdict")
    assert len(cell) == 1 and cell[0]["attrs"]["data-verdict"] == result["verdict"]
    if result["verdict"] == "bugcheck":
        assert cell[0]["attrs"]["data-code"] == hex(result["bugcheck"]["code"])
        assert cell[0]["attrs"]["data-params"] == ",".join(hex(p) for p in result["bugcheck"]["params"])
        assert result["bugcheck"]["name"] in text(cell[0])      # e.g. MISMATCHED_HAL, named from specs
    article = find(page, "article", class_="boot")[0]
    assert find(article, "svg")
    fields = {td["attrs"]["data-field"]: td for td in find(article, "td") if "data-field" in td["attrs"]}
    for cls, n in result["exits"].items():
        assert json.loads(fields[f"exits.{cls}"]["attrs"]["data-value"]) == n
    assert "timeline from json" in text(by_id(page, "inputs"))  # gen2sim puts the timeline in every result
    assert result["verdict"] in stdout


def test_main_job_boots_carry_their_timeline(real_boot, tmp_path):
    # generator.report.boots: what the main job uses to boot with progress lines; its JSON carries the timeline.
    from generator.report.boots import BootJob, boot_all, short_verdict

    out = io.StringIO()
    job = BootJob(str(REFERENCE), "reactos-amd64", "gen2", str(tmp_path / "boot-gen2.json"))
    (result,) = boot_all([job], Progress(1, stream=out))
    assert re.fullmatch(rf"\[1/1\] booting {re.escape(str(REFERENCE))} on gen2 \.\.\. \d+\.\d s  "
                        rf"{re.escape(short_verdict(result))}\n", out.getvalue()), out.getvalue()
    saved = json.loads((tmp_path / "boot-gen2.json").read_text(encoding="utf-8"))
    assert check_timeline(saved["timeline"]) and saved["trace_sha256"] == result["trace_sha256"]
    # The same boot's summary from its trace file is the one in the JSON.
    real = json.loads(real_boot.read_text(encoding="utf-8"))
    assert real["trace_sha256"] == saved["trace_sha256"]
    assert timeline_from_trace(real_boot.with_suffix(".jsonl"), real["virtual_time_us"]) == saved["timeline"]
    status, _, stderr, index = render(tmp_path, [tmp_path / "boot-gen2.json"])
    assert status == 0, stderr
    assert "timeline from json" in text(by_id(Page(index.read_text(encoding="utf-8")).root, "inputs"))


# ---- headless Chromium --------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or (("/usr/bin/chromium") if Path("/usr/bin/chromium").exists() else None)


def _chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         # Offline: any attempt to reach a host fails (the page must not need one).
         "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0", *extra, url],
        capture_output=True, text=True, timeout=120)


def _console_lines(stderr: str) -> list[str]:
    """Console messages and uncaught errors Chromium logged (``INFO:CONSOLE`` lines)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Decode an 8-bit non-interlaced PNG (what Chromium writes): (width, height, bytes per pixel, rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0, f"unsupported PNG: depth {depth}, interlace {interlace}"
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def test_png_decoder_on_a_known_image():
    # Filter types 0-4 on a 2x5 RGB image: the decoder must give back the pixels.
    pixels = [bytes([10, 20, 30, 40, 50, 60]), bytes([11, 21, 31, 200, 100, 0]), bytes([0, 0, 0, 255, 255, 255]),
              bytes([5, 6, 7, 8, 9, 10]), bytes([250, 1, 2, 3, 4, 5])]

    def paeth(a, b, c):
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else b if pb <= pc else c

    raw, prev = b"", bytes(6)
    for kind, row in enumerate(pixels):
        out = bytearray()
        for i, v in enumerate(row):
            a = row[i - 3] if i >= 3 else 0
            b, c = prev[i], (prev[i - 3] if i >= 3 else 0)
            pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][kind]
            out.append((v - pred) & 0xFF)
        raw += bytes([kind]) + bytes(out)
        prev = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 5, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    assert png_pixels(png) == (2, 5, 3, pixels)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: the browser test needs Debian's chromium "
                                              "(apt-get install chromium; .ci/run installs it)")
def test_renders_in_headless_chromium(fake, tmp_path):
    url = fake["index"].as_uri()
    # The detector works: a page with a console error and an uncaught exception is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><script>console.error('e1'); throw new Error('e2');</script>",
                   encoding="utf-8")
    assert len(_console_lines(_chromium(tmp_path, bad.as_uri(), "--dump-dom").stderr)) >= 2
    dom = _chromium(tmp_path, url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_lines(dom.stderr) == []
    page = Page(dom.stdout).root
    assert len(find(page, "article", class_="boot")) == 3
    assert len(find(page, "svg")) == 3 and by_id(page, "verdict-matrix")
    shot = tmp_path / "shot.png"
    run = _chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert _console_lines(run.stderr) == []
    width, height, bpp, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    background = rows[0][:bpp]
    colours = {row[i:i + bpp] for row in rows[::7] for i in range(0, len(row), bpp * 5)}
    assert len(colours) > 10, "the screenshot is blank"
    inked = sum(1 for row in rows[::7] for i in range(0, len(row), bpp * 5) if row[i:i + bpp] != background)
    assert inked > 0.01 * (len(rows[::7]) * width / 5), "almost nothing drawn"
