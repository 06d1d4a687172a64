"""What a HAL's assembly file does, read from the object the build's own assembler makes of it.

libclang reads C only, and an assembly file's functions are often macro expansions (ReactOS's
``TRAP_ENTRY HalpClockInterrupt, TF_SEND_EOI`` becomes a trap stub through ``trapamd64.inc``). Instead of parsing
macros, :func:`scan_asm` assembles the file exactly as the build does (one ``x86_64-w64-mingw32-gcc -c`` with the
source's own flags, defines and include folders), reads the COFF object's sections, symbols and relocations, and
disassembles its code with capstone (a project dependency, so no second process). It reports:

- the functions the object defines in code sections, with the source line that defines each one;
- calls: every call or jump leaving its function (through a relocation, or directly to another function of the
  same section, which the assembler resolves without one), and every other reference to a function's address
  (kind ``address``: a ``lea`` of a handler, a table of handlers in a data section);
- port I/O, with the port taken from the immediate or from ``%dx`` when the function set it to a constant on
  every path that reaches the access (a small forward data-flow over the function's direct branches);
- MSR accesses (``%ecx`` by the same rule), counts of ``cli``/``sti``/``hlt``/``cpuid``/``rdtsc``/``wbinvd``,
  and references to data symbols.

Output is ordered by section and offset, so the same object gives the same result.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import shutil
import struct
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import capstone
from capstone import x86

from generator.toolchain import CC

__all__ = ["AsmScanError", "AsmFunction", "AsmCall", "AsmIo", "AsmPort", "AsmMsr", "AsmDataRef", "AsmCount", "AsmScan",
           "scan_asm"]

#: Instructions counted per function (privileged or timing-related; what a Generation 2 port has to look at).
COUNTED = ("cli", "sti", "hlt", "cpuid", "rdtsc", "rdtscp", "wbinvd")
#: Registers a callee may destroy under the Microsoft x64 convention: unknown after a call.
_VOLATILE = ("rax", "rcx", "rdx", "r8", "r9", "r10", "r11")


class AsmScanError(Exception):
    """An assembly file cannot be assembled or its object cannot be read; the message names the file."""


@dataclass(frozen=True)
class AsmFunction:
    """A function the object defines: a global or function-typed code symbol, or a local label that is called or
    whose address is taken from outside the function holding it. ``alias_of`` names the function defined at the
    same address first (its instructions are reported under that name)."""

    name: str
    line: int            # source line defining it (label, macro use or FUNC line); 0 when not found
    section: str
    offset: int
    size: int
    is_global: bool
    alias_of: str = ""


@dataclass(frozen=True)
class AsmCall:
    """``caller`` transfers control to ``callee`` (kind ``call``: a call or a jump leaving the function) or
    hands its address out (kind ``address``). ``caller`` is a data symbol for an address stored in data."""

    caller: str
    callee: str
    kind: str
    section: str
    offset: int
    text: str
    line: int            # the caller's definition line (the object has no finer line information)


@dataclass(frozen=True)
class AsmIo:
    """An instruction that talks to hardware outside memory: what :class:`AsmPort` and :class:`AsmMsr` share.
    ``value`` is the constant written when the tracker knows it; ``note`` says why the address is None."""

    function: str
    access: str          # "read" or "write"
    section: str
    offset: int
    text: str
    line: int            # the function's definition line
    value: int | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class AsmPort(AsmIo):
    """An ``in``/``out`` (or string ``ins``/``outs``); ``port`` is None ("port not constant") when ``%dx`` is
    not a constant on every path to it; ``value`` is what an ``out`` writes."""

    port: int | None
    width: int           # bytes: 1, 2 or 4


@dataclass(frozen=True, kw_only=True)
class AsmMsr(AsmIo):
    """A ``rdmsr``/``wrmsr``; ``msr`` is None ("MSR not constant") when ``%ecx`` is not a constant; ``value`` is
    the ``%edx:%eax`` a ``wrmsr`` writes."""

    msr: int | None


@dataclass(frozen=True)
class AsmDataRef:
    """An instruction refers to a symbol that is not a function (a variable, an import slot)."""

    function: str
    symbol: str
    section: str
    offset: int
    text: str


@dataclass(frozen=True)
class AsmCount:
    """How often a function contains one of :data:`COUNTED`."""

    function: str
    mnemonic: str
    count: int


@dataclass(frozen=True)
class AsmScan:
    """Everything :func:`scan_asm` learnt from one assembly file. The timings are not part of equality or of
    :meth:`as_dict` (they vary from run to run)."""

    path: Path
    functions: tuple[AsmFunction, ...]
    calls: tuple[AsmCall, ...]
    ports: tuple[AsmPort, ...]
    msrs: tuple[AsmMsr, ...]
    data_refs: tuple[AsmDataRef, ...]
    counts: tuple[AsmCount, ...]
    notes: tuple[str, ...]
    assemble_seconds: float = field(default=0.0, compare=False)
    scan_seconds: float = field(default=0.0, compare=False)

    def function(self, name: str) -> AsmFunction | None:
        """The function called ``name``, or None."""
        return next((f for f in self.functions if f.name == name), None)

    def callees(self, caller: str, kind: str = "call") -> list[str]:
        """The distinct callees of ``caller`` of ``kind``, sorted."""
        return sorted({c.callee for c in self.calls if c.caller == caller and c.kind == kind})

    def as_dict(self) -> dict:
        """A JSON-ready form (no timings): the same object gives the same dictionary."""
        data = {key: [asdict(item) for item in getattr(self, key)]
                for key in ("functions", "calls", "ports", "msrs", "data_refs", "counts")}
        return {"path": str(self.path), **data, "notes": list(self.notes)}


# ---- assembling ---------------------------------------------------------------------------------------------------

def _first_error(stderr: str, returncode: int) -> str:
    """The assembler's (or preprocessor's) first error line, else its first line that says anything."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\b(Error|error|fatal error):", line):
            return line
    lines = [line for line in lines if "ignored because" not in line]
    return lines[0] if lines else f"exit status {returncode} and no message"


