"""Memory manager (Mm): I/O space mappings, physical addresses, contiguous memory, MDL mappings, reserved mappings.

Everything works on the model's real page tables: a mapping writes PTEs (``PageTables.map``), an unmapping clears
them through the page-table self-map and flushes the emulator's TLB, ``MmGetPhysicalAddress`` walks the tables.
Physical frames come from the model's frame allocator (physically contiguous, never reused).  Unmapping a range
the kernel did not map is the checked kernel's assertion.
"""

from __future__ import annotations

from ..errors import ModelError
from ..memory import PAGE
from . import checked
from .decl import export

MDL_MAPPED_TO_SYSTEM_VA = 0x0001
MDL_PAGES_LOCKED = 0x0002
MDL_SOURCE_IS_NONPAGED_POOL = 0x0004
MDL_ALLOCATED_FIXED_SIZE = 0x0008
MDL_PARTIAL = 0x0010
MDL_IO_SPACE = 0x0800
PTE_BASE_DEFAULT = 0xFFFF_F680_0000_0000


def _state(k) -> dict:
    return k.subsystem("mm", lambda: {"io": {}, "contiguous": {}, "mdl_maps": {}, "reserved": {}, "mdl_pages": {}})


def map_frames(k, frames: list[int], *, uncached: bool = False, va: int | None = None) -> int:
    """Map physical frames (page numbers) at a fresh (or the given) kernel VA range; returns the VA."""
    if va is None:
        va = k.alloc_va(len(frames) * PAGE)
    for i, pfn in enumerate(frames):
        k.mem.tables.map(va + i * PAGE, pfn * PAGE, PAGE, uncached=uncached)
    return va


def unmap(k, va: int, pages: int) -> None:
    """Clear the PTEs of ``pages`` pages at ``va`` (through the self-map) and flush the TLB."""
    pte_base = int(k.target.addresses.get("pte_base", PTE_BASE_DEFAULT))
    for i in range(pages):
        page = (va & ~(PAGE - 1)) + i * PAGE
        pte = pte_base + (((page & 0xFFFF_FFFF_FFFF) >> 12) << 3)
        if k.mem.translate(pte) is not None:
            k.mem.vput(pte, 8, 0)
    flush = getattr(k.cpu.uc, "ctl_flush_tlb", None)
    if flush is not None:
        flush()


def pages_spanned(va: int, length: int) -> int:
    """ADDRESS_AND_SIZE_TO_SPAN_PAGES."""
    return ((va & (PAGE - 1)) + length + PAGE - 1) // PAGE


@export("PVOID MmMapIoSpace(PHYSICAL_ADDRESS PhysicalAddress, SIZE_T NumberOfBytes, MEMORY_CACHING_TYPE CacheType)",
        irql="dispatch")
def MmMapIoSpace(k, PhysicalAddress, NumberOfBytes, CacheType):
    """Map a physical range (device registers or RAM) into system space, uncached unless MmCached (1)."""
    if NumberOfBytes == 0:
        raise checked.assertion(k, "MmMapIoSpace of 0 bytes")
    pages = pages_spanned(PhysicalAddress, NumberOfBytes)
    base = map_frames(k, [(PhysicalAddress >> 12) + i for i in range(pages)], uncached=CacheType != 1)
    va = base + (PhysicalAddress & (PAGE - 1))
    _state(k)["io"][va] = (base, pages, NumberOfBytes)
    return va


@export("VOID MmUnmapIoSpace(PVOID BaseAddress, SIZE_T NumberOfBytes)", irql="dispatch")
def MmUnmapIoSpace(k, BaseAddress, NumberOfBytes):
    """Undo an MmMapIoSpace of the same address and size."""
    entry = _state(k)["io"].pop(BaseAddress, None)
    if entry is None or entry[2] != NumberOfBytes:
        raise checked.assertion(k, f"MmUnmapIoSpace({BaseAddress:#x}, {NumberOfBytes:#x}): no MmMapIoSpace mapping "
                                   f"of that address and size")
    unmap(k, entry[0], entry[1])


@export("PHYSICAL_ADDRESS MmGetPhysicalAddress(PVOID BaseAddress)")
def MmGetPhysicalAddress(k, BaseAddress):
    """The physical address behind a mapped virtual address (0 when it is not mapped)."""
    gpa = k.mem.translate(BaseAddress)
    return gpa or 0


def new_frames(k, pages: int) -> int | None:
    """Guest-physical base of ``pages`` fresh contiguous frames, or ``None`` when RAM is exhausted."""
    try:
        return k.mem.ram.alloc_frames(pages * PAGE)
    except ModelError:
        return None


