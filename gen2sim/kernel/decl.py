"""Declared kernel exports: each function and variable the model's kernels offer, declared once.

A declaration is a C prototype (return type, name, argument names and types), the highest IRQL the export may be
called at, the checked-kernel rule that catches a call above it, and the behaviour, a Python function that holds
only behaviour::

    @export("ULONG KeSetTimeIncrement(ULONG MaximumIncrement, ULONG MinimumIncrement)")
    def KeSetTimeIncrement(k, MaximumIncrement, MinimumIncrement):
        ...

The call machinery (``calls.py``) reads the arguments per the prototype from RCX, RDX, R8, R9 and the stack,
narrows each to its C type, writes one ``kernel_call`` trace record naming them, checks the IRQL and sets RAX
from the return value.  A name that is declared with :func:`declare` has no behaviour yet: calling it ends the boot
with the ``unimplemented-import`` fault naming it (never a silent success).  :func:`variable` declares an exported
kernel variable (its size and how the kernel fills it).

The registries are filled when the subsystem modules (``ke``, ``ex``, ``mm`` ...) are imported; ``catalog`` imports
them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..errors import ModelError

#: C scalar types the prototypes use: name -> (bytes, signed).  Pointer types (``P...`` or ``*``) are 8 bytes.
SCALARS: dict[str, tuple[int, bool]] = {
    "BOOLEAN": (1, False), "UCHAR": (1, False), "CHAR": (1, True), "CCHAR": (1, True), "KIRQL": (1, False),
    "KPROCESSOR_MODE": (1, False), "USHORT": (2, False), "CSHORT": (2, True), "WCHAR": (2, False),
    "ULONG": (4, False), "LONG": (4, True), "NTSTATUS": (4, True), "KPRIORITY": (4, True), "int": (4, True),
    "unsigned": (4, False), "ACCESS_MASK": (4, False), "POOL_TYPE": (4, False), "EVENT_TYPE": (4, False),
    "KWAIT_REASON": (4, False), "MEMORY_CACHING_TYPE": (4, False), "LOCK_OPERATION": (4, False),
    "INTERFACE_TYPE": (4, True), "KEY_INFORMATION_CLASS": (4, False), "KEY_VALUE_INFORMATION_CLASS": (4, False),
    "CONFIGURATION_CLASS": (4, False), "CONFIGURATION_TYPE": (4, False), "DEVICE_TYPE": (4, False),
    "KPROFILE_SOURCE": (4, False), "MM_PAGE_PRIORITY": (4, False), "KINTERRUPT_MODE": (4, False),
    "WORK_QUEUE_TYPE": (4, False), "POWER_INFORMATION_LEVEL": (4, False), "TIMER_TYPE": (4, False),
    "IO_NOTIFICATION_EVENT_CATEGORY": (4, False), "KSPIN_LOCK_QUEUE_NUMBER": (8, False),
    "WHEA_ERROR_SOURCE_TYPE": (4, False), "ULONG64": (8, False), "ULONGLONG": (8, False), "LONG64": (8, True),
    "LONGLONG": (8, True), "ULONG_PTR": (8, False), "LONG_PTR": (8, True), "SIZE_T": (8, False),
    "KAFFINITY": (8, False), "PHYSICAL_ADDRESS": (8, False), "LARGE_INTEGER": (8, True), "HANDLE": (8, False),
    "KSPIN_LOCK": (8, False), "PFN_NUMBER": (8, False), "REGHANDLE": (8, False), "size_t": (8, False),
    "PFN_COUNT": (4, False), "EX_SPIN_LOCK": (4, True), "errno_t": (4, True), "VOID": (0, False),
    "LOGICAL": (4, False), "KD_OPTION": (4, False), "SYSTEM_POWER_STATE": (4, False),
}
#: The levels a declaration may name, resolved against the target's [irql] table.
IRQL_NAMES = ("passive", "apc", "dispatch", "synch", "clock", "ipi", "high")

_PROTO = re.compile(r"^\s*(?P<ret>[A-Za-z_][\w ]*?[\s*]+)(?P<name>[A-Za-z_]\w*)\s*\((?P<params>.*)\)\s*$", re.S)


@dataclass(frozen=True)
class Param:
    """One argument: its name and C type, and how many bytes of the register the type occupies."""

    name: str
    ctype: str
    size: int
    signed: bool


@dataclass(frozen=True)
class Export:
    """A declared kernel function: prototype, IRQL contract, behaviour (``None``: declared, not modelled)."""

    name: str
    returns: str
    params: tuple[Param, ...]
    variadic: bool
    module: str
    max_irql: str
    rule: str | None
    behaviour: Callable | None
    why: str | None = None  # for a declared-but-not-modelled function: what the model lacks
    guest_calls: bool = False  # the behaviour runs guest code (after the stub hook returns)
    quiet: bool = False  # the behaviour writes its own trace record

    @property
    def status(self) -> str:
        """``behaviour`` when the model implements the function, ``fails`` when calling it ends the boot."""
        return "behaviour" if self.behaviour is not None else "fails"

    @property
    def return_size(self) -> int:
        """Bytes of RAX the return type occupies (0 for VOID)."""
        return _ctype(self.returns)[0]

    def prototype(self) -> str:
        """The C prototype text."""
        args = [f"{p.ctype} {p.name}" for p in self.params] + (["..."] if self.variadic else [])
        return f"{self.returns} {self.name}({', '.join(args) or 'VOID'})"


@dataclass(frozen=True)
class Variable:
    """A declared kernel variable: its C type, size in bytes and how the kernel fills it (``init(k, va)``)."""

    name: str
    ctype: str
    size: int
    module: str
    init: Callable | None = None
    note: str = ""

    status = "behaviour"

    def prototype(self) -> str:
        """The C declaration text."""
        return f"extern {self.ctype} {self.name}"


EXPORTS: dict[str, Export] = {}
VARIABLES: dict[str, Variable] = {}


def _ctype(text: str) -> tuple[int, bool]:
    """(bytes, signed) of a C type as written in a prototype; pointers are 8 bytes."""
    t = " ".join(w for w in text.replace("*", " * ").split() if w not in ("const", "CONST", "volatile", "struct"))
    if "*" in t:
        return 8, False
    if t in SCALARS:
        return SCALARS[t]
    if t.startswith("P") or t.startswith("LP") or t.endswith("_PTR") or t.startswith("PC"):
        return 8, False
    raise ModelError(f"kernel declaration: unknown C type {text!r} (add it to decl.SCALARS with its size)")


def parse_prototype(text: str) -> tuple[str, str, tuple[Param, ...], bool]:
    """Split ``"RET Name(TYPE Arg, ...)"`` into (return type, name, params, variadic); ``ModelError`` if malformed."""
    m = _PROTO.match(text)
    if m is None:
        raise ModelError(f"kernel declaration: cannot parse prototype {text!r}")
    ret = " ".join(m.group("ret").replace("*", " * ").split()).replace(" *", "*")
    _ctype(ret)
    params: list[Param] = []
    variadic = False
    raw = m.group("params").strip()
    if raw and raw != "VOID":
        for part in (p.strip() for p in raw.split(",")):
            if part == "...":
                variadic = True
                continue
            pm = re.match(r"^(?P<type>.*?[\s*])(?P<name>[A-Za-z_]\w*)$", part)
            if pm is None:
                raise ModelError(f"kernel declaration {m.group('name')}: parameter {part!r} needs a type and a name")
            ctype = " ".join(pm.group("type").replace("*", " * ").split()).replace(" *", "*")
            size, signed = _ctype(ctype)
            params.append(Param(pm.group("name"), ctype, size, signed))
    return ret, m.group("name"), tuple(params), variadic


def _register(exp: Export) -> None:
    if exp.name in EXPORTS or exp.name in VARIABLES:
        raise ModelError(f"kernel declaration: {exp.name} declared twice ({EXPORTS[exp.name].module}, {exp.module})")
    if exp.max_irql not in IRQL_NAMES:
        raise ModelError(f"kernel declaration {exp.name}: irql {exp.max_irql!r} is not one of {IRQL_NAMES}")
    EXPORTS[exp.name] = exp


def _module_of(fn_or_name) -> str:
    module = getattr(fn_or_name, "__module__", fn_or_name) or ""
    return module.rsplit(".", 1)[-1]


def export(prototype: str, *, irql: str = "high", rule: str | None = None, guest_calls: bool = False,
           quiet: bool = False):
    """Declare a kernel function with behaviour; the decorated function's name must be the export's name.

    ``irql``: the highest IRQL a caller may be at (a level name of the target's [irql] table); ``rule``: the
    checked-kernel rule (``specs/bugchecks.toml`` [[checked]]) that a call above it violates; ``guest_calls``:
    the behaviour runs guest code (``k.call_guest``); ``quiet``: the behaviour writes its own trace record.
    The behaviour is called as ``fn(k, *arguments)`` and returns the return value (``None`` for VOID).
    """
    ret, name, params, variadic = parse_prototype(prototype)

    def wrap(fn: Callable) -> Callable:
        if fn.__name__ != name:
            raise ModelError(f"kernel declaration: behaviour {fn.__name__} declared as {name}")
        _register(Export(name, ret, params, variadic, _module_of(fn), irql, rule, fn, guest_calls=guest_calls,
                         quiet=quiet))
        return fn

    return wrap


def declare(prototype: str, why: str, *, module: str, irql: str = "high", rule: str | None = None) -> None:
    """Declare a kernel function the model does not implement: calling it ends the boot naming it and ``why``."""
    ret, name, params, variadic = parse_prototype(prototype)
    _register(Export(name, ret, params, variadic, _module_of(module), irql, rule, None, why=why))


def variable(name: str, ctype: str, size: int, *, module: str, init: Callable | None = None, note: str = "") -> None:
    """Declare an exported kernel variable of ``size`` bytes; ``init(k, va)`` fills it when the kernel is built."""
    if name in EXPORTS or name in VARIABLES:
        raise ModelError(f"kernel declaration: {name} declared twice")
    VARIABLES[name] = Variable(name, ctype, size, _module_of(module), init, note)
