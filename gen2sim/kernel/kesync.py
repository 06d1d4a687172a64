"""Kernel synchronisation (Ke): IRQL, spin locks, queued spin locks, events, mutexes, timers, DPCs, device queues.

IRQL is CR8 (the local APIC's task-priority class).  Spin locks follow a checked (DBG) ReactOS kernel: the lock
word holds the owning thread with bit 0 set (``ntoskrnl/include/internal/spinlock.h``), acquiring a lock the
thread holds raises SPIN_LOCK_ALREADY_OWNED and releasing one it does not hold SPIN_LOCK_NOT_OWNED.  There is one
processor and one thread, so a lock held by anyone is held by the caller.  Dispatcher objects (events, mutexes,
timers) keep their state in the guest's DISPATCHER_HEADER, where a HAL may read it.  DPCs queue in the model and
run at DISPATCH_LEVEL at the kernel's drain point (``MiniKernel.run_deferred``: between boot steps and in the
idle loop); timers run off the virtual clock and are examined on each clock tick, as the kernel's timer expiry is.
"""

from __future__ import annotations

import struct

from ..clock import PS_PER_NS
from ..cpu import RunStop
from . import checked, gdata
from .decl import export

STATUS_SUCCESS = 0
STATUS_TIMEOUT = 0x102
STATUS_INVALID_PARAMETER = 0xC000000D
EVENT_NOTIFICATION, EVENT_SYNCHRONIZATION, MUTANT, SEMAPHORE = 0, 1, 2, 5
TIMER_NOTIFICATION, TIMER_SYNCHRONIZATION, DPC_OBJECT, DEVICE_QUEUE_OBJECT = 8, 9, 19, 20
MEDIUM_IMPORTANCE = 1
MAXIMUM_PROC_PER_GROUP = 64
#: KSPIN_LOCK_QUEUE_NUMBER values go up to LockQueueMaximumLock (17 + 16 timer-table locks on x64, xdk ketypes.h).
QUEUED_LOCKS = 33


# ---------------------------------------------------------------------------------------------------- IRQL
def raise_to(k, new: int, name: str) -> int:
    """Raise CR8 to ``new``; a lower ``new`` is the checked kernel's IRQL_NOT_GREATER_OR_EQUAL assertion."""
    old = k.irql
    if new < old:
        raise checked.assertion(k, f"{name}: raise from IRQL {old} to lower IRQL {new}")
    k.set_irql(new)
    return old


@export("KIRQL KfRaiseIrql(KIRQL NewIrql)")
def KfRaiseIrql(k, NewIrql):
    """Raise to ``NewIrql``; returns the old IRQL."""
    return raise_to(k, NewIrql, "KfRaiseIrql")


@export("VOID KeLowerIrql(KIRQL NewIrql)")
def KeLowerIrql(k, NewIrql):
    """Lower to ``NewIrql`` (a higher value is the checked kernel's assertion)."""
    if NewIrql > k.irql:
        raise checked.assertion(k, f"KeLowerIrql: lower from IRQL {k.irql} to higher IRQL {NewIrql}")
    k.set_irql(NewIrql)


@export("KIRQL KeRaiseIrqlToDpcLevel(VOID)")
def KeRaiseIrqlToDpcLevel(k):
    """Raise to DISPATCH_LEVEL; returns the old IRQL."""
    return raise_to(k, k.irql_level("dispatch"), "KeRaiseIrqlToDpcLevel")


@export("KIRQL KeRaiseIrqlToSynchLevel(VOID)")
def KeRaiseIrqlToSynchLevel(k):
    """Raise to SYNCH_LEVEL; returns the old IRQL."""
    return raise_to(k, k.irql_level("synch"), "KeRaiseIrqlToSynchLevel")


@export("KIRQL KeGetCurrentIrql(VOID)")
def KeGetCurrentIrql(k):
    """The current IRQL."""
    return k.irql


# ---------------------------------------------------------------------------------------------------- spin locks
def owner_word(k) -> int:
    """The lock word of a lock the current thread holds (DBG kernel: thread | 1)."""
    return k.thread | 1


