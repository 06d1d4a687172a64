"""The model's kernel exports, each called through its stub from guest context with checked results.

Every export a target's kernel offers with behaviour has a case below (``test_every_behaviour_has_a_case``): the case
calls it the way a HAL does (arguments in registers and on the stack, results in RAX and guest memory) and checks
what it did.  Declared-but-not-modelled names end the run with ``unimplemented-import`` naming them.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from unicorn import x86_const as X

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

import specs  # noqa: E402
from gen2sim.cpu import RunStop  # noqa: E402
from gen2sim.kernel import catalog, kernel_class  # noqa: E402
from gen2sim.kernel.decl import EXPORTS, VARIABLES  # noqa: E402
from gen2sim.machine import Machine  # noqa: E402

TARGETS = ("reactos-amd64", "win7sp1-amd64")
S32 = lambda v: v - (1 << 32) if v >> 31 else v  # noqa: E731 - LONG results come back in EAX


class H:
    """A machine and a target's kernel, no HAL: exports are called from guest context through their stubs."""

    def __init__(self, target: str = "win7sp1-amd64", platform: str = "gen2") -> None:
        self.m = m = Machine(platform)
        self.tgt = specs.load_target(target)
        self.k = k = kernel_class(target)(self.tgt, m.memory, m.cpu, m.trace, m.clock,
                                          acpi_root_gpa=m.acpi.root_gpa, acpi=m.acpi)
        m.memory.tables.map(0xFFFFFFFFFFFE0000, 0xFEE00000, 0x1000, uncached=True)
        m.cpu.enable_paging(k.gdt_va, k.idt_va, k.pcr)
        m.cpu.set_reg(X.UC_X86_REG_RSP, k.stack_top)
        m.cpu.set_reg(X.UC_X86_REG_EFLAGS, 2)
        k.set_irql(0)
        self.mem = m.memory

    def call(self, name: str, *args: int, irql: int | None = None) -> int:
        """Call export ``name`` (from guest context) and return RAX."""
        if irql is not None:
            self.k.set_irql(irql)
        addr = self.k.import_address(name) or self.k.unimplemented_stub(name)
        return self.m.cpu.call(addr, list(args))

    def records(self, name: str) -> list[dict]:
        """The kernel_call records of ``name``."""
        return [r for r in self.m.trace.records if r["kind"] == "kernel_call"
                and (r.get("detail") or "").split("(")[0].split(" ")[0] == name]

    def buf(self, size: int = 0x1000) -> int:
        """Zeroed guest memory."""
        return self.mem.alloc(size)

    def wstr(self, text: str) -> int:
        """A NUL-terminated wide string in guest memory."""
        va = self.buf(2 * len(text) + 2)
        self.mem.vwrite(va, text.encode("utf-16-le") + b"\0\0")
        return va

    def cstr(self, text: str) -> int:
        """A NUL-terminated string in guest memory."""
        va = self.buf(len(text) + 1)
        self.mem.vwrite(va, text.encode("latin-1") + b"\0")
        return va

    def ustr(self, text: str) -> int:
        """A UNICODE_STRING for ``text``."""
        head = self.buf(16)
        self.mem.vwrite(head, struct.pack("<HHxxxxQ", 2 * len(text), 2 * len(text) + 2, self.wstr(text)))
        return head

    def attrs(self, name: str, root: int = 0) -> int:
        """OBJECT_ATTRIBUTES naming ``name`` (relative to handle ``root``)."""
        oa = self.buf(0x30)
        self.mem.vwrite(oa, struct.pack("<IxxxxQQIxxxxQQ", 0x30, root, self.ustr(name), 0x40, 0, 0))
        return oa

    def code(self, data: bytes) -> int:
        """Executable guest code."""
        va = self.buf(0x1000)
        self.mem.vwrite(va, data)
        self.m.cpu.add_code(va, data)
        return va

    def u(self, va: int, size: int = 8) -> int:
        """Read guest memory."""
        return self.mem.vu(va, size)


RET_RCX = bytes.fromhex("4889c8c3")  # mov rax, rcx; ret
RET_0 = bytes.fromhex("31c0c3")  # xor eax, eax; ret
# mov [rcx], rdx ; xor eax, eax ; ret   (stores its 2nd argument through its 1st)
STORE_RDX_AT_RCX = bytes.fromhex("488911" "31c0" "c3")

CASES: dict[str, object] = {}


def case(*names: str):
    """Register a test case covering exports ``names``."""
    def wrap(fn):
        for n in names:
            CASES[n] = fn
        return fn
    return wrap


# ---------------------------------------------------------------------------------------------------- ke
@case("KeBugCheckEx")
def _bugcheck_ex(h: H):
    data = h.k.data["KiBugCheckData"]
    with pytest.raises(RunStop) as info:
        h.call("KeBugCheckEx", 0x1234ABCD, 1, 2, 3, 4)
    bc = info.value.verdict["bugcheck"]
    assert bc["code"] == 0x1234ABCD and bc["params"] == [1, 2, 3, 4]
    assert [h.u(data + 8 * i) for i in range(5)] == [0x1234ABCD, 1, 2, 3, 4]
    rec = h.records("KeBugCheckEx")[0]
    assert rec["detail"] == "KeBugCheckEx(0x1234abcd, 0x1, 0x2, 0x3, 0x4)"
    assert rec["args"]["BugCheckParameter4"] == 4


@case("KeBugCheck")
def _bugcheck(h: H):
    with pytest.raises(RunStop) as info:
        h.call("KeBugCheck", 0x5C)
    assert info.value.verdict["bugcheck"]["code"] == 0x5C and info.value.verdict["bugcheck"]["params"] == [0] * 4


@case("KeRegisterBugCheckCallback", "KeDeregisterBugCheckCallback")
def _bugcheck_callbacks(h: H):
    rec, out = h.buf(0x40), h.buf()
    routine = h.code(STORE_RDX_AT_RCX)  # callback(Buffer, Length): *Buffer = Length
    assert h.call("KeRegisterBugCheckCallback", rec, routine, out, 0x77, h.cstr("T")) & 0xFF == 1
    assert h.call("KeRegisterBugCheckCallback", rec, routine, out, 0x77, 0) & 0xFF == 0  # twice: FALSE
    assert h.k.get(rec, "kbugcheck_callback_record", "State") == 1
    with pytest.raises(RunStop):
        h.call("KeBugCheckEx", 0x79, 0, 0, 0, 0)
    assert h.u(out) == 0x77  # the callback ran before the machine stopped
    h2 = H(h.tgt.name)
    rec2 = h2.buf(0x40)
    h2.call("KeRegisterBugCheckCallback", rec2, h2.code(STORE_RDX_AT_RCX), h2.buf(), 1, 0)
    assert h2.call("KeDeregisterBugCheckCallback", rec2) & 0xFF == 1
    assert h2.call("KeDeregisterBugCheckCallback", rec2) & 0xFF == 0


@case("KeEnterKernelDebugger")
def _debugger(h: H):
    with pytest.raises(RunStop) as info:
        h.call("KeEnterKernelDebugger")
    assert info.value.verdict["fault"]["kind"] == "kernel-debugger"


@case("KeSetTimeIncrement", "KeQueryTimeIncrement")
def _time_increment(h: H):
    assert h.call("KeQueryTimeIncrement") & 0xFFFFFFFF == h.tgt.abi["time_increment_max"]
    h.call("KeSetTimeIncrement", 100000, 5000)
    assert h.k.time_increment == (100000, 5000)
    assert h.call("KeQueryTimeIncrement") & 0xFFFFFFFF == 100000


@case("KeUpdateSystemTime", "KeUpdateRunTime", "KeProfileInterruptWithSource", "KeSetProfileIrql")
def _ticks(h: H):
    h.call("KeUpdateSystemTime", 0, 156250, 13)
    h.call("KeUpdateSystemTime", 0, (1 << 40) | 100000, 13)
    # ReactOS: ULONG increment (the high half is not the argument); Windows 7: ULONG64.
    wide = h.tgt.name == "win7sp1-amd64"
    assert h.k.tick_increments == [156250, ((1 << 40) | 100000) if wide else 100000]
    assert [r["value"] for r in h.m.trace.records if r["kind"] == "tick"] == h.k.tick_increments
    h.call("KeUpdateRunTime", 0, 13)
    h.call("KeProfileInterruptWithSource", 0, 0)
    h.call("KeSetProfileIrql", 15)
    assert h.k.state["profile_irql"] == 15 and len(h.records("KeUpdateRunTime")) == 1


