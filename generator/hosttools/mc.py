"""The message compiler, header part: ``bugcodes.h`` from ReactOS's ``sdk/include/reactos/mc/bugcodes.mc``.

A ``.mc`` file (Microsoft's message text format, which ReactOS's ``wmc`` reads) has a header section of
``Keyword=value`` statements (``MessageIdTypedef``, ``SeverityNames``, ``FacilityNames``, ``LanguageNames``,
``OutputBase``; the name lists are ``(Name=number[:symbol] ...)`` and may span lines) followed by messages:

    MessageId=[number|+number]      (starts a message; empty: previous id of that facility + 1; +N: previous + N)
    Severity=Name                   (optional: the previous message's, initially Success)
    Facility=Name                   (optional: the previous message's, initially Application)
    SymbolicName=NAME
    Language=Name                   (one or more blocks of text, each ended by a line holding only ".")

Lines starting with ``;`` are copied to the header without the ``;``. The header gets one
``#define SymbolicName ((Typedef)0xXXXXXXXXL)`` per message with value Severity << 30 | Facility << 16 | Id.
Only the header is made (no message resources): that is all a kernel-mode compile needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from generator.hosttools import HostToolError

_KEYWORD = re.compile(r"^\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")
_NAME_ITEM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(0[xX][0-9A-Fa-f]+|\d+)(?:\s*:\s*([A-Za-z0-9_.]+))?")
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_KEYWORDS = {"messageidtypedef", "severitynames", "facilitynames", "languagenames", "outputbase"}
_MESSAGE_KEYWORDS = {"severity", "facility", "symbolicname", "language", "outputbase"}
# Defaults of the message compiler when a file names none.
_DEFAULT_SEVERITIES = {"Success": 0x0, "Informational": 0x1, "Warning": 0x2, "Error": 0x3}
_DEFAULT_FACILITIES = {"System": 0x0FF, "Application": 0xFFF}
_DEFAULT_LANGUAGES = {"English": 0x1}


class McError(HostToolError):
    """A ``.mc`` file cannot be compiled; the message names the file and line and what was expected."""


@dataclass(frozen=True)
class Message:
    """One message of a ``.mc`` file."""

    symbol: str
    severity: int
    facility: int
    message_id: int
    line: int                      # where its MessageId statement is

    @property
    def value(self) -> int:
        """The 32-bit message code: severity in bits 30-31, facility in 16-27, id in 0-15."""
        return (self.severity << 30) | (self.facility << 16) | self.message_id


@dataclass
class McFile:
    """A parsed ``.mc`` file: its messages in file order and the header-section settings that shape the header."""

    path: Path
    typedef: str | None
    messages: list[Message]
    comments: list[tuple[int, str]]   # (position among messages, comment text) copied into the header


def parse_mc(path: Path) -> McFile:
    """Read a ``.mc`` file; raises :class:`McError` naming ``file:line`` on anything malformed."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise McError(f"{path}: cannot read: {exc}") from exc
    lines = [line.rstrip("\r") for line in text.split("\n")]
    severities = dict(_DEFAULT_SEVERITIES)
    facilities = dict(_DEFAULT_FACILITIES)
    languages = dict(_DEFAULT_LANGUAGES)
    typedef: str | None = None
    messages: list[Message] = []
    comments: list[tuple[int, str]] = []
    last_id: dict[int, int] = {}               # facility -> last message id used in it
    severity, facility = severities["Success"], facilities["Application"]
    current: dict | None = None                # the message being read

    def finish() -> None:
        if current is None:
            return
        if "symbol" not in current:
            raise McError(f"{path}:{current['line']}: message has no SymbolicName=")
        if not current["texts"]:
            raise McError(f"{path}:{current['line']}: message {current['symbol']} has no Language= text")
        messages.append(Message(current["symbol"], current["severity"], current["facility"], current["id"],
                                current["line"]))
        last_id[current["facility"]] = current["id"]

    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        i += 1
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(";"):
            comments.append((len(messages) + (current is not None), stripped[1:]))
            continue
        m = _KEYWORD.match(line)
        if not m:
            raise McError(f"{path}:{number}: expected Keyword=value, got {stripped!r}")
        keyword, value = m.group(1), m.group(2)
        key = keyword.lower()
        if key == "messageid":
            finish()
            # an omitted or relative id counts from the facility's last id; a later Facility= recomputes it
            current = {"line": number, "severity": severity, "facility": facility, "texts": [], "raw_id": value,
                       "id": _message_id(path, number, value, last_id.get(facility, -1))}
            continue
        if current is None:
            if key not in _HEADER_KEYWORDS:
                raise McError(f"{path}:{number}: unexpected {keyword}= before the first MessageId= "
                              f"(expected one of MessageIdTypedef, SeverityNames, FacilityNames, LanguageNames, "
                              f"OutputBase)")
            if key == "messageidtypedef":
                if not _SYMBOL.match(value):
                    raise McError(f"{path}:{number}: expected a C type name after MessageIdTypedef=")
                typedef = value
            elif key in ("severitynames", "facilitynames", "languagenames"):
                body, i = _name_list(path, number, value, lines, i)
                table = _parse_names(path, number, keyword, body)
                if key == "severitynames":
                    severities = table
                    if any(v > 3 for v in table.values()):
                        raise McError(f"{path}:{number}: severity values are 0..3")
                elif key == "languagenames":
                    languages = table
                elif key == "facilitynames":
                    facilities = table
                    if any(v > 0xFFF for v in table.values()):
                        raise McError(f"{path}:{number}: facility values are 0..0xFFF")
            elif key == "outputbase" and value not in ("10", "16"):
                raise McError(f"{path}:{number}: expected OutputBase=10 or 16")
            continue
        if key not in _MESSAGE_KEYWORDS:
            raise McError(f"{path}:{number}: unexpected {keyword}= in a message (expected Severity, Facility, "
                          f"SymbolicName, Language or OutputBase)")
        if key == "severity":
            if value not in severities:
                raise McError(f"{path}:{number}: unknown severity {value!r} (SeverityNames has "
                              f"{', '.join(severities)})")
            severity = current["severity"] = severities[value]
        elif key == "facility":
            if value not in facilities:
                raise McError(f"{path}:{number}: unknown facility {value!r} (FacilityNames has "
                              f"{', '.join(facilities)})")
            facility = current["facility"] = facilities[value]
            current["id"] = _message_id(path, current["line"], current["raw_id"], last_id.get(facility, -1))
        elif key == "symbolicname":
            if not _SYMBOL.match(value):
                raise McError(f"{path}:{number}: expected a C identifier after SymbolicName=, got {value!r}")
            current["symbol"] = value
        elif key == "language":
            # the text runs up to a line holding only "."
            end = i
            while end < len(lines) and lines[end].strip() != ".":
                end += 1
            if end >= len(lines):
                raise McError(f"{path}:{number}: message text of Language={value} is not ended by a '.' line")
            if value not in languages:
                raise McError(f"{path}:{number}: unknown language {value!r} (LanguageNames has "
                              f"{', '.join(languages)})")
            current["texts"].append(lines[i:end])
            i = end + 1
    finish()
    seen: dict[str, int] = {}
    for msg in messages:
        if msg.symbol in seen:
            raise McError(f"{path}:{msg.line}: SymbolicName {msg.symbol} already used at line {seen[msg.symbol]}")
        seen[msg.symbol] = msg.line
    return McFile(path, typedef, messages, comments)


