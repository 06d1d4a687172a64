"""Load a PE32+ hal.dll the way a kernel loader does: sections, relocations, imports bound to the mini kernel.

A malformed image or an import the target's kernel does not export is a ``LoadError`` (the ``load-error``
verdict) that names every problem, never a traceback.  Imports the kernel exports but the mini kernel does not
implement are bound to recorder stubs: reaching one ends the run with a ``fault`` naming the call.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pefile

from .memory import PAGE, GuestMemory

IMAGE_FILE_MACHINE_AMD64 = 0x8664
PE32_PLUS_MAGIC = 0x20B
SCN_MEM_EXECUTE, SCN_MEM_WRITE, SCN_CNT_CODE = 0x20000000, 0x80000000, 0x20
#: Where an image goes when its preferred base is unusable (outside the kernel half or taken).
FALLBACK_BASE = 0xFFFF_F800_0400_0000
MAX_IMAGE = 64 << 20


class LoadError(Exception):
    """The image cannot be loaded; ``reason`` says why (the ``load-error`` verdict)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class LoadedImage:
    """A mapped image: where it is, its exports and the executable ranges to scan."""

    path: str
    base: int
    preferred_base: int
    size: int
    entry: int
    exports: dict[str, int]
    code_ranges: list[tuple[int, bytes]]
    imports: dict[str, str] = field(default_factory=dict)  # name -> 'implemented' | 'data' | 'unimplemented'
    functions: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, name), sorted
    _starts: list[int] | None = None

    def function_at(self, address: int) -> str | None:
        """Name of the function holding ``address``: link-map symbol, else nearest export below it."""
        if self.functions:
            if self._starts is None or len(self._starts) != len(self.functions):
                self._starts = [f[0] for f in self.functions]
            i = bisect.bisect_right(self._starts, address) - 1  # called per trace record: keep it O(log n)
            if i >= 0 and self.functions[i][0] <= address < self.functions[i][1]:
                return self.functions[i][2]
        best = None
        for name, va in self.exports.items():
            if va <= address < self.base + self.size and (best is None or va > best[0]):
                best = (va, name)
        if best is None:
            return None
        return best[1] if best[0] == address else f"{best[1]}+{address - best[0]:#x}"


def _check_headers(pe: pefile.PE, data_len: int) -> None:
    if pe.FILE_HEADER.Machine != IMAGE_FILE_MACHINE_AMD64:
        raise LoadError(f"machine {pe.FILE_HEADER.Machine:#06x} is not AMD64 (0x8664)")
    if pe.OPTIONAL_HEADER.Magic != PE32_PLUS_MAGIC:
        raise LoadError(f"optional header magic {pe.OPTIONAL_HEADER.Magic:#x} is not PE32+ (0x20b)")
    size = pe.OPTIONAL_HEADER.SizeOfImage
    if not 0 < size <= MAX_IMAGE:
        raise LoadError(f"SizeOfImage {size:#x} is not plausible")
    align = pe.OPTIONAL_HEADER.SectionAlignment
    if align == 0 or align % PAGE and align != pe.OPTIONAL_HEADER.FileAlignment:
        raise LoadError(f"section alignment {align:#x} is not page-granular")
    if pe.OPTIONAL_HEADER.SizeOfHeaders > size:
        raise LoadError("SizeOfHeaders exceeds SizeOfImage")
    for s in pe.sections:
        name = s.Name.rstrip(b"\0").decode("latin-1")
        if s.VirtualAddress + max(s.Misc_VirtualSize, 0) > size or s.VirtualAddress + s.SizeOfRawData > size + align:
            raise LoadError(f"section {name} [{s.VirtualAddress:#x}, +{s.Misc_VirtualSize:#x}) lies outside the image")
        if s.SizeOfRawData and s.PointerToRawData + s.SizeOfRawData > data_len:
            raise LoadError(f"section {name} raw data runs past the end of the file")
    if not 0 <= pe.OPTIONAL_HEADER.AddressOfEntryPoint < size:
        raise LoadError("entry point outside the image")


def _image_bytes(pe: pefile.PE, data: bytes) -> bytearray:
    size = pe.OPTIONAL_HEADER.SizeOfImage
    image = bytearray(size)
    hdr = min(pe.OPTIONAL_HEADER.SizeOfHeaders, len(data), size)
    image[:hdr] = data[:hdr]
    for s in pe.sections:
        raw = data[s.PointerToRawData : s.PointerToRawData + s.SizeOfRawData]
        n = min(len(raw), s.Misc_VirtualSize or len(raw), size - s.VirtualAddress)
        image[s.VirtualAddress : s.VirtualAddress + n] = raw[:n]
    return image