@case("KeFindConfigurationNextEntry", "KeFindConfigurationEntry")
def _configuration(h: H):
    k = h.k
    node = h.call("KeFindConfigurationEntry", k.config_root, 3, 12, 0)
    assert node == k.acpi_bios_node
    ident = k.get(node, "configuration_component_data", "Identifier")
    assert h.mem.cstring(ident) == "ACPI BIOS"
    resume = h.buf(8)
    assert h.call("KeFindConfigurationNextEntry", k.config_root, 3, 12, 0, resume) == node
    h.mem.vput(resume, 8, node)
    assert h.call("KeFindConfigurationNextEntry", k.config_root, 3, 12, 0, resume) == 0
    assert h.u(resume) == 0  # passing the resume point clears it, as the kernel does
    key = h.buf(4)
    h.mem.vput(key, 4, 7)
    assert h.call("KeFindConfigurationEntry", k.config_root, 3, 12, key) == 0  # key 0 does not match 7
    # The node's data: partial list + ACPI_BIOS_MULTI_NODE with the XSDT and the E820 map.
    data = k.get(node, "configuration_component_data", "ConfigurationData")
    multi = data + 0x1C
    assert h.u(multi) == h.m.acpi.root_gpa and h.u(multi + 8) == 3
    assert h.u(multi + 16 + 24 * 2 + 16) == 1  # the last E820 entry is RAM


@case("KeGetCurrentThread", "KeQueryPrcbAddress", "KeQueryActiveProcessorCountEx", "KeQueryMaximumProcessorCountEx",
      "KeQueryActiveGroupCount", "KeGetCurrentProcessorNumberEx", "KeGetProcessorIndexFromNumber",
      "KeGetProcessorNumberFromIndex")
def _processors(h: H):
    assert h.call("KeGetCurrentThread") == h.k.thread
    assert h.call("KeQueryPrcbAddress", 0) == h.k.prcb and h.call("KeQueryPrcbAddress", 1) == 0
    assert h.call("KeQueryActiveProcessorCountEx", 0xFFFF) & 0xFFFFFFFF == 1
    assert h.call("KeQueryActiveProcessorCountEx", 1) & 0xFFFFFFFF == 0
    assert h.call("KeQueryMaximumProcessorCountEx", 0) & 0xFFFFFFFF == 1
    assert h.call("KeQueryActiveGroupCount") & 0xFFFF == 1
    pn = h.buf(4)
    h.mem.vwrite(pn, b"\xff\xff\xff\xff")
    assert h.call("KeGetCurrentProcessorNumberEx", pn) & 0xFFFFFFFF == 0 and h.u(pn, 4) == 0
    assert h.call("KeGetProcessorIndexFromNumber", pn) & 0xFFFFFFFF == 0
    h.mem.vwrite(pn, struct.pack("<HBB", 0, 1, 0))
    assert h.call("KeGetProcessorIndexFromNumber", pn) & 0xFFFFFFFF == 0xFFFFFFFF
    assert h.call("KeGetProcessorNumberFromIndex", 0, pn) & 0xFFFFFFFF == 0 and h.u(pn, 4) == 0
    assert h.call("KeGetProcessorNumberFromIndex", 1, pn) & 0xFFFFFFFF == 0xC000000D


@case("KeSetSystemGroupAffinityThread", "KeRevertToUserGroupAffinityThread")
def _affinity(h: H):
    new, old = h.buf(16), h.buf(16)
    h.mem.vwrite(new, struct.pack("<QH6x", 1, 0))
    h.call("KeSetSystemGroupAffinityThread", new, old)
    assert struct.unpack("<QH", h.mem.vread(old, 10)) == (1, 0)
    h.call("KeRevertToUserGroupAffinityThread", old)
    h.mem.vwrite(new, struct.pack("<QH6x", 2, 0))  # processor 1 does not exist
    with pytest.raises(RunStop) as info:
        h.call("KeSetSystemGroupAffinityThread", new, old)
    assert info.value.verdict["fault"]["kind"] == "checked-assert"


@case("KeIpiGenericCall")
def _ipi_generic(h: H):
    # The worker returns its context plus the IRQL it ran at: lea rax,[rcx+IRQL*0x100] using CR8.
    fn = h.code(bytes.fromhex("440f20c0" "48c1e008" "4801c8" "c3"))  # mov rax,cr8; shl rax,8; add rax,rcx; ret
    assert h.call("KeIpiGenericCall", fn, 5, irql=0) == (h.tgt.irql["ipi"] << 8) + 5
    assert h.k.irql == 0


# ---------------------------------------------------------------------------------------------------- kesync
@case("KfRaiseIrql", "KeLowerIrql", "KeRaiseIrqlToDpcLevel", "KeRaiseIrqlToSynchLevel", "KeGetCurrentIrql")
def _irql(h: H):
    assert h.call("KfRaiseIrql", 2, irql=0) & 0xFF == 0 and h.k.irql == 2
    assert h.call("KeGetCurrentIrql") & 0xFF == 2
    h.call("KeLowerIrql", 1)
    assert h.k.irql == 1
    assert h.call("KeRaiseIrqlToDpcLevel") & 0xFF == 1 and h.k.irql == 2
    assert h.call("KeRaiseIrqlToSynchLevel") & 0xFF == 2 and h.k.irql == h.tgt.irql["synch"]
    with pytest.raises(RunStop) as info:
        h.call("KfRaiseIrql", 1)  # lower through a raise
    assert info.value.verdict["fault"]["kind"] == "checked-assert"


@case("KeInitializeSpinLock", "KeAcquireSpinLockRaiseToDpc", "KeReleaseSpinLock", "KeAcquireSpinLockAtDpcLevel",
      "KeReleaseSpinLockFromDpcLevel", "KeTryToAcquireSpinLockAtDpcLevel", "KeTestSpinLock",
      "KeAcquireSpinLockRaiseToSynch")
def _spin_locks(h: H):
    lock = h.buf(8)
    h.mem.vput(lock, 8, 0x55)
    h.call("KeInitializeSpinLock", lock)
    assert h.u(lock) == 0 and h.call("KeTestSpinLock", lock) & 0xFF == 1
    old = h.call("KeAcquireSpinLockRaiseToDpc", lock, irql=0) & 0xFF
    assert old == 0 and h.k.irql == 2 and h.u(lock) == h.k.thread | 1
    assert h.call("KeTestSpinLock", lock) & 0xFF == 0
    assert h.call("KeTryToAcquireSpinLockAtDpcLevel", lock) & 0xFF == 0
    h.call("KeReleaseSpinLock", lock, 0)
    assert h.u(lock) == 0 and h.k.irql == 0
    h.k.set_irql(2)
    h.call("KeAcquireSpinLockAtDpcLevel", lock)
    h.call("KeReleaseSpinLockFromDpcLevel", lock)
    assert h.call("KeTryToAcquireSpinLockAtDpcLevel", lock) & 0xFF == 1
    h.call("KeReleaseSpinLockFromDpcLevel", lock)
    assert h.call("KeAcquireSpinLockRaiseToSynch", lock, irql=0) & 0xFF == 0 and h.k.irql == h.tgt.irql["synch"]
    assert h.u(lock) & 1


@case("KeAcquireInStackQueuedSpinLock", "KeReleaseInStackQueuedSpinLock", "KeAcquireInStackQueuedSpinLockAtDpcLevel",
      "KeReleaseInStackQueuedSpinLockFromDpcLevel", "KeAcquireInStackQueuedSpinLockRaiseToSynch")
def _in_stack(h: H):
    lock, handle = h.buf(8), h.buf(0x18)
    h.call("KeAcquireInStackQueuedSpinLock", lock, handle, irql=1)
    assert h.k.irql == 2 and h.u(handle + 8) == lock and h.u(handle + 0x10, 1) == 1 and h.u(lock) & 1
    h.call("KeReleaseInStackQueuedSpinLock", handle)
    assert h.k.irql == 1 and h.u(lock) == 0
    h.k.set_irql(2)
    h.call("KeAcquireInStackQueuedSpinLockAtDpcLevel", lock, handle)
    h.call("KeReleaseInStackQueuedSpinLockFromDpcLevel", handle)
    assert h.u(lock) == 0 and h.k.irql == 2
    h.call("KeAcquireInStackQueuedSpinLockRaiseToSynch", lock, handle, irql=0)
    assert h.k.irql == h.tgt.irql["synch"] and h.u(handle + 0x10, 1) == 0


