"""The C run-time routines the kernel exports (strings, memory, formatted output, setjmp/longjmp).

They behave as the C standard (and Microsoft's extensions: ``_stricmp``, ``strncpy_s``, ``_vsnwprintf``) define.
``_setjmp``/``longjmp`` save and restore the non-volatile registers in the x64 ``_JUMP_BUFFER``
(``[kernel.jump_buffer]``); ``longjmp`` returns through the stub's RET to the saved return address, without
unwinding (the model runs no exception handlers).
"""

from __future__ import annotations

from unicorn import x86_const as X

from . import gdata, printf
from .decl import declare, export

EINVAL, ERANGE, STRUNCATE = 22, 34, 80
_TRUNCATE = 0xFFFF_FFFF_FFFF_FFFF
_SAVED = (("Rbx", X.UC_X86_REG_RBX), ("Rbp", X.UC_X86_REG_RBP), ("Rsi", X.UC_X86_REG_RSI),
          ("Rdi", X.UC_X86_REG_RDI), ("R12", X.UC_X86_REG_R12), ("R13", X.UC_X86_REG_R13),
          ("R14", X.UC_X86_REG_R14), ("R15", X.UC_X86_REG_R15))
_XMM = [getattr(X, f"UC_X86_REG_XMM{i}") for i in range(6, 16)]


def _icmp(a: bytes | str, b: bytes | str) -> int:
    a, b = a.lower(), b.lower()
    return (a > b) - (a < b)


@export("int _stricmp(PCSTR String1, PCSTR String2)")
def _stricmp(k, String1, String2):
    """Compare two strings ignoring case: < 0, 0, > 0."""
    return _icmp(k.mem.cstring(String1, 0x10000).encode("latin-1"), k.mem.cstring(String2, 0x10000).encode("latin-1"))


@export("int _wcsicmp(PCWSTR String1, PCWSTR String2)")
def _wcsicmp(k, String1, String2):
    """Compare two wide strings ignoring case."""
    return _icmp(gdata.read_wstr(k, String1), gdata.read_wstr(k, String2))


@export("int strncmp(PCSTR String1, PCSTR String2, size_t Count)")
def strncmp(k, String1, String2, Count):
    """Compare at most ``Count`` characters."""
    a = k.mem.cstring(String1, Count).encode("latin-1")
    b = k.mem.cstring(String2, Count).encode("latin-1")
    return (a > b) - (a < b)


@export("PSTR strstr(PCSTR String, PCSTR SubString)")
def strstr(k, String, SubString):
    """The first occurrence of ``SubString`` in ``String`` (NULL when none)."""
    text = k.mem.cstring(String, 0x10000)
    pos = text.find(k.mem.cstring(SubString, 0x10000))
    return String + pos if pos >= 0 else 0


@export("PSTR strncpy(PSTR Destination, PCSTR Source, size_t Count)")
def strncpy(k, Destination, Source, Count):
    """Copy at most ``Count`` characters, padding with NULs."""
    src = k.mem.cstring(Source, Count).encode("latin-1")
    k.mem.vwrite(Destination, (src + bytes(Count))[:Count])
    return Destination


@export("errno_t strncpy_s(PSTR Destination, size_t SizeInBytes, PCSTR Source, size_t Count)")
def strncpy_s(k, Destination, SizeInBytes, Source, Count):
    """Bounded copy with a terminating NUL; EINVAL/ERANGE on bad arguments, STRUNCATE with _TRUNCATE."""
    if not Destination or not SizeInBytes:
        return EINVAL
    if not Source:
        k.mem.vput(Destination, 1, 0)
        return EINVAL
    if Count == _TRUNCATE:
        src = k.mem.cstring(Source, SizeInBytes).encode("latin-1")
        if len(src) > SizeInBytes - 1:
            k.mem.vwrite(Destination, src[: SizeInBytes - 1] + b"\0")
            return STRUNCATE
    else:
        src = k.mem.cstring(Source, min(Count, 0x10000)).encode("latin-1")
        if len(src) > SizeInBytes - 1:
            k.mem.vput(Destination, 1, 0)
            return ERANGE
    k.mem.vwrite(Destination, src + b"\0")
    return 0