def _assemble(source, outdir: Path) -> tuple[bytes, str | None]:
    """Assemble ``source`` into ``outdir``; the object's bytes and the preprocessed text (None without cpp).

    ``-save-temps=obj`` keeps the preprocessor's output next to the object from the same single compiler run:
    it maps the source's lines after ``#if`` and ``#include`` processing (used for definition lines only).
    """
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    obj = outdir / "scan.o"
    cmd = [CC, "-c", *source.extra_flags, *(f"-D{d}" for d in source.defines),
           *(f"-I{d}" for d in source.include_dirs), "-save-temps=obj", "-o", str(obj), str(source.path)]
    env = {**os.environ, "LC_ALL": "C"}     # English messages, whatever the caller's locale
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except OSError as exc:
        raise AsmScanError(f"{source.path}: cannot run {CC}: {exc} (install Debian's gcc-mingw-w64-x86-64; "
                           f"scripts/setup.sh does)") from None
    if proc.returncode != 0:
        raise AsmScanError(f"{source.path}: does not assemble: {_first_error(proc.stderr, proc.returncode)}")
    try:
        data = obj.read_bytes()
    except OSError as exc:
        raise AsmScanError(f"{source.path}: {CC} reported success but wrote no object: {exc}") from None
    pre = outdir / "scan.s"
    return data, (pre.read_text(encoding="utf-8", errors="replace") if pre.is_file() else None)


# ---- the COFF object ------------------------------------------------------------------------------------------------

_COFF_HEADER = struct.Struct("<HHIIIHH")
_COFF_SECTION = struct.Struct("<8sIIIIIIHHI")
_COFF_SYMBOL = struct.Struct("<8sIhHBB")
_COFF_RELOC = struct.Struct("<IIH")
_AMD64 = 0x8664
_SCN_CODE, _SCN_EXECUTE, _SCN_NRELOC_OVFL = 0x20, 0x20000000, 0x01000000
_SCL_EXTERNAL, _SCL_STATIC, _SCL_LABEL = 2, 3, 6
#: IMAGE_REL_AMD64_ADDR64 .. REL32_5: the types that address code or data (the rest are debug-only).
_REL_ADDR64, _REL_ADDR32, _REL_ADDR32NB, _REL_REL32, _REL_REL32_5 = 1, 2, 3, 4, 9
#: Sections whose relocations are bookkeeping (unwind tables, debug data, linker directives), not references.
_BOOKKEEPING = re.compile(r"^\.(pdata|xdata|debug|drectve|rdata\$zzz)")


@dataclass(frozen=True)
class _Section:
    number: int          # 1-based, as symbols name it
    name: str
    data: bytes
    code: bool
    relocs: tuple[tuple[int, int, int], ...]   # (offset, symbol index, type)


@dataclass(frozen=True)
class _Symbol:
    name: str
    value: int
    section: int         # 1-based; 0 undefined, -1 absolute, -2 debug
    type: int
    scl: int
    is_section: bool

    @property
    def function_typed(self) -> bool:
        """COFF derived type "function" (``.type 32``): gcc marks C functions so, MSVC every code symbol."""
        return (self.type >> 4) & 3 == 2