def render_header(mc: McFile) -> bytes:
    """The C header of a parsed ``.mc`` file: copied comments and one ``#define`` per message."""
    out = [f"/* Generated by gen2hal from {mc.path.name}: message codes. Do not edit. */", ""]
    comments = list(mc.comments)
    for index, msg in enumerate(mc.messages):
        while comments and comments[0][0] <= index:
            out.append(comments.pop(0)[1])
        code = f"0x{msg.value:08X}L"
        value = f"(({mc.typedef}){code})" if mc.typedef else code
        out.append(f"#define {msg.symbol:<32} {value}")
    out.extend(text for _, text in comments)
    out.append("")
    return "\n".join(out).encode("utf-8")


def generate_header(path: Path) -> bytes:
    """``bugcodes.h`` (or any ``.mc`` header) from the ``.mc`` file at ``path``."""
    return render_header(parse_mc(path))


def _message_id(path: Path, line: int, value: str, previous: int) -> int:
    """MessageId= value: empty -> previous + 1, +N -> previous + N, N -> N; must fit 16 bits."""
    value = value.strip()
    try:
        if not value:
            result = previous + 1
        elif value.startswith("+"):
            result = previous + int(value[1:], 0)
        else:
            result = int(value, 0)
    except ValueError:
        raise McError(f"{path}:{line}: expected MessageId=[number|+number], got {value!r}") from None
    if not 0 <= result <= 0xFFFF:
        raise McError(f"{path}:{line}: MessageId {result:#x} does not fit 16 bits")
    return result


def _name_list(path: Path, line: int, first: str, lines: list[str], i: int) -> tuple[str, int]:
    """The body of ``(...)`` starting on ``first`` and maybe running over the next lines; returns (body, next i)."""
    text = first
    while ")" not in text:
        if i >= len(lines):
            raise McError(f"{path}:{line}: name list is not closed by ')'")
        text += " " + lines[i]
        i += 1
    text = text.strip()
    if not text.startswith("("):
        raise McError(f"{path}:{line}: expected a name list in parentheses")
    body, _, rest = text[1:].partition(")")
    if rest.strip():
        raise McError(f"{path}:{line}: unexpected {rest.strip()!r} after the name list")
    return body, i


def _parse_names(path: Path, line: int, keyword: str, body: str) -> dict[str, int]:
    """``Name=number[:symbol] ...`` -> {Name: number}."""
    table: dict[str, int] = {}
    pos = 0
    body = body.strip()
    while pos < len(body):
        m = _NAME_ITEM.match(body, pos)
        if not m:
            raise McError(f"{path}:{line}: {keyword}: expected Name=number[:symbol], got {body[pos:].split()[0]!r}")
        table[m.group(1)] = int(m.group(2), 0)
        pos = m.end()
        while pos < len(body) and body[pos].isspace():
            pos += 1
    if not table:
        raise McError(f"{path}:{line}: {keyword} lists no names")
    return table