@export("size_t strlen(PCSTR String)")
def strlen(k, String):
    """The length of a string."""
    return len(k.mem.cstring(String, 0x100000))


@export("size_t wcslen(PCWSTR String)")
def wcslen(k, String):
    """The length of a wide string, in characters."""
    return len(gdata.read_wstr(k, String))


@export("int atoi(PCSTR String)")
def atoi(k, String):
    """Leading decimal integer (after blanks, optional sign); 0 when none."""
    text = k.mem.cstring(String, 256).lstrip(" \t\n\r\f\v")
    sign, digits = 1, ""
    if text[:1] in "+-":
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


@export("ULONG wcstoul(PCWSTR String, PWSTR* EndPtr, int Base)")
def wcstoul(k, String, EndPtr, Base):
    """Unsigned conversion of a wide string (base 0 detects 0x / 0 prefixes); ``*EndPtr`` after the digits."""
    text = gdata.read_wstr(k, String)
    i = len(text) - len(text.lstrip())
    neg = False
    if text[i:i + 1] in ("+", "-"):
        neg, i = text[i] == "-", i + 1
    base = Base
    if base in (0, 16) and text[i:i + 2].lower() == "0x":
        i, base = i + 2, 16
    elif base == 0:
        base = 8 if text[i:i + 1] == "0" else 10
    start, value = i, 0
    while i < len(text):
        d = int(text[i], 36) if text[i].isalnum() else 99
        if d >= base:
            break
        value, i = value * base + d, i + 1
    if EndPtr:
        k.mem.vput(EndPtr, 8, String + 2 * (i if i > start else 0))
    value = min(value, 0xFFFFFFFF)
    return (-value) & 0xFFFFFFFF if neg else value


# ---------------------------------------------------------------------------------------------------- formatting
def _write_bounded(k, buf: int, count: int, text: str, wide: bool) -> int:
    """The Microsoft _vsnprintf contract: at most ``count`` characters; -1 (no NUL) when the text did not fit."""
    data = text.encode("utf-16-le" if wide else "latin-1", errors="replace")
    unit = 2 if wide else 1
    chars = len(data) // unit
    if chars > count:
        k.mem.vwrite(buf, data[: count * unit])
        return -1
    k.mem.vwrite(buf, data + (bytes(unit) if chars < count else b""))
    return chars


@export("int _vsnprintf(PSTR Buffer, size_t Count, PCSTR Format, va_list* ArgList)")
def _vsnprintf(k, Buffer, Count, Format, ArgList):
    """Format into a bounded buffer."""
    text = printf.format_text(k, k.mem.cstring(Format, 4096), printf.va_list_reader(k, ArgList))
    return _write_bounded(k, Buffer, Count, text, False)


@export("int _vsnwprintf(PWSTR Buffer, size_t Count, PCWSTR Format, va_list* ArgList)")
def _vsnwprintf(k, Buffer, Count, Format, ArgList):
    """Format wide text into a bounded buffer."""
    text = printf.format_text(k, gdata.read_wstr(k, Format), printf.va_list_reader(k, ArgList), wide=True)
    return _write_bounded(k, Buffer, Count, text, True)


@export("int _snwprintf(PWSTR Buffer, size_t Count, PCWSTR Format, ...)")
def _snwprintf(k, Buffer, Count, Format):
    """Format wide text into a bounded buffer."""
    text = printf.format_text(k, gdata.read_wstr(k, Format), printf.vararg_reader(k, 3), wide=True)
    return _write_bounded(k, Buffer, Count, text, True)


@export("int sprintf(PSTR Buffer, PCSTR Format, ...)")
def sprintf(k, Buffer, Format):
    """Format into a buffer (unbounded, as C's sprintf)."""
    text = printf.format_text(k, k.mem.cstring(Format, 4096), printf.vararg_reader(k, 2))
    k.mem.vwrite(Buffer, text.encode("latin-1", errors="replace") + b"\0")
    return len(text)


