"""Executive support (Ex): pool, fast mutexes, executive spin locks, work items, S-lists, callback objects.

Pool calls go through the checked pool (``pool.py``): the IRQL contract of each pool type is Driver Verifier's
(0xC4 with parameter 1 = 0x00/0x01/0x02 for allocations, 0x10-0x13 for frees).  A fast mutex is NT's: ``Count``
bit 0 set means free (``ExInitializeFastMutex`` is an inline that sets it); acquiring raises to APC_LEVEL and
records the owner.  Work items queue in the model and run at PASSIVE_LEVEL at the kernel's drain point
(``MiniKernel.run_deferred``), as a system worker thread would run them.
"""

from __future__ import annotations

import struct

from . import checked, gdata, pool
from .decl import export

STATUS_SUCCESS = 0
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
FM_LOCK_BIT = 1
TAG_NONE = 0x656E6F4E  # 'None': the tag ExAllocatePool gives a block
EX_EXCLUSIVE = 0x80000000


# ---------------------------------------------------------------------------------------------------- pool
def allocate(k, pool_type: int, size: int, tag: int) -> int:
    """A checked pool allocation (the IRQL contract of the pool type, no zero-byte requests)."""
    p = pool.get(k)
    paged = p.is_paged(pool_type)
    if size == 0:
        checked.violation(k, "pool-zero-bytes", [k.irql, pool_type, 0], "zero-byte pool allocation")
    if paged and k.irql > k.irql_level("apc"):
        checked.violation(k, "pool-paged-above-apc", [k.irql, pool_type, size],
                          f"paged pool ({size} bytes) requested at IRQL {k.irql}")
    if not paged and k.irql > k.irql_level("dispatch"):
        checked.violation(k, "pool-nonpaged-above-dispatch", [k.irql, pool_type, size],
                          f"nonpaged pool ({size} bytes) requested at IRQL {k.irql}")
    return p.allocate(pool_type, size, tag, k.caller_function)


@export("PVOID ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)")
def ExAllocatePoolWithTag(k, PoolType, NumberOfBytes, Tag):
    """A zeroed block of pool; NULL when the pool is exhausted."""
    return allocate(k, PoolType, NumberOfBytes, Tag)


@export("PVOID ExAllocatePool(POOL_TYPE PoolType, SIZE_T NumberOfBytes)")
def ExAllocatePool(k, PoolType, NumberOfBytes):
    """ExAllocatePoolWithTag with the tag 'None'."""
    return allocate(k, PoolType, NumberOfBytes, TAG_NONE)


@export("VOID ExFreePoolWithTag(PVOID P, ULONG Tag)")
def ExFreePoolWithTag(k, P, Tag):
    """Free a block; the tag must be the allocation's."""
    pool.get(k).free(P, Tag)


@export("VOID ExFreePool(PVOID P)")
def ExFreePool(k, P):
    """Free a block."""
    pool.get(k).free(P, None)


# ---------------------------------------------------------------------------------------------------- fast mutexes
def _fm_acquire(k, mutex: int, name: str) -> None:
    if k.get(mutex, "fast_mutex", "Owner") == k.thread:
        raise checked.assertion(k, f"{name}({mutex:#x}): the current thread already owns the fast mutex "
                                   f"(it would wait for itself forever)")
    old = k.irql
    k.set_irql(max(old, k.irql_level("apc")))
    k.put(mutex, "fast_mutex", "Count", k.get(mutex, "fast_mutex", "Count") & ~FM_LOCK_BIT)
    k.put(mutex, "fast_mutex", "Owner", k.thread)
    k.put(mutex, "fast_mutex", "OldIrql", old)


@export("VOID ExAcquireFastMutex(PFAST_MUTEX FastMutex)", irql="apc")
def ExAcquireFastMutex(k, FastMutex):
    """Raise to APC_LEVEL and own the mutex."""
    if not k.get(FastMutex, "fast_mutex", "Count") & FM_LOCK_BIT and \
            k.get(FastMutex, "fast_mutex", "Owner") != k.thread:
        raise checked.assertion(k, f"ExAcquireFastMutex({FastMutex:#x}): Count {k.get(FastMutex, 'fast_mutex', 'Count'):#x}"
                                   f" says the mutex is owned, by no thread of the model (uninitialised?)")
    _fm_acquire(k, FastMutex, "ExAcquireFastMutex")


@export("BOOLEAN ExTryToAcquireFastMutex(PFAST_MUTEX FastMutex)", irql="apc")
def ExTryToAcquireFastMutex(k, FastMutex):
    """Own the mutex if it is free (raising to APC_LEVEL); FALSE otherwise."""
    if not k.get(FastMutex, "fast_mutex", "Count") & FM_LOCK_BIT:
        return 0
    _fm_acquire(k, FastMutex, "ExTryToAcquireFastMutex")
    return 1


