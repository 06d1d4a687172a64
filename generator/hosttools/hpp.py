"""The header preprocessor (ReactOS ``sdk/tools/hpp``): public DDK/PSDK headers from ``xdk`` templates.

ReactOS keeps one set of kernel declarations in ``sdk/include/xdk`` and stitches it into six public headers
(``wdm.h``, ``ntddk.h``, ``ntifs.h``, ``devioctl.h``, ``ntdef.h``, ``winnt.h``) at build time. The language
(behaviour of upstream's ``hpp.c``, our own implementation):

- a line starting with ``$`` in column 0 is a directive; every other line is text;
- ``$define(NAME)`` sets the flag NAME; ``$define(NAME=VALUE)`` also makes ``$NAME`` in later text expand to
  VALUE (a flag alone expands to nothing). Definitions last for the whole output, across includes;
- ``$if(EXPR)`` ... ``$endif`` keeps its block when EXPR is non-zero. EXPR is a parenthesised list of operands
  joined by ``&&``, ``||``, ``&``, ``|`` or ``+``, evaluated left to right (no precedence); an operand is a
  defined name (1) or an undefined one (0), a decimal number or a parenthesised EXPR, optionally prefixed by ``!``;
- ``$include(file)`` inlines ``file`` (relative to the template folder, as upstream runs with the template folder
  as working directory). ``$if`` levels are per file: one left open at the end of an included file closes there
  (``pofuncs.h`` relies on it);
- ``$$`` starts a comment line.

Deviations from upstream, on purpose: an ``$if`` inside a skipped block nests (upstream does not count it, so its
``$endif`` would close the outer block); unknown directives, bad expressions and undefined ``$NAME`` variables in
kept text are errors (upstream prints a message and goes on); a last line without a newline is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from generator.hosttools import HostToolError

_NAME = re.compile(r"[A-Za-z0-9_]+")
_NUMBER = re.compile(r"\d+")
_ADD_XDK = re.compile(r"^\s*add_xdk_header\s*\(\s*(\S+)\s+(\S+)\s*\)", re.MULTILINE)
#: Include nesting deeper than this is a loop, not a header.
_MAX_DEPTH = 32


class HppError(HostToolError):
    """A template cannot be processed; the message names the file and line and what was expected."""


@dataclass
class HppResult:
    """One generated header and every file it was made from (for cache keys and dependency lists)."""

    text: bytes
    files: list[Path] = field(default_factory=list)


def xdk_headers(cmakelists: Path) -> list[tuple[str, str]]:
    """The ``(template, output path)`` pairs of a tree's ``sdk/include/xdk/CMakeLists.txt``.

    Each ``add_xdk_header(<template> <output>)`` line names a template in that folder and where the build
    writes its output, relative to the build folder (``sdk/include/ddk/wdm.h``).
    """
    try:
        text = cmakelists.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HppError(f"{cmakelists}: cannot read the xdk header list: {exc}") from exc
    pairs = []
    for m in _ADD_XDK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        template, output = m.group(1), m.group(2)
        if "$" in template or "$" in output or Path(output).is_absolute() or ".." in Path(output).parts:
            raise HppError(f"{cmakelists}:{line}: expected add_xdk_header(<template> <relative output path>), "
                           f"got {m.group(0).strip()!r}")
        pairs.append((template, output))
    if not pairs:
        raise HppError(f"{cmakelists}: no add_xdk_header(<template> <output>) lines found")
    return pairs


def preprocess(template: Path, include_dir: Path | None = None) -> HppResult:
    """Run the header preprocessor on ``template``; includes resolve in ``include_dir`` (default: its folder)."""
    state = _State(include_dir if include_dir is not None else template.parent)
    state.run_file(template, depth=0)
    return HppResult(text=b"".join(state.out), files=state.files)


class _State:
    """Definitions and output of one preprocessor run."""

    def __init__(self, include_dir: Path) -> None:
        self.include_dir = include_dir
        self.values: dict[str, str] = {}     # defined names -> expansion ("" for a flag)
        self.out: list[bytes] = []
        self.files: list[Path] = []

    def run_file(self, path: Path, depth: int) -> None:
        """Process one file: its directives and text, with its own ``$if`` levels."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise HppError(f"{path}: cannot read: {exc}") from exc
        self.files.append(path)
        # latin-1 maps bytes 1:1, so text we do not touch comes out byte for byte
        text = data.decode("latin-1")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        stack: list[bool] = []       # per open $if: is its block kept?
        for number, line in enumerate(lines, start=1):
            where = f"{path}:{number}"
            active = all(stack)
            if not line.startswith("$"):
                if active:
                    self.out.append((self.expand(line, where) + "\n").encode("latin-1"))
                continue
            directive = line.rstrip("\r")
            if directive.startswith("$$"):
                continue
            if directive.startswith("$endif"):
                if not stack:
                    raise HppError(f"{where}: $endif without an open $if in this file")
                stack.pop()
            elif directive.startswith("$if"):
                # a skipped block's $if only nests: its expression may use names never defined here
                stack.append(_evaluate(directive[3:], where, self.values) != 0 if active else False)
            elif directive.startswith("$define"):
                if active:
                    name, value = _parse_define(directive[7:], where)
                    self.values[name] = value
            elif directive.startswith("$include"):
                if active:
                    self.include(directive[8:], where, depth)
            else:
                raise HppError(f"{where}: unknown directive {directive.split('(')[0].strip()!r}: expected "
                               "$define, $if, $endif, $include or a $$ comment")
        # an $if still open here closes with the file (upstream keeps levels per file)

    def include(self, rest: str, where: str, depth: int) -> None:
        """``$include(file)``: process ``file`` from the include folder in place."""
        rest = rest.strip()
        if not rest.startswith("(") or ")" not in rest:
            raise HppError(f"{where}: expected $include(<file>)")
        name = rest[1:rest.index(")")].strip()
        if not name:
            raise HppError(f"{where}: $include names no file")
        if depth + 1 > _MAX_DEPTH:
            raise HppError(f"{where}: $include({name}) nests deeper than {_MAX_DEPTH} files (an include loop?)")
        target = self.include_dir / name
        if not target.is_file():
            raise HppError(f"{where}: $include({name}): no such file {target}")
        self.run_file(target, depth + 1)

    def expand(self, line: str, where: str) -> str:
        """Replace ``$NAME`` by its value; an undefined name is an error (it would leave ``$`` in C text)."""
        if "$" not in line:
            return line

        def value(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.values:
                raise HppError(f"{where}: ${name} is not defined (expected a $define({name}=VALUE) before)")
            return self.values[name]

        return re.sub(r"\$([A-Za-z0-9_]*)", value, line)


def _parse_define(rest: str, where: str) -> tuple[str, str]:
    """``(NAME)`` or ``(NAME=VALUE)`` after ``$define`` -> (name, value)."""
    m = re.match(r"\s*\(\s*([A-Za-z0-9_]+)\s*(?:=\s*([A-Za-z0-9_]+)\s*)?\)\s*(?://.*|/\*.*)?$", rest)
    if not m:
        raise HppError(f"{where}: expected $define(NAME) or $define(NAME=VALUE), got {'$define' + rest!r}")
    return m.group(1), m.group(2) or ""


def _evaluate(rest: str, where: str, values: dict[str, str]) -> int:
    """Evaluate an ``$if`` expression; trailing text may only be a comment."""
    value, pos = _group(rest, _skip(rest, 0), where, values)
    tail = rest[pos:].strip()
    if tail and not tail.startswith(("//", "/*")):
        raise HppError(f"{where}: unexpected {tail!r} after the $if expression")
    return value


def _skip(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\r":
        i += 1
    return i


def _group(s: str, i: int, where: str, values: dict[str, str]) -> tuple[int, int]:
    """``( operand (op operand)* )`` starting at ``s[i]``; returns (value, index after the ``)``)."""
    if i >= len(s) or s[i] != "(":
        raise HppError(f"{where}: expected '(' to start the $if expression")
    i += 1
    result: int | None = None
    op = ""
    while True:
        i = _skip(s, i)
        invert = i < len(s) and s[i] == "!"
        if invert:
            i = _skip(s, i + 1)
        if i < len(s) and s[i] == "(":
            operand, i = _group(s, i, where, values)
        elif i < len(s) and s[i].isdigit():
            m = _NUMBER.match(s, i)
            operand, i = int(m.group(0)), m.end()
        elif i < len(s) and (s[i].isalpha() or s[i] == "_"):
            m = _NAME.match(s, i)
            operand, i = (1 if m.group(0) in values else 0), m.end()
        else:
            raise HppError(f"{where}: expected a name, a number or '(' in the $if expression at column {i + 4}")
        if invert:
            operand = int(not operand)
        result = operand if result is None else _combine(op, result, operand)
        i = _skip(s, i)
        if i >= len(s):
            raise HppError(f"{where}: expected ')' to close the $if expression")
        if s[i] == ")":
            return result, i + 1
        for candidate in ("&&", "||", "&", "|", "+"):
            if s.startswith(candidate, i):
                op, i = candidate, i + len(candidate)
                break
        else:
            raise HppError(f"{where}: expected an operator (&&, ||, &, |, +) or ')' at column {i + 4}")


def _combine(op: str, left: int, right: int) -> int:
    if op == "&&":
        return int(bool(left) and bool(right))
    if op == "||":
        return int(bool(left) or bool(right))
    if op == "&":
        return left & right
    if op == "|":
        return left | right
    return left + right
