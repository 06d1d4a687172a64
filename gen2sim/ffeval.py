"""A small x86-64 interpreter for one iteration of a polling loop, over exact values or ranges of values.

The fast-forward engine (``gen2sim.fastforward``) needs three things from one iteration of a loop it has seen the
CPU run, and this module computes them without touching the machine:

1. *Replay*: run the iteration again from the registers it started with and the device values it read, and
   produce the registers, flags and memory stores it must have produced.  Comparing that with what Unicorn really
   did checks this interpreter on that very code (flags included) before it is trusted.
2. *Proof over a range*: run the iteration once with each device read given as a range of values (the values a
   counter takes over many iterations) and show that every conditional branch still goes the way it went, that
   port numbers, addresses and written values stay the same, and that the iteration leaves its *live-in* state
   (bytes of registers, flags and memory it reads before writing) unchanged -- except *induction registers*, which
   must grow by the same constant every iteration (a bounded wait's counter): over the range they are given as
   ``Aff``, their range of start values tied to the register itself, and must end as exactly that plus the step.
   Then every iteration of the range runs the same path -- by induction, since each starts from the same live-in
   state (up to the counters' steps) and reads values inside the ranges.
3. *The state after the last skipped iteration*: an exact replay with that iteration's device values.

Values are Python ints (exact) or ``Iv`` (an unsigned range, sound over-approximation).  An operation the range
arithmetic cannot bound gives the whole range of its width; a branch, address or port that then depends on it
makes the proof fail (``Diverges``) and the loop simply runs step by step.  Instructions outside the subset a
polling loop needs raise ``Unsupported``.  Flags follow QEMU's definitions (Unicorn is QEMU), including the ones
Intel leaves undefined; the replay check catches any difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import capstone
from capstone import x86 as CX

MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: 0xFFFF_FFFF_FFFF_FFFF}
FLAG_BITS = {"C": 0, "P": 2, "A": 4, "Z": 6, "S": 7, "O": 11}
ARITH_FLAGS = sum(1 << b for b in FLAG_BITS.values())
RFLAGS_IF = 0x200
_PARITY = [1 - bin(i).count("1") % 2 for i in range(256)]
#: Instructions the CPU core intercepts with a code hook that moves RIP: Unicorn continues in a new block.
HOOKED = frozenset(("rdtsc", "rdmsr", "wrmsr"))
_GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi") + tuple(f"r{i}" for i in range(8, 16))


class Unsupported(Exception):
    """The path uses something this interpreter does not model: it can never be fast-forwarded."""


class Diverges(Exception):
    """With these values the iteration would not repeat the observed path (or this cannot be shown)."""


class Iv:
    """Unsigned range ``[lo, hi]`` with ``lo < hi`` (a single value is a plain int)."""

    __slots__ = ("lo", "hi")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def __repr__(self) -> str:
        return f"Iv({self.lo:#x}, {self.hi:#x})"


class Aff(Iv):
    """An induction register's value: the register's value at the iteration's start (somewhere in a range) plus
    ``off``; ``lo``/``hi`` bound the value itself, so every range rule applies to it unchanged."""

    __slots__ = ("gpr", "off")

    def __init__(self, gpr: int, off: int, lo: int, hi: int) -> None:
        super().__init__(lo, hi)
        self.gpr, self.off = gpr, off

    def __repr__(self) -> str:
        return f"Aff(r{self.gpr}{self.off:+d}, {self.lo:#x}, {self.hi:#x})"


def mk(lo: int, hi: int):
    """The value set ``[lo, hi]``: an int when it is one value."""
    return lo if lo == hi else Iv(lo, hi)


def top(size: int) -> Iv:
    """Any value of ``size`` bytes."""
    return Iv(0, MASKS[size])


def bounds(v) -> tuple[int, int]:
    """``(lo, hi)`` of a value set."""
    return (v, v) if type(v) is int else (v.lo, v.hi)


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def _signed_bounds(v, bits: int) -> tuple[int, int] | None:
    """Signed bounds, or ``None`` when the range straddles the sign boundary."""
    lo, hi = bounds(v)
    if (lo >> (bits - 1)) != (hi >> (bits - 1)):
        return None
    return _signed(lo, bits), _signed(hi, bits)


def _byte_of(v, i: int) -> int | None:
    """Byte ``i`` of every value in ``v``, or ``None`` when it varies."""
    lo, hi = bounds(v)
    if lo >> (8 * i) != hi >> (8 * i):
        return None
    return (lo >> (8 * i)) & 0xFF


def _extract(v, shift: int, size: int):
    """Bits ``[shift, shift + 8*size)`` of ``v``."""
    m = MASKS[size]
    if type(v) is int:
        return (v >> shift) & m
    if shift == 0 and v.hi <= m:
        return v  # the same values (an induction register keeps its identity)
    lo, hi = v.lo >> shift, v.hi >> shift
    if lo >> (8 * size) == hi >> (8 * size):
        return mk(lo & m, hi & m)
    return top(size)


def _union(a, b):
    alo, ahi = bounds(a)
    blo, bhi = bounds(b)
    return mk(min(alo, blo), max(ahi, bhi))


@dataclass
class Operand:
    """A decoded operand: ``kind`` ``reg`` (``gpr``, byte ``off``), ``imm`` (``imm``) or ``mem``."""

    kind: str
    size: int
    gpr: int = -1
    off: int = 0
    imm: int = 0
    base: int | None = None  # GPR index, -1 for RIP
    index: int | None = None
    scale: int = 1
    disp: int = 0
    segment: str | None = None


@dataclass
class Step:
    """One executed instruction of the path: mnemonic, operands, and where control must go after it when it
    ends a block (``successor``; ``None`` inside a block)."""

    address: int
    size: int
    mnemonic: str
    ops: list[Operand]
    block: int
    successor: int | None = None


_CS = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_CS.detail = True
_REGS: dict[int, tuple[int, int, int]] = {}  # capstone register id -> (gpr, byte offset, size)


def _init_regs() -> None:
    names = {}
    for i, r in enumerate(_GPR_NAMES):
        if i < 8:
            base = r[1:]  # ax, cx, dx, bx, sp, bp, si, di
            names[r] = (i, 0, 8)
            names["e" + base] = (i, 0, 4)
            names[base] = (i, 0, 2)
            names[{"ax": "al", "cx": "cl", "dx": "dl", "bx": "bl"}.get(base, base + "l")] = (i, 0, 1)
            if base in ("ax", "cx", "dx", "bx"):
                names[base[0] + "h"] = (i, 1, 1)
        else:
            names[r] = (i, 0, 8)
            names[r + "d"] = (i, 0, 4)
            names[r + "w"] = (i, 0, 2)
            names[r + "b"] = (i, 0, 1)
    for rid in range(1, CX.X86_REG_ENDING):
        name = _CS.reg_name(rid)
        if name in names:
            _REGS[rid] = names[name]


_init_regs()


def _operand(op, insn) -> Operand:
    if op.type == CX.X86_OP_REG:
        if op.reg not in _REGS:
            raise Unsupported(f"register {insn.reg_name(op.reg)} in {insn.mnemonic} {insn.op_str}")
        gpr, off, size = _REGS[op.reg]
        return Operand("reg", size, gpr=gpr, off=off)
    if op.type == CX.X86_OP_IMM:
        return Operand("imm", op.size, imm=op.imm & MASKS[8])  # capstone gives immediates signed
    if op.type == CX.X86_OP_MEM:
        m = op.mem
        seg = insn.reg_name(m.segment) if m.segment else None
        if seg not in (None, "ds", "ss", "es", "cs", "fs", "gs"):
            raise Unsupported(f"segment {seg}")
        base = None
        if m.base:
            if insn.reg_name(m.base) == "rip":
                base = -1
            elif m.base in _REGS and _REGS[m.base][2] == 8:
                base = _REGS[m.base][0]
            else:
                raise Unsupported(f"address base {insn.reg_name(m.base)}")
        index = None
        if m.index:
            if m.index not in _REGS or _REGS[m.index][2] != 8:
                raise Unsupported(f"address index {insn.reg_name(m.index)}")
            index = _REGS[m.index][0]
        return Operand("mem", op.size, base=base, index=index, scale=m.scale, disp=m.disp,
                       segment=seg if seg in ("fs", "gs") else None)
    raise Unsupported(f"operand type {op.type}")


def decode_block(code: bytes, address: int) -> list:
    """The instructions of a block (capstone objects with details)."""
    return list(_CS.disasm(code, address))


def path_steps(blocks: list[tuple[int, list]], head: int) -> list[Step]:
    """The executed instructions of a loop path: ``blocks`` is ``[(address, instructions)]`` in order, the
    iteration returning to ``head``.  A hooked instruction (RDTSC, RDMSR) ends its block when the next block starts
    right after it (the core moved RIP there).  Raises ``Unsupported``."""
    steps: list[Step] = []
    for b, (address, insns) in enumerate(blocks):
        nxt = blocks[b + 1][0] if b + 1 < len(blocks) else head
        taken: list = []
        for insn in insns:
            taken.append(insn)
            if insn.mnemonic in HOOKED and insn.address + insn.size == nxt:
                break
        if not taken or taken[0].address != address:
            raise Unsupported(f"block at {address:#x} does not decode")
        for i, insn in enumerate(taken):
            if insn.prefix[0] in (0xF2, 0xF3) and insn.mnemonic not in ("pause", "ret", "nop"):
                raise Unsupported(f"repeat prefix on {insn.mnemonic}")
            ops = [_operand(op, insn) for op in insn.operands]
            steps.append(Step(insn.address, insn.size, insn.mnemonic, ops, b,
                              nxt if i == len(taken) - 1 else None))
    return steps


# ------------------------------------------------------------------------------------------------- conditions
_CONDS = {"o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"}
_COND_FLAGS = {"o": "O", "no": "O", "b": "C", "ae": "C", "e": "Z", "ne": "Z", "be": "CZ", "a": "CZ", "s": "S",
               "ns": "S", "p": "P", "np": "P", "l": "SO", "ge": "SO", "le": "ZSO", "g": "ZSO"}


def _cond_from_flags(cc: str, f: dict) -> int | None:
    C, Z, S, O, P = f["C"], f["Z"], f["S"], f["O"], f["P"]

    def nz(x):
        return None if x is None else 1 - x

    def xor(a, b):
        return None if a is None or b is None else a ^ b

    def or_(a, b):
        if a == 1 or b == 1:
            return 1
        return None if a is None or b is None else 0

    table = {"o": O, "no": nz(O), "b": C, "ae": nz(C), "e": Z, "ne": nz(Z), "be": or_(C, Z), "a": nz(or_(C, Z)),
             "s": S, "ns": nz(S), "p": P, "np": nz(P), "l": xor(S, O), "ge": nz(xor(S, O)),
             "le": or_(Z, xor(S, O)), "g": nz(or_(Z, xor(S, O)))}
    return table[cc]


def _cond_from_compare(cc: str, a, b, bits: int) -> int | None:
    """A condition after ``cmp a, b`` decided from the ranges themselves."""
    alo, ahi = bounds(a)
    blo, bhi = bounds(b)
    lt = 1 if ahi < blo else 0 if alo >= bhi else None
    gt = 1 if alo > bhi else 0 if ahi <= blo else None
    eq = 0 if (ahi < blo or alo > bhi) else None
    sa, sb = _signed_bounds(a, bits), _signed_bounds(b, bits)
    slt = sgt = None
    if sa is not None and sb is not None:
        slt = 1 if sa[1] < sb[0] else 0 if sa[0] >= sb[1] else None
        sgt = 1 if sa[0] > sb[1] else 0 if sa[1] <= sb[0] else None

    def nz(x):
        return None if x is None else 1 - x

    table = {"b": lt, "ae": nz(lt), "a": gt, "be": nz(gt), "e": eq, "ne": nz(eq), "l": slt, "ge": nz(slt),
             "g": sgt, "le": nz(sgt)}
    return table.get(cc)


# ------------------------------------------------------------------------------------------------- the machine
@dataclass
class Result:
    """What one evaluated iteration did."""

    regs: list
    rflags: int | None  # None when a flag is not known exactly
    carried: dict[int, int]  # GPR -> what the iteration added to it, for registers read before written and changed
    stores: dict[int, int]  # byte address -> byte, exact stores only
    accesses: list[tuple]  # (space, key, size, op, value, time offset ps)
    time_ps: int  # virtual time the iteration costs


class Machine:
    """One iteration's evaluation (see the module docstring).

    ``regs`` are the 16 GPRs (Unicorn's order: RAX RCX RDX RBX RSP RBP RSI RDI R8-R15), ``rflags`` the flags
    register at the loop head.  ``memory.read(va, size)`` reads RAM, ``memory.is_device(va, size)`` says whether an
    address reaches a device (MMIO; then the access goes to ``oracle``), ``segment_base(name)`` gives FS/GS bases.
    ``oracle(space, key, size, op, value, time_offset_ps)`` answers device reads (``space`` ``io``, ``mmio``,
    ``msr`` or ``tsc``) and sees device writes.  ``block_cost(b)`` is the virtual time the core charges when block
    ``b`` of the path starts, ``exit_cost(space)`` the time of one intercepted access.
    """

    def __init__(self, steps: list[Step], regs: list[int], rflags: int, memory, oracle: Callable,
                 block_cost: Callable[[int], int], exit_cost: Callable[[str], int],
                 segment_base: Callable[[str], int], induction: dict[int, int] | None = None) -> None:
        self.steps = steps
        self.regs = list(regs)
        self.initial = list(regs)
        self.flags = {f: (rflags >> bit) & 1 for f, bit in FLAG_BITS.items()}
        self.initial_flags = dict(self.flags)
        self.rest = rflags & ~ARITH_FLAGS
        self.initial_rest = self.rest
        self.hint = None  # (a, b, bits) of the last cmp/sub, for conditions on ranges
        self.memory = memory
        self.oracle = oracle
        self.block_cost = block_cost
        self.exit_cost = exit_cost
        self.segment_base = segment_base
        self.live = [0] * 16  # per GPR: bytes read before written
        self.written = [0] * 16
        self.live_flags: set[str] = set()
        self.written_flags: set[str] = set()
        self.overlay: dict[int, object] = {}  # byte address -> byte (int) or ("iv", write id)
        self.iv_writes: dict[int, tuple[int, int, Iv]] = {}
        self.live_mem: dict[int, int] = {}
        self.accesses: list[tuple] = []
        self.t = 0
        self.induction = induction or {}  # GPR -> step: allowed to end as its start plus the step

    # ------------------------------------------------------------------ registers
    def get(self, op: Operand):
        self.live[op.gpr] |= self._bytes(op) & ~self.written[op.gpr]
        return _extract(self.regs[op.gpr], 8 * op.off, op.size)

    @staticmethod
    def _bytes(op: Operand) -> int:
        return ((1 << op.size) - 1) << op.off

    def get_gpr(self, gpr: int, size: int = 8):
        return self.get(Operand("reg", size, gpr=gpr))

    def set(self, op: Operand, value) -> None:
        gpr, size = op.gpr, op.size
        if size >= 4:
            self.written[gpr] = 0xFF
            self.regs[gpr] = value
            return
        self.written[gpr] |= self._bytes(op)
        old = self.regs[gpr]
        shift = 8 * op.off
        keep = MASKS[8] & ~(MASKS[size] << shift)
        if type(old) is int and type(value) is int:
            self.regs[gpr] = (old & keep) | (value << shift)
        elif type(old) is int:
            lo, hi = value.lo, value.hi
            self.regs[gpr] = mk((old & keep) | (lo << shift), (old & keep) | (hi << shift))
        else:
            self.regs[gpr] = top(8)

    def set_gpr(self, gpr: int, value, size: int = 8) -> None:
        self.set(Operand("reg", size, gpr=gpr), value)

    # ------------------------------------------------------------------ flags
    def read_flags(self, names: str) -> None:
        for f in names:
            if f not in self.written_flags:
                self.live_flags.add(f)

    def set_flags(self, flags: dict, hint=None) -> None:
        for f, v in flags.items():
            self.flags[f] = v
            self.written_flags.add(f)
        self.hint = hint

    def cond(self, cc: str) -> int | None:
        self.read_flags(_COND_FLAGS[cc])
        value = _cond_from_flags(cc, self.flags)
        if value is None and self.hint is not None:
            value = _cond_from_compare(cc, *self.hint)
        return value

    def rflags_value(self) -> int | None:
        if any(v is None for v in self.flags.values()):
            return None
        value = self.rest
        for f, bit in FLAG_BITS.items():
            value |= self.flags[f] << bit
        return value

    # ------------------------------------------------------------------ memory
    def address(self, op: Operand, step: Step) -> int:
        addr = op.disp
        if op.base == -1:
            addr += step.address + step.size
        elif op.base is not None:
            base = self.get_gpr(op.base)
            if type(base) is not int:
                raise Diverges("address depends on a read value")
            addr += base
        if op.index is not None:
            index = self.get_gpr(op.index)
            if type(index) is not int:
                raise Diverges("address depends on a read value")
            addr += index * op.scale
        if op.segment is not None:
            addr += self.segment_base(op.segment)
        return addr & MASKS[8]

    def load(self, addr: int, size: int):
        if self.memory.is_device(addr, size):
            return self.device("mmio", addr, size, "r", None)
        marks = [self.overlay.get(addr + i) for i in range(size)]
        if any(isinstance(m, tuple) for m in marks):
            wid = marks[0][1] if isinstance(marks[0], tuple) else None
            w = self.iv_writes.get(wid)
            if w is not None and w[0] == addr and w[1] == size and all(m == ("iv", wid) for m in marks):
                return w[2]
            return top(size)
        missing = [i for i, m in enumerate(marks) if m is None]
        if missing:
            raw = self.memory.read(addr, size)
            for i in missing:
                marks[i] = raw[i]
                self.live_mem.setdefault(addr + i, raw[i])
        return int.from_bytes(bytes(marks), "little")

    def store(self, addr: int, size: int, value) -> None:
        if self.memory.is_device(addr, size):
            if type(value) is not int:
                raise Diverges("device write of a read-dependent value")
            self.device("mmio", addr, size, "w", value)
            return
        if type(value) is int:
            for i in range(size):
                self.overlay[addr + i] = (value >> (8 * i)) & 0xFF
            return
        wid = len(self.iv_writes)
        self.iv_writes[wid] = (addr, size, value)
        for i in range(size):
            self.overlay[addr + i] = ("iv", wid)

    def read(self, op: Operand, step: Step):
        if op.kind == "reg":
            return self.get(op)
        if op.kind == "imm":
            return op.imm & MASKS[op.size]
        return self.load(self.address(op, step), op.size)

    def write(self, op: Operand, step: Step, value) -> None:
        if op.kind == "reg":
            self.set(op, value)
        elif op.kind == "mem":
            self.store(self.address(op, step), op.size, value)
        else:
            raise Unsupported("write to an immediate")

    def push(self, value) -> None:
        rsp = self.get_gpr(4)
        if type(rsp) is not int:
            raise Diverges("stack pointer depends on a read value")
        rsp = (rsp - 8) & MASKS[8]
        self.set_gpr(4, rsp)
        self.store(rsp, 8, value)

    def pop(self):
        rsp = self.get_gpr(4)
        if type(rsp) is not int:
            raise Diverges("stack pointer depends on a read value")
        value = self.load(rsp, 8)
        self.set_gpr(4, (rsp + 8) & MASKS[8])
        return value

    def device(self, space: str, key: int, size: int, op: str, value):
        if space != "tsc":
            self.t += self.exit_cost(space)  # the core charges an exit before it performs it
        self.accesses.append((space, key, size, op, value, self.t))
        return self.oracle(space, key, size, op, value, self.t)

    # ------------------------------------------------------------------ running
    def run(self, loop: bool = True) -> Result:
        """Evaluate the path; raises ``Unsupported`` or ``Diverges``.  With ``loop`` (the default) the live-in state
        must also end as it began (see ``check_invariant``); without, the path is only replayed."""
        block = -1
        for step in self.steps:
            if step.block != block:
                block = step.block
                self.t += self.block_cost(block)
            handler = _HANDLERS.get(step.mnemonic)
            if handler is None:
                cc = _cc_of(step.mnemonic)
                if cc is None:
                    raise Unsupported(f"instruction {step.mnemonic} at {step.address:#x}")
                handler = _HANDLERS[cc[0]]
            target = handler(self, step)
            fallthrough = step.address + step.size
            if step.successor is not None:
                if target is None:
                    target = fallthrough
                if type(target) is not int:
                    raise Diverges(f"branch target at {step.address:#x} depends on a read value")
                if target != step.successor:
                    raise Diverges(f"control leaves the path at {step.address:#x}")
            elif target is not None and target != fallthrough:
                raise Diverges(f"control leaves the path at {step.address:#x}")
        if loop:
            self.check_invariant()
        stores = {addr: byte for addr, byte in self.overlay.items() if type(byte) is int}
        carried = {}
        for gpr in range(16):
            final = self.regs[gpr]
            if self.live[gpr] & self.written[gpr] and type(final) is int and final != self.initial[gpr]:
                step = (final - self.initial[gpr]) & MASKS[8]
                carried[gpr] = step - (1 << 64) if step >> 63 else step
        return Result(self.regs, self.rflags_value(), carried, stores, self.accesses, self.t)

    def _stepped(self, gpr: int) -> bool:
        """Whether an induction register ended as its start plus its step."""
        step, final = self.induction[gpr], self.regs[gpr]
        if isinstance(final, Aff):
            return final.gpr == gpr and final.off == step
        start = self.initial[gpr]
        return type(final) is int and type(start) is int and (final - start - step) & MASKS[8] == 0

    def check_invariant(self) -> None:
        """Everything read before written must end as it began (induction registers: plus their step), so the next
        iteration starts the same; raises ``Diverges``."""
        for gpr in range(16):
            if gpr in self.induction:
                if not self._stepped(gpr):
                    raise Diverges(f"{_GPR_NAMES[gpr]} does not grow by the same step every iteration")
                continue
            both = self.live[gpr] & self.written[gpr]
            for i in range(8):
                if both >> i & 1:
                    b = _byte_of(self.regs[gpr], i)
                    if b is None or b != (self.initial[gpr] >> (8 * i)) & 0xFF:
                        raise Diverges(f"{_GPR_NAMES[gpr]} carries state from one iteration to the next")
        for f in self.live_flags & self.written_flags:
            if self.flags[f] != self.initial_flags[f]:
                raise Diverges(f"flag {f} carries state from one iteration to the next")
        if self.rest != self.initial_rest:
            raise Diverges("the iteration changes RFLAGS.IF or other control flags")
        for addr, original in self.live_mem.items():
            now = self.overlay.get(addr, original)
            if now != original:
                raise Diverges(f"memory at {addr:#x} carries state from one iteration to the next")


def _cc_of(mnemonic: str) -> tuple[str, str] | None:
    for prefix in ("cmov", "set", "j"):
        if mnemonic.startswith(prefix) and mnemonic[len(prefix):] in _CONDS:
            return prefix, mnemonic[len(prefix):]
    return None


# ------------------------------------------------------------------------------------------------- arithmetic
def _szp(r: int, bits: int) -> dict:
    return {"Z": int(r == 0), "S": (r >> (bits - 1)) & 1, "P": _PARITY[r & 0xFF]}


def _range_flags(r, bits: int) -> dict:
    lo, hi = bounds(r)
    z = 1 if hi == 0 else 0 if lo > 0 else None
    s = _byte_sign(lo, hi, bits)
    return {"Z": z, "S": s, "P": _PARITY[lo & 0xFF] if lo == hi else None}


def _byte_sign(lo: int, hi: int, bits: int) -> int | None:
    return (lo >> (bits - 1)) & 1 if (lo >> (bits - 1)) == (hi >> (bits - 1)) else None


def add_sub(a, b, carry: int | None, bits: int, sub: bool):
    """``a + b + carry`` or ``a - b - carry`` with flags; ranges where they allow."""
    m = (1 << bits) - 1
    if type(a) is int and type(b) is int and carry is not None:
        if sub:
            full = a - b - carry
            r = full & m
            f = {"C": int(full < 0), "O": (((a ^ b) & (a ^ r)) >> (bits - 1)) & 1}
        else:
            full = a + b + carry
            r = full & m
            f = {"C": full >> bits, "O": (((a ^ r) & (b ^ r)) >> (bits - 1)) & 1}
        f["A"] = ((a ^ b ^ r) >> 4) & 1
        f.update(_szp(r, bits))
        return r, f
    if carry is None:
        return top(bits // 8), dict.fromkeys("CPAZSO")
    r, f = _add_sub_range(a, b, carry, bits, sub)
    if isinstance(a, Aff) and type(b) is int and type(r) is Iv:
        step = -(b + carry) if sub else b + carry
        if r.lo == a.lo + step:  # no wrap: still the register's start value plus a constant
            r = Aff(a.gpr, a.off + step, r.lo, r.hi)
    return r, f


def _add_sub_range(a, b, carry: int, bits: int, sub: bool):
    m = (1 << bits) - 1
    alo, ahi = bounds(a)
    blo, bhi = bounds(b)
    if sub:
        lo, hi = alo - bhi - carry, ahi - blo - carry
    else:
        lo, hi = alo + blo + carry, ahi + bhi + carry
    if lo >= 0 and hi <= m:
        r, c = mk(lo, hi), 0
    elif (lo < 0 and hi < 0) or (lo > m and hi > m):
        r, c = mk(lo & m, hi & m), 1
    else:
        r, c = top(bits // 8), None
    f = {"C": c, "A": None, "O": None}
    sa, sb = _signed_bounds(a, bits), _signed_bounds(b, bits)
    if sa is not None and sb is not None:
        slo, shi = (sa[0] - sb[1] - carry, sa[1] - sb[0] - carry) if sub else (sa[0] + sb[0] + carry,
                                                                              sa[1] + sb[1] + carry)
        smin, smax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        f["O"] = 0 if smin <= slo and shi <= smax else 1 if (shi < smin or slo > smax) else None
    f.update(_range_flags(r, bits))
    return r, f


def logic(op: str, a, b, bits: int, same: bool = False):
    """``and``/``or``/``xor`` with QEMU's flags (CF = OF = AF = 0)."""
    m = (1 << bits) - 1
    if type(a) is int and type(b) is int:
        r = (a & b) if op == "and" else (a | b) if op == "or" else (a ^ b)
        f = {"C": 0, "O": 0, "A": 0}
        f.update(_szp(r, bits))
        return r, f
    if op == "xor" and same:
        r = 0
    elif op == "and":
        r = _and_range(a, b, m)
    elif op == "or":
        r = _or_range(a, b)
    elif op == "xor" and (a == 0 or b == 0):
        r = b if a == 0 else a
    else:
        r = top(bits // 8)
    f = {"C": 0, "O": 0, "A": 0}
    f.update(_range_flags(r, bits))
    return r, f


def _and_range(a, b, m: int):
    if type(a) is int:
        a, b = b, a
    if type(b) is not int:
        return mk(0, min(a.hi, b.hi))
    lo, hi = a.lo, a.hi
    c = b
    if c & (c + 1) == 0:  # a low mask 2**k - 1
        k = c.bit_length()
        if lo >> k == hi >> k:
            return mk(lo & c, hi & c)
    if c and c & (c - 1) == 0:  # one bit
        bit = c.bit_length() - 1
        if lo >> bit == hi >> bit:
            return lo & c
    return mk(0, min(hi, c))


def _or_range(a, b):
    if type(a) is int:
        a, b = b, a
    if type(b) is int and b & ((1 << a.hi.bit_length()) - 1) == 0:
        return mk(a.lo | b, a.hi | b)  # no common bits: an addition
    return top(8) if max(bounds(a)[1], bounds(b)[1]) >> 32 else top(4)


def shift(op: str, v, count: int, bits: int):
    """``shl``/``shr``/``sar`` by a known count; ``None`` flags dict when the count is 0 (flags unchanged)."""
    m = (1 << bits) - 1
    count &= 0x3F if bits == 64 else 0x1F
    if count == 0:
        return v, None
    if count >= bits and bits < 32:
        raise Unsupported("shift count beyond the operand width")
    if type(v) is int:
        if op == "shl":
            r, src = (v << count) & m, (v << (count - 1)) & m
            c = (src >> (bits - 1)) & 1
        elif op == "shr":
            r, src = v >> count, v >> (count - 1)
            c = src & 1
        else:
            sv = _signed(v, bits)
            r, src = (sv >> count) & m, (sv >> (count - 1)) & m
            c = src & 1
        f = {"C": c, "O": (((src ^ r) >> (bits - 1)) & 1), "A": 0}
        f.update(_szp(r, bits))
        return r, f
    lo, hi = v.lo, v.hi
    if op == "shl" and (hi << count) <= m:
        r = mk(lo << count, hi << count)
    elif op == "shr" or (op == "sar" and hi >> (bits - 1) == 0):
        r = mk(lo >> count, hi >> count)
    else:
        r = top(bits // 8)
    f = {"C": None, "O": None, "A": 0}
    f.update(_range_flags(r, bits))
    return r, f


# ------------------------------------------------------------------------------------------------- handlers
def _h_mov(e: Machine, s: Step):
    dst, src = s.ops
    e.write(dst, s, e.read(src, s) if src.kind != "imm" else src.imm & MASKS[dst.size])


def _h_movzx(e: Machine, s: Step):
    dst, src = s.ops
    e.write(dst, s, e.read(src, s))


def _sext(v, from_size: int, to_size: int):
    fb, tb = 8 * from_size, 8 * to_size
    if type(v) is int:
        return _signed(v, fb) & MASKS[to_size]
    sb = _signed_bounds(v, fb)
    if sb is None:
        return top(to_size)
    return mk(sb[0] & MASKS[to_size], sb[1] & MASKS[to_size])


def _h_movsx(e: Machine, s: Step):
    dst, src = s.ops
    e.write(dst, s, _sext(e.read(src, s), src.size, dst.size))


def _h_lea(e: Machine, s: Step):
    dst, src = s.ops
    e.write(dst, s, e.address(src, s) & MASKS[dst.size])


def _source(e: Machine, s: Step, size: int):
    src = s.ops[1]
    return src.imm & MASKS[size] if src.kind == "imm" else e.read(src, s)


def _h_arith(e: Machine, s: Step):
    dst = s.ops[0]
    bits = 8 * dst.size
    a = e.read(dst, s)
    b = _source(e, s, dst.size)
    mn = s.mnemonic
    carry = 0
    if mn in ("adc", "sbb"):
        e.read_flags("C")
        carry = e.flags["C"]
    same = len(s.ops) == 2 and s.ops[1].kind == "reg" and s.ops[1].gpr == dst.gpr and s.ops[1].off == dst.off
    if mn in ("sub", "sbb") and same and carry is not None and type(a) is not int:
        a = b = 0  # x - x does not depend on x
    r, f = add_sub(a, b, carry, bits, mn in ("sub", "sbb", "cmp"))
    e.set_flags(f, (a, b, bits) if mn in ("cmp", "sub") else None)
    if mn != "cmp":
        e.write(dst, s, r)


def _h_logic(e: Machine, s: Step):
    dst = s.ops[0]
    bits = 8 * dst.size
    a = e.read(dst, s)
    b = _source(e, s, dst.size)
    same = s.ops[1].kind == "reg" and s.ops[1].gpr == dst.gpr and s.ops[1].off == dst.off
    op = "and" if s.mnemonic == "test" else s.mnemonic
    r, f = logic(op, a, b, bits, same)
    e.set_flags(f)
    if s.mnemonic != "test":
        e.write(dst, s, r)


def _h_incdec(e: Machine, s: Step):
    dst = s.ops[0]
    bits = 8 * dst.size
    r, f = add_sub(e.read(dst, s), 1, 0, bits, s.mnemonic == "dec")
    del f["C"]  # INC and DEC keep CF
    e.set_flags(f)
    e.write(dst, s, r)


def _h_neg(e: Machine, s: Step):
    dst = s.ops[0]
    r, f = add_sub(0, e.read(dst, s), 0, 8 * dst.size, True)
    e.set_flags(f)
    e.write(dst, s, r)


def _h_not(e: Machine, s: Step):
    dst = s.ops[0]
    m = MASKS[dst.size]
    v = e.read(dst, s)
    e.write(dst, s, (m - v) if type(v) is int else mk(m - v.hi, m - v.lo))


def _h_shift(e: Machine, s: Step):
    dst = s.ops[0]
    if len(s.ops) == 1:
        count = 1
    else:
        count = e.read(s.ops[1], s) if s.ops[1].kind != "imm" else s.ops[1].imm
        if type(count) is not int:
            raise Diverges("shift count depends on a read value")
    mn = {"sal": "shl"}.get(s.mnemonic, s.mnemonic)
    r, f = shift(mn, e.read(dst, s), count, 8 * dst.size)
    if f is not None:
        e.set_flags(f)
    e.write(dst, s, r)


def _h_mul(e: Machine, s: Step):
    src = s.ops[0]
    size = src.size
    bits = 8 * size
    a = e.get_gpr(0, size) if size > 1 else e.get(Operand("reg", 1, gpr=0))
    b = e.read(src, s)
    m = MASKS[size]
    if type(a) is int and type(b) is int:
        full = a * b
        lo, hi = full & m, full >> bits
    else:
        if type(a) is not int:
            a, b = b, a
        if type(a) is not int:
            lo, hi = top(size), top(size)
        else:
            plo, phi = a * bounds(b)[0], a * bounds(b)[1]
            hi = mk(plo >> bits, phi >> bits)
            lo = mk(plo & m, phi & m) if type(hi) is int else top(size)
    if type(hi) is int and type(lo) is int:
        c = int(hi != 0)
        f = {"C": c, "O": c, "A": 0}
        f.update(_szp(lo, bits))
    else:
        c = 0 if bounds(hi)[1] == 0 else 1 if bounds(hi)[0] > 0 else None
        f = {"C": c, "O": c, "A": 0}
        f.update(_range_flags(lo, bits))
    e.set_flags(f)
    if size == 1:
        e.set(Operand("reg", 2, gpr=0), (hi << 8 | lo) if type(hi) is int and type(lo) is int else top(2))
    else:
        e.set_gpr(0, lo, size)
        e.set_gpr(2, hi, size)


def _h_imul(e: Machine, s: Step):
    if len(s.ops) == 1:
        raise Unsupported("one-operand imul")
    dst = s.ops[0]
    bits = 8 * dst.size
    if len(s.ops) == 2:
        a, b = e.read(dst, s), _source(e, s, dst.size)
    else:
        a, b = e.read(s.ops[1], s), s.ops[2].imm & MASKS[dst.size]
    if type(a) is not int or type(b) is not int:
        sa, sb = _signed_bounds(a, bits), _signed_bounds(b, bits)
        if sa is None or sb is None or sa[0] < 0 or sb[0] < 0 or sa[1] * sb[1] >> (bits - 1):
            r, c = top(dst.size), None
        else:
            r, c = mk(sa[0] * sb[0], sa[1] * sb[1]), 0
        f = {"C": c, "O": c, "A": 0}
        f.update(_range_flags(r, bits))
    else:
        full = _signed(a, bits) * _signed(b, bits)
        r = full & MASKS[dst.size]
        c = int(_signed(r, bits) != full)
        f = {"C": c, "O": c, "A": 0}
        f.update(_szp(r, bits))
    e.set_flags(f)
    e.write(dst, s, r)


def _h_cmov(e: Machine, s: Step):
    dst, src = s.ops
    value = e.read(src, s)
    old = e.read(dst, s)
    c = e.cond(_cc_of(s.mnemonic)[1])
    chosen = value if c == 1 else old if c == 0 else _union(value, old)
    e.write(dst, s, chosen)  # a 32-bit CMOV zero-extends even when the condition is false


def _h_set(e: Machine, s: Step):
    c = e.cond(_cc_of(s.mnemonic)[1])
    e.write(s.ops[0], s, Iv(0, 1) if c is None else c)


def _h_jcc(e: Machine, s: Step):
    c = e.cond(_cc_of(s.mnemonic)[1])
    if c is None:
        raise Diverges(f"branch at {s.address:#x} may go either way")
    return s.ops[0].imm if c else s.address + s.size


def _h_jmp(e: Machine, s: Step):
    if s.ops[0].kind != "imm":
        raise Unsupported("indirect jump")
    return s.ops[0].imm


def _h_call(e: Machine, s: Step):
    if s.ops[0].kind != "imm":
        raise Unsupported("indirect call")
    e.push(s.address + s.size)
    return s.ops[0].imm


def _h_ret(e: Machine, s: Step):
    target = e.pop()
    if s.ops:
        rsp = e.get_gpr(4)
        e.set_gpr(4, (rsp + s.ops[0].imm) & MASKS[8])
    return target


def _h_push(e: Machine, s: Step):
    op = s.ops[0]
    if op.kind == "imm":
        e.push(op.imm & MASKS[8])
    elif op.kind == "reg" and op.size != 8:
        raise Unsupported("16-bit push")
    else:
        e.push(e.read(op, s))


def _h_pop(e: Machine, s: Step):
    op = s.ops[0]
    if op.kind == "reg" and (op.size != 8 or op.gpr == 4):
        raise Unsupported("pop of a partial register or RSP")
    e.write(op, s, e.pop())


def _h_leave(e: Machine, s: Step):
    e.set_gpr(4, e.get_gpr(5))
    e.set_gpr(5, e.pop())


def _h_pushf(e: Machine, s: Step):
    e.read_flags("CPAZSO")
    value = e.rflags_value()
    if value is None:
        raise Diverges("PUSHF of flags that depend on a read value")
    e.push(value & ~0x30000)  # RF and VM are never pushed


def _h_cli(e: Machine, s: Step):
    e.rest &= ~RFLAGS_IF


def _h_sti(e: Machine, s: Step):
    e.rest |= RFLAGS_IF


def _h_nop(e: Machine, s: Step):
    return None


def _h_xchg(e: Machine, s: Step):
    a, b = s.ops
    if a.kind != "reg" or b.kind != "reg":
        raise Unsupported("xchg with memory (locked)")
    va, vb = e.read(a, s), e.read(b, s)
    e.write(a, s, vb)
    e.write(b, s, va)


def _h_widen(e: Machine, s: Step):
    mn = s.mnemonic
    if mn == "cdqe":
        e.set_gpr(0, _sext(e.get_gpr(0, 4), 4, 8))
    elif mn == "cwde":
        e.set_gpr(0, _sext(e.get_gpr(0, 2), 2, 4), 4)
    else:  # cqo / cdq: RDX (EDX) = the sign of RAX (EAX)
        size = 8 if mn == "cqo" else 4
        sb = _signed_bounds(e.get_gpr(0, size), 8 * size)
        if sb is None or (sb[0] < 0) != (sb[1] < 0):
            e.set_gpr(2, top(size), size)
        else:
            e.set_gpr(2, MASKS[size] if sb[0] < 0 else 0, size)


def _h_in(e: Machine, s: Step):
    dst, port = s.ops
    p = port.imm if port.kind == "imm" else e.read(port, s)
    if type(p) is not int:
        raise Diverges("port number depends on a read value")
    e.set(dst, e.device("io", p & 0xFFFF, dst.size, "r", None))


def _h_out(e: Machine, s: Step):
    port, src = s.ops
    p = port.imm if port.kind == "imm" else e.read(port, s)
    v = e.read(src, s)
    if type(p) is not int or type(v) is not int:
        raise Diverges("port write depends on a read value")
    e.device("io", p & 0xFFFF, src.size, "w", v)


def _split64(e: Machine, value) -> None:
    e.set_gpr(0, _extract(value, 0, 4), 4)
    e.set_gpr(2, _extract(value, 32, 4), 4)


def _h_rdtsc(e: Machine, s: Step):
    _split64(e, e.device("tsc", 0x10, 8, "r", None))


def _h_rdmsr(e: Machine, s: Step):
    msr = e.get_gpr(1, 4)
    if type(msr) is not int:
        raise Diverges("MSR number depends on a read value")
    _split64(e, e.device("msr", msr, 8, "r", None))


_HANDLERS: dict[str, Callable] = {
    "mov": _h_mov, "movabs": _h_mov, "movzx": _h_movzx, "movsx": _h_movsx, "movsxd": _h_movsx, "lea": _h_lea,
    "add": _h_arith, "sub": _h_arith, "adc": _h_arith, "sbb": _h_arith, "cmp": _h_arith,
    "and": _h_logic, "or": _h_logic, "xor": _h_logic, "test": _h_logic,
    "inc": _h_incdec, "dec": _h_incdec, "neg": _h_neg, "not": _h_not,
    "shl": _h_shift, "sal": _h_shift, "shr": _h_shift, "sar": _h_shift, "mul": _h_mul, "imul": _h_imul,
    "cmov": _h_cmov, "set": _h_set, "j": _h_jcc, "jmp": _h_jmp, "call": _h_call, "ret": _h_ret,
    "push": _h_push, "pop": _h_pop, "leave": _h_leave, "pushfq": _h_pushf, "cli": _h_cli, "sti": _h_sti,
    "nop": _h_nop, "pause": _h_nop, "xchg": _h_xchg, "cdqe": _h_widen, "cwde": _h_widen, "cqo": _h_widen,
    "cdq": _h_widen, "in": _h_in, "out": _h_out, "rdtsc": _h_rdtsc, "rdmsr": _h_rdmsr,
}
