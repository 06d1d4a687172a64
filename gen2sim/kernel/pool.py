"""The kernel's pool allocator over model memory: nonpaged and paged pool, tags, checked frees.

Each pool is one region of kernel virtual memory backed by physically contiguous frames.  A block below a page
carries the 16-byte x64 POOL_HEADER in front of it (BlockSize in 16-byte units, PoolType + 1, PoolTag), as NT's
does; a block of a page or more is page aligned without one ("big pool").  Freed blocks are never reused, so every
later free of the same address is recognised as a double free (as Driver Verifier's special pool would).  Frees
are checked: an address the pool never returned, a block already freed, a tag other than the allocation's (for
ExFreePoolWithTag), a free above the pool type's IRQL.  Touching paged pool at DISPATCH_LEVEL or above is caught
by a memory hook on the paged region (Driver Verifier's Force IRQL Checking makes paged pool invalid there).
"""

from __future__ import annotations

from dataclasses import dataclass

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_MEM_WRITE

from . import calls, checked

NONPAGED_SIZE = 4 << 20
PAGED_SIZE = 1 << 20
HEADER = 16
PAGE = 0x1000
#: POOL_TYPE values whose low bit marks paged pool (PagedPool 1, PagedPoolCacheAligned 5, session variants +32).
PAGED_BIT = 1
#: POOL_RAISE_IF_ALLOCATION_FAILURE and the quota flag carried in the pool type (wdm.h).
POOL_FLAGS = 0x8 | 0x10


@dataclass
class Block:
    """One allocation."""

    va: int
    size: int
    pool_type: int
    tag: int
    caller: str | None
    paged: bool


class Region:
    """A bump-allocated range of kernel VA (never reused: freed blocks stay quarantined)."""

    def __init__(self, k, size: int) -> None:
        self.base = k.mem.alloc(size)
        self.gpa = k.mem.translate(self.base)
        self.size = size
        self.next = self.base

    def take(self, size: int, align: int) -> int | None:
        """The next ``size`` bytes at ``align``, or ``None`` when the region is used up."""
        va = (self.next + align - 1) & ~(align - 1)
        if va + size > self.base + self.size:
            return None
        self.next = va + size
        return va

    def contains(self, va: int) -> bool:
        """Whether ``va`` lies in the region."""
        return self.base <= va < self.base + self.size


class Pool:
    """Nonpaged and paged pool of one kernel."""

    def __init__(self, k) -> None:
        self.k = k
        self.nonpaged = Region(k, NONPAGED_SIZE)
        self.paged = Region(k, PAGED_SIZE)
        self.live: dict[int, Block] = {}
        self.freed: dict[int, Block] = {}
        self.tripped = False
        k.cpu.uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, self._paged_touch, None, self.paged.gpa,
                          self.paged.gpa + PAGED_SIZE - 1)

    @staticmethod
    def is_paged(pool_type: int) -> bool:
        """Whether a POOL_TYPE is a paged pool."""
        return bool((pool_type & ~POOL_FLAGS) & PAGED_BIT)

    def allocate(self, pool_type: int, size: int, tag: int, caller: str | None) -> int:
        """A block of ``size`` bytes, zeroed; 0 when the pool is exhausted."""
        paged = self.is_paged(pool_type)
        region = self.paged if paged else self.nonpaged
        if size >= PAGE - HEADER:
            va = region.take((size + PAGE - 1) & ~(PAGE - 1), PAGE)
            header = None
        else:
            total = (HEADER + size + 15) & ~15
            start = region.take(total, 16)
            va = None if start is None else start + HEADER
            header = start
        if va is None:
            self.k.trace.record("note", device="kernel", detail=f"pool exhausted: {size} bytes of "
                                                                f"{'paged' if paged else 'nonpaged'} pool")
            return 0
        if header is not None:
            blocks = (HEADER + size + 15) // 16
            self.k.mem.vput(header, 4, (blocks << 16) | (((pool_type & 7) + 1) << 24))
            self.k.mem.vput(header + 4, 4, tag)
        self.k.mem.vwrite(va, bytes(size))
        self.live[va] = Block(va, size, pool_type, tag, caller, paged)
        return va

    def free(self, va: int, tag: int | None) -> Block:
        """Release the block at ``va``; a bad free raises the checked kernel's bug check."""
        k = self.k
        block = self.live.get(va)
        if block is None:
            old = self.freed.get(va)
            if old is not None:
                header = va - HEADER if old.size < PAGE - HEADER else va
                contents = k.mem.vu(header, 8)
                checked.violation(k, "pool-double-free", [0, header, contents],
                                  f"{va:#x} ({old.size} bytes, tag {tag_text(old.tag)}) freed twice")
            checked.violation(k, "pool-free-bad-address", [va, 0, 0],
                              f"{va:#x} was not returned by the pool allocator")
        limit = k.irql_level("apc" if block.paged else "dispatch")
        if k.irql > limit:
            rule = "pool-free-paged-above-apc" if block.paged else "pool-free-nonpaged-above-dispatch"
            checked.violation(k, rule, [k.irql, block.pool_type, va], f"free of {va:#x} at IRQL {k.irql}")
        if tag is not None and (tag & ~0x80000000) != (block.tag & ~0x80000000):
            raise checked.assertion(k, f"ExFreePoolWithTag({va:#x}) with tag {tag_text(tag)}, allocated with tag "
                                       f"{tag_text(block.tag)}")
        del self.live[va]
        self.freed[va] = block
        if block.size < PAGE - HEADER:
            k.mem.vput(va - HEADER, 4, k.mem.vu(va - HEADER, 4) & 0x00FFFFFF)  # PoolType 0 marks a free block
        return block

    def _paged_touch(self, uc, access, address, size, value, _ud) -> None:
        k = self.k
        if self.tripped or k.irql < k.irql_level("dispatch"):
            return
        self.tripped = True
        va = self.paged.base + (address - self.paged.gpa)
        write = 1 if access == UC_MEM_WRITE else 0
        rip = k.cpu.rip
        try:
            k.caller_function = k.cpu.locate(rip)
            checked.violation(k, "paged-pool-at-dispatch", [va, k.irql, write, rip],
                              f"{'write' if write else 'read'} of paged pool at {va:#x} at IRQL {k.irql}")
        except calls.BugCheckPending:
            pass  # the bug check completes once emulation has stopped


def tag_text(tag: int) -> str:
    """A pool tag as its four characters."""
    raw = (tag & 0xFFFFFFFF).to_bytes(4, "little")
    return "'" + "".join(chr(b) if 32 <= b < 127 else "." for b in raw) + "'"


def get(k) -> Pool:
    """The pool of kernel ``k``."""
    return k.subsystem("pool", lambda: Pool(k))
