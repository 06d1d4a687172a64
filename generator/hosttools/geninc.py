"""``geninc`` (ReactOS ``sdk/tools/geninc``): assembler constants from the compiled ``genincdata.c``.

ReactOS's assembly files need structure offsets and constants that only the C headers know. The build compiles
``sdk/include/asm/genincdata.c``, whose ``Table`` array lives in a section named ``.asmdef``, and ``geninc`` turns
that section into ``ksamd64.inc``. Each record is 64 bytes: a type byte, a NUL-terminated name in the next 55
bytes, then (8-aligned, at offset 56) a little-endian 64-bit value. Types: 0 ends the table, 1 is a raw line
(the name is the text), 2 a constant (``NAME = 0xvalue``, lower-case hex; ``NAME equ 0valueh`` in MASM form),
3 a section header (an empty line, then ``/* name */`` or ``; name``).

Upstream reads the section from a linked module; we read it from the object file (``gcc -c``), which holds the
same bytes as long as the section has no relocations (it holds only constants; a relocation is an error here).
Both a COFF object and a PE image are accepted.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generator.hosttools import HostToolError

SECTION = ".asmdef"
RECORD = struct.Struct("<b55sQ")  # type, name, then the 8-aligned value: 64 bytes
TYPE_END, TYPE_RAW, TYPE_CONSTANT, TYPE_HEADER = 0, 1, 2, 3
_MACHINES = {0x014C: "i386", 0x8664: "amd64", 0x01C4: "arm", 0xAA64: "arm64"}
_FILE_HEADER = struct.Struct("<HHIIIHH")
_SECTION_HEADER = struct.Struct("<8sIIIIIIHHI")


class GenincError(HostToolError):
    """The module cannot be compiled or its ``.asmdef`` section cannot be read."""


@dataclass(frozen=True)
class Record:
    """One ``.asmdef`` record."""

    kind: int
    name: str
    value: int


def compile_object(source: Path, out: Path, *, compiler: str, include_dirs: list[Path], defines: list[str],
                   flags: list[str]) -> list[Path]:
    """Compile ``source`` to the object ``out``; returns every file the compiler read (from its dependency list)."""
    with tempfile.TemporaryDirectory(prefix="gen2hal-geninc-") as tmp:
        depfile = Path(tmp) / "deps.d"
        cmd = [compiler, "-c", *flags, *(f"-I{d}" for d in include_dirs), *(f"-D{d}" for d in defines),
               "-MD", "-MF", str(depfile), "-o", str(out), str(source)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:
            raise GenincError(f"{source}: cannot run {compiler}: {exc} (install Debian's gcc-mingw-w64-x86-64)")
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-30:])
            raise GenincError(f"{source}: {compiler} failed (exit {proc.returncode}):\n{tail}")
        return _read_depfile(depfile)


def _read_depfile(depfile: Path) -> list[Path]:
    """The prerequisites of a make-style dependency file (``target: a b \\`` lines)."""
    text = depfile.read_text(encoding="utf-8").replace("\\\n", " ")
    _, _, deps = text.partition(": ")
    # only the first rule lists prerequisites; escaped spaces in names are kept together
    first = deps.split("\n", 1)[0]
    names = first.replace("\\ ", "\0").split()
    return [Path(name.replace("\0", " ")) for name in names]


def asmdef_records(data: bytes, where: str) -> list[Record]:
    """The records of the ``.asmdef`` section of a COFF object or a PE image (``where`` names it in errors)."""
    raw = _section_bytes(data, where)
    records = []
    for offset in range(0, len(raw) - RECORD.size + 1, RECORD.size):
        kind, name, value = RECORD.unpack_from(raw, offset)
        if kind == TYPE_END:
            return records
        if kind not in (TYPE_RAW, TYPE_CONSTANT, TYPE_HEADER):
            raise GenincError(f"{where}: {SECTION} record {offset // RECORD.size} has unknown type {kind}")
        records.append(Record(kind, name.split(b"\0", 1)[0].decode("latin-1"), value))
    raise GenincError(f"{where}: {SECTION} ends without an end record (type 0)")


def render_inc(records: list[Record], *, ms_format: bool = False) -> bytes:
    """The include file's text: gas syntax (``NAME = 0x1f``) or, with ``ms_format``, MASM (``NAME equ 01fh``)."""
    out = []
    for rec in records:
        if rec.kind == TYPE_RAW:
            out.append(f"{rec.name}\n")
        elif rec.kind == TYPE_CONSTANT:
            out.append(f"{rec.name} equ 0{rec.value:x}h\n" if ms_format else f"{rec.name} = 0x{rec.value:x}\n")
        else:
            out.append(f"\n; {rec.name}\n" if ms_format else f"\n/* {rec.name} */\n")
    return "".join(out).encode("latin-1")


def _section_bytes(data: bytes, where: str) -> bytes:
    """The raw bytes of the ``.asmdef`` section; refuses a section with relocations."""
    base = 0
    if data[:2] == b"MZ":
        if len(data) < 0x40:
            raise GenincError(f"{where}: truncated DOS header")
        (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
        if data[e_lfanew:e_lfanew + 4] != b"PE\0\0":
            raise GenincError(f"{where}: no PE signature at {e_lfanew:#x}")
        base = e_lfanew + 4
    if len(data) < base + _FILE_HEADER.size:
        raise GenincError(f"{where}: truncated COFF header")
    machine, count, _, symtab, nsyms, opt_size, _ = _FILE_HEADER.unpack_from(data, base)
    if machine not in _MACHINES:
        raise GenincError(f"{where}: unknown machine {machine:#06x} (expected i386, amd64, arm or arm64)")
    table = base + _FILE_HEADER.size + opt_size
    strings = symtab + nsyms * 18
    for index in range(count):
        pos = table + index * _SECTION_HEADER.size
        if len(data) < pos + _SECTION_HEADER.size:
            raise GenincError(f"{where}: truncated section table")
        name_raw, _, _, size, pointer, _, _, nrelocs, _, _ = _SECTION_HEADER.unpack_from(data, pos)
        name = name_raw.rstrip(b"\0").decode("latin-1")
        if name.startswith("/") and name[1:].isdigit():
            # a long section name lives in the object's string table
            start = strings + int(name[1:])
            name = data[start:data.index(b"\0", start)].decode("latin-1")
        if name != SECTION:
            continue
        if nrelocs:
            raise GenincError(f"{where}: {SECTION} has {nrelocs} relocations: its values would be unresolved "
                              "addresses, not constants")
        if len(data) < pointer + size:
            raise GenincError(f"{where}: {SECTION} runs past the end of the file")
        return data[pointer:pointer + size]
    raise GenincError(f"{where}: no {SECTION} section")
