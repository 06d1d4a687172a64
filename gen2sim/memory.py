"""Guest physical RAM and real x64 4-level page tables.

The RAM is one ctypes buffer that Unicorn maps with ``mem_map_ptr``: the guest's
stores land in it directly and the model reads it without a Unicorn call (a
``uc.mem_read`` costs microseconds; a slice of the buffer costs nanoseconds).

Paging is real: the CPU core loads CR3 with ``PageTables.pml4`` and turns on
CR0.PG/CR4.PAE/EFER.LME, so the guest's own page-table writes (a HAL maps
physical memory by writing PTEs through the self-map and ``invlpg``) take effect
exactly as on hardware.  The model's own accesses to guest virtual memory walk
the same tables in Python (``translate``), so both always agree.

Physical layout (all fixed, so runs are deterministic):

====================  ==========================================
0x0000_1000           PML4 (slot 0x1ED points back at itself)
0x0001_0000 ..        page-table pages (bump allocated)
0x0010_0000 ..        ACPI tables (placed by the machine)
0x0020_0000 ..        frames for images and kernel data (bump)
====================  ==========================================
"""

from __future__ import annotations

import ctypes
import struct

from .errors import ModelError

PAGE = 0x1000
PTE_P, PTE_W, PTE_PWT, PTE_PCD, PTE_PS = 0x1, 0x2, 0x8, 0x10, 0x80
ADDR_MASK = 0x000F_FFFF_FFFF_F000

DEFAULT_RAM = 64 << 20
PML4_GPA = 0x1000
TABLES_START, TABLES_END = 0x1_0000, 0x10_0000
ACPI_GPA = 0x10_0000
FRAMES_START = 0x20_0000


def canonical(va: int) -> int:
    """Sign-extend bit 47 of ``va`` (and mask to 64 bits) the way the CPU does."""
    va &= (1 << 48) - 1
    return va | (0xFFFF << 48) if va & (1 << 47) else va


class PhysicalMemory:
    """Guest RAM from physical address 0, ``size`` bytes, in one host buffer."""

    def __init__(self, size: int = DEFAULT_RAM) -> None:
        if size % PAGE:
            raise ModelError("RAM size must be a whole number of pages")
        self.size = size
        self.buffer = ctypes.create_string_buffer(size)
        self.view = memoryview(self.buffer).cast("B")
        self._next_table = TABLES_START
        self._next_frame = FRAMES_START

    @property
    def address(self) -> int:
        """Host address of the buffer (for ``uc.mem_map_ptr``)."""
        return ctypes.addressof(self.buffer)

    def contains(self, gpa: int, size: int = 1) -> bool:
        """Whether ``[gpa, gpa + size)`` is RAM."""
        return 0 <= gpa and gpa + size <= self.size

    def read(self, gpa: int, size: int) -> bytes:
        """Bytes at guest-physical ``gpa`` (``ModelError`` outside RAM)."""
        if not self.contains(gpa, size):
            raise ModelError(f"physical read {gpa:#x}+{size:#x} outside RAM")
        return bytes(self.view[gpa : gpa + size])

    def write(self, gpa: int, data: bytes) -> None:
        """Store ``data`` at guest-physical ``gpa`` (``ModelError`` outside RAM)."""
        if not self.contains(gpa, len(data)):
            raise ModelError(f"physical write {gpa:#x}+{len(data):#x} outside RAM")
        self.view[gpa : gpa + len(data)] = data

    def r64(self, gpa: int) -> int:
        """Little-endian 64-bit value at ``gpa``."""
        return struct.unpack_from("<Q", self.buffer, gpa)[0]

    def w64(self, gpa: int, value: int) -> None:
        """Store a little-endian 64-bit value at ``gpa``."""
        struct.pack_into("<Q", self.buffer, gpa, value & 0xFFFF_FFFF_FFFF_FFFF)

    def alloc_table(self) -> int:
        """A zeroed page for page tables."""
        gpa = self._next_table
        if gpa >= TABLES_END:
            raise ModelError("out of page-table pages")
        self._next_table += PAGE
        self.view[gpa : gpa + PAGE] = bytes(PAGE)
        return gpa

    def alloc_frames(self, size: int) -> int:
        """``size`` bytes (rounded up to pages) of zeroed, physically contiguous frames."""
        size = (size + PAGE - 1) & ~(PAGE - 1)
        gpa = self._next_frame
        if gpa + size > self.size:
            raise ModelError("guest RAM exhausted")
        self._next_frame += size
        self.view[gpa : gpa + size] = bytes(size)
        return gpa


