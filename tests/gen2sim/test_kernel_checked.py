"""The model's checked kernel: HALs built by hand that break a kernel rule end with the documented bug check.

Each HAL below is a few lines of C compiled with mingw-w64 (exports HalInitializeProcessor and HalInitSystem only;
the misuse happens in HalInitSystem before any other export is needed).  The rules and their codes live in
``specs/bugchecks.toml`` ``[[checked]]``; a target enforces those its ``[kernel.checked]`` lists.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from gen2sim.scenario import boot  # noqa: E402

pytestmark = pytest.mark.skipif(not build.toolchain_present(), reason="mingw-w64 not installed")

IMPORTS = ("ExAllocatePoolWithTag", "ExFreePoolWithTag", "KeAcquireSpinLockRaiseToDpc", "KeReleaseSpinLock",
           "KeAcquireSpinLockAtDpcLevel", "KeReleaseSpinLockFromDpcLevel", "ZwClose", "ExAcquireFastMutex",
           "ExReleaseFastMutex")

SOURCE = r"""
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;
__declspec(dllimport) void *ExAllocatePoolWithTag(u32 PoolType, u64 Bytes, u32 Tag);
__declspec(dllimport) void ExFreePoolWithTag(void *P, u32 Tag);
__declspec(dllimport) u8 KeAcquireSpinLockRaiseToDpc(u64 *Lock);
__declspec(dllimport) void KeReleaseSpinLock(u64 *Lock, u8 NewIrql);
__declspec(dllimport) void KeAcquireSpinLockAtDpcLevel(u64 *Lock);
__declspec(dllimport) void KeReleaseSpinLockFromDpcLevel(u64 *Lock);
__declspec(dllimport) int ZwClose(void *Handle);
__declspec(dllimport) void ExAcquireFastMutex(void *FastMutex);
__declspec(dllimport) void ExReleaseFastMutex(void *FastMutex);

#define TAG 0x74736554u /* 'Test' */
static u64 Lock;
static volatile u64 Sink;
static u64 FastMutex[7] = {1};

static void SetIrql(u64 Irql) { __asm__ volatile("mov %0, %%cr8" : : "r"(Irql) : "memory"); }

__declspec(dllexport) void HalInitializeProcessor(u32 Number, void *LoaderBlock) { }