class _Object:
    """The sections, symbols and relocations of an amd64 COFF object."""

    def __init__(self, data: bytes, where: str):
        self.where = where
        try:
            self._read(data)
        except (struct.error, IndexError, ValueError) as exc:
            raise AsmScanError(f"{where}: the assembler's object is not a readable COFF file ({exc})") from None

    def _read(self, data: bytes) -> None:
        machine, nsections, _, symtab, nsyms, opt_size, _ = _COFF_HEADER.unpack_from(data, 0)
        if machine != _AMD64:
            raise AsmScanError(f"{self.where}: object machine {machine:#06x}, expected amd64 (0x8664)")
        strings = symtab + nsyms * _COFF_SYMBOL.size

        def long_name(raw: bytes) -> str:
            if raw[:4] == b"\0\0\0\0":          # symbol: offset into the string table
                start = strings + struct.unpack_from("<I", raw, 4)[0]
                return data[start:data.index(b"\0", start)].decode("latin-1")
            text = raw.rstrip(b"\0").decode("latin-1")
            if text.startswith("/") and text[1:].isdigit():   # section: "/offset"
                start = strings + int(text[1:])
                return data[start:data.index(b"\0", start)].decode("latin-1")
            return text

        self.sections: list[_Section] = []
        base = _COFF_HEADER.size + opt_size
        for number in range(1, nsections + 1):
            (raw, _, _, size, pointer, relptr, _, nrel, _, flags) = _COFF_SECTION.unpack_from(
                data, base + (number - 1) * _COFF_SECTION.size)
            if flags & _SCN_NRELOC_OVFL:       # the real count is the first record's address field
                nrel = _COFF_RELOC.unpack_from(data, relptr)[0]
                relptr += _COFF_RELOC.size
                nrel -= 1
            relocs = tuple(_COFF_RELOC.unpack_from(data, relptr + i * _COFF_RELOC.size) for i in range(nrel))
            body = data[pointer:pointer + size] if pointer else bytes(size)
            if len(body) != size:
                raise ValueError(f"section {number} runs past the end of the file")
            self.sections.append(_Section(number, long_name(raw), body, bool(flags & (_SCN_CODE | _SCN_EXECUTE)),
                                          relocs))
        self.symbols: dict[int, _Symbol] = {}
        index = 0
        while index < nsyms:
            raw, value, section, typ, scl, naux = _COFF_SYMBOL.unpack_from(data, symtab + index * _COFF_SYMBOL.size)
            name = long_name(raw)
            is_section = (scl == _SCL_STATIC and naux > 0 and 0 < section <= nsections
                          and self.sections[section - 1].name == name)
            self.symbols[index] = _Symbol(name, value, section, typ, scl, is_section)
            index += 1 + naux

    def section(self, number: int) -> _Section:
        """Section ``number`` (1-based)."""
        return self.sections[number - 1]


def _addend(section: _Section, offset: int, rtype: int, insn_end: int | None) -> int:
    """The offset from the relocation's symbol that a reference means. gas stores the addend in the field; for a
    PC-relative field it folds in the bytes between the field's end and the instruction's end (an immediate after
    a ``%rip`` displacement), which REL32_1..5 instead state in the type."""
    if rtype == _REL_ADDR64:
        return struct.unpack_from("<q", section.data, offset)[0]
    if rtype in (_REL_ADDR32, _REL_ADDR32NB):
        return struct.unpack_from("<I", section.data, offset)[0]
    field_value = struct.unpack_from("<i", section.data, offset)[0]
    if insn_end is None:
        return field_value
    return field_value + (insn_end - (offset + 4)) - (rtype - _REL_REL32)


# ---- registers and the constant tracker ------------------------------------------------------------------------------

_FAMILIES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi") + tuple(f"r{n}" for n in range(8, 16))
_FULL = (1 << 64) - 1


def _register_table() -> dict[int, tuple[int, int, int]]:
    """capstone register id -> (family index, bit shift, bit width) for every general-purpose register."""
    table = {}
    legacy = {"rax": ("eax", "ax", "al", "ah"), "rcx": ("ecx", "cx", "cl", "ch"), "rdx": ("edx", "dx", "dl", "dh"),
              "rbx": ("ebx", "bx", "bl", "bh"), "rsp": ("esp", "sp", "spl", None), "rbp": ("ebp", "bp", "bpl", None),
              "rsi": ("esi", "si", "sil", None), "rdi": ("edi", "di", "dil", None)}
    for family, name in enumerate(_FAMILIES):
        r32, r16, r8, high = legacy.get(name, (f"{name}d", f"{name}w", f"{name}b", None))
        for reg, shift, width in ((name, 0, 64), (r32, 0, 32), (r16, 0, 16), (r8, 0, 8), (high, 8, 8)):
            if reg is not None:
                table[getattr(x86, f"X86_REG_{reg.upper()}")] = (family, shift, width)
    return table