class PageTables:
    """x64 4-level page tables in guest RAM, with the NT page-table self-map.

    ``map(va, gpa, size)`` creates missing levels and writes PTEs; ``translate``
    walks the tables like the MMU (4 KiB, 2 MiB and 1 GiB pages).
    """

    def __init__(self, ram: PhysicalMemory, self_map_slot: int | None = 0x1ED) -> None:
        self.ram = ram
        self.pml4 = PML4_GPA
        ram.view[PML4_GPA : PML4_GPA + PAGE] = bytes(PAGE)
        if self_map_slot is not None:
            # Why: NT maps its page tables at PTE_BASE through a PML4 entry that points at the PML4 itself.
            ram.w64(self.pml4 + self_map_slot * 8, self.pml4 | PTE_P | PTE_W)

    def _table_for(self, va: int, create: bool) -> int | None:
        """Physical address of the page table (level 1) covering ``va``."""
        table = self.pml4
        for shift in (39, 30, 21):
            slot = table + ((va >> shift) & 0x1FF) * 8
            entry = self.ram.r64(slot)
            if not entry & PTE_P:
                if not create:
                    return None
                new = self.ram.alloc_table()
                entry = new | PTE_P | PTE_W
                self.ram.w64(slot, entry)
            elif entry & PTE_PS and shift != 39:
                raise ModelError(f"{va:#x} lies in a large page")
            table = entry & ADDR_MASK
        return table

    def ensure_tables(self, va: int, size: int) -> None:
        """Make every level down to the page tables present for ``[va, va + size)`` without mapping pages.

        Why: a HAL maps memory by writing PTEs through the self-map; the loader must have built the page tables
        of the HAL's VA window for those writes to land anywhere.
        """
        end = va + size
        va &= ~0x1F_FFFF
        while va < end:
            self._table_for(va, create=True)
            va += 0x20_0000

    def map(self, va: int, gpa: int, size: int, *, writable: bool = True, uncached: bool = False) -> None:
        """Map ``[va, va + size)`` to ``[gpa, ...)`` with 4 KiB pages."""
        if va % PAGE or gpa % PAGE:
            raise ModelError("unaligned mapping")
        flags = PTE_P | (PTE_W if writable else 0) | (PTE_PCD | PTE_PWT if uncached else 0)
        for off in range(0, size, PAGE):
            table = self._table_for(va + off, create=True)
            self.ram.w64(table + (((va + off) >> 12) & 0x1FF) * 8, (gpa + off) | flags)

    def translate(self, va: int) -> int | None:
        """Guest-physical address of ``va``, or ``None`` when it is not mapped."""
        table = self.pml4
        for shift in (39, 30, 21, 12):
            entry = self.ram.r64(table + ((va >> shift) & 0x1FF) * 8)
            if not entry & PTE_P:
                return None
            if shift in (30, 21) and entry & PTE_PS:
                return (entry & ADDR_MASK & ~((1 << shift) - 1)) | (va & ((1 << shift) - 1))
            table = entry & ADDR_MASK
        return table | (va & 0xFFF)


class GuestMemory:
    """RAM + page tables + a bump allocator of kernel virtual address space.

    ``read``/``write`` take guest-physical addresses (the interface ``hyperv.HyperV`` expects); ``vread``/
    ``vwrite`` take guest-virtual addresses and walk the page tables.
    """

    def __init__(self, size: int = DEFAULT_RAM, *, self_map_slot: int | None = 0x1ED,
                 kernel_va: int = 0xFFFF_F800_0000_0000) -> None:
        self.ram = PhysicalMemory(size)
        self.tables = PageTables(self.ram, self_map_slot)
        self._next_va = kernel_va

    # physical
    def read(self, gpa: int, size: int) -> bytes:
        """Bytes at guest-physical ``gpa``."""
        return self.ram.read(gpa, size)

    def write(self, gpa: int, data: bytes) -> None:
        """Store bytes at guest-physical ``gpa``."""
        self.ram.write(gpa, data)

    # virtual
    def translate(self, va: int) -> int | None:
        """Guest-physical address of ``va`` or ``None``."""
        return self.tables.translate(va)

    def vread(self, va: int, size: int) -> bytes:
        """Bytes at guest-virtual ``va`` (``ModelError`` on an unmapped or non-RAM page)."""
        out = bytearray()
        while size > 0:
            gpa = self.translate(va)
            if gpa is None:
                raise ModelError(f"virtual read of unmapped {va:#x}")
            n = min(size, PAGE - (va & 0xFFF))
            out += self.ram.read(gpa, n)
            va, size = va + n, size - n
        return bytes(out)

    def vwrite(self, va: int, data: bytes) -> None:
        """Store bytes at guest-virtual ``va``."""
        pos = 0
        while pos < len(data):
            gpa = self.translate(va + pos)
            if gpa is None:
                raise ModelError(f"virtual write to unmapped {va + pos:#x}")
            n = min(len(data) - pos, PAGE - ((va + pos) & 0xFFF))
            self.ram.write(gpa, data[pos : pos + n])
            pos += n

    def vu(self, va: int, size: int) -> int:
        """Unsigned little-endian integer of ``size`` bytes at ``va``."""
        return int.from_bytes(self.vread(va, size), "little")

    def vput(self, va: int, size: int, value: int) -> None:
        """Store ``value`` as a ``size``-byte little-endian integer at ``va``."""
        self.vwrite(va, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def cstring(self, va: int, limit: int = 512) -> str:
        """NUL-terminated byte string at ``va`` (at most ``limit`` bytes), decoded as Latin-1."""
        out = bytearray()
        while len(out) < limit:
            try:
                b = self.vread(va + len(out), 1)
            except ModelError:
                break
            if b == b"\0":
                break
            out += b
        return out.decode("latin-1")

    def map_new(self, va: int, size: int, *, writable: bool = True) -> int:
        """Back ``[va, va + size)`` with fresh zeroed frames; returns their guest-physical base."""
        gpa = self.ram.alloc_frames(size)
        self.tables.map(va, gpa, (size + PAGE - 1) & ~(PAGE - 1), writable=writable)
        return gpa

    def alloc(self, size: int, *, align: int = PAGE) -> int:
        """Kernel virtual memory (zeroed, mapped, page granular); returns the VA."""
        va = (self._next_va + align - 1) & ~(align - 1)
        size = (size + PAGE - 1) & ~(PAGE - 1)
        self.map_new(va, size)
        self._next_va = va + size + PAGE  # a guard page between allocations catches overruns
        return va