def acquire(k, lock: int) -> None:
    """Take ``lock`` for the current thread at the current IRQL."""
    word = k.mem.vu(lock, 8)
    if word == owner_word(k):
        checked.violation(k, "spin-lock-already-owned", [lock, 0, 0, 0], f"spin lock {lock:#x} acquired twice")
    if word & 1:
        raise RunStop({"verdict": "hang", "hang": {
            "function": k.caller_function, "address": k.caller_address, "polls": None,
            "detail": f"spin lock {lock:#x} holds {word:#x}, an owner other than the only thread: it never frees",
            "virtual_time_us": 0}})
    k.mem.vput(lock, 8, owner_word(k))


def release(k, lock: int) -> None:
    """Give ``lock`` back; it must be held by the current thread."""
    if k.mem.vu(lock, 8) != owner_word(k):
        checked.violation(k, "spin-lock-not-owned", [lock, 0, 0, 0],
                          f"spin lock {lock:#x} released while holding {k.mem.vu(lock, 8):#x}")
    k.mem.vput(lock, 8, 0)


def need_dispatch(k, name: str) -> None:
    """The ``...AtDpcLevel`` contract: the caller is at DISPATCH_LEVEL or above."""
    if k.irql < k.irql_level("dispatch"):
        raise checked.assertion(k, f"{name} called at IRQL {k.irql}, below DISPATCH_LEVEL")


@export("VOID KeInitializeSpinLock(PKSPIN_LOCK SpinLock)")
def KeInitializeSpinLock(k, SpinLock):
    """A free lock."""
    k.mem.vput(SpinLock, 8, 0)


@export("KIRQL KeAcquireSpinLockRaiseToDpc(PKSPIN_LOCK SpinLock)", irql="dispatch")
def KeAcquireSpinLockRaiseToDpc(k, SpinLock):
    """Raise to DISPATCH_LEVEL and take the lock; returns the old IRQL."""
    old = raise_to(k, k.irql_level("dispatch"), "KeAcquireSpinLockRaiseToDpc")
    acquire(k, SpinLock)
    return old


@export("KIRQL KeAcquireSpinLockRaiseToSynch(PKSPIN_LOCK SpinLock)", irql="synch")
def KeAcquireSpinLockRaiseToSynch(k, SpinLock):
    """Raise to SYNCH_LEVEL and take the lock; returns the old IRQL."""
    old = raise_to(k, k.irql_level("synch"), "KeAcquireSpinLockRaiseToSynch")
    acquire(k, SpinLock)
    return old


@export("VOID KeReleaseSpinLock(PKSPIN_LOCK SpinLock, KIRQL NewIrql)")
def KeReleaseSpinLock(k, SpinLock, NewIrql):
    """Release the lock and lower to ``NewIrql``; only at DISPATCH_LEVEL (DDI rule IrqlKeReleaseSpinLock)."""
    if k.irql != k.irql_level("dispatch"):
        checked.violation(k, "IrqlKeReleaseSpinLock", [0, 0, 0],
                          f"KeReleaseSpinLock({SpinLock:#x}) at IRQL {k.irql}")
    release(k, SpinLock)
    k.set_irql(NewIrql)


@export("VOID KeAcquireSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock)")
def KeAcquireSpinLockAtDpcLevel(k, SpinLock):
    """Take the lock; the caller is already at DISPATCH_LEVEL."""
    need_dispatch(k, "KeAcquireSpinLockAtDpcLevel")
    acquire(k, SpinLock)


@export("VOID KeReleaseSpinLockFromDpcLevel(PKSPIN_LOCK SpinLock)")
def KeReleaseSpinLockFromDpcLevel(k, SpinLock):
    """Release the lock; the IRQL stays."""
    need_dispatch(k, "KeReleaseSpinLockFromDpcLevel")
    release(k, SpinLock)


@export("BOOLEAN KeTryToAcquireSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock)")
def KeTryToAcquireSpinLockAtDpcLevel(k, SpinLock):
    """Take the lock if it is free; FALSE otherwise."""
    need_dispatch(k, "KeTryToAcquireSpinLockAtDpcLevel")
    if k.mem.vu(SpinLock, 8) & 1:
        return 0
    acquire(k, SpinLock)
    return 1


