"""CMake expressions: ``if()`` conditions and generator expressions (``$<...>``).

Conditions follow ``if()``'s documented evaluation: parentheses first, then the unary tests (``DEFINED``,
``EXISTS``, ``COMMAND``, ``TARGET``, ...), the binary tests (``STREQUAL``, ``MATCHES``, ``LESS``,
``VERSION_GREATER_EQUAL``, ``IN_LIST``, ...), ``NOT``, then ``AND``/``OR`` from left to right. An unquoted
argument that names a defined variable stands for its value (auto-dereference); a quoted one never does.

Generator expressions are evaluated when compile arguments are computed (per language and target), with the
subset ReactOS's files use; an unknown one is an error naming where it was written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Protocol

from generator.unit import UnitError
from generator.unit.cmakelang import split_list

_TRUE = {"1", "ON", "YES", "TRUE", "Y"}
_FALSE = {"0", "OFF", "NO", "FALSE", "N", "IGNORE", "NOTFOUND", ""}

_UNARY = {"EXISTS", "COMMAND", "DEFINED", "TARGET", "IS_DIRECTORY", "IS_ABSOLUTE", "IS_SYMLINK", "POLICY", "TEST"}
_BINARY = {"MATCHES", "LESS", "GREATER", "EQUAL", "LESS_EQUAL", "GREATER_EQUAL", "STRLESS", "STRGREATER",
           "STREQUAL", "STRLESS_EQUAL", "STRGREATER_EQUAL", "VERSION_LESS", "VERSION_GREATER", "VERSION_EQUAL",
           "VERSION_LESS_EQUAL", "VERSION_GREATER_EQUAL", "IN_LIST", "PATH_EQUAL"}


def is_on(value: str) -> bool:
    """CMake's true constants (``1 ON YES TRUE Y``, any case)."""
    return value.upper() in _TRUE


def is_off(value: str | None) -> bool:
    """CMake's false constants (``0 OFF NO FALSE N IGNORE NOTFOUND``, empty, ``*-NOTFOUND``) and undefined."""
    return value is None or value.upper() in _FALSE or value.upper().endswith("-NOTFOUND")


def truthy(value: str | None) -> bool:
    """A value used as a boolean (``if(${x})`` after expansion, ``$<BOOL:...>``, options)."""
    if value is None:
        return False
    if is_on(value):
        return True
    if is_off(value):
        return False
    number = parse_number(value)
    return number is not None and number != 0


