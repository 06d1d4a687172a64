"""Kernel core (Ke, Ki): bug checks, the clock interface, the configuration tree, processors and affinity.

Prototypes follow the WDK/ReactOS headers.  The model has one processor (index 0, group 0); the answers about
processors are the real kernel's answers for such a machine.
"""

from __future__ import annotations

import struct

from .decl import declare, export

STATUS_SUCCESS = 0
STATUS_INVALID_PARAMETER = 0xC000000D
INVALID_PROCESSOR_INDEX = 0xFFFFFFFF
ALL_PROCESSOR_GROUPS = 0xFFFF
#: KBUGCHECK_CALLBACK_STATE BufferEmpty .. BufferFinished; the kernel marks a registered record "inserted" (1).
BUGCHECK_CALLBACK_INSERTED = 1


# ---------------------------------------------------------------------------------------------------- bug checks
@export("VOID KeBugCheckEx(ULONG BugCheckCode, ULONG_PTR BugCheckParameter1, ULONG_PTR BugCheckParameter2, "
        "ULONG_PTR BugCheckParameter3, ULONG_PTR BugCheckParameter4)")
def KeBugCheckEx(k, BugCheckCode, BugCheckParameter1, BugCheckParameter2, BugCheckParameter3, BugCheckParameter4):
    """Stop the system: callbacks run, then the ``bugcheck`` verdict (never returns to the HAL)."""
    k.bugcheck(BugCheckCode, [BugCheckParameter1, BugCheckParameter2, BugCheckParameter3, BugCheckParameter4])


@export("VOID KeBugCheck(ULONG BugCheckCode)")
def KeBugCheck(k, BugCheckCode):
    """KeBugCheckEx with zero parameters."""
    k.bugcheck(BugCheckCode, [0, 0, 0, 0], reported_via="KeBugCheck")


@export("BOOLEAN KeRegisterBugCheckCallback(PKBUGCHECK_CALLBACK_RECORD CallbackRecord, "
        "PKBUGCHECK_CALLBACK_ROUTINE CallbackRoutine, PVOID Buffer, ULONG Length, PUCHAR Component)")
def KeRegisterBugCheckCallback(k, CallbackRecord, CallbackRoutine, Buffer, Length, Component):
    """Remember the callback (run by a bug check); FALSE when the record is already registered."""
    if any(c[0] == CallbackRecord for c in k.bugcheck_callbacks):
        return 0
    k.bugcheck_callbacks.append((CallbackRecord, CallbackRoutine, Buffer, Length))
    if k.L.has("kbugcheck_callback_record", "State"):
        for name, value in (("CallbackRoutine", CallbackRoutine), ("Buffer", Buffer), ("Length", Length),
                            ("Component", Component), ("State", BUGCHECK_CALLBACK_INSERTED)):
            k.put(CallbackRecord, "kbugcheck_callback_record", name, value)
    return 1


@export("BOOLEAN KeDeregisterBugCheckCallback(PKBUGCHECK_CALLBACK_RECORD CallbackRecord)")
def KeDeregisterBugCheckCallback(k, CallbackRecord):
    """Forget a registered callback; FALSE when it was not registered."""
    before = len(k.bugcheck_callbacks)
    k.bugcheck_callbacks = [c for c in k.bugcheck_callbacks if c[0] != CallbackRecord]
    return 1 if len(k.bugcheck_callbacks) != before else 0


@export("VOID KeEnterKernelDebugger(VOID)")
def KeEnterKernelDebugger(k):
    """The kernel breaks into its debugger and does not come back: no debugger is attached to the model."""
    raise k.fault("kernel-debugger", "KeEnterKernelDebugger: the kernel stopped in its debugger (none is attached)")


# ---------------------------------------------------------------------------------------------------- clock
@export("VOID KeSetTimeIncrement(ULONG MaximumIncrement, ULONG MinimumIncrement)")
def KeSetTimeIncrement(k, MaximumIncrement, MinimumIncrement):
    """The HAL announces its clock's range of increments (100 ns units)."""
    k.time_increment = (MaximumIncrement, MinimumIncrement)