@export("BOOLEAN KeTestSpinLock(PKSPIN_LOCK SpinLock)")
def KeTestSpinLock(k, SpinLock):
    """TRUE when the lock is free (a caller may then try to take it)."""
    return 0 if k.mem.vu(SpinLock, 8) & 1 else 1


def _handle_lock(k, handle: int) -> int:
    return k.get(handle + k.L.off("klock_queue_handle", "LockQueue"), "kspin_lock_queue", "Lock")


def _set_handle(k, handle: int, lock: int, old_irql: int | None) -> None:
    queue = handle + k.L.off("klock_queue_handle", "LockQueue")
    k.put(queue, "kspin_lock_queue", "Next", 0)
    k.put(queue, "kspin_lock_queue", "Lock", lock)
    if old_irql is not None:
        k.put(handle, "klock_queue_handle", "OldIrql", old_irql)


@export("VOID KeAcquireInStackQueuedSpinLock(PKSPIN_LOCK SpinLock, PKLOCK_QUEUE_HANDLE LockHandle)", irql="dispatch")
def KeAcquireInStackQueuedSpinLock(k, SpinLock, LockHandle):
    """Raise to DISPATCH_LEVEL and take the lock; the old IRQL goes into the handle."""
    old = raise_to(k, k.irql_level("dispatch"), "KeAcquireInStackQueuedSpinLock")
    acquire(k, SpinLock)
    _set_handle(k, LockHandle, SpinLock, old)


@export("VOID KeAcquireInStackQueuedSpinLockRaiseToSynch(PKSPIN_LOCK SpinLock, PKLOCK_QUEUE_HANDLE LockHandle)",
        irql="synch")
def KeAcquireInStackQueuedSpinLockRaiseToSynch(k, SpinLock, LockHandle):
    """Raise to SYNCH_LEVEL and take the lock; the old IRQL goes into the handle."""
    old = raise_to(k, k.irql_level("synch"), "KeAcquireInStackQueuedSpinLockRaiseToSynch")
    acquire(k, SpinLock)
    _set_handle(k, LockHandle, SpinLock, old)


@export("VOID KeReleaseInStackQueuedSpinLock(PKLOCK_QUEUE_HANDLE LockHandle)")
def KeReleaseInStackQueuedSpinLock(k, LockHandle):
    """Release the handle's lock and lower to the IRQL saved in it."""
    release(k, _handle_lock(k, LockHandle))
    k.set_irql(k.get(LockHandle, "klock_queue_handle", "OldIrql"))


@export("VOID KeAcquireInStackQueuedSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock, PKLOCK_QUEUE_HANDLE LockHandle)")
def KeAcquireInStackQueuedSpinLockAtDpcLevel(k, SpinLock, LockHandle):
    """Take the lock; the caller is at DISPATCH_LEVEL."""
    need_dispatch(k, "KeAcquireInStackQueuedSpinLockAtDpcLevel")
    acquire(k, SpinLock)
    _set_handle(k, LockHandle, SpinLock, None)


@export("VOID KeReleaseInStackQueuedSpinLockFromDpcLevel(PKLOCK_QUEUE_HANDLE LockHandle)")
def KeReleaseInStackQueuedSpinLockFromDpcLevel(k, LockHandle):
    """Release the handle's lock; the IRQL stays."""
    need_dispatch(k, "KeReleaseInStackQueuedSpinLockFromDpcLevel")
    release(k, _handle_lock(k, LockHandle))


def _numbered(k, number: int) -> int:
    """The kernel's own spin lock for a KSPIN_LOCK_QUEUE_NUMBER (the model keeps them in one page)."""
    if not 0 <= number < QUEUED_LOCKS:
        raise checked.assertion(k, f"queued spin lock number {number} is not a KSPIN_LOCK_QUEUE_NUMBER")
    if "queued_locks" not in k.state:
        k.state["queued_locks"] = k.mem.alloc(0x1000)
    return k.state["queued_locks"] + 8 * number


@export("KIRQL KeAcquireQueuedSpinLock(KSPIN_LOCK_QUEUE_NUMBER Number)", irql="dispatch")
def KeAcquireQueuedSpinLock(k, Number):
    """Raise to DISPATCH_LEVEL and take numbered lock ``Number``; returns the old IRQL."""
    lock = _numbered(k, Number)
    old = raise_to(k, k.irql_level("dispatch"), "KeAcquireQueuedSpinLock")
    acquire(k, lock)
    return old


