"""The CMake language: tokenizer, parser, block structure and argument expansion.

Written from the CMake language reference (``cmake-language(7)``): a file is a sequence of command invocations
``name(arguments)``, one per line; arguments are bracket (``[=[...]=]``, literal), quoted (``"..."``: escapes
and variable references, never split) or unquoted (escapes and variable references, then split on ``;`` into
list elements, empty elements dropped). Nested parentheses inside an argument list reach the command as the
unquoted arguments ``(`` and ``)`` (``if`` uses them for grouping). ``#`` starts a line comment, ``#[[...]]`` a
bracket comment.

The parser turns the flat command list into blocks (``if``/``elseif``/``else``/``endif``, ``foreach``,
``while``, ``function``, ``macro``) so a missing ``endif`` is reported with the file and line of its ``if``.
Nothing here evaluates commands; ``generator.unit.cmake`` does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from generator.unit import UnitError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACKET_OPEN = re.compile(r"\[(=*)\[")
#: Characters CMake accepts in a variable name inside ``${...}`` (besides nested references and escapes).
_VAR_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_.+-")


@dataclass(frozen=True)
class Arg:
    """One argument as written: ``text`` is the raw source (escapes and references not yet evaluated)."""

    text: str
    kind: str            # "bracket", "quoted" or "unquoted"
    line: int


@dataclass(frozen=True)
class Command:
    """One command invocation; ``name`` is lower-case (CMake command names are case-insensitive)."""

    name: str
    args: tuple[Arg, ...]
    file: Path
    line: int

    def where(self) -> str:
        """``file:line`` of the invocation."""
        return f"{self.file}:{self.line}"


@dataclass
class IfBlock:
    """``if``/``elseif``.../``else``/``endif``: each branch is its condition command and body."""

    branches: list[tuple[Command, list]]
    orelse: list | None
    head: Command


@dataclass
class LoopBlock:
    """``foreach``/``while`` with its body."""

    head: Command
    body: list


@dataclass
class DefBlock:
    """``function``/``macro`` definition with its body (run when called)."""

    head: Command
    body: list
    kind: str = field(default="function")


Node = Command | IfBlock | LoopBlock | DefBlock


# ---- tokenizer ---------------------------------------------------------------------------------------------------

class _Lexer:
    def __init__(self, text: str, path: Path):
        self.text = text
        self.path = path
        self.pos = 0
        self.line = 1

    def error(self, message: str, line: int | None = None) -> UnitError:
        return UnitError(f"{self.path}:{line or self.line}: {message}")

    def _advance(self, count: int) -> str:
        chunk = self.text[self.pos:self.pos + count]
        self.line += chunk.count("\n")
        self.pos += count
        return chunk

    def _bracket(self, start_line: int, what: str) -> str:
        """Read ``[=*[ ... ]=*]`` at pos; returns the content (a newline right after the opening is dropped)."""
        match = _BRACKET_OPEN.match(self.text, self.pos)
        assert match is not None
        close = "]" + match.group(1) + "]"
        end = self.text.find(close, match.end())
        if end < 0:
            raise self.error(f"unterminated bracket {what} (expected {close!r})", start_line)
        content = self.text[match.end():end]
        self._advance(end + len(close) - self.pos)
        if content.startswith("\r\n"):
            content = content[2:]
        elif content.startswith("\n"):
            content = content[1:]
        return content

    def _comment(self) -> None:
        """Skip a ``#`` comment (line or bracket) at pos."""
        start_line = self.line
        self._advance(1)
        if _BRACKET_OPEN.match(self.text, self.pos):
            self._bracket(start_line, "comment")
            return
        end = self.text.find("\n", self.pos)
        self._advance((len(self.text) if end < 0 else end) - self.pos)

    def _skip_blank(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\r" or (newlines and c == "\n"):
                self._advance(1)
            elif c == "#" and newlines:
                self._comment()
            else:
                return

    def commands(self) -> list[Command]:
        out: list[Command] = []
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return out
            match = _IDENT.match(self.text, self.pos)
            if not match:
                raise self.error(f"expected a command name, found {self.text[self.pos]!r}")
            line = self.line
            name = self._advance(match.end() - self.pos)
            self._skip_blank(newlines=False)
            if self.pos >= len(self.text) or self.text[self.pos] != "(":
                raise self.error(f"expected '(' after command name {name!r}")
            self._advance(1)
            args = self._arguments(line, name)
            out.append(Command(name.lower(), tuple(args), self.path, line))
            # A command ends its line: only blanks and a comment may follow.
            self._skip_blank(newlines=False)
            if self.pos < len(self.text):
                c = self.text[self.pos]
                if c == "#":
                    self._comment()
                elif c != "\n":
                    raise self.error(f"expected a newline after {name}(...), found {c!r}")

    def _arguments(self, line: int, name: str) -> list[Arg]:
        args: list[Arg] = []
        depth = 1
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                raise self.error(f"unterminated argument list of {name}() (missing ')')", line)
            c = self.text[self.pos]
            if c == "(":
                args.append(Arg("(", "unquoted", self.line))
                depth += 1
                self._advance(1)
            elif c == ")":
                self._advance(1)
                depth -= 1
                if depth == 0:
                    return args
                args.append(Arg(")", "unquoted", self.line))
            elif c == '"':
                args.append(self._quoted())
            elif c == "[" and _BRACKET_OPEN.match(self.text, self.pos):
                arg_line = self.line
                args.append(Arg(self._bracket(arg_line, "argument"), "bracket", arg_line))
            else:
                args.append(self._unquoted())

    def _quoted(self) -> Arg:
        line = self.line
        self._advance(1)
        start = self.pos
        while True:
            if self.pos >= len(self.text):
                raise self.error("unterminated quoted argument", line)
            c = self.text[self.pos]
            if c == "\\":
                self._advance(2)
            elif c == '"':
                raw = self.text[start:self.pos]
                self._advance(1)
                return Arg(raw, "quoted", line)
            else:
                self._advance(1)

    def _unquoted(self) -> Arg:
        line = self.line
        start = self.pos
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\":
                if self.pos + 1 >= len(self.text):
                    raise self.error("a backslash ends the file")
                self._advance(2)
            elif c == '"' and self.pos > start:
                # Legacy form (-DNAME="a b"): the quoted part belongs to the argument, quotes included.
                self._advance(1)
                while self.pos < len(self.text) and self.text[self.pos] != '"':
                    self._advance(2 if self.text[self.pos] == "\\" else 1)
                if self.pos >= len(self.text):
                    raise self.error("unterminated quote inside an unquoted argument", line)
                self._advance(1)
            elif c in " \t\r\n()#\"":
                break
            else:
                self._advance(1)
        return Arg(self.text[start:self.pos], "unquoted", line)


# ---- blocks --------------------------------------------------------------------------------------------------------

_OPENERS = {"if": "endif", "foreach": "endforeach", "while": "endwhile", "function": "endfunction",
            "macro": "endmacro"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}


def _blocks(commands: list[Command], pos: int, until: Command | None) -> tuple[list[Node], int]:
    """Structure ``commands[pos:]`` into nodes up to the closer of ``until`` (None: the end of the file)."""
    nodes: list[Node] = []
    while pos < len(commands):
        cmd = commands[pos]
        if until is not None and (cmd.name == _OPENERS[until.name]
                                  or (until.name == "if" and cmd.name in ("elseif", "else"))):
            return nodes, pos
        if cmd.name in _CLOSERS or cmd.name in ("elseif", "else"):
            raise UnitError(f"{cmd.where()}: {cmd.name}() without a matching "
                            f"{_CLOSERS.get(cmd.name, 'if')}()")
        pos += 1
        if cmd.name == "if":
            branches: list[tuple[Command, list]] = []
            head = cmd
            orelse = None
            while True:
                body, pos = _blocks(commands, pos, cmd)
                if pos >= len(commands):
                    raise UnitError(f"{cmd.where()}: if() without endif()")
                branches.append((head, body))
                nxt = commands[pos]
                pos += 1
                if nxt.name == "elseif":
                    head = nxt
                    continue
                if nxt.name == "else":
                    orelse, pos = _blocks(commands, pos, cmd)
                    if pos >= len(commands):
                        raise UnitError(f"{cmd.where()}: if() without endif()")
                    end = commands[pos]
                    if end.name != "endif":
                        raise UnitError(f"{end.where()}: {end.name}() after else() (expected endif())")
                    pos += 1
                break
            nodes.append(IfBlock(branches, orelse, cmd))
        elif cmd.name in _OPENERS:
            body, pos = _blocks(commands, pos, cmd)
            if pos >= len(commands):
                raise UnitError(f"{cmd.where()}: {cmd.name}() without {_OPENERS[cmd.name]}()")
            pos += 1
            if cmd.name in ("function", "macro"):
                nodes.append(DefBlock(cmd, body, cmd.name))
            else:
                nodes.append(LoopBlock(cmd, body))
        else:
            nodes.append(cmd)
    return nodes, pos


def parse(text: str, path: Path) -> list[Node]:
    """Parse CMake source ``text`` (read from ``path``, named in errors) into nodes."""
    nodes, _ = _blocks(_Lexer(text, path).commands(), 0, None)
    return nodes


def parse_file(path: Path) -> list[Node]:
    """Parse the CMake file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UnitError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse(text, Path(path))


def commands_in(nodes: list[Node]):
    """Every command invocation in ``nodes``, nested blocks included (block heads too), in file order."""
    for node in nodes:
        if isinstance(node, Command):
            yield node
        elif isinstance(node, IfBlock):
            for head, body in node.branches:
                yield head
                yield from commands_in(body)
            if node.orelse:
                yield from commands_in(node.orelse)
        else:
            yield node.head
            yield from commands_in(node.body)


# ---- expansion -------------------------------------------------------------------------------------------------------

Lookup = Callable[[str], "str | None"]


def split_list(value: str) -> list[str]:
    """CMake list splitting: on ``;`` outside ``[...]``, ``\\;`` is a literal ``;``; empty elements dropped."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] == ";":
            cur.append(";")
            i += 2
            continue
        if c == "[":
            depth += 1
        elif c == "]" and depth:
            depth -= 1
        elif c == ";" and depth == 0:
            if cur:
                out.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    if cur:
        out.append("".join(cur))
    return out


class _Expander:
    """Evaluates escapes and ``${}``/``$ENV{}``/``$CACHE{}`` references of one raw argument, in one pass."""

    def __init__(self, raw: str, quoted: bool, variables: Lookup, cache: Lookup, where: str):
        self.raw = raw
        self.quoted = quoted
        self.variables = variables
        self.cache = cache
        self.where = where

    def error(self, message: str) -> UnitError:
        return UnitError(f"{self.where}: {message}")

    def run(self) -> str:
        out, pos = self._text(0, in_ref=False)
        return out

    def _escape(self, pos: int, in_ref: bool) -> tuple[str, int]:
        if pos + 1 >= len(self.raw):
            raise self.error("a backslash ends the argument")
        c = self.raw[pos + 1]
        if c == "\n" and self.quoted:
            return "", pos + 2                       # line continuation inside quotes
        if c in "tnr":
            return {"t": "\t", "n": "\n", "r": "\r"}[c], pos + 2
        if c == ";":
            # Outside references "\;" stays as written (a list splitter skips it); inside, it is a plain ";".
            return (";" if in_ref else "\\;"), pos + 2
        if c.isalnum():
            raise self.error(f"invalid escape sequence \\{c}")
        return c, pos + 2

    def _text(self, pos: int, in_ref: bool) -> tuple[str, int]:
        """Expand from ``pos``; inside a reference, stop at its ``}`` (returned position is after it)."""
        out: list[str] = []
        raw = self.raw
        while pos < len(raw):
            c = raw[pos]
            if c == "\\":
                text, pos = self._escape(pos, in_ref)
                out.append(text)
            elif c == "}" and in_ref:
                return "".join(out), pos + 1
            elif c == "$":
                for prefix, kind in (("${", "var"), ("$ENV{", "env"), ("$CACHE{", "cache")):
                    if raw.startswith(prefix, pos):
                        value, pos = self._reference(pos + len(prefix), kind)
                        out.append(value)
                        break
                else:
                    out.append(c)
                    pos += 1
            else:
                if in_ref and c not in _VAR_CHARS:
                    raise self.error(f"invalid character {c!r} in a variable reference")
                out.append(c)
                pos += 1
        if in_ref:
            raise self.error("unterminated variable reference (missing '}')")
        return "".join(out), pos

    def _reference(self, pos: int, kind: str) -> tuple[str, int]:
        name, pos = self._text(pos, in_ref=True)
        if kind == "env":
            return os.environ.get(name, ""), pos
        value = self.cache(name) if kind == "cache" else self.variables(name)
        return ("" if value is None else value), pos


def expand(arg: Arg, variables: Lookup, cache: Lookup, where: str) -> list[str]:
    """The values ``arg`` stands for: one for bracket and quoted arguments, 0..n list elements for unquoted."""
    if arg.kind == "bracket":
        return [arg.text]
    value = _Expander(arg.text, arg.kind == "quoted", variables, cache, where).run()
    if arg.kind == "quoted":
        return [value]
    return split_list(value)


def substitute_macro(nodes: list[Node], mapping: dict[str, str]) -> list[Node]:
    """Copy of a macro body with ``${name}`` of each macro parameter replaced by its text (CMake macro rule)."""
    if not mapping:
        return nodes
    pattern = re.compile(r"\$\{(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)) + r")\}")

    def arg(a: Arg) -> Arg:
        if a.kind == "bracket" or "${" not in a.text:
            return a
        return Arg(pattern.sub(lambda m: mapping[m.group(1)], a.text), a.kind, a.line)

    def cmd(c: Command) -> Command:
        return Command(c.name, tuple(arg(a) for a in c.args), c.file, c.line)

    def node(n: Node) -> Node:
        if isinstance(n, Command):
            return cmd(n)
        if isinstance(n, IfBlock):
            return IfBlock([(cmd(h), [node(x) for x in body]) for h, body in n.branches],
                           None if n.orelse is None else [node(x) for x in n.orelse], cmd(n.head))
        if isinstance(n, LoopBlock):
            return LoopBlock(cmd(n.head), [node(x) for x in n.body])
        return DefBlock(cmd(n.head), [node(x) for x in n.body], n.kind)

    return [node(n) for n in nodes]