_REGS = _register_table()
_UNKNOWN = tuple((0, 0) for _ in _FAMILIES)     # (value, mask of known bits) per family


def _read(state, reg: int) -> int | None:
    """The register's value when every bit of it is known."""
    family, shift, width = _REGS[reg]
    value, mask = state[family]
    bits = ((1 << width) - 1) << shift
    return (value & bits) >> shift if mask & bits == bits else None


def _write(state, reg: int, value: int | None):
    """The state after writing ``value`` (None: unknown) to ``reg``; a 32-bit write clears the upper half."""
    family, shift, width = _REGS[reg]
    old_value, old_mask = state[family]
    if width == 64:
        new = (value & _FULL, _FULL) if value is not None else (0, 0)
    elif width == 32:
        new = (value & 0xFFFFFFFF, _FULL) if value is not None else (0, _FULL ^ 0xFFFFFFFF)
    else:
        bits = ((1 << width) - 1) << shift
        if value is None:
            new = (old_value & ~bits, old_mask & ~bits)
        else:
            new = ((old_value & ~bits) | ((value << shift) & bits), old_mask | bits)
    return state[:family] + (new,) + state[family + 1:]


def _meet(a, b):
    """What is known on both paths: bits known in both with the same value."""
    if a is None:
        return b
    if b is None:
        return a
    out = []
    for (va, ma), (vb, mb) in zip(a, b):
        mask = ma & mb & ~(va ^ vb)
        out.append((va & mask, mask))
    return tuple(out)


_CLOBBERED_BY_CALL = tuple(getattr(x86, f"X86_REG_{name.upper()}") for name in _VOLATILE)
_MOV = {x86.X86_INS_MOV, x86.X86_INS_MOVABS}
_ZEROING = {x86.X86_INS_XOR, x86.X86_INS_SUB}
_ENDS_FLOW = {x86.X86_INS_JMP, x86.X86_INS_LJMP, x86.X86_INS_RET, x86.X86_INS_RETF, x86.X86_INS_IRET, x86.X86_INS_IRETD,
              x86.X86_INS_IRETQ, x86.X86_INS_UD2, x86.X86_INS_SYSRET}


def _transfer(insn, state):
    """The register state after ``insn``: moves of constants and of known registers, ``xor r,r``, everything
    else written (explicitly or implicitly, and the volatile registers across a call) becomes unknown."""
    regs = [op for op in insn.operands if op.type == x86.X86_OP_REG and op.reg in _REGS]
    dest = next((op.reg for op in regs if op.access & capstone.CS_AC_WRITE), None)
    handled = set()
    if dest is not None and insn.id in _MOV and len(insn.operands) == 2:
        src = next(op for op in insn.operands if not (op.type == x86.X86_OP_REG and op.reg == dest
                                                      and op.access & capstone.CS_AC_WRITE))
        if src.type == x86.X86_OP_IMM:
            state, handled = _write(state, dest, src.imm), {dest}
        elif src.type == x86.X86_OP_REG and src.reg in _REGS:
            state, handled = _write(state, dest, _read(state, src.reg)), {dest}
    elif dest is not None and insn.id in _ZEROING and len(regs) == 2 and regs[0].reg == regs[1].reg:
        state, handled = _write(state, dest, 0), {dest}
    for reg in insn.regs_access()[1]:
        if reg in _REGS and reg not in handled:
            state = _write(state, reg, None)
    if insn.group(capstone.CS_GRP_CALL):
        for reg in _CLOBBERED_BY_CALL:
            state = _write(state, reg, None)
    return state


def _branch_target(insn) -> int | None:
    """The target of a direct call or jump (its immediate operand), else None."""
    if not (insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL)):
        return None
    imm = [op.imm for op in insn.operands if op.type == x86.X86_OP_IMM]
    return imm[0] if len(insn.operands) == 1 and imm else None


def _states(insns: list, start: int, end: int, relocated: set[int]) -> tuple[list, list[bool]]:
    """The register state before each instruction of one function, and whether the function's entry reaches
    it: a forward data-flow from an unknown entry over fall-through and direct branches inside [start, end); a
    join keeps what all its paths agree on. Instructions reached only from elsewhere (shared exits, indirect
    jumps) start unknown."""
    index = {insn.address: i for i, insn in enumerate(insns)}
    succ: list[list[int]] = []
    for i, insn in enumerate(insns):
        out = []
        target = None if insn.address in relocated else _branch_target(insn)
        is_call = insn.group(capstone.CS_GRP_CALL)
        if target is not None and not is_call and start <= target < end and target in index:
            out.append(index[target])
        if insn.id not in _ENDS_FLOW and i + 1 < len(insns):
            out.append(i + 1)
        succ.append(out)
    before: list = [None] * len(insns)
    if insns:
        before[0] = _UNKNOWN
    pending = sorted({0} if insns else set())
    while pending:
        i = pending.pop(0)
        after = _transfer(insns[i], before[i])
        for j in succ[i]:
            merged = _meet(before[j], after)
            if merged != before[j]:
                before[j] = merged
                if j not in pending:
                    pending.append(j)
                    pending.sort()
    return [s if s is not None else _UNKNOWN for s in before], [s is not None for s in before]