@export("VOID ExReleaseFastMutex(PFAST_MUTEX FastMutex)", irql="apc")
def ExReleaseFastMutex(k, FastMutex):
    """Give the mutex back (at APC_LEVEL, by its owner) and return to the IRQL of the acquire."""
    if k.irql != k.irql_level("apc"):
        raise checked.assertion(k, f"ExReleaseFastMutex({FastMutex:#x}) at IRQL {k.irql}, not APC_LEVEL")
    if k.get(FastMutex, "fast_mutex", "Owner") != k.thread:
        raise checked.assertion(k, f"ExReleaseFastMutex({FastMutex:#x}): the mutex is not owned by the current "
                                   f"thread")
    k.put(FastMutex, "fast_mutex", "Owner", 0)
    k.put(FastMutex, "fast_mutex", "Count", k.get(FastMutex, "fast_mutex", "Count") | FM_LOCK_BIT)
    k.set_irql(k.get(FastMutex, "fast_mutex", "OldIrql"))


# ---------------------------------------------------------------------------------------------------- executive spin locks
def _ex_lock(k, lock: int) -> int:
    return k.mem.vu(lock, 4)


@export("KIRQL ExAcquireSpinLockExclusive(PEX_SPIN_LOCK SpinLock)", irql="dispatch")
def ExAcquireSpinLockExclusive(k, SpinLock):
    """Raise to DISPATCH_LEVEL and own the reader/writer lock exclusively; returns the old IRQL."""
    if _ex_lock(k, SpinLock):
        raise checked.assertion(k, f"ExAcquireSpinLockExclusive({SpinLock:#x}): the lock is held "
                                   f"({_ex_lock(k, SpinLock):#x}) by the only thread: it would spin forever")
    old = k.irql
    k.set_irql(k.irql_level("dispatch"))
    k.mem.vput(SpinLock, 4, EX_EXCLUSIVE)
    return old


@export("VOID ExReleaseSpinLockExclusive(PEX_SPIN_LOCK SpinLock, KIRQL OldIrql)")
def ExReleaseSpinLockExclusive(k, SpinLock, OldIrql):
    """Release an exclusively held lock and lower to ``OldIrql``."""
    if _ex_lock(k, SpinLock) != EX_EXCLUSIVE:
        raise checked.assertion(k, f"ExReleaseSpinLockExclusive({SpinLock:#x}): not held exclusively")
    k.mem.vput(SpinLock, 4, 0)
    k.set_irql(OldIrql)


@export("KIRQL ExAcquireSpinLockShared(PEX_SPIN_LOCK SpinLock)", irql="dispatch")
def ExAcquireSpinLockShared(k, SpinLock):
    """Raise to DISPATCH_LEVEL and share the lock; returns the old IRQL."""
    if _ex_lock(k, SpinLock) & EX_EXCLUSIVE:
        raise checked.assertion(k, f"ExAcquireSpinLockShared({SpinLock:#x}): held exclusively by the only thread")
    old = k.irql
    k.set_irql(k.irql_level("dispatch"))
    k.mem.vput(SpinLock, 4, _ex_lock(k, SpinLock) + 1)
    return old


@export("VOID ExReleaseSpinLockShared(PEX_SPIN_LOCK SpinLock, KIRQL OldIrql)")
def ExReleaseSpinLockShared(k, SpinLock, OldIrql):
    """Drop one share of the lock and lower to ``OldIrql``."""
    count = _ex_lock(k, SpinLock)
    if count & EX_EXCLUSIVE or count == 0:
        raise checked.assertion(k, f"ExReleaseSpinLockShared({SpinLock:#x}): not held shared ({count:#x})")
    k.mem.vput(SpinLock, 4, count - 1)
    k.set_irql(OldIrql)


# ---------------------------------------------------------------------------------------------------- work items
@export("VOID ExQueueWorkItem(PWORK_QUEUE_ITEM WorkItem, WORK_QUEUE_TYPE QueueType)", irql="dispatch")
def ExQueueWorkItem(k, WorkItem, QueueType):
    """Queue the item for a system worker thread (it runs at PASSIVE_LEVEL at the next drain point)."""
    flink = WorkItem + k.L.off("work_queue_item", "List")
    if k.mem.vu(flink, 8):
        raise checked.assertion(k, f"ExQueueWorkItem({WorkItem:#x}): the item is queued already (List.Flink set)")
    k.mem.vput(flink, 8, WorkItem)
    k.state.setdefault("work_items", []).append(WorkItem)


def drain_work_items(k) -> None:
    """Run the queued work items in order at PASSIVE_LEVEL (guest calls; the scenario's drain point)."""
    queue = k.state.get("work_items")
    while queue:
        item = queue.pop(0)
        routine = k.get(item, "work_queue_item", "WorkerRoutine")
        parameter = k.get(item, "work_queue_item", "Parameter")
        k.mem.vput(item + k.L.off("work_queue_item", "List"), 8, 0)
        k.trace.record("kernel_call", device="kernel", address=routine, detail=f"work item {routine:#x}({parameter:#x})")
        old = k.irql
        k.set_irql(k.irql_level("passive"))
        try:
            k.call_guest(routine, [parameter])
        finally:
            k.set_irql(old)


