"""Guest data the kernel's behaviours read and write: counted strings, C strings, doubly linked lists."""

from __future__ import annotations

from ..errors import ModelError

MAX_STRING = 0x10000


def read_wstr(k, va: int, chars: int | None = None) -> str:
    """A UTF-16LE string at ``va``: ``chars`` characters, or up to the first NUL."""
    if chars is not None:
        return k.mem.vread(va, 2 * chars).decode("utf-16-le", errors="replace")
    out = bytearray()
    while len(out) < MAX_STRING:
        pair = k.mem.vread(va + len(out), 2)
        if pair == b"\0\0":
            break
        out += pair
    return out.decode("utf-16-le", errors="replace")


def read_cstr(k, va: int, limit: int = 4096) -> str:
    """A NUL-terminated byte string at ``va`` (Latin-1)."""
    return k.mem.cstring(va, limit)


def unicode_string(k, va: int) -> str | None:
    """The text of the UNICODE_STRING at ``va`` (``None`` for a NULL pointer)."""
    if not va:
        return None
    length = k.get(va, "unicode_string", "Length")
    buf = k.get(va, "unicode_string", "Buffer")
    if length and not buf:
        raise ModelError(f"UNICODE_STRING at {va:#x} has Length {length} and no Buffer")
    return read_wstr(k, buf, length // 2) if length else ""


def ansi_string(k, va: int) -> bytes | None:
    """The bytes of the STRING (ANSI_STRING) at ``va``."""
    if not va:
        return None
    length = k.get(va, "string", "Length")
    buf = k.get(va, "string", "Buffer")
    return k.mem.vread(buf, length) if length else b""


def set_counted(k, va: int, struct_name: str, buf: int, length: int, maximum: int) -> None:
    """Fill a UNICODE_STRING or STRING header."""
    k.put(va, struct_name, "Length", length)
    k.put(va, struct_name, "MaximumLength", maximum)
    k.put(va, struct_name, "Buffer", buf)


def new_wstr(k, text: str) -> int:
    """A NUL-terminated UTF-16LE copy of ``text`` in nonpaged pool; returns its address."""
    from . import pool

    data = text.encode("utf-16-le") + b"\0\0"
    va = pool.get(k).allocate(0, len(data), 0x6D695347, k.caller_function)  # 'GSim'
    k.mem.vwrite(va, data)
    return va


def new_unicode_string(k, text: str) -> int:
    """A UNICODE_STRING (header and buffer) holding ``text``; returns the header's address."""
    from . import pool

    head = pool.get(k).allocate(0, k.L.size("unicode_string"), 0x6D695347, k.caller_function)
    buf = new_wstr(k, text)
    n = 2 * len(text)
    set_counted(k, head, "unicode_string", buf, n, n + 2)
    return head


def list_init(k, head: int) -> None:
    """An empty LIST_ENTRY: Flink = Blink = head."""
    k.mem.vput(head, 8, head)
    k.mem.vput(head + 8, 8, head)


def list_empty(k, head: int) -> bool:
    """Whether the list at ``head`` is empty."""
    return k.mem.vu(head, 8) == head


def list_insert_tail(k, head: int, entry: int) -> None:
    """Append ``entry`` to the list at ``head``."""
    blink = k.mem.vu(head + 8, 8)
    k.mem.vput(entry, 8, head)
    k.mem.vput(entry + 8, 8, blink)
    k.mem.vput(blink, 8, entry)
    k.mem.vput(head + 8, 8, entry)


def list_remove_head(k, head: int) -> int:
    """Unlink and return the first entry (the list must not be empty)."""
    entry = k.mem.vu(head, 8)
    nxt = k.mem.vu(entry, 8)
    k.mem.vput(head, 8, nxt)
    k.mem.vput(nxt + 8, 8, head)
    return entry


def list_remove(k, entry: int) -> None:
    """Unlink ``entry`` from whatever list holds it."""
    flink, blink = k.mem.vu(entry, 8), k.mem.vu(entry + 8, 8)
    k.mem.vput(blink, 8, flink)
    k.mem.vput(flink + 8, 8, blink)