# ---- the scan ----------------------------------------------------------------------------------------------------

@dataclass
class _Fn:
    name: str
    section: int
    start: int
    end: int
    is_global: bool
    aliases: list[tuple[str, bool]] = field(default_factory=list)   # (name, global) at the same address


@dataclass
class _Ref:
    """A raw reference found in code or data before knowing which undefined names are functions."""

    owner: str
    target: str
    how: str             # "branch" (direct call/jmp, or falling through), "indirect" (through memory), "ref"
    section: str
    offset: int
    text: str
    in_code: bool        # made by an instruction (not a data section's relocation)


class _Scanner:
    """One object: finds the functions, disassembles them and collects what they do."""

    def __init__(self, obj: _Object, where: str):
        self.obj = obj
        self.where = where
        self.md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.md.detail = True
        self.md.syntax = capstone.CS_OPT_SYNTAX_ATT
        self.notes: list[str] = []
        self.code_symbols = sorted(
            ((s.section, s.value, i, s) for i, s in obj.symbols.items()
             if s.section > 0 and not s.is_section and obj.section(s.section).code and s.scl in
             (_SCL_EXTERNAL, _SCL_STATIC, _SCL_LABEL)),
            key=lambda item: item[:3])

    # functions ------------------------------------------------------------------------------------------------
    def functions(self, promoted: set[tuple[int, int]]) -> list[_Fn]:
        """The functions: global or function-typed code symbols, plus local labels at ``promoted`` addresses;
        each runs to the next function of its section (or the section's end)."""
        by_address: dict[tuple[int, int], _Fn] = {}
        for section, value, _, sym in self.code_symbols:
            primary = sym.scl == _SCL_EXTERNAL or sym.function_typed
            if not primary and (section, value) not in promoted:
                continue
            fn = by_address.get((section, value))
            is_global = sym.scl == _SCL_EXTERNAL
            if fn is None:
                by_address[(section, value)] = _Fn(sym.name, section, value, 0, is_global)
            elif sym.name != fn.name and all(sym.name != name for name, _ in fn.aliases):
                fn.aliases.append((sym.name, is_global))
        fns = [by_address[key] for key in sorted(by_address)]
        for i, fn in enumerate(fns):
            nxt = fns[i + 1] if i + 1 < len(fns) and fns[i + 1].section == fn.section else None
            fn.end = nxt.start if nxt else len(self.obj.section(fn.section).data)
        return fns

    @staticmethod
    def owner_at(fns: list[_Fn], section: int, offset: int) -> _Fn | None:
        """The function holding ``offset`` of code section ``section``."""
        return next((fn for fn in fns if fn.section == section and fn.start <= offset < fn.end), None)

    def code_name(self, fns: list[_Fn], section: int, offset: int) -> str:
        """What a reference to code at ``offset`` names: its function, else ``section+0xoffset``."""
        fn = self.owner_at(fns, section, offset)
        return fn.name if fn else f"{self.obj.section(section).name}+{offset:#x}"

    def data_name(self, section: int, offset: int) -> str:
        """The data symbol at or before ``offset`` of a data section (a global one first), else
        ``section+0xoffset``."""
        candidates = [(sym.value, sym.scl == _SCL_EXTERNAL, -index, sym.name)
                      for index, sym in self.obj.symbols.items()
                      if sym.section == section and not sym.is_section and sym.value <= offset
                      and sym.scl in (_SCL_EXTERNAL, _SCL_STATIC, _SCL_LABEL)]
        return max(candidates)[3] if candidates else f"{self.obj.section(section).name}+{offset:#x}"

    def resolve(self, fns, reloc, section: _Section, insn_end: int | None) -> tuple[str, tuple[int, int] | None]:
        """The name a relocation refers to and, when it is code of this object, its (section, offset)."""
        offset, index, rtype = reloc
        sym = self.obj.symbols.get(index)
        if sym is None:
            raise AsmScanError(f"{self.where}: relocation at {section.name}+{offset:#x} names symbol {index}, "
                               f"which the object does not have")
        if sym.section <= 0:
            return sym.name, None
        if not (_REL_ADDR64 <= rtype <= _REL_REL32_5):
            self.notes.append(f"{section.name}+{offset:#x}: relocation type {rtype:#x} to {sym.name} not read")
            return sym.name, None
        target = sym.value + _addend(section, offset, rtype, insn_end)
        if self.obj.section(sym.section).code:
            if not sym.is_section and sym.scl == _SCL_EXTERNAL and target == sym.value:
                return sym.name, (sym.section, target)
            return self.code_name(fns, sym.section, target), (sym.section, target)
        return (sym.name if not sym.is_section else self.data_name(sym.section, target)), None

    # disassembly ----------------------------------------------------------------------------------------------
    def decode(self, section: _Section, start: int, end: int) -> list:
        """The instructions of [start, end); undecodable bytes are skipped and noted."""
        insns, pos = [], start
        while pos < end:
            before = len(insns)
            insns.extend(self.md.disasm(section.data[pos:end], pos))
            if len(insns) > before:
                pos = insns[-1].address + insns[-1].size
            if pos < end:
                skip = pos + 1
                while skip < end and next(self.md.disasm(section.data[skip:end], skip, 1), None) is None:
                    skip += 1
                self.notes.append(f"{section.name}+{pos:#x}: {skip - pos} bytes that do not decode as "
                                  f"instructions skipped (data in code?)")
                pos = skip
        return insns

    def scan(self, fns: list[_Fn]):
        """Walk every function; the raw references, ports, MSRs, counts and the code addresses that are called
        or referred to from outside their function (local labels there become functions)."""
        refs: list[_Ref] = []
        ports, msrs, counts = [], [], {}
        wanted: set[tuple[int, int]] = set()
        for number, fn in enumerate(fns):
            section = self.obj.section(fn.section)
            insns = self.decode(section, fn.start, fn.end)
            starts = [insn.address for insn in insns]
            at: dict[int, list] = {}
            for reloc in sorted(section.relocs):
                i = bisect.bisect_right(starts, reloc[0]) - 1
                if i >= 0 and reloc[0] < insns[i].address + insns[i].size:
                    at.setdefault(insns[i].address, []).append(reloc)
            states, reached = _states(insns, fn.start, fn.end, set(at))
            for insn, state in zip(insns, states):
                text = f"{insn.mnemonic} {insn.op_str}".strip()
                where = (section.name, insn.address, text)
                self._references(fns, fn, section, insn, at.get(insn.address, []), where, refs, wanted)
                self._io(fn, insn, state, where, ports, msrs)
                if insn.insn_name() in COUNTED:
                    key = (fn.name, insn.insn_name())
                    counts[key] = counts.get(key, 0) + 1
            last = max((i for i, r in enumerate(reached) if r), default=None)
            nxt = fns[number + 1] if number + 1 < len(fns) else None
            if last is not None and insns[last].id not in _ENDS_FLOW and nxt is not None \
                    and nxt.section == fn.section and insns[last].address + insns[last].size == nxt.start:
                refs.append(_Ref(fn.name, nxt.name, "branch", section.name, insns[last].address,
                                 "(falls through)", True))
        for section in self.obj.sections:
            if section.code or _BOOKKEEPING.match(section.name):
                continue
            for reloc in sorted(section.relocs):
                name, code = self.resolve(fns, reloc, section, None)
                refs.append(_Ref(self.data_name(section.number, reloc[0]), name, "ref", section.name, reloc[0],
                                 "(data)", False))
                if code is not None:
                    wanted.add(code)
        return refs, ports, msrs, counts, wanted

    def _references(self, fns, fn, section, insn, relocs, where, refs, wanted) -> None:
        """The references one instruction makes: relocations, direct branches and ``%rip``-relative operands
        the assembler resolved inside the section."""
        sname, offset, text = where
        is_call = insn.group(capstone.CS_GRP_CALL)
        is_branch = is_call or insn.group(capstone.CS_GRP_JUMP)
        direct = _branch_target(insn)
        end = insn.address + insn.size
        for reloc in relocs:
            name, code = self.resolve(fns, reloc, section, end)
            how = ("branch" if direct is not None else "indirect") if is_branch else "ref"
            refs.append(_Ref(fn.name, name, how, sname, offset, f"{text} <{name}>", True))
            if code is not None and (is_call or name != fn.name):
                wanted.add(code)
        if relocs:
            return
        if direct is not None and not fn.start <= direct < fn.end:
            name = self.code_name(fns, fn.section, direct)
            refs.append(_Ref(fn.name, name, "branch", sname, offset, f"{text} <{name}>", True))
            wanted.add((fn.section, direct))
        elif direct is not None and is_call and direct != fn.start:
            wanted.add((fn.section, direct))    # a call to a named label inside the function: a subroutine
        for op in insn.operands:
            if op.type == x86.X86_OP_MEM and op.mem.base == x86.X86_REG_RIP and not is_branch:
                target = end + op.mem.disp
                if 0 <= target < len(section.data) and not fn.start <= target < fn.end:
                    name = self.code_name(fns, fn.section, target)
                    refs.append(_Ref(fn.name, name, "ref", sname, offset, f"{text} <{name}>", True))
                    wanted.add((fn.section, target))

    def _io(self, fn, insn, state, where, ports, msrs) -> None:
        """Port and MSR accesses, with the constants the tracker knows."""
        sname, offset, text = where
        kind = _PORT_INSNS.get(insn.id)
        if kind is not None:
            access, string_width = kind
            port = next((op.imm & 0xFF for op in insn.operands if op.type == x86.X86_OP_IMM), None)
            data_regs = [op for op in insn.operands if op.type == x86.X86_OP_REG and op.reg != x86.X86_REG_DX]
            if port is None:
                port = _read(state, x86.X86_REG_DX)
            width = string_width or data_regs[0].size
            value = _read(state, data_regs[0].reg) if access == "write" and data_regs else None
            ports.append(dict(function=fn.name, port=port, access=access, width=width, section=sname, offset=offset,
                              text=text, value=value, note="" if port is not None else "port not constant"))
        elif insn.id in (x86.X86_INS_RDMSR, x86.X86_INS_WRMSR):
            msr = _read(state, x86.X86_REG_ECX)
            value = None
            if insn.id == x86.X86_INS_WRMSR:
                high, low = _read(state, x86.X86_REG_EDX), _read(state, x86.X86_REG_EAX)
                value = (high << 32 | low) if high is not None and low is not None else None
            msrs.append(dict(function=fn.name, msr=msr, access="write" if insn.id == x86.X86_INS_WRMSR else "read",
                             section=sname, offset=offset, text=text, value=value,
                             note="" if msr is not None else "MSR not constant"))