# ---------------------------------------------------------------------------------------------------- S-lists
# The x64 SLIST_HEADER in its 16-byte form (CPUs with CMPXCHG16B): Depth:16 and Sequence:48 in the first quadword;
# HeaderType:1 (1), Init:1, Reserved:2 and NextEntry:60 (the first entry's address >> 4) in the second (WDK ntddk.h).
def _slist(k, head: int) -> tuple[int, int, int]:
    lo, hi = struct.unpack("<QQ", k.mem.vread(head, 16))
    return lo & 0xFFFF, lo >> 16, hi & ~0xF


def _set_slist(k, head: int, depth: int, sequence: int, first: int) -> None:
    lo = (depth & 0xFFFF) | ((sequence & 0xFFFF_FFFF_FFFF) << 16)
    k.mem.vwrite(head, struct.pack("<QQ", lo, (first & ~0xF) | 0x3))


@export("VOID InitializeSListHead(PSLIST_HEADER SListHead)")
def InitializeSListHead(k, SListHead):
    """An empty S-list header (16-byte form)."""
    if SListHead & 0xF:
        raise checked.assertion(k, f"InitializeSListHead({SListHead:#x}): the header must be 16-byte aligned")
    _set_slist(k, SListHead, 0, 0, 0)


@export("PSLIST_ENTRY ExpInterlockedPushEntrySList(PSLIST_HEADER ListHead, PSLIST_ENTRY ListEntry)")
def ExpInterlockedPushEntrySList(k, ListHead, ListEntry):
    """Push an entry; returns the previous first entry."""
    depth, seq, first = _slist(k, ListHead)
    if ListEntry & 0xF:
        raise checked.assertion(k, f"ExpInterlockedPushEntrySList: entry {ListEntry:#x} is not 16-byte aligned")
    k.mem.vput(ListEntry, 8, first)
    _set_slist(k, ListHead, depth + 1, seq + 1, ListEntry)
    return first


@export("PSLIST_ENTRY ExpInterlockedPopEntrySList(PSLIST_HEADER ListHead)")
def ExpInterlockedPopEntrySList(k, ListHead):
    """Pop the first entry (NULL when empty)."""
    depth, seq, first = _slist(k, ListHead)
    if not first:
        return 0
    _set_slist(k, ListHead, depth - 1, seq + 1, k.mem.vu(first, 8))
    return first


# ---------------------------------------------------------------------------------------------------- callback objects
def _callbacks(k) -> dict:
    """Named callback objects: those the kernel creates at boot (``[kernel.callbacks]``) and any created since."""
    if "callbacks" not in k.state:
        objs = {}
        for name in k.kernel_data("callbacks").get("names", []):
            objs[str(name).lower()] = {"name": name, "object": pool.get(k).allocate(0, 0x40, 0x6C6C6143, None),
                                       "registrations": []}
        k.state["callbacks"] = objs
    return k.state["callbacks"]


@export("NTSTATUS ExCreateCallback(PCALLBACK_OBJECT* CallbackObject, POBJECT_ATTRIBUTES ObjectAttributes, "
        "BOOLEAN Create, BOOLEAN AllowMultipleCallbacks)", irql="passive")
def ExCreateCallback(k, CallbackObject, ObjectAttributes, Create, AllowMultipleCallbacks):
    """Open the named callback object (or create it); STATUS_OBJECT_NAME_NOT_FOUND when absent and not created."""
    name = gdata.unicode_string(k, k.get(ObjectAttributes, "object_attributes", "ObjectName")) or ""
    objs = _callbacks(k)
    entry = objs.get(name.lower())
    if entry is None:
        if not Create:
            return STATUS_OBJECT_NAME_NOT_FOUND
        obj = pool.get(k).allocate(0, 0x40, 0x6C6C6143, k.caller_function)  # 'Call'
        if not obj:
            return STATUS_INSUFFICIENT_RESOURCES
        entry = objs[name.lower()] = {"name": name, "object": obj, "registrations": []}
    k.mem.vput(CallbackObject, 8, entry["object"])
    return STATUS_SUCCESS


@export("PVOID ExRegisterCallback(PCALLBACK_OBJECT CallbackObject, PCALLBACK_FUNCTION CallbackFunction, "
        "PVOID CallbackContext)", irql="passive")
def ExRegisterCallback(k, CallbackObject, CallbackFunction, CallbackContext):
    """Register a function on a callback object; returns the registration handle (no notifications happen while
    the model boots)."""
    for entry in _callbacks(k).values():
        if entry["object"] == CallbackObject:
            handle = pool.get(k).allocate(0, 0x20, 0x6C6C6143, k.caller_function)
            entry["registrations"].append((handle, CallbackFunction, CallbackContext))
            return handle
    raise checked.assertion(k, f"ExRegisterCallback: {CallbackObject:#x} is not a callback object")
