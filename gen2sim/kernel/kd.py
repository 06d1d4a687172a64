"""Kernel debugger interface (Kd, Dbg): debug print, breakpoints and the debugger-state variables.

No kernel debugger is attached to the model: ``KdDebuggerEnabled`` is FALSE and ``KdDebuggerNotPresent`` TRUE, debug
prints are collected (the boot's ``debug_output``), and a breakpoint is an unhandled kernel exception, which the
kernel turns into bug check 0x1E KMODE_EXCEPTION_NOT_HANDLED (STATUS_BREAKPOINT).
"""

from __future__ import annotations

from . import checked, printf
from .decl import export, variable

STATUS_SUCCESS = 0


def _print(k, fmt_va: int, first: int, label: str) -> int:
    text = printf.format_text(k, k.mem.cstring(fmt_va, 4096), printf.vararg_reader(k, first))
    k.debug_output.append(text)
    k.trace.record("kernel_call", device="kernel", address=k.caller_address, detail=f"{label} {text!r}")
    return STATUS_SUCCESS


@export("ULONG DbgPrint(PCSTR Format, ...)", quiet=True)
def DbgPrint(k, Format):
    """Formatted debug output (collected in the boot's debug output)."""
    return _print(k, Format, 1, "DbgPrint")


@export("ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...)", quiet=True)
def DbgPrintEx(k, ComponentId, Level, Format):
    """Formatted debug output for a component and level (collected whatever the filter)."""
    return _print(k, Format, 3, "DbgPrintEx")


def breakpoint(k) -> None:
    """An int 3 in kernel mode with no debugger: bug check 0x1E (STATUS_BREAKPOINT at the caller)."""
    checked.violation(k, "breakpoint-no-debugger", [0x80000003, k.caller_address or 0, 0, 0],
                      "breakpoint with no kernel debugger attached")


@export("VOID DbgBreakPoint(VOID)")
def DbgBreakPoint(k):
    """Break into the kernel debugger (none is attached)."""
    breakpoint(k)


@export("VOID DbgBreakPointWithStatus(ULONG Status)")
def DbgBreakPointWithStatus(k, Status):
    """Break into the kernel debugger with a status (none is attached)."""
    breakpoint(k)


@export("NTSTATUS KdRestore(BOOLEAN SleepTransition)")
def KdRestore(k, SleepTransition):
    """kdcom's restore of its debug port after a power transition: no debug port is in use in the model."""
    return STATUS_SUCCESS


variable("KdDebuggerEnabled", "BOOLEAN", 1, module=__name__, init=lambda k, va: k.mem.vput(va, 1, 0),
         note="FALSE: no kernel debugger")
variable("KdDebuggerNotPresent", "BOOLEAN", 1, module=__name__, init=lambda k, va: k.mem.vput(va, 1, 1),
         note="TRUE: no kernel debugger")