@case("KeAcquireQueuedSpinLock", "KeReleaseQueuedSpinLock", "KeAcquireQueuedSpinLockRaiseToSynch",
      "KeTryToAcquireQueuedSpinLock", "KeTryToAcquireQueuedSpinLockRaiseToSynch")
def _queued(h: H):
    old = h.call("KeAcquireQueuedSpinLock", 7, irql=0) & 0xFF
    assert old == 0 and h.k.irql == 2
    irql = h.buf(1)
    assert h.call("KeTryToAcquireQueuedSpinLock", 7, irql) & 0xFF == 0  # held
    h.call("KeReleaseQueuedSpinLock", 7, 0)
    assert h.k.irql == 0
    assert h.call("KeTryToAcquireQueuedSpinLock", 7, irql) & 0xFF == 1 and h.k.irql == 2 and h.u(irql, 1) == 0
    h.call("KeReleaseQueuedSpinLock", 7, 0)
    assert h.call("KeAcquireQueuedSpinLockRaiseToSynch", 3) & 0xFF == 0 and h.k.irql == h.tgt.irql["synch"]
    h.call("KeReleaseQueuedSpinLock", 3, 0)
    assert h.call("KeTryToAcquireQueuedSpinLockRaiseToSynch", 3, irql) & 0xFF == 1


@case("KeInitializeEvent", "KeSetEvent", "KeResetEvent", "KeClearEvent", "KeReadStateEvent", "KeWaitForSingleObject")
def _events(h: H):
    ev = h.buf(0x18)
    h.call("KeInitializeEvent", ev, 1, 0)  # synchronization, not signalled
    assert h.u(ev, 1) == 1 and h.u(ev + 2, 1) == 6 and h.u(ev + 8) == ev + 8
    assert h.call("KeReadStateEvent", ev) & 0xFFFFFFFF == 0
    zero = h.buf(8)
    assert h.call("KeWaitForSingleObject", ev, 0, 0, 0, zero) & 0xFFFFFFFF == 0x102  # STATUS_TIMEOUT
    assert h.call("KeSetEvent", ev, 0, 0) & 0xFFFFFFFF == 0
    assert h.call("KeWaitForSingleObject", ev, 0, 0, 0, 0) & 0xFFFFFFFF == 0
    assert h.call("KeReadStateEvent", ev) & 0xFFFFFFFF == 0  # a synchronization event resets on the wait
    h.call("KeSetEvent", ev, 0, 0)
    assert h.call("KeResetEvent", ev) & 0xFFFFFFFF == 1
    h.call("KeSetEvent", ev, 0, 0)
    h.call("KeClearEvent", ev)
    assert h.call("KeReadStateEvent", ev) & 0xFFFFFFFF == 0
    timeout = h.buf(8)
    h.mem.vwrite(timeout, struct.pack("<q", -10_000))  # 1 ms relative
    start = h.m.clock.now
    assert h.call("KeWaitForSingleObject", ev, 0, 0, 0, timeout) & 0xFFFFFFFF == 0x102
    assert h.m.clock.now - start >= 1_000_000_000  # the clock ran the millisecond
    with pytest.raises(RunStop) as info:
        h.call("KeWaitForSingleObject", ev, 0, 0, 0, 0)
    assert info.value.verdict["verdict"] == "hang" and "waits forever" in info.value.verdict["hang"]["detail"]


@case("KeInitializeMutex")
def _mutex(h: H):
    mx = h.buf(0x38)
    h.call("KeInitializeMutex", mx, 0)
    assert h.u(mx, 1) == 2 and h.u(mx + 4, 4) == 1 and h.u(mx + 0x28) == 0 and h.u(mx + 0x31, 1) == 1
    assert h.call("KeWaitForSingleObject", mx, 0, 0, 0, 0) & 0xFFFFFFFF == 0
    assert h.u(mx + 0x28) == h.k.thread and h.u(mx + 4, 4) == 0


@case("KeInitializeTimerEx", "KeSetTimerEx", "KeInitializeDpc", "KeInsertQueueDpc", "KeRemoveQueueDpc",
      "KeSetTargetProcessorDpcEx")
def _timers_dpcs(h: H):
    timer, dpc, out = h.buf(0x40), h.buf(0x40), h.buf()
    h.call("KeInitializeTimerEx", timer, 0)
    assert h.u(timer, 1) == 8 and h.u(timer + 4, 4) == 0
    routine = h.code(STORE_RDX_AT_RCX)  # DPC(Dpc, Context, ...): *Dpc = Context
    h.call("KeInitializeDpc", dpc, routine, 0xC0FFEE)
    assert h.u(dpc, 1) == 19 and h.u(dpc + 0x18) == routine and h.u(dpc + 0x20) == 0xC0FFEE
    pn = h.buf(4)
    assert h.call("KeSetTargetProcessorDpcEx", dpc, pn) & 0xFFFFFFFF == 0
    h.mem.vwrite(pn, struct.pack("<HBB", 0, 3, 0))
    assert h.call("KeSetTargetProcessorDpcEx", dpc, pn) & 0xFFFFFFFF == 0xC000000D
    assert h.call("KeInsertQueueDpc", dpc, 1, 2) & 0xFF == 1
    assert h.call("KeInsertQueueDpc", dpc, 1, 2) & 0xFF == 0  # already queued
    assert h.call("KeRemoveQueueDpc", dpc) & 0xFF == 1 and h.call("KeRemoveQueueDpc", dpc) & 0xFF == 0
    h.call("KeInsertQueueDpc", dpc, 1, 2)
    h.k.run_deferred()
    assert h.u(dpc) == 0xC0FFEE  # the DPC ran (it stored its context over its own first quadword)
    assert h.call("KeSetTimerEx", timer, (-156250) & (2**64 - 1), 0, 0) & 0xFF == 0
    assert h.call("KeSetTimerEx", timer, (-156250) & (2**64 - 1), 0, 0) & 0xFF == 1  # was set
    h.m.clock.advance_to(h.m.clock.now + 16_000_000_000)
    h.call("KeUpdateSystemTime", 0, 156250, 13)  # the tick expires it
    assert h.u(timer + 4, 4) == 1


@case("KeInitializeDeviceQueue", "KeInsertDeviceQueue", "KeRemoveDeviceQueue")
def _device_queue(h: H):
    q, e1, e2 = h.buf(0x28), h.buf(0x18), h.buf(0x18)
    h.call("KeInitializeDeviceQueue", q)
    assert h.u(q, 2) == 20 and h.u(q + 0x20, 1) == 0
    assert h.call("KeInsertDeviceQueue", q, e1) & 0xFF == 0  # idle: becomes busy, not queued
    assert h.call("KeInsertDeviceQueue", q, e2) & 0xFF == 1 and h.u(e2 + 0x14, 1) == 1
    assert h.call("KeRemoveDeviceQueue", q) == e2 and h.u(e2 + 0x14, 1) == 0
    assert h.call("KeRemoveDeviceQueue", q) == 0 and h.u(q + 0x20, 1) == 0


# ---------------------------------------------------------------------------------------------------- ex
@case("ExAllocatePoolWithTag", "ExAllocatePool", "ExFreePoolWithTag", "ExFreePool")
def _pool(h: H):
    a = h.call("ExAllocatePoolWithTag", 0, 100, 0x74736554, irql=2)  # 'Test', nonpaged at DISPATCH_LEVEL
    assert a and a % 16 == 0
    assert h.u(a - 12, 4) == 0x74736554  # POOL_HEADER.PoolTag
    big = h.call("ExAllocatePool", 1, 0x3000, irql=0)
    assert big % 0x1000 == 0
    h.mem.vwrite(big, b"x" * 0x3000)
    h.call("ExFreePoolWithTag", a, 0x74736554)
    h.call("ExFreePool", big)
    with pytest.raises(RunStop) as info:
        h.call("ExFreePool", a)
    bc = info.value.verdict["bugcheck"]
    assert bc["code"] == 0xC4 and bc["params"][0] == 0x13 and bc["params"][2] == a - 16


