"""Power manager and process support (Po, Ps) as far as a HAL calls them at boot.

The boot's phase decides the current process: the idle process (id 0) until phase 1, the System process (id 4)
from the phase-1 thread on, as on NT.
"""

from __future__ import annotations

from .decl import declare, export, variable

SYSTEM_PROCESS_ID = 4


@export("HANDLE PsGetCurrentProcessId(VOID)")
def PsGetCurrentProcessId(k):
    """0 (idle process) before phase 1, 4 (System) from then on."""
    return 0 if k.phase in ("loader", "phase0") else SYSTEM_PROCESS_ID


@export("VOID PoSetHiberRange(PVOID MemoryMap, ULONG Flags, PVOID Address, ULONG_PTR Length, ULONG Tag)")
def PoSetHiberRange(k, MemoryMap, Flags, Address, Length, Tag):
    """Note a range hibernation must (or must not) save: recorded, no hibernation happens during a boot."""
    k.state.setdefault("hiber_ranges", []).append((Flags, Address, Length, Tag))


declare("VOID PoSetFixedWakeSource(ULONG FixedWakeSource)",
        "fixed wake sources (ACPI power button, RTC alarm) are not modelled; the prototype is undocumented",
        module=__name__)


def _system_process(k, va: int) -> None:
    k.mem.vput(va, 8, k.mem.alloc(0x1000))


variable("PsInitialSystemProcess", "PEPROCESS", 8, module=__name__, init=_system_process,
         note="points at the model's System process block (its fields are not described)")