#: Port instructions: (access, width of a string instruction or 0 when a register operand gives it).
_PORT_INSNS = {x86.X86_INS_IN: ("read", 0), x86.X86_INS_OUT: ("write", 0),
               x86.X86_INS_INSB: ("read", 1), x86.X86_INS_INSW: ("read", 2), x86.X86_INS_INSD: ("read", 4),
               x86.X86_INS_OUTSB: ("write", 1), x86.X86_INS_OUTSW: ("write", 2), x86.X86_INS_OUTSD: ("write", 4)}


# ---- definition lines -----------------------------------------------------------------------------------------------

_DECLARATIONS = {"public", "extern", "extrn", ".globl", ".global", ".extern", ".weak", ".def", ".scl", ".type",
                 ".endef", ".size", ".hidden"}
_MARKER = re.compile(r'^#\s*(\d+)\s+"((?:[^"\\]|\\.)*)"')


def _source_lines(path: Path, preprocessed: str | None) -> list[tuple[int, str]]:
    """(line number, text) of the file's own lines: from the preprocessor's output when there is one (only what
    survived ``#if``, mapped back through its line markers), else from the file with ``#`` comments removed."""
    if preprocessed is None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise AsmScanError(f"{path}: cannot read: {exc.strerror or exc}") from None
        return [(n, line.split("#", 1)[0]) for n, line in enumerate(text.splitlines(), 1)]
    out, current, number = [], None, 0
    main = str(path)
    for line in preprocessed.splitlines():
        marker = _MARKER.match(line)
        if marker:
            number = int(marker.group(1))
            current = re.sub(r"\\(.)", r"\1", marker.group(2))
            continue
        if current == main:
            out.append((number, line))
        number += 1
    return out