@case("ExAcquireFastMutex", "ExReleaseFastMutex", "ExTryToAcquireFastMutex")
def _fast_mutex(h: H):
    fm = h.buf(0x38)
    h.mem.vput(fm, 4, 1)  # ExInitializeFastMutex: Count = FM_LOCK_BIT
    h.call("ExAcquireFastMutex", fm, irql=0)
    assert h.k.irql == 1 and h.u(fm + 8) == h.k.thread and h.u(fm, 4) == 0
    assert h.call("ExTryToAcquireFastMutex", fm) & 0xFF == 0
    h.call("ExReleaseFastMutex", fm)
    assert h.k.irql == 0 and h.u(fm + 8) == 0 and h.u(fm, 4) == 1
    assert h.call("ExTryToAcquireFastMutex", fm) & 0xFF == 1
    h.call("ExReleaseFastMutex", fm)
    with pytest.raises(RunStop) as info:
        h.call("ExReleaseFastMutex", fm, irql=1)  # not owned
    assert info.value.verdict["fault"]["kind"] == "checked-assert"


@case("ExAcquireSpinLockExclusive", "ExReleaseSpinLockExclusive", "ExAcquireSpinLockShared",
      "ExReleaseSpinLockShared")
def _ex_spin(h: H):
    lock = h.buf(4)
    assert h.call("ExAcquireSpinLockShared", lock, irql=0) & 0xFF == 0 and h.u(lock, 4) == 1
    assert h.call("ExAcquireSpinLockShared", lock) & 0xFF == 2 and h.u(lock, 4) == 2
    h.call("ExReleaseSpinLockShared", lock, 2)
    h.call("ExReleaseSpinLockShared", lock, 0)
    assert h.u(lock, 4) == 0 and h.k.irql == 0
    assert h.call("ExAcquireSpinLockExclusive", lock) & 0xFF == 0 and h.u(lock, 4) == 0x80000000
    h.call("ExReleaseSpinLockExclusive", lock, 0)
    assert h.u(lock, 4) == 0


@case("ExQueueWorkItem")
def _work_item(h: H):
    item = h.buf(0x20)
    routine = h.code(bytes.fromhex("48c701" "01000000" "c3"))  # mov qword [rcx], 1; ret  (worker(Parameter))
    target = h.buf(8)
    h.mem.vwrite(item + 0x10, struct.pack("<QQ", routine, target))
    h.call("ExQueueWorkItem", item, 1)
    assert h.u(target) == 0
    h.k.run_deferred()
    assert h.u(target) == 1 and h.u(item) == 0


@case("InitializeSListHead", "ExpInterlockedPushEntrySList", "ExpInterlockedPopEntrySList")
def _slist(h: H):
    head, e1, e2 = h.buf(16), h.buf(16), h.buf(16)
    h.call("InitializeSListHead", head)
    assert h.call("ExpInterlockedPopEntrySList", head) == 0
    assert h.call("ExpInterlockedPushEntrySList", head, e1) == 0
    assert h.call("ExpInterlockedPushEntrySList", head, e2) == e1
    assert h.u(head, 2) == 2
    assert h.call("ExpInterlockedPopEntrySList", head) == e2
    assert h.call("ExpInterlockedPopEntrySList", head) == e1 and h.u(head, 2) == 0


@case("ExCreateCallback", "ExRegisterCallback")
def _callbacks(h: H):
    obj = h.buf(8)
    assert h.call("ExCreateCallback", obj, h.attrs("\\Callback\\PowerState"), 0, 1) & 0xFFFFFFFF == 0
    power = h.u(obj)
    assert power
    assert h.call("ExCreateCallback", obj, h.attrs("\\Callback\\Nope"), 0, 1) & 0xFFFFFFFF == 0xC0000034
    assert h.call("ExCreateCallback", obj, h.attrs("\\Callback\\Nope"), 1, 1) & 0xFFFFFFFF == 0
    assert h.u(obj) != power
    assert h.call("ExRegisterCallback", power, h.code(RET_0), 5) != 0


# ---------------------------------------------------------------------------------------------------- mm
@case("MmMapIoSpace", "MmUnmapIoSpace", "MmGetPhysicalAddress")
def _io_space(h: H):
    va = h.call("MmMapIoSpace", h.m.acpi.root_gpa, 36, 0)
    assert h.mem.vread(va, 4) == b"XSDT"
    assert h.call("MmGetPhysicalAddress", va) == h.m.acpi.root_gpa
    h.call("MmUnmapIoSpace", va, 36)
    assert h.mem.translate(va) is None
    with pytest.raises(RunStop):
        h.call("MmUnmapIoSpace", va, 36)


@case("MmAllocateContiguousMemorySpecifyCache", "MmAllocateContiguousMemory", "MmFreeContiguousMemory",
      "MmFreeContiguousMemorySpecifyCache")
def _contiguous(h: H):
    va = h.call("MmAllocateContiguousMemorySpecifyCache", 0x3000, 0, 0xFFFFFFFF, 0, 1)
    pa = h.mem.translate(va)
    assert [h.mem.translate(va + i * 0x1000) for i in range(3)] == [pa, pa + 0x1000, pa + 0x2000]
    assert h.call("MmAllocateContiguousMemory", 0x1000, 0xFFFFF) == 0  # nothing free below 1 MB for the model
    va2 = h.call("MmAllocateContiguousMemory", 0x1000, 0xFFFFFFFF)
    h.call("MmFreeContiguousMemory", va2)
    h.call("MmFreeContiguousMemorySpecifyCache", va, 0x3000, 1)
    assert h.mem.translate(va) is None


@case("IoAllocateMdl", "IoFreeMdl", "MmBuildMdlForNonPagedPool", "MmMapLockedPagesSpecifyCache",
      "MmUnmapLockedPages")
def _mdl(h: H):
    src = h.buf(0x2000)
    h.mem.vwrite(src + 0x10, b"hello")
    mdl = h.call("IoAllocateMdl", src + 0x10, 0x1800, 0, 0, 0)
    assert h.u(mdl + 0x28, 4) == 0x1800 and h.u(mdl + 0x2C, 4) == 0x10 and h.u(mdl + 0x20) == src
    h.call("MmBuildMdlForNonPagedPool", mdl)
    assert h.u(mdl + 0x30) == h.mem.translate(src) >> 12
    va = h.call("MmMapLockedPagesSpecifyCache", mdl, 0, 1, 0, 0, 16)
    assert h.mem.vread(va, 5) == b"hello" and h.u(mdl + 0xA, 2) & 1
    h.call("MmUnmapLockedPages", va, mdl)
    h.call("IoFreeMdl", mdl)


@case("MmAllocatePagesForMdl", "MmFreePagesFromMdl", "MmAllocateMappingAddress", "MmMapLockedPagesWithReservedMapping",
      "MmUnmapReservedMapping", "MmFreeMappingAddress")
def _reserved(h: H):
    mdl = h.call("MmAllocatePagesForMdl", 0, 0xFFFFFFFF, 0, 0x2000)
    assert mdl and h.u(mdl + 0x28, 4) == 0x2000
    area = h.call("MmAllocateMappingAddress", 0x4000, 0x676E614D)
    va = h.call("MmMapLockedPagesWithReservedMapping", area, 0x676E614D, mdl, 1)
    assert va == area and h.mem.translate(area) == h.u(mdl + 0x30) << 12
    h.call("MmUnmapReservedMapping", area, 0x676E614D, mdl)
    assert h.mem.translate(area) is None
    h.call("MmFreeMappingAddress", area, 0x676E614D)
    h.call("MmFreePagesFromMdl", mdl)
    with pytest.raises(RunStop):
        h.call("MmFreePagesFromMdl", mdl)


@case("MmIsVerifierEnabled", "MmLockPagableDataSection", "MmLockPagableSectionByHandle",
      "MmUnlockPagableImageSection")
def _mm_misc(h: H):
    flags = h.buf(4)
    h.mem.vput(flags, 4, 0xFF)
    assert h.call("MmIsVerifierEnabled", flags) & 0xFFFFFFFF == 0xC00000BB and h.u(flags, 4) == 0
    handle = h.call("MmLockPagableDataSection", 0x1234)
    assert handle == 0x1234
    h.call("MmLockPagableSectionByHandle", handle)
    h.call("MmUnlockPagableImageSection", handle)
    assert len(h.records("MmUnlockPagableImageSection")) == 1


# ---------------------------------------------------------------------------------------------------- io, ob, po, ps
# DriverEntry(DriverObject, RegistryPath): DriverObject->DriverExtension->AddDevice = 0x1111; return 0.
DRIVER_ENTRY = bytes.fromhex("488b4130" "48c7400811110000" "31c0" "c3")


