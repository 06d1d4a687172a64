"""The analyzer: parse a HAL tree with libclang and build its model.

The model holds the functions defined in the tree (with line and byte extents, for later rewriting), the call
graph, the exported entry points, every hardware touch point (classified by ``generator.touchpoints``) with the
shortest call path from an export, and two lints that matter on Hyper-V Generation 2:

- ``msr-without-cpuid``: an MSR access with no CPUID check before it on its call path. "Before" is by source
  line: a CPUID (``HalpCpuid``/``__cpuid``, or a call to a tree function that performs one, transitively) earlier
  in the same function, or earlier than the call to the next function in any caller on the shortest path from an
  export. Branches are not modelled: a CPUID on another branch still counts. Cheap, and false negatives are rarer
  than false positives for HAL code, which checks CPUID once during init.
- ``legacy-port-poll``: a loop (``for``/``while``/``do``) whose exit depends on a read of a legacy-class port
  (8259, PIT, RTC/CMOS, i8042, including ``HalpReadCmos``): the read is in the loop condition, in the condition of
  an ``if`` in the body that breaks/returns/jumps out, or assigned to a plain variable named in one of those
  conditions. One lint per loop. A busy-wait like that never ends, or times out, where the device is absent.
  Data flow beyond one assignment is not followed.

The input is a build unit (``generator.unit``): the translation units of one DLL, each parsed with its own
arguments, so only what is linked into that DLL is modelled (no ``pic/``, ``mp/`` or i386 file in an amd64
``hal.dll``). Assembly files are listed as not analysed. Diagnostics a unit's description declares as known (e.g.
the three "definition of builtin function" errors clang raises in upstream ReactOS's gcc-oriented
``intrin_x86.h``) are reported by name and do not refuse the tree; any other error does.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clang.cindex import Cursor, CursorKind

from specs import Target, load_target

from . import clang_front
from . import touchpoints as tp
from .unit import BuildUnit, Source

DEFAULT_TARGET = "reactos-amd64"
JSON_VERSION = 1
#: Order of classes in the human report and the JSON (legacy devices first, then what Gen2 keeps).
CLASS_ORDER = ("8259", "pit", "rtc", "i8042", "pm-timer-legacy-fadt", "acpi-enable", "madt-pcat", "lapic-mmio",
               "ioapic-mmio", "msr", "cpuid", "port-other", "port-unknown")
_LOOPS = (CursorKind.FOR_STMT, CursorKind.WHILE_STMT, CursorKind.DO_STMT)


class AnalyzeError(Exception):
    """The tree cannot be analyzed (missing, empty, or a file does not parse); ``lines`` says where and why."""

    def __init__(self, message: str, lines: list[str] | None = None):
        super().__init__(message)
        self.lines = lines or []


@dataclass
class Function:
    """A function defined in the tree."""

    name: str
    file: str
    start_line: int
    end_line: int
    start_offset: int
    end_offset: int
    static: bool
    exported: bool = False
    language: str = "c"      # "asm": found in an assembled object, no byte extents


@dataclass
class Call:
    """A call (or, kind ``address``, a reference that hands a function out, e.g. an interrupt handler)."""

    caller: str
    callee: str
    file: str
    line: int
    kind: str = "call"


@dataclass
class TouchPoint:
    """One hardware access, classified."""

    cls: str
    detail: str
    file: str
    line: int
    column: int
    function: str
    access: str = ""
    port: int | None = None
    number: int | None = None
    in_loop: bool = False
    legacy_read: bool = False
    poll_loop_line: int | None = None
    reachable: bool = False
    call_path: list[str] = field(default_factory=list)
    rtc_use: str | None = None

    def to_json(self) -> dict:
        """JSON form: ``class`` for ``cls``, ``None`` members left out."""
        data = asdict(self)
        data["class"] = data.pop("cls")
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class Lint:
    """A finding that matters on Generation 2."""

    kind: str
    file: str
    line: int
    function: str
    message: str
    call_path: list[str] = field(default_factory=list)


@dataclass
class Model:
    """What the analyzer knows about a HAL tree."""

    profile: str             # the build unit's name ("hal", "halmp")
    target: str
    files: list[str]
    functions: dict[str, Function]
    calls: list[Call]
    exports: list[str]
    touch_points: list[TouchPoint]
    lints: list[Lint]
    seconds: float = 0.0
    not_analysed: list[dict] = field(default_factory=list)
    known_diagnostics: list[dict] = field(default_factory=list)

    def callees(self, name: str) -> list[str]:
        """Tree functions ``name`` calls or hands out, sorted."""
        return sorted({c.callee for c in self.calls if c.caller == name and c.callee in self.functions})

    def reach(self, name: str) -> set[str]:
        """``name`` and every tree function reachable from it."""
        seen, todo = {name}, [name]
        while todo:
            for callee in self.callees(todo.pop()):
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
        return seen

    def touches(self, function: str, cls: str, transitive: bool = False) -> list[TouchPoint]:
        """Touch points of class ``cls`` in ``function`` (and, with ``transitive``, in what it reaches)."""
        scope = self.reach(function) if transitive else {function}
        return [t for t in self.touch_points if t.cls == cls and t.function in scope]

    def to_json(self) -> dict:
        """The stable JSON document (no timings, no absolute paths, sorted)."""
        graph: dict[str, list[str]] = {}
        for name in sorted(self.functions):
            graph[name] = self.callees(name)
        return {
            "version": JSON_VERSION,
            "unit": self.profile,
            "target": self.target,
            "files": self.files,
            "exports": self.exports,
            "functions": [asdict(self.functions[n]) for n in sorted(self.functions)],
            "call_graph": graph,
            "calls": [asdict(c) for c in self.calls],
            "touch_points": [t.to_json() for t in self.touch_points],
            "lints": [asdict(lint) for lint in self.lints],
            "not_analysed": self.not_analysed,
            "known_diagnostics": self.known_diagnostics,
            "totals": self.totals(),
        }

    def totals(self) -> dict:
        """Counts by touch-point class and lint kind."""
        by_class: dict[str, int] = {}
        for t in self.touch_points:
            by_class[t.cls] = by_class.get(t.cls, 0) + 1
        by_lint: dict[str, int] = {}
        for lint in self.lints:
            by_lint[lint.kind] = by_lint.get(lint.kind, 0) + 1
        return {
            "files": len(self.files),
            "functions": len(self.functions),
            "exports_defined": len(self.exports),
            "touch_points": dict(sorted(by_class.items(), key=lambda kv: _class_key(kv[0]))),
            "lints": dict(sorted(by_lint.items())),
        }


def _class_key(cls: str) -> tuple[int, str]:
    return (CLASS_ORDER.index(cls) if cls in CLASS_ORDER else len(CLASS_ORDER), cls)


# ---- inputs -----------------------------------------------------------------------------------------------------

class _Locator:
    """Short, stable names for diagnostic locations: relative to the HAL or the tree, ``<generated>/...`` for
    the tool's build-time headers, ``<clang>/...`` for the compiler's own (cached per path)."""

    def __init__(self, unit: BuildUnit):
        self.unit = unit
        self.cache: dict[str, str] = {}
        self.extra = {} if unit.generated_root is None else {unit.generated_root: "generated"}
        self.extra[clang_front.resource_dir()] = "clang"

    def __call__(self, path: str) -> str:
        if path not in self.cache:
            name = self.unit.relative(Path(path))
            if name.startswith("/"):
                name = _rel(path, self.unit.tree, self.extra)
            self.cache[path] = name
        return self.cache[path]


def entry_points(unit: BuildUnit, target: Target) -> dict[str, str]:
    """export name -> the function implementing it, for the unit's DLL.

    A unit with a ``.spec`` (ReactOS) takes its function exports from the spec for the spec's architecture and
    version (``extern`` data exports such as ``KdComPortInUse`` have no code to analyse);
    a unit that states names takes them (or, with none stated, the target's list) through its aliases.
    """
    if unit.exports.spec is not None:
        from .hosttools import spec as specfile
        try:
            parsed = specfile.parse_spec(unit.exports.spec)
            return {specfile.plain_name(e.name): specfile.plain_name(e.target or e.name)
                    for e in parsed.selected(unit.exports.arch, unit.exports.version)
                    if not e.is_forwarder and e.name != "@" and e.convention != "extern"}  # data: no code
        except specfile.SpecError as exc:
            raise AnalyzeError(str(exc)) from None
    names = unit.exports.names or sorted(target.exports)
    return {n: unit.exports.aliases.get(n, n) for n in names}


def _rel(path: str | Path, root: Path, extra: dict[Path, str] | None = None) -> str:
    """``path`` relative to ``root`` (POSIX), or a short stable name for known outside folders."""
    p = Path(path).resolve()
    try:
        return p.relative_to(root.resolve()).as_posix()
    except ValueError:
        for folder, name in (extra or {}).items():
            try:
                return f"<{name}>/" + p.relative_to(folder.resolve()).as_posix()
            except ValueError:
                continue
        return str(path)


@dataclass
class _ParsePlan:
    """How one file is parsed: alone, or after a shared precompiled header (whose diagnostics it reports)."""

    source: Source
    args: list[str]
    pch: Future | None = None      # -> (pch path or None, header diagnostics)

    def parse(self):
        header_diags: list[clang_front.Diagnostic] = []
        args = self.args
        if self.pch is not None:
            pch, header_diags = self.pch.result()
            if pch is not None:
                args = clang_front.pch_args(args, pch)
        tu, diags = clang_front.parse(self.source.path, args)
        return tu, header_diags + diags


def _parse_plans(sources: list[Source], folder: Path, pool: ThreadPoolExecutor, use_pch: bool) -> list[_ParsePlan]:
    """One plan per file; a precompiled header per (first include, arguments) shared by two files or more."""
    plans = [_ParsePlan(s, clang_front.source_args(s)) for s in sources]
    if not use_pch:
        return plans
    groups: dict[tuple[Path, tuple[str, ...]], list[_ParsePlan]] = {}
    for plan in plans:
        spelling = clang_front.leading_include(plan.source.path)
        header = spelling and clang_front.resolve_include(spelling, plan.source.path, plan.args)
        if header:
            groups.setdefault((header.resolve(), tuple(plan.args)), []).append(plan)

    def build(header: Path, args: list[str], out: Path):
        try:
            return out, clang_front.precompile(header, args, out)
        except clang_front.FrontEndError:
            return None, []       # parse each file from scratch instead; it reports the header's errors itself

    for number, ((header, args), members) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        if len(members) < 2:
            continue
        future = pool.submit(build, header, list(args), folder / f"preamble{number}.pch")
        for plan in members:
            plan.pch = future
    return plans


def _scan_asm(source: Source, workdir: Path, c_names: list[str]):
    """The scan of one assembly file, or the reason it could not be read (a string: not a refusal, the C
    analysis stands; the file is listed as not analysed)."""
    from . import asmscan
    try:
        return asmscan.scan_asm(source, workdir, known_functions=c_names)
    except asmscan.AsmScanError as exc:
        return f"assembly that could not be assembled and read: {exc}"


def _add_asm(scan, rel: str, functions: list[Function], calls: list[Call], points: list[TouchPoint]) -> None:
    """Functions, call edges and port/MSR touch points of one scanned assembly file, in the model's terms.

    Assembly functions have no byte extents (``language`` "asm"): no role can rewrite them. Lines are the
    function's definition line (the object has no per-instruction lines).
    """
    for fn in scan.functions:
        if fn.alias_of:
            continue
        functions.append(Function(fn.name, rel, fn.line, fn.line, 0, 0, not fn.is_global, language="asm"))
    for call in scan.calls:
        calls.append(Call(call.caller, call.callee, rel, call.line, call.kind))
    selected: dict[str, int | None] = {}     # the CMOS index each function selected last (offset order)
    for port in sorted(scan.ports, key=lambda p: (p.section, p.offset)):
        where = f"in assembly: `{port.text}`"
        if port.port is None:
            points.append(TouchPoint("port-unknown", f"{port.access} port ({port.note}) {where}", rel, port.line,
                                     0, port.function, port.access))
            continue
        known = tp.port_class(port.port)
        cls = known[0] if known else "port-unknown"
        number = None
        if port.port == tp.CMOS_ADDRESS_PORT and port.access == "write":
            number = selected[port.function] = port.value
        elif port.port == tp.CMOS_DATA_PORT:
            number = selected.get(port.function)
        detail = f"{port.access} port 0x{port.port:X} ({port.width}-byte) {where}"
        if number is not None:
            detail += f" selects {tp.cmos_register(number)}"
        points.append(TouchPoint(cls, detail, rel, port.line, 0, port.function, port.access, port.port, number,
                                 legacy_read=port.access == "read" and cls in tp.LEGACY_PORT_CLASSES))
    for msr in scan.msrs:
        text = "?" if msr.msr is None else f"0x{msr.msr:X}"
        points.append(TouchPoint("msr", f"{msr.access} MSR {text} in assembly: `{msr.text}`", rel, msr.line, 0,
                                 msr.function, msr.access, None, msr.msr))


# ---- AST walking ------------------------------------------------------------------------------------------------

class _FileWalker:
    """Collects functions, calls and raw touch points from one translation unit's main file."""

    def __init__(self, tu, rel: str, data: bytes):
        self.tu = tu
        self.rel = rel
        self.data = data
        self.functions: list[Function] = []
        self.calls: list[Call] = []
        self.points: list[TouchPoint] = []
        self._callee_refs: set[int] = set()
        self._ancestors: list[Cursor] = []
        self._cmos_selected: dict[str, int | None] = {}
        #: (copy name, hit, function, file, line): a classified member value stored elsewhere.
        self.copies: list[tuple[str, tp.Hit, str, str, int]] = []
        #: (name, file, line, column, function, in_loop) of every member and file-scope variable reference.
        self.refs: list[tuple[str, str, int, int, str, bool]] = []

    def run(self, exhaustive: bool = False) -> None:
        """Walk the main file's function definitions (``exhaustive``: found by enumerating every top-level
        cursor, the slow reference the token scan of ``clang_front.main_file_definitions`` is tested against)."""
        for cursor in self._definitions(exhaustive):
            ext = cursor.extent
            fn = Function(cursor.spelling, self.rel, ext.start.line, ext.end.line, ext.start.offset,
                          ext.end.offset, cursor.storage_class.name == "STATIC")
            self.functions.append(fn)
            for child in cursor.get_children():
                if child.kind == CursorKind.COMPOUND_STMT:
                    self._walk(child, fn.name, False)
        # PM1a control is the enable handshake only next to SMI_CMD / ACPI_ENABLE (see touchpoints).
        enabling = {p.function for p in self.points if p.cls == "acpi-enable" and "PM1a" not in p.detail}
        self.points = [p for p in self.points
                       if not (p.cls == "acpi-enable" and "PM1a" in p.detail and p.function not in enabling)]

    def _definitions(self, exhaustive: bool) -> list[Cursor]:
        if not exhaustive:
            return clang_front.main_file_definitions(self.tu, Path(self.tu.spelling), len(self.data))
        return [c for c in self.tu.cursor.get_children()
                if c.kind == CursorKind.FUNCTION_DECL and c.is_definition() and clang_front.from_main_file(c)]

    def _walk(self, node: Cursor, function: str, in_loop: bool) -> None:
        self._ancestors.append(node)
        for child in node.get_children():
            kind = child.kind
            if kind == CursorKind.CALL_EXPR:
                self._call(child, function, in_loop)
            elif kind == CursorKind.MEMBER_REF_EXPR:
                self._member(child, function, in_loop)
                self._note_ref(child, function, in_loop)
            elif kind == CursorKind.DECL_REF_EXPR:
                self._decl_ref(child, function, in_loop)
            self._walk(child, function, in_loop or kind in _LOOPS)
        self._ancestors.pop()

    def _poll_loop(self, cursor: Cursor) -> int | None:
        """Line of the innermost loop whose exit depends on the read at ``cursor``, or None.

        Approximation (documented in the module docstring): the read is in the loop's condition (or a ``for``'s
        init/increment), or in the condition of an ``if`` in the body whose branch leaves the loop (break, return,
        goto), or its value is assigned to a plain variable named in one of those conditions.
        """
        chain = self._ancestors + [cursor]
        loop_i = max((i for i, c in enumerate(chain) if c.kind in _LOOPS), default=None)
        if loop_i is None or loop_i + 1 >= len(chain):
            return None
        loop = chain[loop_i]
        parts = list(loop.get_children())
        body = parts[0] if loop.kind == CursorKind.DO_STMT else parts[-1]
        on_path = chain[loop_i + 1]
        if on_path.extent.start.offset != body.extent.start.offset:
            return loop.location.line  # in the condition
        conditions = [p for p in parts if p.extent.start.offset != body.extent.start.offset]
        conditions += _exit_conditions(body)
        cond_ranges = [(c.extent.start.offset, c.extent.end.offset) for c in conditions]
        here = cursor.extent.start.offset
        if any(a <= here < b for a, b in cond_ranges):
            return loop.location.line
        cond_vars = {d.spelling for c in conditions for d in c.walk_preorder()
                     if d.kind == CursorKind.DECL_REF_EXPR}
        for anc in reversed(chain[loop_i + 1:-1]):
            if anc.kind == CursorKind.VAR_DECL:
                return loop.location.line if anc.spelling in cond_vars else None
            if anc.kind in (CursorKind.BINARY_OPERATOR, CursorKind.COMPOUND_ASSIGNMENT_OPERATOR):
                lhs = clang_front.strip_implicit(next(anc.get_children()))
                if lhs.kind == CursorKind.DECL_REF_EXPR and _operator(anc, lhs).endswith("=") \
                        and _operator(anc, lhs) not in ("==", "!=", "<=", ">="):
                    return loop.location.line if lhs.spelling in cond_vars else None
            if anc.kind in (CursorKind.COMPOUND_STMT, CursorKind.IF_STMT):
                return None
        return None

    def _call(self, call: Cursor, function: str, in_loop: bool) -> None:
        name = call.spelling
        callee_ref = call.referenced
        if callee_ref is None or callee_ref.kind != CursorKind.FUNCTION_DECL:
            return  # a call through a pointer: no static callee
        # Remember the callee's name reference so it is not also counted as "address taken".
        for child in call.get_children():
            inner = clang_front.strip_implicit(child)
            if inner.kind == CursorKind.DECL_REF_EXPR:
                self._callee_refs.add(inner.extent.start.offset)
            break
        line = call.location.line
        self.calls.append(Call(function, name, self.rel, line))
        args = [tp.Arg(clang_front.evaluate_int(a), clang_front.source_text(a, self.data))
                for a in call.get_arguments()]
        for hit in tp.classify_call(name, args):
            self._add(hit, call, function, in_loop)

    def _member(self, ref: Cursor, function: str, in_loop: bool) -> None:
        member = ref.spelling
        if member not in tp.FADT_MEMBERS and member not in tp.PM1A_CONTROL_MEMBERS \
                and member not in tp.MADT_FLAGS_MEMBERS:
            return
        records = []
        decl = ref.referenced
        if decl is not None and decl.semantic_parent is not None:
            records.append(decl.semantic_parent.spelling)
            records.append(decl.semantic_parent.type.spelling)
        for child in ref.get_children():
            base = child.type
            if base.get_pointee().spelling:
                base = base.get_pointee()
            records.append(base.spelling)
            records.append(base.get_canonical().spelling)
            break
        cleaned = [re.sub(r"^(const |volatile |struct )+", "", r).strip() for r in records if r]
        hit = tp.classify_member(member, cleaned)
        if hit is not None:
            self._add(hit, ref, function, in_loop)
            copy = self._assigned_to(ref)
            if copy is not None and copy != member:
                self.copies.append((copy, hit, function, self.rel, ref.location.line))

    def _assigned_to(self, cursor: Cursor) -> str | None:
        """The member or file-scope variable that the expression at ``cursor`` is stored into, if it is the
        right-hand side of a plain assignment (``HalpInfo.MadtFlags = Madt->Flags``); else None."""
        here = cursor.extent.start.offset
        for anc in reversed(self._ancestors):
            if anc.kind == CursorKind.BINARY_OPERATOR:
                lhs = clang_front.strip_implicit(next(anc.get_children()))
                if _operator(anc, lhs) != "=" or here < lhs.extent.end.offset:
                    return None
                if lhs.kind == CursorKind.MEMBER_REF_EXPR:
                    return lhs.spelling
                if lhs.kind == CursorKind.DECL_REF_EXPR and _is_global_var(lhs.referenced):
                    return lhs.spelling
                return None
            if anc.kind in (CursorKind.COMPOUND_STMT, CursorKind.IF_STMT, CursorKind.CALL_EXPR,
                            CursorKind.VAR_DECL) or anc.kind in _LOOPS:
                return None
        return None

    def _note_ref(self, ref: Cursor, function: str, in_loop: bool) -> None:
        loc = ref.location
        self.refs.append((ref.spelling, self.rel, loc.line, loc.column, function, in_loop))

    def _decl_ref(self, ref: Cursor, function: str, in_loop: bool) -> None:
        target = ref.referenced
        if target is not None and target.kind == CursorKind.VAR_DECL and _is_global_var(target):
            self._note_ref(ref, function, in_loop)
            return
        if target is None or target.kind != CursorKind.FUNCTION_DECL:
            return
        if ref.extent.start.offset in self._callee_refs:
            return
        # A function named but not called: handed to someone who will call it (interrupt handler, callback).
        self.calls.append(Call(function, ref.spelling, self.rel, ref.location.line, "address"))

    def _add(self, hit: tp.Hit, cursor: Cursor, function: str, in_loop: bool) -> None:
        loc = cursor.location
        point = TouchPoint(hit.cls, hit.detail, self.rel, loc.line, loc.column, function, hit.access,
                           hit.port, hit.number, in_loop, hit.legacy_port_read)
        # The data port reaches whatever register the last select in this function (in source order) chose.
        if hit.port == tp.CMOS_ADDRESS_PORT and hit.access == "write":
            self._cmos_selected[function] = hit.number
        elif hit.port == tp.CMOS_DATA_PORT:
            point.number = self._cmos_selected.get(function)
            if point.number is not None:
                point.detail += f" {tp.cmos_register(point.number)}"
        if in_loop and hit.legacy_port_read and hit.cls in tp.LEGACY_PORT_CLASSES:
            point.poll_loop_line = self._poll_loop(cursor)
        self.points.append(point)


def _is_global_var(decl: Cursor | None) -> bool:
    """Whether ``decl`` is a variable declared at file scope."""
    return (decl is not None and decl.kind == CursorKind.VAR_DECL and decl.semantic_parent is not None
            and decl.semantic_parent.kind == CursorKind.TRANSLATION_UNIT)


def _exit_conditions(body: Cursor) -> list[Cursor]:
    """Conditions of ``if`` statements in a loop body whose branch leaves the loop (break/return/goto)."""
    found = []
    for node in body.walk_preorder():
        if node.kind != CursorKind.IF_STMT:
            continue
        parts = list(node.get_children())
        if len(parts) >= 2 and any(n.kind in (CursorKind.BREAK_STMT, CursorKind.RETURN_STMT, CursorKind.GOTO_STMT)
                                   for branch in parts[1:] for n in branch.walk_preorder()):
            found.append(parts[0])
    return found


def _operator(binop: Cursor, lhs: Cursor) -> str:
    """The operator token of a binary expression (the first token after its left operand; cindex 16 has no
    operator-kind accessor)."""
    end = lhs.extent.end.offset
    for token in binop.get_tokens():
        if token.extent.start.offset >= end:
            return token.spelling
    return ""


# ---- whole-tree analysis ----------------------------------------------------------------------------------------

def _copy_uses(copies: list[tuple[str, tp.Hit, str, str, int]],
               refs: list[tuple[str, str, int, int, str, bool]]) -> list[TouchPoint]:
    """Touch points where a stored copy of a classified value is used (one step of data flow, across files):
    ``Info.MadtFlags = Madt->Flags`` in one function, ``Info.MadtFlags & PCAT_COMPAT`` in another."""
    origin: dict[str, tuple[tp.Hit, str, str, int]] = {}
    for name, hit, function, file, line in sorted(copies, key=lambda c: (c[0], c[3], c[4])):
        origin.setdefault(name, (hit, function, file, line))
    found = []
    for name, file, line, column, function, in_loop in refs:
        if name not in origin:
            continue
        hit, from_fn, from_file, from_line = origin[name]
        if (file, line) == (from_file, from_line):
            continue  # the store itself
        found.append(TouchPoint(hit.cls, f"{hit.detail} via copy `{name}` (stored by {from_fn}, "
                                         f"{from_file}:{from_line})", file, line, column, function, hit.access,
                                hit.port, hit.number, in_loop))
    return found


def _shortest_paths(functions: dict[str, Function], edges: dict[str, list[str]], exports: list[str]) \
        -> dict[str, list[str]]:
    """Shortest call path from any export to each reachable function (BFS from the sorted exports, sorted
    neighbours: deterministic ties)."""
    parent: dict[str, str | None] = {}
    queue: deque[str] = deque()
    for name in exports:
        parent[name] = None
        queue.append(name)
    while queue:
        name = queue.popleft()
        for callee in edges.get(name, []):
            if callee not in parent:
                parent[callee] = name
                queue.append(callee)
    paths: dict[str, list[str]] = {}
    for name in parent:
        path, cur = [], name
        while cur is not None:
            path.append(cur)
            cur = parent[cur]
        paths[name] = path[::-1]
    return paths


def _lints(model: Model, edges: dict[str, list[str]]) -> list[Lint]:
    """The MSR-without-CPUID and legacy-port-poll lints (rules in the module docstring)."""
    # Functions that perform CPUID themselves or through a tree callee (fixpoint over direct calls).
    cpuid_lines: dict[str, list[int]] = {}
    for t in model.touch_points:
        if t.cls == "cpuid":
            cpuid_lines.setdefault(t.function, []).append(t.line)
    does_cpuid = set(cpuid_lines)
    changed = True
    while changed:
        changed = False
        for call in model.calls:
            if call.kind == "call" and call.callee in does_cpuid and call.caller not in does_cpuid:
                does_cpuid.add(call.caller)
                changed = True
    guard_lines: dict[str, list[int]] = {name: list(lines) for name, lines in cpuid_lines.items()}
    for call in model.calls:
        if call.kind == "call" and call.callee in does_cpuid:
            guard_lines.setdefault(call.caller, []).append(call.line)

    def guarded_before(function: str, line: int) -> bool:
        return any(g < line for g in guard_lines.get(function, []))

    first_call_line: dict[tuple[str, str], int] = {}
    for call in model.calls:
        key = (call.caller, call.callee)
        first_call_line[key] = min(first_call_line.get(key, call.line), call.line)

    lints: list[Lint] = []
    polls: dict[tuple[str, str, int], list[TouchPoint]] = {}
    for t in model.touch_points:
        if t.cls == "msr":
            path = t.call_path or [t.function]
            guarded = guarded_before(t.function, t.line)
            for caller, callee in zip(path, path[1:]):
                if guarded:
                    break
                site = first_call_line.get((caller, callee))
                guarded = site is not None and guarded_before(caller, site)
            if not guarded:
                where = "on the path " + " -> ".join(path) if t.reachable else "(not reachable from an export)"
                lints.append(Lint("msr-without-cpuid", t.file, t.line, t.function,
                                  f"{t.detail} with no CPUID check before it {where}", list(t.call_path)))
        if t.poll_loop_line is not None:
            polls.setdefault((t.file, t.function, t.poll_loop_line), []).append(t)
    # One lint per polling loop, at the loop, naming the first read it polls.
    for (file, function, loop_line), reads in sorted(polls.items()):
        first = reads[0]
        more = f" (+{len(reads) - 1} more reads)" if len(reads) > 1 else ""
        lints.append(Lint("legacy-port-poll", file, loop_line, function,
                          f"loop polls a legacy {first.cls} port: {first.detail} at line {first.line}{more}; "
                          f"it never ends or misbehaves where the device is absent", list(first.call_path)))
    lints.sort(key=lambda lint: (lint.kind, lint.file, lint.line, lint.function))
    return lints


def analyze(unit: BuildUnit, target_name: str = DEFAULT_TARGET, keep_going: bool = False,
            use_pch: bool = True, exhaustive: bool = False) -> Model:
    """Parse every C translation unit of ``unit`` with its own arguments and build the model.

    Exports are the unit's export list (spec or names) for ``target_name``'s kernel ABI. Raises ``AnalyzeError``
    for a unit with no C files or any file that does not parse (with ``keep_going`` after trying every file,
    listing all errors; otherwise at the first failing file); a diagnostic the unit lists as known is recorded by
    name in ``Model.known_diagnostics`` instead. ``use_pch=False`` parses every file from scratch and ``exhaustive``
    finds definitions by enumerating every cursor (same model, slower; the tests compare). ``specs.SpecError`` propagates for an unknown target.
    """
    started = time.perf_counter()
    target = load_target(target_name)
    sources = unit.c_sources
    if not sources:
        raise AnalyzeError(f"{unit.origin or unit.hal_root}: unit {unit.name} has no C files to analyze")
    missing = [s.path for s in sources if not s.path.is_file()]
    if missing:
        raise AnalyzeError(f"{unit.origin or unit.hal_root}: unit {unit.name} lists files that do not exist",
                           [str(p) for p in missing])

    functions: list[Function] = []
    calls: list[Call] = []
    points: list[TouchPoint] = []
    errors: list[str] = []
    files: list[str] = []
    seen_known: dict[tuple[str, int, str], str] = {}
    copies: list[tuple[str, tp.Hit, str, str, int]] = []
    refs: list[tuple[str, str, int, int, str, bool]] = []
    where_of = _Locator(unit)
    # Parsing is the cost: files whose first directive includes the same header with the same arguments share a
    # precompiled copy of it; the rest is parsed in worker threads (ctypes releases the GIL inside libclang) and
    # walked in file order in this thread, so the result does not depend on scheduling.
    pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    tmp = tempfile.TemporaryDirectory(prefix="gen2hal-analyze-")
    plans = _parse_plans(sources, Path(tmp.name), pool, use_pch)
    parsed = pool.map(lambda plan: plan.parse(), plans)
    for source, (tu, diags) in zip(sources, parsed):
        rel = unit.relative(source.path)
        files.append(rel)
        real = []
        for d in diags:
            hit = next((k for k in unit.known_diagnostics if k.matches(d)), None)
            if hit is None:
                real.append(d)
            else:
                seen_known.setdefault((where_of(d.file), d.line, d.message), hit.why)
        if real:
            for d in real:
                where = where_of(d.file) if d.line else rel
                errors.append(f"{where}:{d.line}:{d.column}: {d.severity}: {d.message}")
            if not keep_going:
                break
            continue
        walker = _FileWalker(tu, rel, source.path.read_bytes())
        walker.run(exhaustive)
        functions += walker.functions
        calls += walker.calls
        points += walker.points
        copies += walker.copies
        refs += walker.refs
    asm_notes: list[dict] = []
    if not errors:
        # Assembly: assembled exactly as the build does and read from the object (generator.asmscan); the C
        # names are known by now, so a handler address taken in assembly counts as a call edge.
        c_names = sorted({f.name for f in functions})
        scans = pool.map(lambda s: _scan_asm(s, Path(tmp.name) / "asm", c_names), unit.asm_sources)
        for source, scan in zip(unit.asm_sources, scans):
            rel = unit.relative(source.path)
            if isinstance(scan, str):
                asm_notes.append({"file": rel, "reason": scan})
                continue
            files.append(rel)
            _add_asm(scan, rel, functions, calls, points)
    pool.shutdown(wait=True, cancel_futures=True)
    tmp.cleanup()
    if errors:
        raise AnalyzeError("the tree does not parse; refusing to analyze it", errors)
    points += _copy_uses(copies, refs)

    by_name: dict[str, Function] = {}
    for fn in sorted(functions, key=lambda f: (f.name, f.file)):
        # Two static functions of one name in different files: keep the first by path, say so by file name.
        if fn.name in by_name:
            fn.name = f"{fn.file}:{fn.name}"
        by_name[fn.name] = fn
    entry_names = set(entry_points(unit, target).values())
    exports = sorted(n for n in entry_names if n in by_name)
    for name in exports:
        by_name[name].exported = True

    edges: dict[str, list[str]] = {}
    for call in calls:
        if call.callee in by_name:
            edges.setdefault(call.caller, [])
            if call.callee not in edges[call.caller]:
                edges[call.caller].append(call.callee)
    for name in edges:
        edges[name].sort()
    paths = _shortest_paths(by_name, edges, exports)

    # (CMOS index, access) per function: a helper call says its access; a select through port 0x70 counts as a
    # write when the same function writes the data port 0x71.
    data_writers = {p.function for p in points if p.port == tp.CMOS_DATA_PORT and p.access == "write"}
    rtc_indices: dict[str, set[tuple[int | None, str]]] = {}
    for p in points:
        if p.cls == "rtc" and p.port is None:
            rtc_indices.setdefault(p.function, set()).add((p.number, p.access))
        elif p.cls == "rtc" and p.port == tp.CMOS_ADDRESS_PORT and p.access == "write":
            access = "write" if p.function in data_writers else "read"
            rtc_indices.setdefault(p.function, set()).add((p.number, access))
    for p in points:
        p.call_path = list(paths.get(p.function, []))
        p.reachable = bool(p.call_path)
        if p.cls == "rtc":
            p.rtc_use = tp.rtc_use(rtc_indices.get(p.function, set()))

    points.sort(key=lambda p: (_class_key(p.cls), p.file, p.line, p.column, p.detail))
    calls.sort(key=lambda c: (c.file, c.line, c.caller, c.callee, c.kind))
    model = Model(unit.name, target.name, files, by_name, calls, exports, points, [])
    model.not_analysed = asm_notes
    model.known_diagnostics = [{"where": f"{w}:{line}", "message": m, "why": seen_known[(w, line, m)]}
                               for (w, line, m) in sorted(seen_known)]
    model.lints = _lints(model, edges)
    model.seconds = time.perf_counter() - started
    return model


# ---- output -----------------------------------------------------------------------------------------------------

def write_json(model: Model, out: str | Path) -> None:
    """Write the model's JSON to ``out`` atomically (temporary file in the same folder, then rename)."""
    out = Path(out)
    text = json.dumps(model.to_json(), indent=2, sort_keys=True) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def report(model: Model) -> str:
    """The human-readable report: touch points grouped by class, then lints, then totals and timing."""
    n_asm = sum(1 for f in model.files if f.endswith((".S", ".s", ".asm")))
    lines = [f"gen2hal analyze: unit {model.profile}, target {model.target}: {len(model.files) - n_asm} C files "
             f"(libclang) and {n_asm} assembly files (assembled, read from the object) analysed, "
             f"{len(model.functions)} functions, {len(model.exports)} exports defined"]
    for item in model.not_analysed:
        lines.append(f"  not analysed: {item['file']} ({item['reason']})")
    for item in model.known_diagnostics:
        lines.append(f"  known diagnostic, not an error: {item['where']}: {item['message']} ({item['why']})")
    groups: dict[str, list[TouchPoint]] = {}
    for t in model.touch_points:
        groups.setdefault(t.cls, []).append(t)
    for cls in sorted(groups, key=_class_key):
        items = groups[cls]
        lines.append("")
        lines.append(f"== {cls} ({len(items)})")
        width_loc = max(len(f"{t.file}:{t.line}") for t in items)
        width_fn = max(len(t.function) for t in items)
        for t in items:
            extra = []
            if t.rtc_use:
                extra.append(f"[{t.rtc_use}]")
            if t.in_loop:
                extra.append("[in loop]")
            path = " -> ".join(t.call_path) if t.call_path else "(not reachable from an export)"
            lines.append(f"  {t.file + ':' + str(t.line):{width_loc}}  {t.function:{width_fn}}  {t.detail} "
                         f"{' '.join(extra)}".rstrip())
            lines.append(f"  {'':{width_loc}}  {'':{width_fn}}  via {path}")
    lines.append("")
    lines.append(f"== lints ({len(model.lints)})")
    for lint in model.lints:
        lines.append(f"  {lint.file}:{lint.line}: {lint.kind}: {lint.function}: {lint.message}")
    totals = model.totals()
    lines.append("")
    lines.append("== totals")
    lines.append("  touch points: " + (", ".join(f"{k} {v}" for k, v in totals["touch_points"].items()) or "none"))
    lines.append("  lints: " + (", ".join(f"{k} {v}" for k, v in totals["lints"].items()) or "none"))
    lines.append(f"  analysis time: {model.seconds:.2f} s")
    return "\n".join(lines)