def _contiguous(k, size: int, lowest: int, highest: int, boundary: int) -> int:
    pages = (size + PAGE - 1) // PAGE
    gpa = new_frames(k, pages)
    if gpa is None or gpa < lowest or gpa + pages * PAGE - 1 > highest:
        return 0  # the model's free frames do not satisfy the range: the real kernel also answers NULL
    if boundary and (gpa // boundary) != ((gpa + pages * PAGE - 1) // boundary):
        return 0
    va = map_frames(k, [(gpa >> 12) + i for i in range(pages)])
    _state(k)["contiguous"][va] = pages
    return va


@export("PVOID MmAllocateContiguousMemorySpecifyCache(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS LowestAcceptableAddress, "
        "PHYSICAL_ADDRESS HighestAcceptableAddress, PHYSICAL_ADDRESS BoundaryAddressMultiple, "
        "MEMORY_CACHING_TYPE CacheType)", irql="dispatch")
def MmAllocateContiguousMemorySpecifyCache(k, NumberOfBytes, LowestAcceptableAddress, HighestAcceptableAddress,
                                           BoundaryAddressMultiple, CacheType):
    """Physically contiguous memory inside [Lowest, Highest] not crossing the boundary; NULL when impossible."""
    return _contiguous(k, NumberOfBytes, LowestAcceptableAddress, HighestAcceptableAddress, BoundaryAddressMultiple)


@export("PVOID MmAllocateContiguousMemory(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS HighestAcceptableAddress)",
        irql="dispatch")
def MmAllocateContiguousMemory(k, NumberOfBytes, HighestAcceptableAddress):
    """Physically contiguous memory below ``HighestAcceptableAddress``; NULL when impossible."""
    return _contiguous(k, NumberOfBytes, 0, HighestAcceptableAddress, 0)


def _free_contiguous(k, va: int, name: str) -> None:
    pages = _state(k)["contiguous"].pop(va, None)
    if pages is None:
        raise checked.assertion(k, f"{name}({va:#x}): not an address MmAllocateContiguousMemory returned")
    unmap(k, va, pages)


@export("VOID MmFreeContiguousMemory(PVOID BaseAddress)", irql="apc")
def MmFreeContiguousMemory(k, BaseAddress):
    """Free contiguous memory (its frames stay unused)."""
    _free_contiguous(k, BaseAddress, "MmFreeContiguousMemory")


@export("VOID MmFreeContiguousMemorySpecifyCache(PVOID BaseAddress, SIZE_T NumberOfBytes, "
        "MEMORY_CACHING_TYPE CacheType)", irql="apc")
def MmFreeContiguousMemorySpecifyCache(k, BaseAddress, NumberOfBytes, CacheType):
    """Free contiguous memory (its frames stay unused)."""
    _free_contiguous(k, BaseAddress, "MmFreeContiguousMemorySpecifyCache")


# ---------------------------------------------------------------------------------------------------- MDLs
def mdl_pfns(k, mdl: int) -> list[int]:
    """The page frame numbers an MDL describes."""
    count = pages_spanned(k.get(mdl, "mdl", "StartVa") + k.get(mdl, "mdl", "ByteOffset"),
                          k.get(mdl, "mdl", "ByteCount"))
    base = mdl + k.L.size("mdl")
    return [k.mem.vu(base + 8 * i, 8) for i in range(count)]


def init_mdl(k, mdl: int, va: int, length: int) -> None:
    """MmInitializeMdl: header for the buffer ``[va, va + length)``."""
    pages = pages_spanned(va, length)
    k.put(mdl, "mdl", "Next", 0)
    k.put(mdl, "mdl", "Size", k.L.size("mdl") + 8 * pages)
    k.put(mdl, "mdl", "MdlFlags", 0)
    k.put(mdl, "mdl", "Process", 0)
    k.put(mdl, "mdl", "MappedSystemVa", 0)
    k.put(mdl, "mdl", "StartVa", va & ~(PAGE - 1))
    k.put(mdl, "mdl", "ByteCount", length)
    k.put(mdl, "mdl", "ByteOffset", va & (PAGE - 1))


@export("VOID MmBuildMdlForNonPagedPool(PMDL MemoryDescriptorList)", irql="dispatch")
def MmBuildMdlForNonPagedPool(k, MemoryDescriptorList):
    """Fill the MDL's frame numbers from the page tables; the buffer is its own system mapping."""
    mdl = MemoryDescriptorList
    start = k.get(mdl, "mdl", "StartVa")
    for i in range(pages_spanned(start + k.get(mdl, "mdl", "ByteOffset"), k.get(mdl, "mdl", "ByteCount"))):
        gpa = k.mem.translate(start + i * PAGE)
        if gpa is None:
            raise checked.assertion(k, f"MmBuildMdlForNonPagedPool: {start + i * PAGE:#x} is not mapped")
        k.mem.vput(mdl + k.L.size("mdl") + 8 * i, 8, gpa >> 12)
    k.put(mdl, "mdl", "MappedSystemVa", start + k.get(mdl, "mdl", "ByteOffset"))
    k.put(mdl, "mdl", "MdlFlags", k.get(mdl, "mdl", "MdlFlags") | MDL_SOURCE_IS_NONPAGED_POOL)


@export("PVOID MmMapLockedPagesSpecifyCache(PMDL MemoryDescriptorList, KPROCESSOR_MODE AccessMode, "
        "MEMORY_CACHING_TYPE CacheType, PVOID RequestedAddress, ULONG BugCheckOnFailure, ULONG Priority)",
        irql="dispatch")
def MmMapLockedPagesSpecifyCache(k, MemoryDescriptorList, AccessMode, CacheType, RequestedAddress,
                                 BugCheckOnFailure, Priority):
    """Map the MDL's frames into system space (kernel mode only); sets MappedSystemVa and the mapped flag."""
    mdl = MemoryDescriptorList
    if AccessMode != 0:
        raise checked.assertion(k, "MmMapLockedPagesSpecifyCache to user mode: the model has no user space")
    if not k.get(mdl, "mdl", "MdlFlags") & (MDL_PAGES_LOCKED | MDL_SOURCE_IS_NONPAGED_POOL | MDL_IO_SPACE |
                                            MDL_PARTIAL):
        raise checked.assertion(k, f"MmMapLockedPagesSpecifyCache({mdl:#x}): the MDL's pages are not locked")
    base = map_frames(k, mdl_pfns(k, mdl), uncached=CacheType == 0)
    va = base + k.get(mdl, "mdl", "ByteOffset")
    _state(k)["mdl_maps"][va] = (base, len(mdl_pfns(k, mdl)))
    k.put(mdl, "mdl", "MappedSystemVa", va)
    k.put(mdl, "mdl", "MdlFlags", k.get(mdl, "mdl", "MdlFlags") | MDL_MAPPED_TO_SYSTEM_VA)
    return va


@export("VOID MmUnmapLockedPages(PVOID BaseAddress, PMDL MemoryDescriptorList)", irql="dispatch")
def MmUnmapLockedPages(k, BaseAddress, MemoryDescriptorList):
    """Undo MmMapLockedPagesSpecifyCache."""
    entry = _state(k)["mdl_maps"].pop(BaseAddress, None)
    if entry is None:
        raise checked.assertion(k, f"MmUnmapLockedPages({BaseAddress:#x}): not a mapping of locked pages")
    unmap(k, entry[0], entry[1])
    mdl = MemoryDescriptorList
    k.put(mdl, "mdl", "MdlFlags", k.get(mdl, "mdl", "MdlFlags") & ~MDL_MAPPED_TO_SYSTEM_VA)
    k.put(mdl, "mdl", "MappedSystemVa", 0)


@export("PMDL MmAllocatePagesForMdl(PHYSICAL_ADDRESS LowAddress, PHYSICAL_ADDRESS HighAddress, "
        "PHYSICAL_ADDRESS SkipBytes, SIZE_T TotalBytes)", irql="dispatch")
def MmAllocatePagesForMdl(k, LowAddress, HighAddress, SkipBytes, TotalBytes):
    """Fresh zeroed frames in [Low, High] described by a new MDL; NULL when the range cannot be met."""
    from . import pool

    pages = (TotalBytes + PAGE - 1) // PAGE
    if not pages:
        return 0
    gpa = new_frames(k, pages)
    if gpa is None or gpa < LowAddress or gpa + pages * PAGE - 1 > HighAddress:
        return 0
    mdl = pool.get(k).allocate(0, k.L.size("mdl") + 8 * pages, 0x6C644D4D, k.caller_function)  # 'MMdl'
    init_mdl(k, mdl, 0, pages * PAGE)
    for i in range(pages):
        k.mem.vput(mdl + k.L.size("mdl") + 8 * i, 8, (gpa >> 12) + i)
    k.put(mdl, "mdl", "MdlFlags", MDL_PAGES_LOCKED)
    _state(k)["mdl_pages"][mdl] = pages
    return mdl


@export("VOID MmFreePagesFromMdl(PMDL MemoryDescriptorList)", irql="dispatch")
def MmFreePagesFromMdl(k, MemoryDescriptorList):
    """Give back the frames of an MmAllocatePagesForMdl MDL (the MDL itself stays the caller's to free)."""
    if _state(k)["mdl_pages"].pop(MemoryDescriptorList, None) is None:
        raise checked.assertion(k, f"MmFreePagesFromMdl({MemoryDescriptorList:#x}): not from MmAllocatePagesForMdl")


@export("PVOID MmAllocateMappingAddress(SIZE_T NumberOfBytes, ULONG PoolTag)", irql="passive")
def MmAllocateMappingAddress(k, NumberOfBytes, PoolTag):
    """Reserve a range of system VA for later MmMapLockedPagesWithReservedMapping."""
    va = k.alloc_va(NumberOfBytes)
    _state(k)["reserved"][va] = {"pages": (NumberOfBytes + PAGE - 1) // PAGE, "tag": PoolTag, "mapped": 0}
    return va


@export("VOID MmFreeMappingAddress(PVOID BaseAddress, ULONG PoolTag)", irql="passive")
def MmFreeMappingAddress(k, BaseAddress, PoolTag):
    """Release a reserved range (it must not be mapped)."""
    entry = _state(k)["reserved"].get(BaseAddress)
    if entry is None or entry["tag"] != PoolTag or entry["mapped"]:
        raise checked.assertion(k, f"MmFreeMappingAddress({BaseAddress:#x}): not a free reservation with that tag")
    del _state(k)["reserved"][BaseAddress]


@export("PVOID MmMapLockedPagesWithReservedMapping(PVOID MappingAddress, ULONG PoolTag, PMDL MemoryDescriptorList, "
        "MEMORY_CACHING_TYPE CacheType)", irql="dispatch")
def MmMapLockedPagesWithReservedMapping(k, MappingAddress, PoolTag, MemoryDescriptorList, CacheType):
    """Map the MDL's frames into a reserved range; NULL when they do not fit."""
    entry = _state(k)["reserved"].get(MappingAddress)
    if entry is None or entry["tag"] != PoolTag:
        raise checked.assertion(k, f"MmMapLockedPagesWithReservedMapping({MappingAddress:#x}): no such reservation")
    frames = mdl_pfns(k, MemoryDescriptorList)
    if len(frames) > entry["pages"] or entry["mapped"]:
        return 0
    map_frames(k, frames, uncached=CacheType == 0, va=MappingAddress)
    entry["mapped"] = len(frames)
    return MappingAddress + k.get(MemoryDescriptorList, "mdl", "ByteOffset")


@export("VOID MmUnmapReservedMapping(PVOID BaseAddress, ULONG PoolTag, PMDL MemoryDescriptorList)", irql="dispatch")
def MmUnmapReservedMapping(k, BaseAddress, PoolTag, MemoryDescriptorList):
    """Unmap a reserved range mapped by MmMapLockedPagesWithReservedMapping."""
    entry = _state(k)["reserved"].get(BaseAddress)
    if entry is None or not entry["mapped"]:
        raise checked.assertion(k, f"MmUnmapReservedMapping({BaseAddress:#x}): nothing mapped there")
    unmap(k, BaseAddress, entry["mapped"])
    entry["mapped"] = 0


@export("NTSTATUS MmIsVerifierEnabled(PULONG VerifierFlags)", irql="dispatch")
def MmIsVerifierEnabled(k, VerifierFlags):
    """Driver Verifier is not running (the checked kernel's rules are the model's own): STATUS_NOT_SUPPORTED."""
    if VerifierFlags:
        k.mem.vput(VerifierFlags, 4, 0)
    return 0xC00000BB  # STATUS_NOT_SUPPORTED: the documented answer when Driver Verifier is not running


@export("PVOID MmLockPagableDataSection(PVOID AddressWithinSection)", irql="passive")
def MmLockPagableDataSection(k, AddressWithinSection):
    """Lock a pageable section: the model never pages, so the handle is the address itself."""
    return AddressWithinSection


@export("VOID MmLockPagableSectionByHandle(PVOID ImageSectionHandle)", irql="passive")
def MmLockPagableSectionByHandle(k, ImageSectionHandle):
    """Re-lock a pageable section by handle (nothing is ever paged out in the model)."""


@export("VOID MmUnlockPagableImageSection(PVOID ImageSectionHandle)", irql="dispatch")
def MmUnlockPagableImageSection(k, ImageSectionHandle):
    """Unlock a pageable section (nothing is ever paged out in the model)."""
