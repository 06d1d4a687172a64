"""printf-style formatting the kernel's debug print and C-runtime exports share.

Conversions: ``%s %S %ws %Z %wZ %c %C %d %i %u %x %X %p %o %%`` with flags, width, precision and the size
prefixes ``h l ll I I32 I64 w z``.  Arguments come from ``next_arg()`` one integer at a time (the Microsoft x64
variadic convention passes every argument in a register or an 8-byte stack slot).
"""

from __future__ import annotations

import re
from typing import Callable

from . import gdata

_FMT = re.compile(r"%([-+ #0]*)(\*|\d*)(?:\.(\*|\d+))?(I64|I32|ll|l|h|z|I|w)?([sSZcCdiuxXpo%])")


def format_text(k, fmt: str, next_arg: Callable[[], int], *, wide: bool = False) -> str:
    """``fmt`` with its conversions replaced by the arguments ``next_arg`` yields."""

    def sub(m: re.Match) -> str:
        flags, width, precision, size, conv = m.groups()
        if conv == "%":
            return "%"
        if width == "*":
            width = str(next_arg() & 0xFFFFFFFF)
        if precision == "*":
            precision = str(next_arg() & 0xFFFFFFFF)
        v = next_arg()
        big = size in ("I64", "ll", "I", "z") or conv == "p"
        if conv in "sS":
            if size == "h":
                narrow = True
            elif size in ("w", "l"):
                narrow = False
            else:
                narrow = (conv == "s") != wide
            if not v:
                text = "(null)"
            elif narrow:
                text = gdata.read_cstr(k, v, 4096)
            else:
                text = gdata.read_wstr(k, v)
            if precision is not None:
                text = text[: int(precision)]
        elif conv == "Z":
            if not v:
                text = "(null)"
            elif size == "w":
                text = gdata.unicode_string(k, v) or ""
            else:
                text = (gdata.ansi_string(k, v) or b"").decode("latin-1")
        elif conv in "cC":
            text = chr(v & (0xFFFF if (conv == "C") != wide else 0xFF))
        else:
            bits = 64 if big else 32
            v &= (1 << bits) - 1
            if conv in "di":
                v = v - (1 << bits) if v >> (bits - 1) else v
                text = str(v)
                if "+" in flags and v >= 0:
                    text = "+" + text
            elif conv == "u":
                text = str(v)
            elif conv == "o":
                text = f"{v:o}"
            elif conv == "p":
                text = f"{v:016X}"
            else:
                text = f"{v:x}" if conv == "x" else f"{v:X}"
                if "#" in flags and v:
                    text = ("0x" if conv == "x" else "0X") + text
            if precision is not None and conv != "p":
                text = text.rjust(int(precision), "0")
        if width and width.isdigit():
            w = int(width)
            if "-" in flags:
                text = text.ljust(w)
            elif "0" in flags and conv not in "sScCZ":
                sign = text[0] if text[:1] in "+-" else ""
                text = sign + text[len(sign):].rjust(w - len(sign), "0")
            else:
                text = text.rjust(w)
        return text

    return _FMT.sub(sub, fmt)


def vararg_reader(k, first_index: int) -> Callable[[], int]:
    """Arguments of the current variadic call from position ``first_index`` on."""
    state = {"i": first_index}

    def nxt() -> int:
        value = k.arg(state["i"])
        state["i"] += 1
        return value

    return nxt


def va_list_reader(k, va_list: int) -> Callable[[], int]:
    """Arguments of a ``va_list`` (x64: a pointer to consecutive 8-byte slots)."""
    state = {"p": va_list}

    def nxt() -> int:
        value = k.mem.vu(state["p"], 8)
        state["p"] += 8
        return value

    return nxt