def parse_number(text: str) -> float | None:
    """A number as ``if()`` reads one (decimal, ``0x`` hexadecimal or floating point), else None."""
    text = text.strip()
    try:
        return float(int(text, 0))
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _version(text: str) -> list[int]:
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d*", piece).group(0)
        parts.append(int(digits) if digits else 0)
    return parts


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1: dotted versions compared component by component (missing components are 0)."""
    va, vb = _version(a), _version(b)
    n = max(len(va), len(vb))
    va += [0] * (n - len(va))
    vb += [0] * (n - len(vb))
    return (va > vb) - (va < vb)


def cmake_regex(pattern: str, where: str) -> re.Pattern:
    """A CMake regular expression as a Python one (the syntaxes agree on what ReactOS's files use)."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UnitError(f"{where}: bad regular expression {pattern!r}: {exc}") from None


class ConditionContext(Protocol):
    """What a condition needs to know about the interpreter's state."""

    def definition(self, name: str) -> str | None:
        """A variable's value (normal binding, then cache), None when undefined."""

    def cache_definition(self, name: str) -> str | None:
        """A cache entry's value, None when absent."""

    def is_command(self, name: str) -> bool:
        """Whether ``name`` can be invoked as a command."""

    def is_target(self, name: str) -> bool:
        """Whether a target ``name`` exists."""

    def set_matches(self, groups: list[str]) -> None:
        """Record ``CMAKE_MATCH_<n>`` after a successful ``MATCHES``."""


@dataclass
class _Tok:
    value: str
    quoted: bool
    result: bool | None = None        # set when the token is an evaluated sub-expression

    def keyword(self, names: set[str] | str) -> bool:
        if self.quoted or self.result is not None:
            return False
        return self.value in names if isinstance(names, set) else self.value == names


class _Condition:
    def __init__(self, ctx: ConditionContext, where: str):
        self.ctx = ctx
        self.where = where

    def error(self, message: str) -> UnitError:
        return UnitError(f"{self.where}: {message}")

    def value(self, tok: _Tok) -> str:
        """Operand value: an unquoted name of a defined variable stands for the variable's value."""
        if tok.result is not None:
            return "1" if tok.result else "0"
        if not tok.quoted:
            definition = self.ctx.definition(tok.value)
            if definition is not None:
                return definition
        return tok.value

    def boolean(self, tok: _Tok) -> bool:
        if tok.result is not None:
            return tok.result
        if is_on(tok.value):
            return True
        if is_off(tok.value):
            return False
        number = parse_number(tok.value)
        if number is not None:
            return number != 0
        if tok.quoted:
            return False
        return not is_off(self.ctx.definition(tok.value))

    def evaluate(self, toks: list[_Tok]) -> bool:
        toks = self._parens(toks)
        toks = self._unary(toks)
        toks = self._binary(toks)
        toks = self._not(toks)
        toks = self._and_or(toks)
        if len(toks) != 1:
            raise self.error("if() condition has unknown arguments: "
                             + " ".join(t.value if t.result is None else str(t.result) for t in toks))
        return self.boolean(toks[0])

    def _parens(self, toks: list[_Tok]) -> list[_Tok]:
        out: list[_Tok] = []
        i = 0
        while i < len(toks):
            if toks[i].keyword("("):
                depth, j = 1, i + 1
                while j < len(toks) and depth:
                    if toks[j].keyword("("):
                        depth += 1
                    elif toks[j].keyword(")"):
                        depth -= 1
                    j += 1
                if depth:
                    raise self.error("if() condition has an unbalanced '('")
                out.append(_Tok("", False, self.evaluate(toks[i + 1:j - 1])))
                i = j
            elif toks[i].keyword(")"):
                raise self.error("if() condition has an unbalanced ')'")
            else:
                out.append(toks[i])
                i += 1
        return out

    def _unary(self, toks: list[_Tok]) -> list[_Tok]:
        out: list[_Tok] = []
        i = 0
        while i < len(toks):
            tok = toks[i]
            if tok.keyword(_UNARY) and i + 1 < len(toks):
                arg = toks[i + 1].value
                out.append(_Tok("", False, self._predicate(tok.value, arg)))
                i += 2
            else:
                out.append(tok)
                i += 1
        return out

    def _predicate(self, name: str, arg: str) -> bool:
        if name == "DEFINED":
            if arg.startswith("ENV{") and arg.endswith("}"):
                return arg[4:-1] in os.environ
            if arg.startswith("CACHE{") and arg.endswith("}"):
                return self.ctx.cache_definition(arg[6:-1]) is not None
            return self.ctx.definition(arg) is not None
        if name == "COMMAND":
            return self.ctx.is_command(arg)
        if name == "TARGET":
            return self.ctx.is_target(arg)
        if name == "EXISTS":
            return os.path.isabs(arg) and os.path.exists(arg)
        if name == "IS_DIRECTORY":
            return os.path.isabs(arg) and os.path.isdir(arg)
        if name == "IS_SYMLINK":
            return os.path.isabs(arg) and os.path.islink(arg)
        if name == "IS_ABSOLUTE":
            return os.path.isabs(arg)
        raise self.error(f"if({name} ...) is not supported")

    def _binary(self, toks: list[_Tok]) -> list[_Tok]:
        i = 0
        toks = list(toks)
        while i + 2 < len(toks):
            op = toks[i + 1]
            if op.keyword(_BINARY):
                toks[i:i + 3] = [_Tok("", False, self._compare(toks[i], op.value, toks[i + 2]))]
            else:
                i += 1
        return toks

    def _compare(self, left: _Tok, op: str, right: _Tok) -> bool:
        lhs = self.value(left)
        if op == "MATCHES":
            match = cmake_regex(right.value, self.where).search(lhs)
            if match:
                self.ctx.set_matches([match.group(0)] + [g or "" for g in match.groups()])
            return match is not None
        if op == "IN_LIST":
            listed = self.ctx.definition(right.value)
            return listed is not None and lhs in split_list(listed)
        rhs = self.value(right)
        if op in ("LESS", "GREATER", "EQUAL", "LESS_EQUAL", "GREATER_EQUAL"):
            a, b = parse_number(lhs), parse_number(rhs)
            if a is None or b is None:
                return False
            return {"LESS": a < b, "GREATER": a > b, "EQUAL": a == b, "LESS_EQUAL": a <= b,
                    "GREATER_EQUAL": a >= b}[op]
        if op.startswith("VERSION_"):
            c = compare_versions(lhs, rhs)
            return {"VERSION_LESS": c < 0, "VERSION_GREATER": c > 0, "VERSION_EQUAL": c == 0,
                    "VERSION_LESS_EQUAL": c <= 0, "VERSION_GREATER_EQUAL": c >= 0}[op]
        if op == "PATH_EQUAL":
            return os.path.normpath(lhs) == os.path.normpath(rhs)
        return {"STREQUAL": lhs == rhs, "STRLESS": lhs < rhs, "STRGREATER": lhs > rhs,
                "STRLESS_EQUAL": lhs <= rhs, "STRGREATER_EQUAL": lhs >= rhs}[op]

    def _not(self, toks: list[_Tok]) -> list[_Tok]:
        toks = list(toks)
        i = len(toks) - 2
        while i >= 0:
            if toks[i].keyword("NOT"):
                toks[i:i + 2] = [_Tok("", False, not self.boolean(toks[i + 1]))]
            i -= 1
        return toks

    def _and_or(self, toks: list[_Tok]) -> list[_Tok]:
        toks = list(toks)
        i = 0
        while i + 2 < len(toks):
            op = toks[i + 1]
            if op.keyword({"AND", "OR"}):
                a, b = self.boolean(toks[i]), self.boolean(toks[i + 2])
                toks[i:i + 3] = [_Tok("", False, (a and b) if op.value == "AND" else (a or b))]
            else:
                i += 1
        return toks


def evaluate_condition(args: list[tuple[str, bool]], ctx: ConditionContext, where: str) -> bool:
    """Evaluate an ``if()``/``elseif()``/``while()`` condition; ``args`` are (value, was quoted) pairs."""
    if not args:
        return False
    return _Condition(ctx, where).evaluate([_Tok(value, quoted) for value, quoted in args])


# ---- generator expressions -----------------------------------------------------------------------------------------

class GenexContext(Protocol):
    """What a generator expression may ask: the language, the build configuration, target properties."""

    language: str
    config: str
    compiler_id: str

    def target_property(self, target: str | None, name: str) -> str:
        """A property of ``target`` (None: the target being compiled)."""

    def is_target(self, name: str) -> bool:
        """Whether a target ``name`` exists."""


@dataclass
class _Genex:
    name: list          # parts: str or _Genex
    args: list[list]    # each argument: parts


def _parse_genex(text: str, pos: int, where: str) -> tuple[_Genex, int]:
    """Parse ``$<...>`` starting after ``$<`` at ``pos``; returns the node and the position after ``>``."""
    name: list = []
    args: list[list] = []
    current = name
    buf: list[str] = []

    def flush():
        if buf:
            current.append("".join(buf))
            buf.clear()

    while pos < len(text):
        if text.startswith("$<", pos):
            flush()
            node, pos = _parse_genex(text, pos + 2, where)
            current.append(node)
            continue
        c = text[pos]
        if c == ">":
            flush()
            return _Genex(name, args), pos + 1
        if c == ":" and current is name:
            flush()
            current = []
            args.append(current)
        elif c == "," and current is not name:
            flush()
            current = []
            args.append(current)
        else:
            buf.append(c)
        pos += 1
    raise UnitError(f"{where}: unterminated generator expression in {text!r}")


def has_genex(text: str) -> bool:
    """Whether ``text`` contains a generator expression."""
    return "$<" in text


class _GenexEval:
    def __init__(self, ctx: GenexContext, where: str):
        self.ctx = ctx
        self.where = where

    def error(self, message: str) -> UnitError:
        return UnitError(f"{self.where}: {message}")

    def parts(self, parts: list) -> str:
        return "".join(p if isinstance(p, str) else self.node(p) for p in parts)

    def node(self, g: _Genex) -> str:
        name = self.parts(g.name)
        lazy = {"AND", "OR", "IF"}
        if name in lazy:
            return self.logic(name, g.args)
        if name == "0":
            return ""                      # the value is not evaluated at all
        args = [self.parts(a) for a in g.args]
        if name == "1":
            return ",".join(args)
        if name == "BOOL":
            return "1" if truthy(args[0] if args else "") else "0"
        if name == "NOT":
            return "0" if self.bit(args, name) else "1"
        if name == "STREQUAL":
            return "1" if len(args) == 2 and args[0] == args[1] else "0"
        if name == "EQUAL":
            a, b = (parse_number(x) for x in args[:2]) if len(args) == 2 else (None, None)
            return "1" if a is not None and a == b else "0"
        if name == "IN_LIST":
            return "1" if len(args) == 2 and args[0] in split_list(args[1]) else "0"
        if name == "COMPILE_LANGUAGE":
            if not args:
                return self.ctx.language
            return "1" if self.ctx.language in args[0].split(",") else "0"
        if name in ("C_COMPILER_ID", "CXX_COMPILER_ID"):
            if not args:
                return self.ctx.compiler_id
            return "1" if self.ctx.compiler_id in args[0].split(",") else "0"
        if name == "CONFIG":
            if not args:
                return self.ctx.config
            return "1" if self.ctx.config.upper() in (a.upper() for a in args[0].split(",")) else "0"
        if name == "TARGET_PROPERTY":
            if len(args) == 1:
                return self.ctx.target_property(None, args[0])
            if len(args) == 2:
                if not self.ctx.is_target(args[0]):
                    raise self.error(f"$<TARGET_PROPERTY:{args[0]},...>: no target {args[0]!r}")
                return self.ctx.target_property(args[0], args[1])
        if name == "BUILD_INTERFACE":
            return ",".join(args)
        if name == "INSTALL_INTERFACE":
            return ""
        if name == "ANGLE-R":
            return ">"
        if name == "COMMA":
            return ","
        if name == "SEMICOLON":
            return ";"
        raise self.error(f"generator expression $<{name}{':' if args else ''}{','.join(args)}> is not supported "
                         f"here")

    def bit(self, args: list[str], name: str) -> bool:
        if len(args) != 1 or args[0] not in ("0", "1"):
            raise self.error(f"$<{name}:...> expects 0 or 1, got {','.join(args)!r}")
        return args[0] == "1"

    def logic(self, name: str, raw_args: list[list]) -> str:
        if name == "IF":
            if len(raw_args) != 3:
                raise self.error("$<IF:cond,then,else> needs three arguments")
            cond = self.parts(raw_args[0])
            return self.parts(raw_args[1] if self.bit([cond], "IF") else raw_args[2])
        for raw in raw_args:              # short-circuit, left to right
            bit = self.bit([self.parts(raw)], name)
            if name == "AND" and not bit:
                return "0"
            if name == "OR" and bit:
                return "1"
        return "1" if name == "AND" else "0"

    def run(self, text: str) -> str:
        out: list[str] = []
        pos = 0
        while True:
            start = text.find("$<", pos)
            if start < 0:
                out.append(text[pos:])
                return "".join(out)
            out.append(text[pos:start])
            g, pos = _parse_genex(text, start + 2, self.where)
            out.append(self.node(g))


def evaluate_genex(text: str, ctx: GenexContext, where: str) -> str:
    """``text`` with every generator expression evaluated for ``ctx``."""
    if "$<" not in text:
        return text
    return _GenexEval(ctx, where).run(text)


def target_objects_name(text: str) -> str | None:
    """The target of an entry that is exactly ``$<TARGET_OBJECTS:name>``, else None."""
    match = re.fullmatch(r"\$<TARGET_OBJECTS:([^<>$,]+)>", text)
    return match.group(1) if match else None

