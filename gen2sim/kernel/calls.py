"""Calling a declared kernel export: arguments per the prototype, one trace record, the IRQL check, RAX.

The Microsoft x64 convention: integer arguments in RCX, RDX, R8, R9, then on the stack above the return address
and the 32-byte home area.  Each argument is narrowed to its C type (a BOOLEAN is the low byte of its register,
whatever the upper bits hold).  The record is ``kernel_call`` with ``detail`` ``"Name(0x1, 0x2) -> 0x3"`` (the
shape tests and ``compare`` read) and ``args`` mapping each argument's name to its value.
"""

from __future__ import annotations

from unicorn import x86_const as X

from ..cpu import RunStop
from . import checked
from .decl import _ctype

ARG_REGS = (X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_R8, X.UC_X86_REG_R9)


class BugCheckPending(Exception):
    """Raised by ``k.bugcheck`` to abandon the behaviour: the bug check completes once emulation has stopped."""


def raw_arg(cpu, mem, index: int, rsp: int) -> int:
    """The ``index``-th integer argument of a call whose return address is at ``rsp``."""
    if index < 4:
        return cpu.reg(ARG_REGS[index])
    return mem.vu(rsp + 8 + 8 * index, 8)


def narrow(value: int, size: int, signed: bool) -> int:
    """``value`` cut to ``size`` bytes (signed types keep their sign)."""
    if size >= 8 or size == 0:
        value &= 0xFFFF_FFFF_FFFF_FFFF
        return value - (1 << 64) if signed and value >> 63 else value
    value &= (1 << (8 * size)) - 1
    return value - (1 << (8 * size)) if signed and value >> (8 * size - 1) else value


def _hex(value: int) -> str:
    return hex(value) if value >= 0 else "-" + hex(-value)


def detail_text(name: str, values: list[int], result: int | None) -> str:
    """The record's detail: ``Name(0x1, 0x2)`` and `` -> result`` when there is one."""
    text = f"{name}({', '.join(_hex(v) for v in values)})"
    return text if result is None else f"{text} -> {_hex(result)}"


def invoke(k, exp) -> None:
    """Run declared export ``exp`` for the call that just reached its stub (RSP points at the return address)."""
    cpu, mem = k.cpu, k.mem
    rsp = cpu.reg(X.UC_X86_REG_RSP)
    k.entry_rsp = rsp
    params = k.params_of(exp)
    values = [narrow(raw_arg(cpu, mem, i, rsp), p.size, p.signed) for i, p in enumerate(params)]
    rec = None
    if not exp.quiet or exp.behaviour is None:
        rec = k.trace.record("kernel_call", device="kernel", address=k.caller_address,
                             detail=detail_text(exp.name, values, None))
        rec["args"] = {p.name: v for p, v in zip(params, values)}
    if exp.behaviour is None:
        raise RunStop({"verdict": "fault", "fault": {
            "kind": "unimplemented-import", "function": k.caller_function, "address": k.caller_address,
            "detail": f"called {exp.name}, which the {k.target.name} kernel exports and the model declares but does "
                      f"not implement ({exp.why})"}})
    try:
        checked.check_irql(k, exp)
        if exp.guest_calls:
            where = (k.current_stub, k.caller_address, k.caller_function)
            cpu.after_stop(lambda: _finish_later(k, exp, values, rec, where))
            return
        result = exp.behaviour(k, *values)
    except BugCheckPending:
        return
    _set_result(k, exp, result, rec)


def _set_result(k, exp, result, rec) -> None:
    if exp.return_size == 0 or result is None:
        return
    value = narrow(result, exp.return_size, False)
    k.cpu.set_reg(X.UC_X86_REG_RAX, value)
    if rec is not None:
        rec["detail"] = detail_text(exp.name, list(rec["args"].values()), narrow(result, exp.return_size,
                                                                                 _signed_return(exp)))
        rec["value"] = value


def _signed_return(exp) -> bool:
    return _ctype(exp.returns)[1]


def _finish_later(k, exp, values, rec, where: tuple) -> None:
    """Run a behaviour that calls guest code, once Unicorn has stopped at the stub, then return to the caller."""
    stub = where[0]
    saved = (k.entry_rsp, k.caller_address, k.caller_function)
    k.caller_address, k.caller_function = where[1], where[2]
    try:
        result = exp.behaviour(k, *values)
    except BugCheckPending:
        return
    finally:
        k.caller_address, k.caller_function = saved[1], saved[2]
    k.entry_rsp = saved[0]
    _set_result(k, exp, result, rec)
    # The stub's RET has not run (emulation stopped at it): return to the caller here.
    if k.cpu.rip == stub:
        rsp = k.cpu.reg(X.UC_X86_REG_RSP)
        k.cpu.set_reg(X.UC_X86_REG_RIP, k.mem.vu(rsp, 8))
        k.cpu.set_reg(X.UC_X86_REG_RSP, rsp + 8)