def _relocate(pe: pefile.PE, image: bytearray, delta: int) -> None:
    """Apply base relocations for a load ``delta`` bytes away from the preferred base."""
    d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_BASERELOC"]]
    if d.VirtualAddress == 0 or d.Size == 0:
        if pe.FILE_HEADER.Characteristics & 0x1:  # IMAGE_FILE_RELOCS_STRIPPED
            raise LoadError("image must be relocated but its relocations were stripped")
        return  # x64 code is RIP-relative: an image with no absolute fixups needs none
    pos, end = d.VirtualAddress, d.VirtualAddress + d.Size
    if end > len(image):
        raise LoadError("relocation directory lies outside the image")
    while pos + 8 <= end:
        page, block = struct.unpack_from("<II", image, pos)
        if block < 8 or pos + block > end:
            raise LoadError(f"relocation block at {pos:#x} has bad size {block:#x}")
        for i in range((block - 8) // 2):
            (entry,) = struct.unpack_from("<H", image, pos + 8 + 2 * i)
            kind, off = entry >> 12, page + (entry & 0xFFF)
            if kind == 0:
                continue
            if kind == 10:  # IMAGE_REL_BASED_DIR64
                if off + 8 > len(image):
                    raise LoadError(f"relocation target {off:#x} outside the image")
                (v,) = struct.unpack_from("<Q", image, off)
                struct.pack_into("<Q", image, off, (v + delta) & 0xFFFF_FFFF_FFFF_FFFF)
            elif kind == 3:  # HIGHLOW
                if off + 4 > len(image):
                    raise LoadError(f"relocation target {off:#x} outside the image")
                (v,) = struct.unpack_from("<I", image, off)
                struct.pack_into("<I", image, off, (v + delta) & 0xFFFF_FFFF)
            else:
                raise LoadError(f"unsupported relocation type {kind} at {off:#x}")
        pos += block


def load_image(path: str | Path, memory: GuestMemory, target, kernel) -> LoadedImage:
    """Map ``path`` into ``memory`` and bind its imports against ``kernel`` for ``target``.

    ``kernel`` offers ``import_address(name) -> int | None`` (implemented function or data), and
    ``unimplemented_stub(name) -> int``.  Raises ``LoadError``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror}") from None
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except pefile.PEFormatError as exc:
        raise LoadError(f"not a PE image: {exc.value}") from None
    except Exception as exc:  # noqa: BLE001 - pefile raises assorted errors on garbage
        raise LoadError(f"not a PE image: {type(exc).__name__}: {exc}") from None
    _check_headers(pe, len(data))
    try:
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
                                               pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"]])
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"bad import/export directory: {type(exc).__name__}: {exc}") from None
    if pe.get_warnings():
        bad = [w for w in pe.get_warnings() if "import" in w.lower() or "export" in w.lower()]
        if bad:
            raise LoadError(f"malformed directories: {bad[0]}")

    preferred = pe.OPTIONAL_HEADER.ImageBase
    size = (pe.OPTIONAL_HEADER.SizeOfImage + PAGE - 1) & ~(PAGE - 1)
    base = preferred
    # Kernel half only, clear of the page-table self-map window, and not on top of the mini kernel's memory.
    usable = (preferred % 0x10000 == 0 and 0xFFFF_8000_0000_0000 <= preferred <= (1 << 64) - size
              and not (preferred < 0xFFFF_F700_0000_0000 and preferred + size > 0xFFFF_F680_0000_0000))
    if usable:
        usable = all(memory.translate(preferred + off) is None for off in range(0, size, PAGE))
    if not usable:
        base = FALLBACK_BASE
    image = _image_bytes(pe, data)
    if base != preferred:
        _relocate(pe, image, base - preferred)

    # Imports: every problem first, then one LoadError listing all of them.
    missing: list[str] = []
    bindings: list[tuple[int, int]] = []
    kinds: dict[str, str] = {}
    for desc in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        module = (desc.dll or b"").decode("latin-1")
        for imp in desc.imports:
            if imp.name is None:
                missing.append(f"{module}!#{imp.ordinal} (import by ordinal)")
                continue
            name = imp.name.decode("latin-1")
            if name not in target.allowed_imports:
                missing.append(f"{module}!{name}")
                continue
            if target.module_of(name).lower() != module.lower():
                missing.append(f"{module}!{name} (exported by {target.module_of(name)})")
                continue
            addr = kernel.import_address(name)
            if addr is None:
                addr = kernel.unimplemented_stub(name)
                kinds[name] = "unimplemented"
            else:
                kinds[name] = "data" if name in target.data_imports else "implemented"
            rva = imp.address - preferred
            if not 0 <= rva <= len(image) - 8:
                raise LoadError(f"import address table entry for {name} lies outside the image")
            bindings.append((rva, addr))
    if missing:
        raise LoadError(f"{len(missing)} import(s) not exported by the {target.name} kernel: {', '.join(missing)}")
    for rva, addr in bindings:
        struct.pack_into("<Q", image, rva, addr)

    exports: dict[str, int] = {}
    exp = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
    if exp is not None:
        for sym in exp.symbols:
            if sym.name and sym.address and not sym.forwarder and sym.address < size:
                exports[sym.name.decode("latin-1")] = base + sym.address

    # Map: headers read-only, each section with its own write permission.
    gpa = memory.ram.alloc_frames(size)
    memory.ram.write(gpa, bytes(image))
    memory.tables.map(base, gpa, size, writable=False)
    code_ranges: list[tuple[int, bytes]] = []
    for s in pe.sections:
        start = s.VirtualAddress & ~(PAGE - 1)
        length = ((s.VirtualAddress + max(s.Misc_VirtualSize, s.SizeOfRawData) + PAGE - 1) & ~(PAGE - 1)) - start
        if s.Characteristics & SCN_MEM_WRITE:
            memory.tables.map(base + start, gpa + start, length, writable=True)
        if s.Characteristics & (SCN_MEM_EXECUTE | SCN_CNT_CODE):
            vsize = max(s.Misc_VirtualSize, s.SizeOfRawData)
            code_ranges.append((base + s.VirtualAddress, bytes(image[s.VirtualAddress : s.VirtualAddress + vsize])))

    loaded = LoadedImage(str(path), base, preferred, size, base + pe.OPTIONAL_HEADER.AddressOfEntryPoint,
                         exports, code_ranges, kinds)
    map_path = path.with_name(path.stem + ".map")
    if map_path.is_file():
        try:
            from generator import linkmap

            funcs = linkmap.functions(linkmap.load(map_path))
            loaded.functions = sorted((s.address - preferred + base, s.address - preferred + base + s.size, n)
                                      for n, s in funcs.items() if s.size)
        except Exception:  # noqa: BLE001 - a stale or odd map only costs names
            loaded.functions = []
    return loaded