__declspec(dllexport) u8 HalInitSystem(u32 Phase, void *LoaderBlock)
{
    if (Phase != MISUSE_PHASE) return 1;
    SetIrql(START_IRQL);
#if defined(DOUBLE_FREE)
    void *p = ExAllocatePoolWithTag(0, 64, TAG);
    ExFreePoolWithTag(p, TAG);
    ExFreePoolWithTag(p, TAG);
#elif defined(BAD_FREE)
    ExFreePoolWithTag((void *)&Lock, TAG);
#elif defined(LOCK_NOT_HELD)
    SetIrql(2);
    KeReleaseSpinLockFromDpcLevel(&Lock);
#elif defined(LOCK_TWICE)
    KeAcquireSpinLockRaiseToDpc(&Lock);
    KeAcquireSpinLockAtDpcLevel(&Lock);
#elif defined(RELEASE_AT_HIGH)
    u8 old = KeAcquireSpinLockRaiseToDpc(&Lock);
    SetIrql(15);
    KeReleaseSpinLock(&Lock, old);
#elif defined(ZW_AT_HIGH)
    SetIrql(15);
    ZwClose((void *)4);
#elif defined(PAGED_AT_HIGH)
    SetIrql(3);
    ExAllocatePoolWithTag(1, 64, TAG);
#elif defined(NONPAGED_AT_HIGH)
    SetIrql(13);
    ExAllocatePoolWithTag(0, 64, TAG);
#elif defined(PAGED_TOUCH)
    volatile u64 *p = ExAllocatePoolWithTag(1, 64, TAG);
    p[0] = 1;
    SetIrql(2);
    p[1] = 2;
#elif defined(MUTEX_NOT_OWNED)
    SetIrql(1);
    ExReleaseFastMutex(FastMutex);
#endif
    Sink = 1;
    return 1;
}
"""


def build_hal(tmp_path: Path, target: str, misuse: str, phase: int, start_irql: int) -> Path:
    """Compile the test HAL with ``misuse`` in HalInitSystem(``phase``), which first sets CR8 to ``start_irql``,
    against an import library of IMPORTS."""
    return build.build_probe_hal(tmp_path / misuse.lower(), SOURCE, IMPORTS, misuse, f"MISUSE_PHASE={phase}",
                                 f"START_IRQL={start_irql}")


@pytest.mark.parametrize("target,misuse,phase,start,code,p1", [
    # Pool (Driver Verifier's pool tracking, both targets).
    ("reactos-amd64", "DOUBLE_FREE", 1, 0, 0xC4, 0x13),
    ("win7sp1-amd64", "DOUBLE_FREE", 0, 0, 0xC4, 0x13),
    ("reactos-amd64", "BAD_FREE", 1, 0, 0xC4, 0x10),
    ("win7sp1-amd64", "PAGED_AT_HIGH", 0, 0, 0xC4, 0x01),
    ("reactos-amd64", "NONPAGED_AT_HIGH", 1, 0, 0xC4, 0x02),
    # Spin locks (a checked kernel's ownership checks).
    ("reactos-amd64", "LOCK_NOT_HELD", 1, 0, 0x10, None),
    ("win7sp1-amd64", "LOCK_TWICE", 0, 0, 0x0F, None),
    # IRQL rules of DDI compliance checking (Windows 7 only).
    ("win7sp1-amd64", "RELEASE_AT_HIGH", 0, 0, 0xC4, 0x20015),
    ("win7sp1-amd64", "ZW_AT_HIGH", 0, 0, 0xC4, 0x2001F),
    # Paged pool touched at DISPATCH_LEVEL (Force IRQL Checking).
    ("reactos-amd64", "PAGED_TOUCH", 1, 0, 0x0A, None),
])
def test_checked_kernel_bugchecks(tmp_path, target, misuse, phase, start, code, p1):
    r = boot(build_hal(tmp_path, target, misuse, phase, start), target, "gen2").result
    assert r["verdict"] == "bugcheck", r.get("fault") or r.get("hang")
    bc = r["bugcheck"]
    assert bc["code"] == code, bc
    assert bc["function"].startswith("HalInitSystem")
    assert bc["checked"]["rule"] and bc["checked"]["source"]
    if p1 is not None:
        assert bc["params"][0] == p1
    if misuse in ("LOCK_NOT_HELD", "LOCK_TWICE"):
        assert bc["params"][0] != 0 and bc["params"][1:] == [0, 0, 0]  # the lock's address
    if misuse == "PAGED_TOUCH":
        assert bc["params"][1] == 2 and bc["params"][2] == 1  # IRQL 2, a write


def test_reactos_does_not_enforce_ddi_rules(tmp_path):
    """ReactOS's KeReleaseSpinLock lowers to any IRQL (its upstream HAL relies on it): no DDI rule there."""
    r = boot(build_hal(tmp_path, "reactos-amd64", "RELEASE_AT_HIGH", 1, 0), "reactos-amd64", "gen2").result
    assert r["verdict"] == "fault" and r["fault"]["kind"] == "missing-export"  # got past phase 1 to the idle loop


def test_fast_mutex_released_while_not_owned_is_an_assertion(tmp_path):
    r = boot(build_hal(tmp_path, "reactos-amd64", "MUTEX_NOT_OWNED", 1, 0), "reactos-amd64", "gen2").result
    assert r["verdict"] == "fault" and r["fault"]["kind"] == "checked-assert"
    assert "ExReleaseFastMutex" in r["fault"]["detail"] and r["fault"]["function"].startswith("HalInitSystem")