@export("ULONG KeQueryTimeIncrement(VOID)")
def KeQueryTimeIncrement(k):
    """The maximum increment the HAL announced (the kernel's default before it did)."""
    return k.time_increment[0] if k.time_increment else int(k.target.abi.get("time_increment_max", 156250))


@export("VOID KeUpdateSystemTime(PKTRAP_FRAME TrapFrame, ULONG64 Increment, KIRQL OldIrql)", quiet=True)
def KeUpdateSystemTime(k, TrapFrame, Increment, OldIrql=None):
    """A clock tick: system time advances by ``Increment`` (recorded as a ``tick``)."""
    k.ticks.append(k.clock.now)
    k.tick_increments.append(Increment)
    k.system_time_100ns += Increment
    k.trace.record("tick", device="kernel", value=Increment)
    from . import kesync

    kesync.expire_timers(k)


@export("VOID KeUpdateRunTime(PKTRAP_FRAME TrapFrame, KIRQL Irql)")
def KeUpdateRunTime(k, TrapFrame, Irql):
    """A clock tick on a processor that does not keep time: run-time accounting only."""


@export("VOID KeProfileInterruptWithSource(PKTRAP_FRAME TrapFrame, KPROFILE_SOURCE ProfileSource)")
def KeProfileInterruptWithSource(k, TrapFrame, ProfileSource):
    """A profile interrupt: no profile objects exist in the model, so there is nothing to count."""


@export("VOID KeSetProfileIrql(KIRQL ProfileIrql)")
def KeSetProfileIrql(k, ProfileIrql):
    """The HAL names the IRQL its profile interrupt runs at."""
    k.state["profile_irql"] = ProfileIrql


# ---------------------------------------------------------------------------------------------------- configuration
def _component(k, node: int, name: str) -> int:
    return k.get(node, "configuration_component_data", name)


def _key_offset(k) -> int:
    # CONFIGURATION_COMPONENT.Key sits 0x10 after Class (ReactOS arc.h, x64 layout).
    return k.s("configuration_component_data", "Class") + 0x10


def _matches(k, node: int, cls: int, typ: int, key: int | None) -> bool:
    return (_component(k, node, "Class") == cls and _component(k, node, "Type") == typ
            and (key is None or k.mem.vu(node + _key_offset(k), 4) == key))


def find_next(k, child: int, cls: int, typ: int, key: int | None, resume_ptr: int) -> int:
    """The configuration-tree search of KeFindConfigurationNextEntry: depth-first over Child then Sibling links,
    skipping entries up to and including ``*resume_ptr`` (which it clears when passing it, as the kernel does)."""
    seen: set[int] = set()

    def resume() -> int:
        return k.mem.vu(resume_ptr, 8) if resume_ptr else 0

    def visit(node: int) -> bool:
        if resume():
            if node == resume():
                k.mem.vput(resume_ptr, 8, 0)
            return False
        return _matches(k, node, cls, typ, key)

    def walk(node: int) -> int:
        while node and node not in seen and len(seen) < 4096:
            seen.add(node)
            if visit(node):
                return node
            sibling = _component(k, node, "Sibling")
            while sibling and sibling not in seen:
                seen.add(sibling)
                if visit(sibling):
                    return sibling
                sub = _component(k, sibling, "Child")
                if sub:
                    found = walk(sub)
                    if found:
                        return found
                sibling = _component(k, sibling, "Sibling")
            node = _component(k, node, "Child")
        return 0

    return walk(child)


@export("PCONFIGURATION_COMPONENT_DATA KeFindConfigurationNextEntry(PCONFIGURATION_COMPONENT_DATA Child, "
        "CONFIGURATION_CLASS Class, CONFIGURATION_TYPE Type, PULONG ComponentKey, "
        "PCONFIGURATION_COMPONENT_DATA* NextLink)")
def KeFindConfigurationNextEntry(k, Child, Class, Type, ComponentKey, NextLink):
    """The next component of ``Class``/``Type`` (and key) after ``*NextLink`` in the loader's tree."""
    key = k.mem.vu(ComponentKey, 4) if ComponentKey else None
    return find_next(k, Child, Class, Type, key, NextLink)