def _definition_line(name: str, lines: list[tuple[int, str]]) -> int:
    """The line defining ``name``: its label, else the first line using it that is not a declaration (a macro
    such as ``TRAP_ENTRY name`` or ``FUNC name``), else its declaration; 0 when the file never names it."""
    word = re.compile(rf"(?<![\w.$@?]){re.escape(name)}(?![\w$@?])")
    label = re.compile(rf"(?:^|;)\s*{re.escape(name)}\s*:")
    best = (3, 0)
    for number, text in lines:
        if not word.search(text):
            continue
        first = text.split(None, 1)[0].lower() if text.split() else ""
        rank = 0 if label.search(text) else (2 if first in _DECLARATIONS else 1)
        best = min(best, (rank, number))
        if rank == 0:
            break
    return best[1]


# ---- entry point -------------------------------------------------------------------------------------------------

def scan_asm(source, workdir: Path, *, known_functions=()) -> AsmScan:
    """Assemble ``source`` (a ``generator.unit.Source`` of language ``asm``) as the build does, into a folder of
    ``workdir`` named after the file, and report what its code does (:class:`AsmScan`).

    ``known_functions`` names functions defined elsewhere (the C side): a reference to one of them that is not a
    call is reported as an ``address`` call; undefined names count as functions anyway when called or
    function-typed. Raises :class:`AsmScanError` naming the file when it does not assemble (with the first
    error line) or its object cannot be read.
    """
    path = Path(source.path)
    if source.language != "asm":
        raise AsmScanError(f"{path}: language {source.language!r}, expected \"asm\"")
    if not path.is_file():
        made_by = f" (made at build time from {source.generated_from} by {source.generator}: make it first)" \
            if source.generated_from else ""
        raise AsmScanError(f"{path}: no such file{made_by}")
    started = time.perf_counter()
    # one folder per file and set of arguments: the same file built twice with other defines does not collide
    args_key = "\0".join([str(path), *source.extra_flags, *source.defines, *map(str, source.include_dirs)])
    tag = hashlib.sha256(args_key.encode("utf-8")).hexdigest()[:12]
    data, preprocessed = _assemble(source, Path(workdir) / f"{path.stem}-{tag}")
    assembled = time.perf_counter()

    where = str(path)
    obj = _Object(data, where)
    scanner = _Scanner(obj, where)
    # local labels called or referred to from outside their function become functions; splitting a function
    # can expose further such labels, so repeat until nothing changes (each round adds at least one label)
    labels = {(section, value) for section, value, _, _ in scanner.code_symbols}
    promoted: set[tuple[int, int]] = set()
    while True:
        scanner.notes.clear()
        fns = scanner.functions(promoted)
        refs, ports, msrs, counts, wanted = scanner.scan(fns)
        more = (wanted & labels) - {(fn.section, fn.start) for fn in fns}
        if not more:
            break
        promoted |= more

    lines = _source_lines(path, preprocessed)
    line_of = {}
    functions = []
    for fn in fns:
        for name, is_global in [(fn.name, fn.is_global), *fn.aliases]:
            line_of[name] = _definition_line(name, lines)
            functions.append(AsmFunction(name, line_of[name], obj.section(fn.section).name, fn.start,
                                         fn.end - fn.start, is_global, "" if name == fn.name else fn.name))
    calls, data_refs = _classify(refs, {f.name for f in functions}, obj, set(known_functions), line_of)
    return AsmScan(
        path=path,
        functions=tuple(functions),
        calls=tuple(calls),
        ports=tuple(AsmPort(**p, line=line_of.get(p["function"], 0)) for p in ports),
        msrs=tuple(AsmMsr(**m, line=line_of.get(m["function"], 0)) for m in msrs),
        data_refs=tuple(data_refs),
        counts=tuple(AsmCount(f, m, c) for (f, m), c in counts.items()),
        notes=tuple(dict.fromkeys(scanner.notes)),
        assemble_seconds=assembled - started,
        scan_seconds=time.perf_counter() - assembled,
    )


