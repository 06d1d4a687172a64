/*
 * memory.c -- mapping physical memory before the memory manager exists.
 *
 * In phase 0 the HAL must reach ACPI tables and the IOAPIC, but Mm cannot map yet. Like the NT-family HALs, we
 * own a window of kernel VA (ADDR_HAL_VA_START, ADDR_HAL_VA_SIZE bytes; the loader built the page-table levels
 * above it) and write its PTEs ourselves through the page-table self-map: the PTE of virtual address VA lives at
 * ADDR_PTE_BASE + ((VA >> 9) & 0x7FFFFFFFF8). Free pages are those whose PTE is not present, so an unmapped
 * range is reused by the next request (first fit). Phase 0 and the clock path run on one processor with no
 * concurrent mapper, so no lock is taken.
 */
#include "halp.h"

#define HALP_VA_PAGES ((ULONG)(ADDR_HAL_VA_SIZE / PAGE_SIZE))

static volatile ULONG64 *HalpPteAddress(ULONG_PTR VirtualAddress)
{
    return (volatile ULONG64 *)(ULONG_PTR)(ADDR_PTE_BASE + ((VirtualAddress >> 9) & 0x7FFFFFFFF8ULL));
}

static ULONG_PTR HalpPageVa(ULONG Page)
{
    return (ULONG_PTR)ADDR_HAL_VA_START + (ULONG_PTR)Page * PAGE_SIZE;
}

PVOID HalpMapPhysicalMemory64(PHYSICAL_ADDRESS PhysicalAddress, ULONG PageCount, BOOLEAN Uncached)
{
    ULONG First, Run, Page;
    ULONG64 Frame, Attributes;

    if (PageCount == 0 || PageCount > HALP_VA_PAGES)
        goto Exhausted;

    /* First fit: the lowest run of PageCount pages whose PTEs are not present. */
    Run = 0;
    First = 0;
    for (Page = 0; Page < HALP_VA_PAGES && Run < PageCount; Page++)
    {
        if (*HalpPteAddress(HalpPageVa(Page)) & PTE_PRESENT)
        {
            Run = 0;
            First = Page + 1;
        }
        else
        {
            Run++;
        }
    }
    if (Run < PageCount)
        goto Exhausted;

    Frame = (ULONG64)PhysicalAddress.QuadPart & PTE_FRAME_MASK;
    Attributes = PTE_PRESENT | PTE_WRITE | (Uncached ? (PTE_CACHE_DISABLE | PTE_WRITE_THROUGH) : 0);
    for (Page = 0; Page < PageCount; Page++)
    {
        ULONG_PTR Va = HalpPageVa(First + Page);

        *HalpPteAddress(Va) = (Frame + (ULONG64)Page * PAGE_SIZE) | Attributes;
        __invlpg((PVOID)Va);
    }
    return (PVOID)(HalpPageVa(First) + ((ULONG_PTR)PhysicalAddress.QuadPart & (PAGE_SIZE - 1)));

Exhausted:
    /* The window is fixed; running out means the tables are far larger than any legacy PC's. */
    KeBugCheckEx(HALP_BUGCHECK_HAL_MEMORY_ALLOCATION, (ULONG_PTR)PageCount * PAGE_SIZE, 0, 0, 0);
}

VOID HalpUnmapVirtualAddress(PVOID VirtualAddress, ULONG PageCount)
{
    ULONG_PTR Va = (ULONG_PTR)VirtualAddress & ~(ULONG_PTR)(PAGE_SIZE - 1);
    ULONG Page;

    for (Page = 0; Page < PageCount; Page++, Va += PAGE_SIZE)
    {
        /* Only our own window: anything else was not mapped here. */
        if (Va < (ULONG_PTR)ADDR_HAL_VA_START || Va >= (ULONG_PTR)(ADDR_HAL_VA_START + ADDR_HAL_VA_SIZE))
            continue;
        *HalpPteAddress(Va) = 0;
        __invlpg((PVOID)Va);
    }
}