@export("PCONFIGURATION_COMPONENT_DATA KeFindConfigurationEntry(PCONFIGURATION_COMPONENT_DATA Child, "
        "CONFIGURATION_CLASS Class, CONFIGURATION_TYPE Type, PULONG ComponentKey)")
def KeFindConfigurationEntry(k, Child, Class, Type, ComponentKey):
    """The first component of ``Class``/``Type`` (and key) in the loader's tree."""
    key = k.mem.vu(ComponentKey, 4) if ComponentKey else None
    return find_next(k, Child, Class, Type, key, 0)


# ---------------------------------------------------------------------------------------------------- processors
@export("PKTHREAD KeGetCurrentThread(VOID)")
def KeGetCurrentThread(k):
    """The current thread (the boot thread: the model runs one)."""
    return k.thread


@export("PKPRCB KeQueryPrcbAddress(ULONG Number)")
def KeQueryPrcbAddress(k, Number):
    """The PRCB of processor ``Number``: processor 0's, NULL for any other (the model has one processor)."""
    return k.prcb if Number == 0 else 0


@export("ULONG KeQueryActiveProcessorCountEx(USHORT GroupNumber)")
def KeQueryActiveProcessorCountEx(k, GroupNumber):
    """One active processor, in group 0."""
    return 1 if GroupNumber in (0, ALL_PROCESSOR_GROUPS) else 0


@export("ULONG KeQueryMaximumProcessorCountEx(USHORT GroupNumber)")
def KeQueryMaximumProcessorCountEx(k, GroupNumber):
    """At most one processor, in group 0."""
    return 1 if GroupNumber in (0, ALL_PROCESSOR_GROUPS) else 0


@export("USHORT KeQueryActiveGroupCount(VOID)")
def KeQueryActiveGroupCount(k):
    """One processor group."""
    return 1


def _put_processor_number(k, va: int, group: int, number: int) -> None:
    k.mem.vwrite(va, struct.pack("<HBB", group, number, 0))


@export("ULONG KeGetCurrentProcessorNumberEx(PPROCESSOR_NUMBER ProcNumber)")
def KeGetCurrentProcessorNumberEx(k, ProcNumber):
    """Processor index 0; fills the PROCESSOR_NUMBER (group 0, number 0) when given."""
    if ProcNumber:
        _put_processor_number(k, ProcNumber, 0, 0)
    return 0


@export("ULONG KeGetProcessorIndexFromNumber(PPROCESSOR_NUMBER ProcNumber)", irql="high")
def KeGetProcessorIndexFromNumber(k, ProcNumber):
    """Index 0 for (group 0, number 0), INVALID_PROCESSOR_INDEX otherwise."""
    group, number, _ = struct.unpack("<HBB", k.mem.vread(ProcNumber, 4))
    return 0 if (group, number) == (0, 0) else INVALID_PROCESSOR_INDEX


@export("NTSTATUS KeGetProcessorNumberFromIndex(ULONG ProcIndex, PPROCESSOR_NUMBER ProcNumber)")
def KeGetProcessorNumberFromIndex(k, ProcIndex, ProcNumber):
    """(group 0, number 0) for index 0; STATUS_INVALID_PARAMETER for any other index."""
    if ProcIndex != 0:
        return STATUS_INVALID_PARAMETER
    _put_processor_number(k, ProcNumber, 0, 0)
    return STATUS_SUCCESS


def _group_affinity(k, va: int) -> tuple[int, int]:
    mask, group = struct.unpack("<QH", k.mem.vread(va, 10))
    return mask, group


@export("VOID KeSetSystemGroupAffinityThread(PGROUP_AFFINITY Affinity, PGROUP_AFFINITY PreviousAffinity)",
        irql="dispatch")
def KeSetSystemGroupAffinityThread(k, Affinity, PreviousAffinity):
    """Run the thread on the processors of ``Affinity``: it must name processor 0 of group 0, the only one."""
    mask, group = _group_affinity(k, Affinity)
    if group != 0 or not mask & 1:
        from . import checked

        raise checked.assertion(k, f"KeSetSystemGroupAffinityThread: affinity group {group} mask {mask:#x} names "
                                   f"no active processor (the model has processor 0 of group 0)")
    if PreviousAffinity:
        k.mem.vwrite(PreviousAffinity, struct.pack("<QH6x", k.state.get("affinity", 1), 0))
    k.state["affinity"] = mask & 1