@export("int swprintf(PWSTR Buffer, PCWSTR Format, ...)")
def swprintf(k, Buffer, Format):
    """Format wide text into a buffer (the pre-NT6 unbounded swprintf)."""
    text = printf.format_text(k, gdata.read_wstr(k, Format), printf.vararg_reader(k, 2), wide=True)
    k.mem.vwrite(Buffer, text.encode("utf-16-le") + b"\0\0")
    return len(text)


# ---------------------------------------------------------------------------------------------------- memory
@export("PVOID memcpy(PVOID Destination, PVOID Source, size_t Count)")
def memcpy(k, Destination, Source, Count):
    """Copy ``Count`` bytes."""
    if Count:
        k.mem.vwrite(Destination, k.mem.vread(Source, Count))
    return Destination


@export("PVOID memmove(PVOID Destination, PVOID Source, size_t Count)")
def memmove(k, Destination, Source, Count):
    """Copy ``Count`` bytes (overlap allowed)."""
    if Count:
        k.mem.vwrite(Destination, k.mem.vread(Source, Count))
    return Destination


@export("PVOID memset(PVOID Destination, int Value, size_t Count)")
def memset(k, Destination, Value, Count):
    """Fill ``Count`` bytes."""
    if Count:
        k.mem.vwrite(Destination, bytes([Value & 0xFF]) * Count)
    return Destination


@export("int memcmp(PVOID Buffer1, PVOID Buffer2, size_t Count)")
def memcmp(k, Buffer1, Buffer2, Count):
    """Compare ``Count`` bytes: < 0, 0, > 0."""
    a, b = k.mem.vread(Buffer1, Count), k.mem.vread(Buffer2, Count)
    return (a > b) - (a < b)


# ---------------------------------------------------------------------------------------------------- setjmp
@export("int _setjmp(PVOID JumpBuffer, PVOID Frame)")
def _setjmp(k, JumpBuffer, Frame):
    """Save the caller's non-volatile registers, stack and return address; returns 0."""
    cpu = k.cpu
    put = lambda f, v: k.put(JumpBuffer, "jump_buffer", f, v)  # noqa: E731 - one structure, many fields
    put("Frame", Frame)
    for name, reg in _SAVED:
        put(name, cpu.reg(reg))
    put("Rsp", k.entry_rsp + 8)  # the caller's stack after the return
    put("Rip", k.mem.vu(k.entry_rsp, 8))
    put("MxCsr", cpu.reg(X.UC_X86_REG_MXCSR))
    put("FpCsr", cpu.reg(X.UC_X86_REG_FPCW))
    base = JumpBuffer + k.L.off("jump_buffer", "Xmm6")
    for i, reg in enumerate(_XMM):
        k.mem.vwrite(base + 16 * i, (cpu.reg(reg) & ((1 << 128) - 1)).to_bytes(16, "little"))
    return 0


@export("VOID longjmp(PVOID JumpBuffer, int Value)")
def longjmp(k, JumpBuffer, Value):
    """Return from the matching _setjmp again, with ``Value`` (1 when 0)."""
    cpu = k.cpu
    get = lambda f: k.get(JumpBuffer, "jump_buffer", f)  # noqa: E731
    for name, reg in _SAVED:
        cpu.set_reg(reg, get(name))
    cpu.set_reg(X.UC_X86_REG_MXCSR, get("MxCsr"))
    base = JumpBuffer + k.L.off("jump_buffer", "Xmm6")
    for i, reg in enumerate(_XMM):
        cpu.uc.reg_write(reg, int.from_bytes(k.mem.vread(base + 16 * i, 16), "little"))
    rsp = get("Rsp") - 8
    k.mem.vput(rsp, 8, get("Rip"))  # the stub's RET returns there
    cpu.set_reg(X.UC_X86_REG_RSP, rsp)
    cpu.set_reg(X.UC_X86_REG_RAX, Value or 1)


declare("int __C_specific_handler(PEXCEPTION_RECORD ExceptionRecord, PVOID EstablisherFrame, PCONTEXT ContextRecord, "
        "PDISPATCHER_CONTEXT DispatcherContext)",
        "structured exception dispatch is not modelled (a guest exception ends the boot as a fault)",
        module=__name__)