@case("IoCreateDriver", "IoCreateDevice", "IoDeleteDevice", "IoAttachDeviceToDeviceStack", "IoReportDetectedDevice",
      "IofCallDriver", "IoCallDriver", "IofCompleteRequest", "IoCompleteRequest", "PoCallDriver",
      "PoStartNextPowerIrp", "ObfReferenceObject", "ObfDereferenceObject")
def _drivers(h: H):
    k = h.k
    assert h.call("IoCreateDriver", h.ustr("\\Driver\\Test"), h.code(DRIVER_ENTRY)) & 0xFFFFFFFF == 0
    drv = next(iter(k.state["io"]["drivers"]))
    assert h.u(h.u(drv + 0x30) + 8) == 0x1111  # the entry point ran
    assert h.call("IoCreateDriver", h.ustr("\\Driver\\Test"), h.code(DRIVER_ENTRY)) & 0xFFFFFFFF == 0xC0000035
    pdo_slot, fdo_slot = h.buf(8), h.buf(8)
    assert h.call("IoReportDetectedDevice", drv, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0, 0, 0, pdo_slot) == 0
    pdo = h.u(pdo_slot)
    assert h.call("IoCreateDevice", drv, 0x40, 0, 0x22, 0, 0, fdo_slot) & 0xFFFFFFFF == 0
    fdo = h.u(fdo_slot)
    assert h.u(fdo + 0x40) == fdo + ((k.L.size("device_object") + 15) & ~15)  # the extension follows the object
    assert h.u(fdo + 0x30, 4) & 0x80  # DO_DEVICE_INITIALIZING
    assert h.call("IoAttachDeviceToDeviceStack", fdo, pdo) == pdo
    assert h.u(pdo + 0x18) == fdo and h.u(fdo + 0x4C, 1) == 2
    assert h.call("ObfReferenceObject", fdo) == 2 and h.call("ObfDereferenceObject", fdo) == 1
    # An IRP through the stack: the FDO's driver (default major functions) completes it as invalid.
    from gen2sim.kernel import pnp

    status, _info = pnp.send(k, pdo, pnp.IRP_MN_START_DEVICE, 0)
    assert status == 0xC0000010  # STATUS_INVALID_DEVICE_REQUEST from the FDO's default dispatch
    for name in ("IofCallDriver", "IoCallDriver", "PoCallDriver"):
        irp = _irp(h, stack=1, major=0x1B, minor=0)
        assert h.call(name, pdo, irp) & 0xFFFFFFFF == 0  # the root PDO starts
        assert h.u(irp + 0x30, 4) == 0
    for name in ("IofCompleteRequest", "IoCompleteRequest"):
        irp = _irp(h, stack=2, major=0x1B, minor=0x13)
        # a completion routine in the lower location sets a flag: routine(Device, Irp, Context)
        done = h.buf(8)
        stack = irp + 0xD0
        h.mem.vwrite(stack + 0x38, struct.pack("<QQ", h.code(bytes.fromhex("49c70001000000" "31c0" "c3")), done))
        h.mem.vput(stack + 3, 1, 0xE0)  # SL_INVOKE_ON_SUCCESS | ERROR | CANCEL
        h.mem.vput(irp + 0x43, 1, 1)  # CurrentLocation 1: the first location is current
        h.mem.vput(irp + 0xB8, 8, stack)
        h.mem.vput(irp + 0x30, 4, 0)
        h.call(name, irp, 0)
        assert h.u(done) == 1
    h.call("PoStartNextPowerIrp", _irp(h, stack=1, major=0x16, minor=2))
    h.call("IoDeleteDevice", fdo)
    with pytest.raises(RunStop):
        h.call("IoDeleteDevice", fdo)


def _irp(h: H, *, stack: int, major: int, minor: int) -> int:
    irp = h.buf(0xD0 + 0x48 * stack)
    h.mem.vwrite(irp, struct.pack("<HH", 6, 0xD0 + 0x48 * stack))
    h.mem.vput(irp + 0x42, 1, stack)
    h.mem.vput(irp + 0x43, 1, stack + 1)
    h.mem.vput(irp + 0xB8, 8, irp + 0xD0 + 0x48 * stack)
    h.mem.vput(irp + 0x30, 4, 0xC00000BB)
    nxt = irp + 0xD0 + 0x48 * (stack - 1)
    h.mem.vwrite(nxt, bytes([major, minor]))
    return irp


@case("IoReportHalResourceUsage")
def _hal_resources(h: H):
    # CM_RESOURCE_LIST: 1 full descriptor, Internal bus 0, 2 partial descriptors.
    data = struct.pack("<I", 1) + struct.pack("<IIHHI", 0, 0, 1, 1, 2) + bytes(0x14 * 2)
    raw = h.buf()
    h.mem.vwrite(raw, data)
    assert h.call("IoReportHalResourceUsage", h.ustr("Test HAL"), raw, raw, len(data)) & 0xFFFFFFFF == 0
    assert h.k.state["io"]["hal_resources"] == {"hal_name": "Test HAL", "size": len(data), "descriptors": 2}
    from gen2sim.kernel import registry

    key = registry.get(h.k).find("\\Registry\\Machine\\HARDWARE\\RESOURCEMAP\\Hardware Abstraction Layer\\Test HAL")
    assert key.values[".raw"][2] == data


@case("IoGetStackLimits")
def _stack_limits(h: H):
    lo, hi = h.buf(8), h.buf(8)
    h.call("IoGetStackLimits", lo, hi)
    assert h.u(lo) <= h.k.stack_top < h.u(hi)


@case("ObCreateObject", "ObInsertObject", "ObReferenceObjectByPointer", "ObDereferenceObject", "ZwClose")
def _objects(h: H):
    otype = h.u(h.k.data["IoAdapterObjectType"]) if "IoAdapterObjectType" in h.k.data else None
    out, handle = h.buf(8), h.buf(8)
    assert h.call("ObCreateObject", 0, otype, 0, 0, 0, 0x40, 0, 0, out) & 0xFFFFFFFF == 0
    body = h.u(out)
    assert h.call("ObInsertObject", body, 0, 0, 1, 0, handle) & 0xFFFFFFFF == 0
    assert h.call("ObReferenceObjectByPointer", body, 0, otype, 0) & 0xFFFFFFFF == 0
    assert h.call("ObReferenceObjectByPointer", body, 0, otype + 8, 0) & 0xFFFFFFFF == 0xC0000024
    h.call("ObDereferenceObject", body)
    assert h.call("ZwClose", h.u(handle)) & 0xFFFFFFFF == 0
    assert h.call("ZwClose", h.u(handle)) & 0xFFFFFFFF == 0xC0000008


@case("PsGetCurrentProcessId", "PoSetHiberRange")
def _ps_po(h: H):
    h.k.phase = "phase0"
    assert h.call("PsGetCurrentProcessId") == 0
    h.k.phase = "phase1"
    assert h.call("PsGetCurrentProcessId") == 4
    h.call("PoSetHiberRange", 0, 1, 0x1000, 0x2000, 0x6C6C6148)
    assert h.k.state["hiber_ranges"] == [(1, 0x1000, 0x2000, 0x6C6C6148)]


# ---------------------------------------------------------------------------------------------------- zw (registry)
@case("ZwOpenKey", "ZwCreateKey", "ZwQueryValueKey", "ZwSetValueKey", "ZwDeleteValueKey", "ZwEnumerateValueKey",
      "ZwQueryKey")