@export("KIRQL KeAcquireQueuedSpinLockRaiseToSynch(KSPIN_LOCK_QUEUE_NUMBER Number)", irql="synch")
def KeAcquireQueuedSpinLockRaiseToSynch(k, Number):
    """Raise to SYNCH_LEVEL and take numbered lock ``Number``; returns the old IRQL."""
    lock = _numbered(k, Number)
    old = raise_to(k, k.irql_level("synch"), "KeAcquireQueuedSpinLockRaiseToSynch")
    acquire(k, lock)
    return old


@export("VOID KeReleaseQueuedSpinLock(KSPIN_LOCK_QUEUE_NUMBER Number, KIRQL OldIrql)")
def KeReleaseQueuedSpinLock(k, Number, OldIrql):
    """Release numbered lock ``Number`` and lower to ``OldIrql``."""
    release(k, _numbered(k, Number))
    k.set_irql(OldIrql)


def _try_numbered(k, number: int, old_irql_ptr: int, level: str, name: str) -> int:
    lock = _numbered(k, number)
    if k.mem.vu(lock, 8) & 1:
        return 0
    old = raise_to(k, k.irql_level(level), name)
    acquire(k, lock)
    k.mem.vput(old_irql_ptr, 1, old)
    return 1


@export("LOGICAL KeTryToAcquireQueuedSpinLock(KSPIN_LOCK_QUEUE_NUMBER Number, PKIRQL OldIrql)", irql="dispatch")
def KeTryToAcquireQueuedSpinLock(k, Number, OldIrql):
    """Take numbered lock ``Number`` at DISPATCH_LEVEL if free (old IRQL to ``*OldIrql``)."""
    return _try_numbered(k, Number, OldIrql, "dispatch", "KeTryToAcquireQueuedSpinLock")


@export("LOGICAL KeTryToAcquireQueuedSpinLockRaiseToSynch(KSPIN_LOCK_QUEUE_NUMBER Number, PKIRQL OldIrql)",
        irql="synch")
def KeTryToAcquireQueuedSpinLockRaiseToSynch(k, Number, OldIrql):
    """Take numbered lock ``Number`` at SYNCH_LEVEL if free (old IRQL to ``*OldIrql``)."""
    return _try_numbered(k, Number, OldIrql, "synch", "KeTryToAcquireQueuedSpinLockRaiseToSynch")


