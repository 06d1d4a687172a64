"""Read a GNU ld link map of a PE image: where each function of the HAL lies.

With ``-ffunction-sections`` every function has its own input section (``.text$Name``), so the map gives its exact
address and size. The machine model names guest code with it; the tests disassemble single functions with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_SECTION_RE = re.compile(r"^ (\.[\w$.@?]+)(?:\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*))?$")
_PLACEMENT_RE = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_SYMBOL_RE = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+([A-Za-z_.$?@][\w.$?@]*)\s*$")


@dataclass(frozen=True)
class Symbol:
    """A code or data symbol of the linked image."""

    name: str
    address: int  # virtual address at the image's preferred base
    size: int
    section: str
    object_file: str

    def contains(self, address: int) -> bool:
        """True when ``address`` lies inside this symbol."""
        return self.address <= address < self.address + self.size


def parse(text: str) -> dict[str, Symbol]:
    """Symbols (with sizes) of the output sections of a GNU ld map, keyed by name."""
    symbols: dict[str, Symbol] = {}
    lines = text.splitlines()
    section = None  # (name, address, size, object)
    members: list[tuple[int, str]] = []

    def flush():
        if section is None:
            return
        name, start, size, obj = section
        if start == 0 or size == 0:
            return
        ordered = sorted(members)
        for i, (addr, sym) in enumerate(ordered):
            end = ordered[i + 1][0] if i + 1 < len(ordered) else start + size
            symbols[sym] = Symbol(sym, addr, max(0, end - addr), name, obj)

    i = 0
    while i < len(lines):
        line = lines[i]
        m = _SECTION_RE.match(line)
        if m:
            flush()
            members = []
            if m.group(2) is not None:
                section = (m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4).strip())
            else:
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                p = _PLACEMENT_RE.match(nxt)
                if p and not _SYMBOL_RE.match(nxt):
                    section = (m.group(1), int(p.group(1), 16), int(p.group(2), 16), p.group(3).strip())
                    i += 1
                else:
                    section = None
            i += 1
            continue
        s = _SYMBOL_RE.match(line)
        if s and section is not None:
            addr = int(s.group(1), 16)
            if section[1] <= addr < section[1] + section[2]:
                members.append((addr, s.group(2)))
        elif line and not line.startswith(" "):
            flush()
            section, members = None, []
        i += 1
    flush()
    return symbols


def load(path: str | Path) -> dict[str, Symbol]:
    """Parse the map file at ``path``."""
    return parse(Path(path).read_text(encoding="utf-8", errors="replace"))


def functions(symbols: dict[str, Symbol]) -> dict[str, Symbol]:
    """Only the symbols placed in code sections."""
    return {n: s for n, s in symbols.items() if s.section.startswith(".text")}