def _registry(h: H):
    hk = h.buf(8)
    crash = "\\Registry\\Machine\\System\\CurrentControlSet\\Control\\CrashControl"
    assert h.call("ZwOpenKey", hk, 0x20019, h.attrs(crash)) & 0xFFFFFFFF == 0
    key = h.u(hk)
    buf, rlen = h.buf(), h.buf(4)
    assert h.call("ZwQueryValueKey", key, h.ustr("NMICrashDump"), 2, buf, 0x10, rlen) & 0xFFFFFFFF == 0xC0000034
    assert h.call("ZwOpenKey", hk, 0, h.attrs("\\Registry\\Machine\\Nope")) & 0xFFFFFFFF == 0xC0000034
    disp, pnp = h.buf(4), h.buf(8)
    assert h.call("ZwCreateKey", pnp, 0, h.attrs("Pnp", key), 0, 0, 0, disp) & 0xFFFFFFFF == 0
    assert h.u(disp, 4) == 1  # created
    assert h.call("ZwCreateKey", pnp, 0, h.attrs("Pnp", key), 0, 0, 0, disp) & 0xFFFFFFFF == 0 and h.u(disp, 4) == 2
    assert h.call("ZwCreateKey", pnp, 0, h.attrs("A\\B", key), 0, 0, 0, disp) & 0xFFFFFFFF == 0xC0000034
    value = h.buf(4)
    h.mem.vput(value, 4, 0x1234)
    assert h.call("ZwSetValueKey", key, h.ustr("NMICrashDump"), 0, 4, value, 4) & 0xFFFFFFFF == 0
    assert h.call("ZwQueryValueKey", key, h.ustr("nmicrashdump"), 2, buf, 0x10, rlen) & 0xFFFFFFFF == 0
    assert h.u(rlen, 4) == 0x10 and struct.unpack("<IIII", h.mem.vread(buf, 16)) == (0, 4, 4, 0x1234)
    assert h.call("ZwQueryValueKey", key, h.ustr("NMICrashDump"), 2, buf, 0xE, rlen) & 0xFFFFFFFF == 0x80000005
    assert h.call("ZwQueryValueKey", key, h.ustr("NMICrashDump"), 2, buf, 4, rlen) & 0xFFFFFFFF == 0xC0000023
    assert h.call("ZwQueryValueKey", key, h.ustr("NMICrashDump"), 1, buf, 0x100, rlen) & 0xFFFFFFFF == 0
    assert h.mem.vread(buf + 0x14, 24).decode("utf-16-le") == "NMICrashDump"
    assert h.call("ZwEnumerateValueKey", key, 0, 0, buf, 0x100, rlen) & 0xFFFFFFFF == 0
    assert h.mem.vread(buf + 0xC, 24).decode("utf-16-le") == "NMICrashDump"
    assert h.call("ZwEnumerateValueKey", key, 1, 0, buf, 0x100, rlen) & 0xFFFFFFFF == 0x8000001A
    assert h.call("ZwQueryKey", key, 2, buf, 0x100, rlen) & 0xFFFFFFFF == 0
    assert h.u(buf + 0x14, 4) == 1 and h.u(buf + 0x20, 4) == 1  # SubKeys (Pnp), Values
    assert h.call("ZwQueryKey", key, 0, buf, 0x100, rlen) & 0xFFFFFFFF == 0
    assert h.mem.vread(buf + 0x10, h.u(buf + 0xC, 4)).decode("utf-16-le") == "CrashControl"
    assert h.call("ZwDeleteValueKey", key, h.ustr("NMICrashDump")) & 0xFFFFFFFF == 0
    assert h.call("ZwDeleteValueKey", key, h.ustr("NMICrashDump")) & 0xFFFFFFFF == 0xC0000034
    # The kernel's hardware tree: the ACPI BIOS adapter.
    hw = "\\Registry\\Machine\\HARDWARE\\DESCRIPTION\\System\\MultiFunctionAdapter\\0"
    assert h.call("ZwOpenKey", hk, 0, h.attrs(hw)) & 0xFFFFFFFF == 0
    assert h.call("ZwQueryValueKey", h.u(hk), h.ustr("Identifier"), 2, buf, 0x100, rlen) & 0xFFFFFFFF == 0
    assert h.mem.vread(buf + 0xC, 18).decode("utf-16-le") == "ACPI BIOS"
    with pytest.raises(RunStop) as info:
        h.call("ZwOpenKey", hk, 0, h.attrs(crash), irql=2)
    if h.tgt.name == "win7sp1-amd64":
        assert info.value.verdict["bugcheck"]["code"] == 0xC4
        assert info.value.verdict["bugcheck"]["params"][0] == 0x2001F
    else:
        assert info.value.verdict["fault"]["kind"] == "checked-assert"


# ---------------------------------------------------------------------------------------------------- rtl
@case("RtlInitUnicodeString", "RtlInitString", "RtlCompareUnicodeString", "RtlEqualString",
      "RtlIntegerToUnicodeString")
def _strings(h: H):
    us = h.buf(16)
    src = h.wstr("Hello")
    h.call("RtlInitUnicodeString", us, src)
    assert struct.unpack("<HHxxxxQ", h.mem.vread(us, 16)) == (10, 12, src)
    h.call("RtlInitUnicodeString", us, 0)
    assert struct.unpack("<HHxxxxQ", h.mem.vread(us, 16)) == (0, 0, 0)
    s1, s2 = h.buf(16), h.buf(16)
    h.call("RtlInitString", s1, h.cstr("abc"))
    h.call("RtlInitString", s2, h.cstr("ABC"))
    assert h.u(s1, 2) == 3 and h.u(s1 + 2, 2) == 4
    assert h.call("RtlEqualString", s1, s2, 0) & 0xFF == 0 and h.call("RtlEqualString", s1, s2, 1) & 0xFF == 1
    a, b = h.ustr("apple"), h.ustr("APPLE")
    assert S32(h.call("RtlCompareUnicodeString", a, b, 1) & 0xFFFFFFFF) == 0
    assert S32(h.call("RtlCompareUnicodeString", a, b, 0) & 0xFFFFFFFF) > 0
    out = h.buf(16)
    buf = h.buf(32)
    h.mem.vwrite(out, struct.pack("<HHxxxxQ", 0, 32, buf))
    assert h.call("RtlIntegerToUnicodeString", 255, 16, out) & 0xFFFFFFFF == 0
    assert h.mem.vread(buf, 4).decode("utf-16-le") == "FF" and h.u(out, 2) == 4
    assert h.call("RtlIntegerToUnicodeString", 12345, 0, out) & 0xFFFFFFFF == 0
    assert h.mem.vread(buf, 10).decode("utf-16-le") == "12345"
    h.mem.vwrite(out, struct.pack("<HHxxxxQ", 0, 4, buf))
    assert h.call("RtlIntegerToUnicodeString", 12345, 10, out) & 0xFFFFFFFF == 0x80000005


@case("RtlCopyMemory", "RtlMoveMemory", "RtlCopyMemoryNonTemporal", "RtlZeroMemory", "RtlFillMemory",
      "RtlCompareMemory", "RtlConvertUlongToLargeInteger")
def _rtl_memory(h: H):
    a, b = h.buf(), h.buf()
    h.mem.vwrite(a, b"0123456789")
    h.call("RtlCopyMemory", b, a, 10)
    assert h.mem.vread(b, 10) == b"0123456789"
    h.call("RtlMoveMemory", a + 2, a, 5)
    assert h.mem.vread(a, 10) == b"0101234789"
    h.call("RtlCopyMemoryNonTemporal", b, a, 4)
    assert h.mem.vread(b, 4) == b"0101"
    h.call("RtlFillMemory", a, 3, 0x41)
    assert h.mem.vread(a, 4) == b"AAA1"
    assert h.call("RtlCompareMemory", a, b, 10) == 0
    h.call("RtlZeroMemory", a, 10)
    h.call("RtlZeroMemory", b, 3)
    assert h.call("RtlCompareMemory", a, b, 10) == 3
    assert h.call("RtlConvertUlongToLargeInteger", 0xFFFFFFFF) == 0xFFFFFFFF


@case("RtlInitializeBitMap", "RtlClearAllBits", "RtlSetAllBits", "RtlClearBits", "RtlSetBits", "RtlSetBit",
      "RtlClearBit", "RtlTestBit", "RtlAreBitsClear", "RtlFindClearBitsAndSet", "RtlFindFirstRunClear",
      "RtlFindNextForwardRunClear", "RtlNumberOfClearBits", "RtlFindLeastSignificantBit",
      "RtlNumberOfSetBitsUlongPtr")