def _classify(refs: list[_Ref], defined: set[str], obj: _Object, known: set[str], line_of: dict[str, int]):
    """Calls and data references from the raw references, once it is known which names are functions: this
    object's code, function-typed or called undefined symbols (an ``__imp_`` slot called through stands for
    its function), and ``known``."""
    def plain(name: str) -> str:
        return name[len("__imp_"):] if name.startswith("__imp_") else name

    function_like = set(defined) | set(known)
    function_like |= {s.name for s in obj.symbols.values() if s.section == 0 and s.function_typed}
    function_like |= {r.target for r in refs if r.how == "branch"}
    function_like |= {plain(r.target) for r in refs if r.how == "indirect" and r.target.startswith("__imp_")}
    calls, data_refs = [], []
    for ref in refs:
        line = line_of.get(ref.owner, 0)
        if ref.how == "branch" or (ref.how == "indirect" and ref.target.startswith("__imp_")):
            callee = plain(ref.target)
            if callee != ref.owner:
                calls.append(AsmCall(ref.owner, callee, "call", ref.section, ref.offset, ref.text, line))
        elif plain(ref.target) in function_like:
            calls.append(AsmCall(ref.owner, plain(ref.target), "address", ref.section, ref.offset, ref.text, line))
        elif ref.in_code:       # data-to-data references are not what this scan is about
            data_refs.append(AsmDataRef(ref.owner, ref.target, ref.section, ref.offset, ref.text))
    return calls, data_refs