@export("VOID KeRevertToUserGroupAffinityThread(PGROUP_AFFINITY PreviousAffinity)", irql="dispatch")
def KeRevertToUserGroupAffinityThread(k, PreviousAffinity):
    """Back to the affinity saved by KeSetSystemGroupAffinityThread."""
    mask, _group = _group_affinity(k, PreviousAffinity)
    k.state["affinity"] = mask or 1


@export("ULONG_PTR KeIpiGenericCall(PKIPI_BROADCAST_WORKER BroadcastFunction, ULONG_PTR Context)",
        irql="synch", guest_calls=True)
def KeIpiGenericCall(k, BroadcastFunction, Context):
    """Run the worker on every processor at IPI_LEVEL: here the one processor; returns its result."""
    old = k.irql
    k.set_irql(k.irql_level("ipi"))
    try:
        return k.call_guest(BroadcastFunction, [Context])
    finally:
        k.set_irql(old)


_AFFINITY_WHY = ("KAFFINITY_EX and processor enumeration are undocumented; their 6.1 prototypes are not "
                 "established from the facts on the shelf")
for _proto in (
        "VOID KeInitializeAffinityEx(PKAFFINITY_EX Affinity)",
        "VOID KeAddProcessorAffinityEx(PKAFFINITY_EX Affinity, ULONG Index)",
        "VOID KeRemoveProcessorAffinityEx(PKAFFINITY_EX Affinity, ULONG Index)",
        "BOOLEAN KeInterlockedClearProcessorAffinityEx(PKAFFINITY_EX Affinity, ULONG Index)",
        "BOOLEAN KeCheckProcessorAffinityEx(PKAFFINITY_EX Affinity, ULONG Index)",
        "BOOLEAN KeIsEmptyAffinityEx(PKAFFINITY_EX Affinity)",
        "ULONG KeCountSetBitsAffinityEx(PKAFFINITY_EX Affinity)",
        "BOOLEAN KeAndAffinityEx(PKAFFINITY_EX Affinity1, PKAFFINITY_EX Affinity2, PKAFFINITY_EX Result)",
        "BOOLEAN KeAndGroupAffinityEx(PKAFFINITY_EX Affinity, PGROUP_AFFINITY GroupAffinity, PKAFFINITY_EX Result)",
        "VOID KeComplementAffinityEx(PKAFFINITY_EX Result, PKAFFINITY_EX Affinity)",
        "VOID KeProcessorGroupAffinity(PKAFFINITY_EX Affinity, USHORT Group)",
        "VOID KeQueryActiveProcessorAffinity(PKAFFINITY_EX ActiveProcessors)",
        "VOID KeInitializeEnumerationContext(PKE_PROCESSOR_ENUMERATION_CONTEXT Context, PKAFFINITY_EX Affinity)",
        "NTSTATUS KeEnumerateNextProcessor(PULONG ProcIndex, PKE_PROCESSOR_ENUMERATION_CONTEXT Context)"):
    declare(_proto, _AFFINITY_WHY, module=__name__)

declare("VOID KiCpuId(ULONG Function, ULONG Index, PCPU_INFO CpuInfo)",
        "the 6.1 kernel's KiCpuId is undocumented; its argument order is not established", module=__name__)
declare("VOID KeSaveStateForHibernate(PKPROCESSOR_STATE State)",
        "processor-state capture for hibernation is not modelled (no hibernation in a boot)", module=__name__)
declare("VOID KeInitializeInterrupt(PKINTERRUPT Interrupt, PKSERVICE_ROUTINE ServiceRoutine, PVOID ServiceContext, "
        "PKSPIN_LOCK SpinLock, ULONG Vector, KIRQL Irql, KIRQL SynchronizeIrql, KINTERRUPT_MODE InterruptMode, "
        "BOOLEAN ShareVector, CCHAR ProcessorNumber, BOOLEAN FloatingSave)",
        "interrupt objects (KINTERRUPT layout and dispatch code) are not modelled", module=__name__)