def _bitmaps(h: H):
    hdr, bits, idx = h.buf(16), h.buf(16), h.buf(4)
    h.call("RtlInitializeBitMap", hdr, bits, 40)
    h.call("RtlSetAllBits", hdr)
    assert h.u(bits, 8) == (1 << 40) - 1
    h.call("RtlClearAllBits", hdr)
    h.call("RtlSetBits", hdr, 3, 4)
    h.call("RtlSetBit", hdr, 10)
    assert h.u(bits, 8) == 0b10001111000
    assert h.call("RtlTestBit", hdr, 10) & 0xFF == 1 and h.call("RtlTestBit", hdr, 9) & 0xFF == 0
    h.call("RtlClearBit", hdr, 10)
    h.call("RtlClearBits", hdr, 3, 1)
    assert h.u(bits, 8) == 0b1110000
    assert h.call("RtlAreBitsClear", hdr, 7, 30) & 0xFF == 1 and h.call("RtlAreBitsClear", hdr, 6, 2) & 0xFF == 0
    assert h.call("RtlNumberOfClearBits", hdr) & 0xFFFFFFFF == 37
    assert h.call("RtlFindFirstRunClear", hdr, idx) & 0xFFFFFFFF == 4 and h.u(idx, 4) == 0
    assert h.call("RtlFindNextForwardRunClear", hdr, 5, idx) & 0xFFFFFFFF == 33 and h.u(idx, 4) == 7
    assert h.call("RtlFindClearBitsAndSet", hdr, 3, 0) & 0xFFFFFFFF == 0
    assert h.call("RtlFindClearBitsAndSet", hdr, 2, 5) & 0xFFFFFFFF == 7
    assert h.call("RtlFindClearBitsAndSet", hdr, 50, 0) & 0xFFFFFFFF == 0xFFFFFFFF
    assert h.call("RtlFindLeastSignificantBit", 0x50) & 0xFF == 4
    assert h.call("RtlFindLeastSignificantBit", 0) & 0xFF == 0xFF
    assert h.call("RtlNumberOfSetBitsUlongPtr", 0xF0F0) & 0xFF == 8


@case("RtlTimeFieldsToTime", "RtlTimeToTimeFields")
def _time(h: H):
    tf, t = h.buf(16), h.buf(8)
    h.mem.vwrite(tf, struct.pack("<8H", 2026, 1, 1, 0, 0, 0, 0, 0))
    assert h.call("RtlTimeFieldsToTime", tf, t) & 0xFF == 1
    # 1970-01-01 is 116444736000000000 after 1601-01-01; 2026-01-01 is Unix time 1767225600.
    assert h.u(t) == 116_444_736_000_000_000 + 1_767_225_600 * 10_000_000
    h.call("RtlTimeToTimeFields", t, tf)
    assert struct.unpack("<8H", h.mem.vread(tf, 16)) == (2026, 1, 1, 0, 0, 0, 0, 4)  # a Thursday
    h.mem.vwrite(tf, struct.pack("<8H", 2026, 2, 30, 0, 0, 0, 0, 0))
    assert h.call("RtlTimeFieldsToTime", tf, t) & 0xFF == 0


@case("RtlCmEncodeMemIoResource")
def _encode(h: H):
    d = h.buf(0x14)
    assert h.call("RtlCmEncodeMemIoResource", d, 3, 0x1000, 0xFEC00000) & 0xFFFFFFFF == 0
    assert h.u(d, 1) == 3 and h.u(d + 4) == 0xFEC00000 and h.u(d + 0xC, 4) == 0x1000
    assert h.call("RtlCmEncodeMemIoResource", d, 3, 0x2_0000_0000, 0) & 0xFFFFFFFF == 0
    assert h.u(d, 1) == 7 and h.u(d + 2, 2) & 0x200 and h.u(d + 0xC, 4) == 0x2_0000_0000 >> 8
    assert h.call("RtlCmEncodeMemIoResource", d, 3, 0x2_0000_0001, 0) & 0xFFFFFFFF == 0xC000000D


@case("RtlAssert")
def _assert(h: H):
    with pytest.raises(RunStop) as info:
        h.call("RtlAssert", h.cstr("x != 0"), h.cstr("hal.c"), 42, 0)
    assert info.value.verdict["fault"]["kind"] == "checked-assert"
    assert "ASSERT(x != 0) failed at hal.c:42" in info.value.verdict["fault"]["detail"]


# ---------------------------------------------------------------------------------------------------- crt
@case("_stricmp", "_wcsicmp", "strncmp", "strstr", "strncpy", "strncpy_s", "strlen", "wcslen", "atoi", "wcstoul")
def _crt_strings(h: H):
    assert h.call("_stricmp", h.cstr("Acpi"), h.cstr("ACPI")) & 0xFFFFFFFF == 0
    assert S32(h.call("_stricmp", h.cstr("a"), h.cstr("B")) & 0xFFFFFFFF) < 0
    assert h.call("_wcsicmp", h.wstr("Pci"), h.wstr("PCI")) & 0xFFFFFFFF == 0
    assert h.call("strncmp", h.cstr("PCILOCK"), h.cstr("PCIX"), 3) & 0xFFFFFFFF == 0
    opts = h.cstr("DEBUG PCILOCK")
    assert h.call("strstr", opts, h.cstr("PCILOCK")) == opts + 6 and h.call("strstr", opts, h.cstr("X")) == 0
    d = h.buf(16)
    h.mem.vwrite(d, b"\xff" * 16)
    assert h.call("strncpy", d, h.cstr("ab"), 4) == d and h.mem.vread(d, 5) == b"ab\0\0\xff"
    assert h.call("strncpy_s", d, 4, h.cstr("abcdef"), 2**64 - 1) & 0xFFFFFFFF == 80  # STRUNCATE
    assert h.mem.vread(d, 4) == b"abc\0"
    assert h.call("strncpy_s", d, 4, h.cstr("abcdef"), 6) & 0xFFFFFFFF == 34  # ERANGE
    assert h.call("strlen", h.cstr("12345")) == 5 and h.call("wcslen", h.wstr("123")) == 3
    assert h.call("atoi", h.cstr("  -42x")) & 0xFFFFFFFF == (-42) & 0xFFFFFFFF
    end = h.buf(8)
    s = h.wstr("0x1F z")
    assert h.call("wcstoul", s, end, 0) & 0xFFFFFFFF == 31 and h.u(end) == s + 8


@case("_vsnprintf", "_vsnwprintf", "_snwprintf", "sprintf", "swprintf", "DbgPrint", "DbgPrintEx")
def _formatting(h: H):
    out, args = h.buf(), h.buf()
    h.mem.vwrite(args, struct.pack("<QQQ", 42, h.cstr("hal"), 0xAB))
    assert h.call("_vsnprintf", out, 64, h.cstr("%d-%s|%04x"), args) & 0xFFFFFFFF == 11
    assert h.mem.vread(out, 12) == b"42-hal|00ab\0"
    assert h.call("_vsnprintf", out, 4, h.cstr("%d-%s|%04x"), args) & 0xFFFFFFFF == 0xFFFFFFFF  # truncated: -1
    h.mem.vwrite(args, struct.pack("<QQ", 7, h.wstr("Wide")))
    assert h.call("_vsnwprintf", out, 64, h.wstr("%u:%s"), args) & 0xFFFFFFFF == 6
    assert h.mem.vread(out, 14).decode("utf-16-le") == "7:Wide\0"
    assert h.call("_snwprintf", out, 64, h.wstr("%x"), 255) & 0xFFFFFFFF == 2
    assert h.mem.vread(out, 4).decode("utf-16-le") == "ff"
    assert h.call("sprintf", out, h.cstr("%s=%d"), h.cstr("a"), 5) & 0xFFFFFFFF == 3
    assert h.mem.vread(out, 4) == b"a=5\0"
    assert h.call("swprintf", out, h.wstr("%d"), 12) & 0xFFFFFFFF == 2
    h.call("DbgPrint", h.cstr("x=%d %s %p\n"), 5, h.cstr("y"), 0x10)
    h.call("DbgPrintEx", 77, 0, h.cstr("%I64x|%c\n"), 1 << 40, ord("Z"))
    assert h.k.debug_output == ["x=5 y 0000000000000010\n", "10000000000|Z\n"]
    assert [r["detail"] for r in h.records("DbgPrint")] == ["DbgPrint 'x=5 y 0000000000000010\\n'"]


@case("memcpy", "memmove", "memset", "memcmp")
def _crt_memory(h: H):
    a, b = h.buf(), h.buf()
    assert h.call("memset", a, 0x1FF, 4) == a and h.mem.vread(a, 5) == b"\xff\xff\xff\xff\0"
    assert h.call("memcpy", b, a, 4) == b
    assert h.call("memcmp", a, b, 4) & 0xFFFFFFFF == 0
    h.call("memmove", a + 1, a, 4)
    assert S32(h.call("memcmp", a, b, 5) & 0xFFFFFFFF) > 0