# ---------------------------------------------------------------------------------------------------- dispatcher objects
def _header(k, obj: int, kind: int, size_bytes: int, state: int) -> None:
    k.put(obj, "dispatcher_header", "Type", kind)
    k.put(obj, "dispatcher_header", "Size", size_bytes // 4)
    k.put(obj, "dispatcher_header", "SignalState", state)
    head = obj + k.L.off("dispatcher_header", "WaitListHead")
    k.mem.vput(head, 8, head)
    k.mem.vput(head + 8, 8, head)


def signal_state(k, obj: int) -> int:
    """The object's SignalState (a LONG)."""
    v = k.get(obj, "dispatcher_header", "SignalState")
    return v - (1 << 32) if v >> 31 else v


def set_signal(k, obj: int, value: int) -> None:
    """Store the object's SignalState."""
    k.put(obj, "dispatcher_header", "SignalState", value & 0xFFFFFFFF)


@export("VOID KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State)")
def KeInitializeEvent(k, Event, Type, State):
    """A notification (0) or synchronization (1) event, signalled or not."""
    if Type not in (EVENT_NOTIFICATION, EVENT_SYNCHRONIZATION):
        raise checked.assertion(k, f"KeInitializeEvent: event type {Type} is neither Notification nor "
                                   f"Synchronization")
    _header(k, Event, Type, k.L.size("kevent"), 1 if State else 0)


@export("LONG KeSetEvent(PRKEVENT Event, KPRIORITY Increment, BOOLEAN Wait)", irql="dispatch")
def KeSetEvent(k, Event, Increment, Wait):
    """Signal the event; returns its previous state (no thread waits on it in the model)."""
    old = signal_state(k, Event)
    set_signal(k, Event, 1)
    return old


@export("LONG KeResetEvent(PRKEVENT Event)", irql="dispatch")
def KeResetEvent(k, Event):
    """Clear the event; returns its previous state."""
    old = signal_state(k, Event)
    set_signal(k, Event, 0)
    return old


@export("VOID KeClearEvent(PRKEVENT Event)", irql="dispatch")
def KeClearEvent(k, Event):
    """Clear the event."""
    set_signal(k, Event, 0)


@export("LONG KeReadStateEvent(PRKEVENT Event)")
def KeReadStateEvent(k, Event):
    """The event's state."""
    return signal_state(k, Event)


@export("VOID KeInitializeMutex(PRKMUTEX Mutex, ULONG Level)")
def KeInitializeMutex(k, Mutex, Level):
    """A free mutex (a mutant with APCs disabled while owned)."""
    _header(k, Mutex, MUTANT, k.L.size("kmutant"), 1)
    entry = Mutex + k.L.off("kmutant", "MutantListEntry")
    k.mem.vput(entry, 8, entry)
    k.mem.vput(entry + 8, 8, entry)
    k.put(Mutex, "kmutant", "OwnerThread", 0)
    k.put(Mutex, "kmutant", "Abandoned", 0)
    k.put(Mutex, "kmutant", "ApcDisable", 1)


def _satisfy(k, obj: int) -> bool:
    """Take the object for the current thread if it is signalled (the wait's side effects); True when taken."""
    kind = k.get(obj, "dispatcher_header", "Type")
    state = signal_state(k, obj)
    if kind == MUTANT:
        owner = k.get(obj, "kmutant", "OwnerThread")
        if state > 0 or owner == k.thread:
            set_signal(k, obj, state - 1)
            k.put(obj, "kmutant", "OwnerThread", k.thread)
            return True
        return False
    if state <= 0:
        return False
    if kind in (EVENT_SYNCHRONIZATION, TIMER_SYNCHRONIZATION):
        set_signal(k, obj, 0)
    elif kind == SEMAPHORE:
        set_signal(k, obj, state - 1)
    return True


@export("NTSTATUS KeWaitForSingleObject(PVOID Object, KWAIT_REASON WaitReason, KPROCESSOR_MODE WaitMode, "
        "BOOLEAN Alertable, PLARGE_INTEGER Timeout)", irql="dispatch")
def KeWaitForSingleObject(k, Object, WaitReason, WaitMode, Alertable, Timeout):
    """Wait for the object: satisfied at once when signalled; otherwise the virtual clock runs (timers may signal
    it) until the timeout; an endless wait nothing in the model can end is a hang."""
    timeout = None
    if Timeout:
        (timeout,) = struct.unpack("<q", k.mem.vread(Timeout, 8))
    if (timeout is None or timeout != 0) and k.irql > k.irql_level("apc"):
        raise checked.assertion(k, f"KeWaitForSingleObject with a non-zero timeout at IRQL {k.irql}")
    if _satisfy(k, Object):
        return STATUS_SUCCESS
    if timeout == 0:
        return STATUS_TIMEOUT
    deadline = None
    if timeout is not None:
        deadline = (k.clock.now + (-timeout) * 100 * PS_PER_NS if timeout < 0
                    else k.clock.now + max(0, timeout - k.system_time_100ns) * 100 * PS_PER_NS)
    while True:
        nxt = min((t["due_ps"] for t in k.state.get("timers", {}).values()), default=None)
        if nxt is None or (deadline is not None and nxt > deadline):
            if deadline is None:
                raise RunStop({"verdict": "hang", "hang": {
                    "function": k.caller_function, "address": k.caller_address, "polls": None,
                    "detail": f"KeWaitForSingleObject({Object:#x}) waits forever: nothing in the model signals it",
                    "virtual_time_us": 0}})
            k.clock.advance_to(max(deadline, k.clock.now))
            return STATUS_TIMEOUT
        k.clock.advance_to(max(nxt, k.clock.now))
        expire_timers(k)
        if _satisfy(k, Object):
            return STATUS_SUCCESS


# ---------------------------------------------------------------------------------------------------- timers
@export("VOID KeInitializeTimerEx(PKTIMER Timer, TIMER_TYPE Type)")
def KeInitializeTimerEx(k, Timer, Type):
    """A notification (0) or synchronization (1) timer, not set."""
    _header(k, Timer, TIMER_NOTIFICATION + (1 if Type else 0), k.L.size("ktimer"), 0)
    k.put(Timer, "ktimer", "DueTime", 0)
    k.put(Timer, "ktimer", "Period", 0)


@export("BOOLEAN KeSetTimerEx(PKTIMER Timer, LARGE_INTEGER DueTime, LONG Period, PKDPC Dpc)", irql="dispatch")
def KeSetTimerEx(k, Timer, DueTime, Period, Dpc):
    """Set the timer: relative (negative, 100 ns) or absolute due time, optional period (ms) and DPC; returns
    whether it was already set."""
    timers = k.state.setdefault("timers", {})
    was = Timer in timers
    delay_100ns = -DueTime if DueTime < 0 else max(0, DueTime - k.system_time_100ns)
    timers[Timer] = {"due_ps": k.clock.now + delay_100ns * 100 * PS_PER_NS, "period_ms": Period, "dpc": Dpc}
    set_signal(k, Timer, 0)
    k.put(Timer, "ktimer", "Period", Period)
    return 1 if was else 0


def expire_timers(k) -> None:
    """Signal the timers whose due time has passed and queue their DPCs (called on each clock tick)."""
    timers = k.state.get("timers")
    if not timers:
        return
    for timer in sorted(timers):
        t = timers[timer]
        if t["due_ps"] > k.clock.now:
            continue
        set_signal(k, timer, 1)
        if t["dpc"]:
            now = k.system_time_100ns
            queue_dpc(k, t["dpc"], now & 0xFFFFFFFF, now >> 32)
        if t["period_ms"]:
            t["due_ps"] += t["period_ms"] * 1_000_000 * PS_PER_NS
        else:
            del timers[timer]


# ---------------------------------------------------------------------------------------------------- DPCs
@export("VOID KeInitializeDpc(PRKDPC Dpc, PKDEFERRED_ROUTINE DeferredRoutine, PVOID DeferredContext)")
def KeInitializeDpc(k, Dpc, DeferredRoutine, DeferredContext):
    """A DPC object for ``DeferredRoutine``."""
    k.put(Dpc, "kdpc", "Type", DPC_OBJECT)
    k.put(Dpc, "kdpc", "Importance", MEDIUM_IMPORTANCE)
    k.put(Dpc, "kdpc", "Number", 0)
    k.put(Dpc, "kdpc", "DeferredRoutine", DeferredRoutine)
    k.put(Dpc, "kdpc", "DeferredContext", DeferredContext)
    k.put(Dpc, "kdpc", "DpcData", 0)


def queue_dpc(k, dpc: int, arg1: int, arg2: int) -> bool:
    """Queue ``dpc`` unless it is queued already."""
    if k.get(dpc, "kdpc", "DpcData"):
        return False
    k.put(dpc, "kdpc", "SystemArgument1", arg1)
    k.put(dpc, "kdpc", "SystemArgument2", arg2)
    k.put(dpc, "kdpc", "DpcData", k.prcb)  # non-NULL while queued, as the kernel marks it
    k.state.setdefault("dpcs", []).append(dpc)
    return True


@export("BOOLEAN KeInsertQueueDpc(PRKDPC Dpc, PVOID SystemArgument1, PVOID SystemArgument2)")
def KeInsertQueueDpc(k, Dpc, SystemArgument1, SystemArgument2):
    """Queue the DPC (it runs at the next drain point); FALSE when it is already queued."""
    return 1 if queue_dpc(k, Dpc, SystemArgument1, SystemArgument2) else 0


@export("BOOLEAN KeRemoveQueueDpc(PRKDPC Dpc)")
def KeRemoveQueueDpc(k, Dpc):
    """Take a queued DPC off the queue; FALSE when it was not queued."""
    queue = k.state.get("dpcs", [])
    if Dpc not in queue:
        return 0
    queue.remove(Dpc)
    k.put(Dpc, "kdpc", "DpcData", 0)
    return 1


@export("NTSTATUS KeSetTargetProcessorDpcEx(PKDPC Dpc, PPROCESSOR_NUMBER ProcNumber)")
def KeSetTargetProcessorDpcEx(k, Dpc, ProcNumber):
    """Target the DPC at a processor: (group 0, number 0) is the only one."""
    group, number, _ = struct.unpack("<HBB", k.mem.vread(ProcNumber, 4))
    if (group, number) != (0, 0):
        return STATUS_INVALID_PARAMETER
    k.put(Dpc, "kdpc", "Number", MAXIMUM_PROC_PER_GROUP + number)
    return STATUS_SUCCESS


def drain_dpcs(k) -> None:
    """Run the queued DPCs in order at DISPATCH_LEVEL (guest calls; the scenario's drain point)."""
    queue = k.state.get("dpcs")
    while queue:
        dpc = queue.pop(0)
        k.put(dpc, "kdpc", "DpcData", 0)
        routine = k.get(dpc, "kdpc", "DeferredRoutine")
        args = [dpc, k.get(dpc, "kdpc", "DeferredContext"), k.get(dpc, "kdpc", "SystemArgument1"),
                k.get(dpc, "kdpc", "SystemArgument2")]
        k.trace.record("kernel_call", device="kernel", address=routine, detail=f"DPC {routine:#x}({dpc:#x})")
        old = k.irql
        k.set_irql(k.irql_level("dispatch"))
        try:
            k.call_guest(routine, args)
        finally:
            k.set_irql(old)


# ---------------------------------------------------------------------------------------------------- device queues
@export("VOID KeInitializeDeviceQueue(PKDEVICE_QUEUE DeviceQueue)")
def KeInitializeDeviceQueue(k, DeviceQueue):
    """An empty, idle device queue."""
    k.put(DeviceQueue, "kdevice_queue", "Type", DEVICE_QUEUE_OBJECT)
    k.put(DeviceQueue, "kdevice_queue", "Size", k.L.size("kdevice_queue"))
    head = DeviceQueue + k.L.off("kdevice_queue", "DeviceListHead")
    k.mem.vput(head, 8, head)
    k.mem.vput(head + 8, 8, head)
    k.put(DeviceQueue, "kdevice_queue", "Lock", 0)
    k.put(DeviceQueue, "kdevice_queue", "Busy", 0)


@export("BOOLEAN KeInsertDeviceQueue(PKDEVICE_QUEUE DeviceQueue, PKDEVICE_QUEUE_ENTRY DeviceQueueEntry)",
        irql="dispatch")
def KeInsertDeviceQueue(k, DeviceQueue, DeviceQueueEntry):
    """An idle queue becomes busy (FALSE: the caller starts the work); a busy one queues the entry (TRUE)."""
    if not k.get(DeviceQueue, "kdevice_queue", "Busy") & 0xFF:
        k.put(DeviceQueue, "kdevice_queue", "Busy", 1)
        k.put(DeviceQueueEntry, "kdevice_queue_entry", "Inserted", 0)
        return 0
    gdata.list_insert_tail(k, DeviceQueue + k.L.off("kdevice_queue", "DeviceListHead"),
                           DeviceQueueEntry + k.L.off("kdevice_queue_entry", "DeviceListEntry"))
    k.put(DeviceQueueEntry, "kdevice_queue_entry", "Inserted", 1)
    return 1


@export("PKDEVICE_QUEUE_ENTRY KeRemoveDeviceQueue(PKDEVICE_QUEUE DeviceQueue)", irql="dispatch")
def KeRemoveDeviceQueue(k, DeviceQueue):
    """The next queued entry, or NULL (and the queue becomes idle) when none is queued."""
    head = DeviceQueue + k.L.off("kdevice_queue", "DeviceListHead")
    if gdata.list_empty(k, head):
        k.put(DeviceQueue, "kdevice_queue", "Busy", 0)
        return 0
    entry = gdata.list_remove_head(k, head) - k.L.off("kdevice_queue_entry", "DeviceListEntry")
    k.put(entry, "kdevice_queue_entry", "Inserted", 0)
    return entry