@case("_setjmp", "longjmp")
def _setjmp(h: H):
    jb = h.buf(0x100)
    sj, lj = h.k.import_address("_setjmp"), h.k.import_address("longjmp")
    # f(): if (_setjmp(jb, 0) == 0) longjmp(jb, 7); return the second result.
    code = (bytes.fromhex("4883ec28")  # sub rsp, 0x28
            + bytes.fromhex("48b9") + struct.pack("<Q", jb) + bytes.fromhex("31d2")  # mov rcx, jb; xor edx, edx
            + bytes.fromhex("48b8") + struct.pack("<Q", sj) + bytes.fromhex("ffd0")  # call _setjmp
            + bytes.fromhex("85c0") + bytes.fromhex("751b")  # test eax, eax; jnz done (+0x1b)
            + bytes.fromhex("48b9") + struct.pack("<Q", jb) + bytes.fromhex("ba07000000")  # mov rcx, jb; edx = 7
            + bytes.fromhex("48b8") + struct.pack("<Q", lj) + bytes.fromhex("ffd0")  # call longjmp
            + bytes.fromhex("4883c428c3"))  # done: add rsp, 0x28; ret
    assert h.m.cpu.call(h.code(code)) & 0xFFFFFFFF == 7
    assert h.u(jb + 0x50) != 0  # the saved return address


# ---------------------------------------------------------------------------------------------------- kd, inbv, etw
@case("DbgBreakPoint", "DbgBreakPointWithStatus")
def _breakpoints(h: H):
    for name, args in (("DbgBreakPoint", ()), ("DbgBreakPointWithStatus", (1,))):
        hh = H(h.tgt.name)
        with pytest.raises(RunStop) as info:
            hh.call(name, *args)
        assert info.value.verdict["bugcheck"]["code"] == 0x1E
        assert info.value.verdict["bugcheck"]["params"][0] == 0x80000003


@case("KdRestore")
def _kd_restore(h: H):
    assert h.call("KdRestore", 0) & 0xFFFFFFFF == 0


@case("InbvAcquireDisplayOwnership", "InbvCheckDisplayOwnership", "InbvEnableDisplayString",
      "InbvInstallDisplayStringFilter", "InbvIsBootDriverInstalled", "InbvResetDisplay", "InbvDisplayString",
      "InbvSetScrollRegion", "InbvSetTextColor", "InbvSolidColorFill")
def _inbv(h: H):
    assert h.call("InbvIsBootDriverInstalled") & 0xFF == 0 and h.call("InbvResetDisplay") & 0xFF == 0
    h.call("InbvAcquireDisplayOwnership")
    assert h.call("InbvCheckDisplayOwnership") & 0xFF == 1
    assert h.call("InbvDisplayString", h.cstr("Hardware Malfunction\r\n")) & 0xFF == 1
    assert h.call("InbvEnableDisplayString", 0) & 0xFF == 1
    h.call("InbvDisplayString", h.cstr("hidden"))
    h.call("InbvEnableDisplayString", 1)
    # A filter that replaces the string pointer with its own: *Str = replacement.
    repl = h.cstr("filtered")
    flt = h.code(bytes.fromhex("48b8") + struct.pack("<Q", repl) + bytes.fromhex("488901c3"))
    h.call("InbvInstallDisplayStringFilter", flt)
    h.call("InbvDisplayString", h.cstr("raw"))
    assert h.k.display_output == ["Hardware Malfunction\r\n", "filtered"]
    assert "[display] filtered" in h.k.debug_output
    h.call("InbvSetScrollRegion", 0, 0, 639, 479)
    assert h.call("InbvSetTextColor", 4) & 0xFFFFFFFF == 15
    h.call("InbvSolidColorFill", 0, 0, 639, 479, 1)
    assert h.k.state["inbv"]["scroll"] == (0, 0, 639, 479) and h.k.state["inbv"]["fills"] == 1


@case("EtwRegister", "EtwEventEnabled", "EtwWrite")
def _etw(h: H):
    guid, handle = h.buf(16), h.buf(8)
    h.mem.vwrite(guid, bytes(range(16)))
    assert h.call("EtwRegister", guid, 0, 0, handle) & 0xFFFFFFFF == 0 and h.u(handle)
    assert h.call("EtwEventEnabled", h.u(handle), h.buf(16)) & 0xFF == 0
    assert h.call("EtwWrite", h.u(handle), h.buf(16), 0, 0, 0) & 0xFFFFFFFF == 0


# ---------------------------------------------------------------------------------------------------- tests
def _offered(target: str) -> set[str]:
    tgt = specs.load_target(target)
    catalog.load_all()
    return {n for n, e in EXPORTS.items() if e.behaviour is not None and n in tgt.allowed_imports}


def test_every_behaviour_has_a_case():
    missing = sorted((set().union(*(_offered(t) for t in TARGETS))) - set(CASES))
    assert not missing, f"exports with behaviour but no test case: {missing}"


def _cases() -> list:
    """One parameter per (target, case): only exports the target's kernel offers, and a case that covers several
    exports runs once, named after all of them (no skipped or trivially passing parameters)."""
    out = []
    for target in TARGETS:
        allowed = specs.load_target(target).allowed_imports
        by_case: dict = {}
        for name in sorted(CASES):
            if name in allowed:
                by_case.setdefault(CASES[name], []).append(name)
        for fn, names in by_case.items():
            out.append(pytest.param(target, fn, id=f"{target}-{'+'.join(names)}"))
    return out


@pytest.mark.parametrize("target,case", _cases())
def test_export(target, case):
    case(H(target))


def _declared_only() -> list[tuple[str, str]]:
    catalog.load_all()
    out = []
    for target in TARGETS:
        allowed = specs.load_target(target).allowed_imports
        out += [(target, n) for n, e in sorted(EXPORTS.items()) if e.behaviour is None and n in allowed]
    return out


@pytest.mark.parametrize("target,name", _declared_only())
def test_declared_without_behaviour_faults_naming_it(target, name):
    h = H(target)
    with pytest.raises(RunStop) as info:
        h.call(name, 1, 2, 3, 4, 5, 6)
    fault = info.value.verdict["fault"]
    assert fault["kind"] == "unimplemented-import" and name in fault["detail"] and EXPORTS[name].why in fault["detail"]
    assert h.records(name)[0]["args"] is not None  # the call was recorded with its named arguments first


def test_variables_of_the_hal_lists_are_declared():
    catalog.load_all()
    for target in TARGETS:
        tgt = specs.load_target(target)
        missing = sorted(n for n in catalog.hal_imports(tgt) if n in tgt.data_imports and n not in VARIABLES)
        assert not missing, (target, missing)


def test_undeclared_variable_access_faults_naming_it():
    h = H("reactos-amd64")
    name = "NlsMbCodePageTag"  # an ntoskrnl variable the model does not declare
    assert name in h.tgt.data_imports and name not in VARIABLES
    code = h.code(bytes.fromhex("48a1") + h.k.data[name].to_bytes(8, "little") + bytes.fromhex("c3"))
    with pytest.raises(RunStop) as info:
        h.m.cpu.call(code)
    fault = info.value.verdict["fault"]
    assert fault["kind"] == "unimplemented-import" and name in fault["detail"]


@pytest.mark.parametrize("target", TARGETS)
def test_listing_counts(target):
    listing = catalog.listing(specs.load_target(target))
    rows = {r["name"]: r for r in listing["imports"]}
    hal = [r for r in listing["imports"] if r["in_hal_imports"]]
    assert listing["counts"]["hal_imports"]["total"] == len(hal) == listing["hal_imports_list"]
    assert listing["counts"]["hal_imports"]["undeclared"] == 0
    assert rows["KeBugCheckEx"]["prototype"].startswith("VOID KeBugCheckEx(ULONG BugCheckCode")
    assert rows["KeBugCheckEx"]["status"] == "behaviour"
    for r in listing["imports"]:
        assert (r["status"] == "fails") == (r.get("why") is not None) or r["kind"] == "variable"


def test_kernel_imports_cli(tmp_path):
    out = tmp_path / "ki.json"
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "kernel-imports", "--target", "reactos-amd64",
                           "--json", str(out)], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr
    assert "reactos-amd64:" in proc.stdout and "HAL import list" in proc.stdout
    import json

    data = json.loads(out.read_text())
    assert data["target"] == "reactos-amd64" and data["hal_imports_list"] == 82
