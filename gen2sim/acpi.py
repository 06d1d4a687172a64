"""ACPI tables of the modelled platforms: described field by field, laid out in guest memory, parsed back.

The facts live in ``specs/platforms/<platform>.toml`` (Generation 2 from a dump of a real Hyper-V VM, Generation 1
as a documented variant of it). This module knows the *layouts* the ACPI specification defines (which field sits
where, how wide it is, what its flag bits are called); the description files give the *values*. One table of field
definitions serves three purposes: validating a description, encoding it, and parsing raw tables back into the
same names, so a built table and a dumped one can be compared field by field.

Public entry points:

* :func:`build_tables` — a platform description → an :class:`AcpiImage` placed at a chosen guest-physical address.
* :func:`load_tables` — raw tables a user dumped (``acpidump -b`` style ``*.dat``) → an :class:`AcpiImage`.
* :func:`load_platform` — the description loader (``base`` + ``changes`` for variants), with errors naming the
  file, table, field and what was expected.
* :func:`parse_table`, :func:`parse_fadt`, :func:`parse_madt`, :func:`parse_rsdp`, :func:`parse_header`.

Everything is deterministic: the layout depends only on the description and ``base_gpa``.
"""

from __future__ import annotations

import dataclasses
import shutil
import struct
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Callable

from gen2sim.errors import ModelError

SPEC_DIR = Path(__file__).resolve().parent.parent / "specs" / "platforms"

# Every object in the image starts on a 64-byte boundary: the FACS must (ACPI), the RSDP needs 16, and one rule for
# all keeps the layout obvious.
ALIGN = 64
HEADER_SIZE = 36
RSDP_SIZE = 36
FACS_SIZE = 64


class AcpiSpecError(ModelError):
    """A platform description (``specs/platforms/*.toml`` or a file it names) is wrong."""


class AcpiTableError(ModelError):
    """Raw tables given to :func:`load_tables` are malformed, or a layout is impossible (e.g. a 32-bit pointer
    field would need an address above 4 GiB)."""


# --------------------------------------------------------------------------------------------------------------
# Field definitions

@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a table body: its name, encoding kind and width, and optional flag-bit names.

    ``kind`` is one of ``int`` (little-endian unsigned of ``size`` bytes), ``str`` (ASCII, NUL-padded to ``size``),
    ``gas`` (generic address structure, 12 bytes), ``inti`` (MPS INTI flags: polarity and trigger, 2 bytes) or
    ``raw`` (``size`` opaque bytes). ``ptr`` fields may hold ``"@SIG"`` in a description. ``optional`` fields
    (reserved ones) default to zero.
    """

    name: str
    kind: str
    size: int
    bits: tuple[tuple[str, int], ...] | None = None
    ptr: bool = False
    optional: bool = False


def _u(name: str, size: int, *, bits: dict[str, int] | None = None, ptr: bool = False,
       optional: bool = False) -> Field:
    return Field(name, "int", size, tuple(bits.items()) if bits else None, ptr, optional)


def _s(name: str, size: int) -> Field:
    return Field(name, "str", size)


def _gas(name: str) -> Field:
    return Field(name, "gas", 12)


def _inti(name: str) -> Field:
    return Field(name, "inti", 2)


def _raw(name: str, size: int) -> Field:
    return Field(name, "raw", size, optional=True)


def _reserved(name: str, size: int) -> Field:
    return _u(name, size, optional=True)


# Flag-bit names (ACPI 6.x specification names, shortened where the specification has no short name).
FADT_FLAG_BITS = {
    "WBINVD": 0, "WBINVD_FLUSH": 1, "PROC_C1": 2, "P_LVL2_UP": 3, "PWR_BUTTON": 4, "SLP_BUTTON": 5,
    "FIX_RTC": 6, "RTC_S4": 7, "TMR_VAL_EXT": 8, "DCK_CAP": 9, "RESET_REG_SUP": 10, "SEALED_CASE": 11,
    "HEADLESS": 12, "CPU_SW_SLP": 13, "PCI_EXP_WAK": 14, "USE_PLATFORM_CLOCK": 15, "S4_RTC_STS_VALID": 16,
    "REMOTE_POWER_ON_CAPABLE": 17, "FORCE_APIC_CLUSTER_MODEL": 18, "FORCE_APIC_PHYSICAL_DESTINATION_MODE": 19,
    "HW_REDUCED_ACPI": 20, "LOW_POWER_S0_IDLE_CAPABLE": 21,
}
IAPC_BOOT_ARCH_BITS = {
    "LEGACY_DEVICES": 0, "8042": 1, "VGA_NOT_PRESENT": 2, "MSI_NOT_SUPPORTED": 3, "PCIE_ASPM_CONTROLS": 4,
    "CMOS_RTC_NOT_PRESENT": 5,
}
MADT_FLAG_BITS = {"PCAT_COMPAT": 0}
LAPIC_FLAG_BITS = {"ENABLED": 0, "ONLINE_CAPABLE": 1}
SRAT_CPU_FLAG_BITS = {"ENABLED": 0}
SRAT_MEM_FLAG_BITS = {"ENABLED": 0, "HOT_PLUGGABLE": 1, "NON_VOLATILE": 2}
WAET_FLAG_BITS = {"RTC_NO_ACK": 0, "PM_TIMER_ONE_READ": 1}
BGRT_STATUS_BITS = {"DISPLAYED": 0}
SPCR_INTERRUPT_TYPE_BITS = {"PCAT_8259": 0, "IO_APIC": 1, "IO_SAPIC": 2, "ARM_GIC": 3}
FACS_FLAG_BITS = {"S4BIOS_F": 0, "64BIT_WAKE_SUPPORTED_F": 1}
FACS_OSPM_FLAG_BITS = {"64BIT_WAKE_F": 0}

GAS_SPACE_IDS = {
    "SystemMemory": 0, "SystemIO": 1, "PCI": 2, "EmbeddedControl": 3, "SMBus": 4, "SystemCMOS": 5,
    "PciBarTarget": 6, "IPMI": 7, "GeneralPurposeIO": 8, "GenericSerialBus": 9, "PCC": 10, "FunctionalFixedHW": 0x7F,
}
# MPS INTI flags: bits 1:0 polarity, bits 3:2 trigger mode.
INTI_POLARITY = {"conforming": 0, "active_high": 1, "reserved": 2, "active_low": 3}
INTI_TRIGGER = {"conforming": 0, "edge": 1, "reserved": 2, "level": 3}
_GAS_KEYS = ("space_id", "bit_width", "bit_offset", "access_size", "address")

HEADER_FIELDS = (
    _s("signature", 4), _u("length", 4), _u("revision", 1), _u("checksum", 1), _s("oem_id", 6),
    _s("oem_table_id", 8), _u("oem_revision", 4), _s("creator_id", 4), _u("creator_revision", 4),
)
# The header fields a description writes (length and checksum are computed).
DESCRIBED_HEADER = ("revision", "oem_id", "oem_table_id", "oem_revision", "creator_id", "creator_revision")

# FADT, ACPI 6.2 layout (276 bytes). Older, shorter FADTs are parsed as far as their length goes.
FADT_FIELDS = (
    _u("FIRMWARE_CTRL", 4, ptr=True), _u("DSDT", 4, ptr=True),
    _u("INT_MODEL", 1), _u("Preferred_PM_Profile", 1), _u("SCI_INT", 2), _u("SMI_CMD", 4),
    _u("ACPI_ENABLE", 1), _u("ACPI_DISABLE", 1), _u("S4BIOS_REQ", 1), _u("PSTATE_CNT", 1),
    _u("PM1a_EVT_BLK", 4), _u("PM1b_EVT_BLK", 4), _u("PM1a_CNT_BLK", 4), _u("PM1b_CNT_BLK", 4),
    _u("PM2_CNT_BLK", 4), _u("PM_TMR_BLK", 4), _u("GPE0_BLK", 4), _u("GPE1_BLK", 4),
    _u("PM1_EVT_LEN", 1), _u("PM1_CNT_LEN", 1), _u("PM2_CNT_LEN", 1), _u("PM_TMR_LEN", 1),
    _u("GPE0_BLK_LEN", 1), _u("GPE1_BLK_LEN", 1), _u("GPE1_BASE", 1), _u("CST_CNT", 1),
    _u("P_LVL2_LAT", 2), _u("P_LVL3_LAT", 2), _u("FLUSH_SIZE", 2), _u("FLUSH_STRIDE", 2),
    _u("DUTY_OFFSET", 1), _u("DUTY_WIDTH", 1), _u("DAY_ALRM", 1), _u("MON_ALRM", 1), _u("CENTURY", 1),
    _u("IAPC_BOOT_ARCH", 2, bits=IAPC_BOOT_ARCH_BITS), _reserved("RESERVED", 1),
    _u("FLAGS", 4, bits=FADT_FLAG_BITS), _gas("RESET_REG"), _u("RESET_VALUE", 1), _u("ARM_BOOT_ARCH", 2),
    _u("FADT_MINOR_VERSION", 1), _u("X_FIRMWARE_CTRL", 8, ptr=True), _u("X_DSDT", 8, ptr=True),
    _gas("X_PM1a_EVT_BLK"), _gas("X_PM1b_EVT_BLK"), _gas("X_PM1a_CNT_BLK"), _gas("X_PM1b_CNT_BLK"),
    _gas("X_PM2_CNT_BLK"), _gas("X_PM_TMR_BLK"), _gas("X_GPE0_BLK"), _gas("X_GPE1_BLK"),
    _gas("SLEEP_CONTROL_REG"), _gas("SLEEP_STATUS_REG"), _s("HYPERVISOR_VENDOR_IDENTITY", 8),
)
# Byte offsets of the FADT pointer fields (used when rewriting raw dumps).
FADT_OFFSETS = {}
_off = HEADER_SIZE
for _f in FADT_FIELDS:
    FADT_OFFSETS[_f.name] = _off
    _off += _f.size
FADT_SIZE = _off
del _off, _f

FACS_FIELDS = (
    _u("hardware_signature", 4), _u("firmware_waking_vector", 4), _u("global_lock", 4),
    _u("flags", 4, bits=FACS_FLAG_BITS), _u("x_firmware_waking_vector", 8), _u("version", 1),
    _raw("reserved1", 3), _u("ospm_flags", 4, bits=FACS_OSPM_FLAG_BITS), _raw("reserved2", 24),
)


@dataclasses.dataclass(frozen=True)
class SubtableType:
    """One kind of subtable/record: its type code, name and the fields after the type/length header."""

    code: int
    name: str
    fields: tuple[Field, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.fields)


@dataclasses.dataclass(frozen=True)
class SubtableSet:
    """The variable part of a table: a sequence of (type, length, fields...) structures."""

    key: str                  # description/parse key: "subtables" or "records"
    type_size: int            # width of the type field (MADT/SRAT 1, FPDT 2)
    types: tuple[SubtableType, ...]

    @property
    def header_size(self) -> int:
        return self.type_size + 1   # every set here has a one-byte length

    def by_name(self, name: str) -> SubtableType | None:
        return next((t for t in self.types if t.name == name), None)

    def by_code(self, code: int) -> SubtableType | None:
        return next((t for t in self.types if t.code == code), None)


@dataclasses.dataclass(frozen=True)
class TableLayout:
    """Fixed fields after the standard header, then an optional subtable set."""

    signature: str
    fields: tuple[Field, ...]
    subtables: SubtableSet | None = None


MADT_SUBTABLES = SubtableSet("subtables", 1, (
    SubtableType(0, "LOCAL_APIC", (_u("processor_uid", 1), _u("apic_id", 1), _u("flags", 4, bits=LAPIC_FLAG_BITS))),
    SubtableType(1, "IO_APIC", (_u("io_apic_id", 1), _reserved("reserved", 1), _u("address", 4),
                                _u("gsi_base", 4))),
    SubtableType(2, "INTERRUPT_SOURCE_OVERRIDE", (_u("bus", 1), _u("source", 1), _u("gsi", 4), _inti("flags"))),
    SubtableType(3, "NMI_SOURCE", (_inti("flags"), _u("gsi", 4))),
    SubtableType(4, "LOCAL_APIC_NMI", (_u("processor_uid", 1), _inti("flags"), _u("lint", 1))),
    SubtableType(5, "LOCAL_APIC_ADDRESS_OVERRIDE", (_reserved("reserved", 2), _u("address", 8))),
    SubtableType(9, "LOCAL_X2APIC", (_reserved("reserved", 2), _u("x2apic_id", 4),
                                     _u("flags", 4, bits=LAPIC_FLAG_BITS), _u("processor_uid", 4))),
    SubtableType(10, "LOCAL_X2APIC_NMI", (_inti("flags"), _u("processor_uid", 4), _u("lint", 1),
                                          _raw("reserved", 3))),
))
SRAT_SUBTABLES = SubtableSet("subtables", 1, (
    SubtableType(0, "PROCESSOR_APIC_AFFINITY", (
        _u("proximity_domain_low", 1), _u("apic_id", 1), _u("flags", 4, bits=SRAT_CPU_FLAG_BITS),
        _u("local_sapic_eid", 1), _u("proximity_domain_high", 3), _u("clock_domain", 4))),
    SubtableType(1, "MEMORY_AFFINITY", (
        _u("proximity_domain", 4), _reserved("reserved1", 2), _u("base_address", 8), _u("length", 8),
        _reserved("reserved2", 4), _u("flags", 4, bits=SRAT_MEM_FLAG_BITS), _reserved("reserved3", 8))),
    SubtableType(2, "X2APIC_AFFINITY", (
        _reserved("reserved1", 2), _u("proximity_domain", 4), _u("x2apic_id", 4),
        _u("flags", 4, bits=SRAT_CPU_FLAG_BITS), _u("clock_domain", 4), _reserved("reserved2", 4))),
))
FPDT_RECORDS = SubtableSet("records", 2, (
    SubtableType(0, "BOOT_PERFORMANCE_POINTER", (_u("revision", 1), _reserved("reserved", 4),
                                                 _u("address", 8, ptr=True))),
    SubtableType(1, "S3_PERFORMANCE_POINTER", (_u("revision", 1), _reserved("reserved", 4),
                                               _u("address", 8, ptr=True))),
))

LAYOUTS: dict[str, TableLayout] = {
    "FACP": TableLayout("FACP", FADT_FIELDS),
    "APIC": TableLayout("APIC", (_u("local_apic_address", 4), _u("flags", 4, bits=MADT_FLAG_BITS)), MADT_SUBTABLES),
    "SRAT": TableLayout("SRAT", (_u("table_revision", 4), _reserved("reserved", 8)), SRAT_SUBTABLES),
    "SPCR": TableLayout("SPCR", (
        _u("interface_type", 1), _raw("reserved1", 3), _gas("base_address"),
        _u("interrupt_type", 1, bits=SPCR_INTERRUPT_TYPE_BITS), _u("irq", 1), _u("gsi", 4), _u("baud_rate", 1),
        _u("parity", 1), _u("stop_bits", 1), _u("flow_control", 1), _u("terminal_type", 1), _u("language", 1),
        _u("pci_device_id", 2), _u("pci_vendor_id", 2), _u("pci_bus", 1), _u("pci_device", 1),
        _u("pci_function", 1), _u("pci_flags", 4), _u("pci_segment", 1), _reserved("reserved2", 4))),
    "WAET": TableLayout("WAET", (_u("flags", 4, bits=WAET_FLAG_BITS),)),
    "BGRT": TableLayout("BGRT", (
        _u("version", 2), _u("status", 1, bits=BGRT_STATUS_BITS), _u("image_type", 1),
        _u("image_address", 8, ptr=True), _u("image_offset_x", 4), _u("image_offset_y", 4))),
    "FPDT": TableLayout("FPDT", (), FPDT_RECORDS),
}
AML_TABLES = ("DSDT", "SSDT")


# --------------------------------------------------------------------------------------------------------------
# Low-level helpers

def checksum_ok(data: bytes) -> bool:
    """True when the bytes sum to zero modulo 256 (the ACPI table checksum rule)."""
    return sum(data) % 256 == 0


def _fix_checksum(buf: bytearray, offset: int, end: int) -> None:
    buf[offset] = 0
    buf[offset] = (-sum(buf[:end])) % 256


def _cstr(raw: bytes) -> str:
    # Identifiers are NUL-padded on most tables; strip only the NULs so a space-padded "ABC   " stays exact.
    return raw.rstrip(b"\0").decode("latin-1")


def _bits_names(bits: tuple[tuple[str, int], ...] | None) -> dict[str, int]:
    return dict(bits) if bits else {}


@dataclasses.dataclass(frozen=True)
class Ptr:
    """A description's ``"@SIG"``: the address of object SIG in the image, known only at layout time."""

    target: str


def _encode_field(f: Field, value: Any, resolve: Callable[[str], int], where: str) -> bytes:
    if f.kind == "int":
        if isinstance(value, Ptr):
            target, value = value.target, resolve(value.target)
            if value >= 1 << (8 * f.size):
                raise AcpiTableError(
                    f"{where}: {f.name} is a {8 * f.size}-bit field but {target} lies at {value:#x}; "
                    f"choose a base_gpa that keeps the image below {1 << (8 * f.size):#x}")
        return value.to_bytes(f.size, "little")
    if f.kind == "str":
        return value.encode("ascii").ljust(f.size, b"\0")
    if f.kind == "gas":
        return struct.pack("<BBBBQ", *(value[k] for k in _GAS_KEYS))
    if f.kind == "inti":
        return value.to_bytes(2, "little")
    if f.kind == "raw":
        return value
    raise AssertionError(f.kind)


def _decode_field(f: Field, data: bytes, off: int) -> Any:
    raw = data[off:off + f.size]
    if f.kind == "int":
        return int.from_bytes(raw, "little")
    if f.kind == "str":
        return _cstr(raw)
    if f.kind == "gas":
        return dict(zip(_GAS_KEYS, struct.unpack("<BBBBQ", raw)))
    if f.kind == "inti":
        return int.from_bytes(raw, "little")
    if f.kind == "raw":
        return raw.hex()
    raise AssertionError(f.kind)


def _decode_fields(fields: tuple[Field, ...], data: bytes, off: int, end: int) -> tuple[dict[str, Any], int]:
    """Decode fields in order while they fit before ``end`` (shorter, older table revisions stop early)."""
    out: dict[str, Any] = {}
    for f in fields:
        if off + f.size > end:
            break
        out[f.name] = _decode_field(f, data, off)
        if f.kind == "inti":
            v = out[f.name]
            out["polarity"] = _name_of(INTI_POLARITY, v & 3)
            out["trigger"] = _name_of(INTI_TRIGGER, (v >> 2) & 3)
        off += f.size
    return out, off


def _name_of(table: dict[str, int], value: int) -> str:
    return next(k for k, v in table.items() if v == value)


# --------------------------------------------------------------------------------------------------------------
# Parsing raw tables

def parse_header(data: bytes) -> dict[str, Any]:
    """Decode the 36-byte standard table header into a dict (signature, length, revision, checksum, oem_id,
    oem_table_id, oem_revision, creator_id, creator_revision)."""
    if len(data) < HEADER_SIZE:
        raise AcpiTableError(f"table is {len(data)} bytes, shorter than the {HEADER_SIZE}-byte ACPI header")
    out, _ = _decode_fields(HEADER_FIELDS, data, 0, HEADER_SIZE)
    return out


def parse_rsdp(data: bytes) -> dict[str, Any]:
    """Decode an RSDP (revision 2: 36 bytes; revision 0: the first 20)."""
    if len(data) < 20 or data[:8] != b"RSD PTR ":
        raise AcpiTableError("not an RSDP (signature 'RSD PTR ' and at least 20 bytes expected)")
    out: dict[str, Any] = {
        "signature": data[:8].decode("latin-1"), "checksum": data[8], "oem_id": _cstr(data[9:15]),
        "revision": data[15], "rsdt_address": int.from_bytes(data[16:20], "little"),
    }
    if out["revision"] >= 2 and len(data) >= RSDP_SIZE:
        out["length"] = int.from_bytes(data[20:24], "little")
        out["xsdt_address"] = int.from_bytes(data[24:32], "little")
        out["extended_checksum"] = data[32]
    return out


def _parse_subtables(sset: SubtableSet, data: bytes, off: int, end: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while off + sset.header_size <= end:
        code = int.from_bytes(data[off:off + sset.type_size], "little")
        length = data[off + sset.type_size]
        if length < sset.header_size or off + length > end:
            raise AcpiTableError(f"subtable at offset {off:#x}: length {length} does not fit the table")
        kind = sset.by_code(code)
        if kind is None or length < sset.header_size + kind.size:
            items.append({"type": code, "length": length,
                          "data": data[off + sset.header_size:off + length].hex()})
        else:
            fields, pos = _decode_fields(kind.fields, data, off + sset.header_size, off + length)
            item = {"type": kind.name, "length": length, **fields}
            if pos < off + length:
                item["trailing"] = data[pos:off + length].hex()
            items.append(item)
        off += length
    if off != end:
        raise AcpiTableError(f"{end - off} stray byte(s) after the last subtable at offset {off:#x}")
    return items


def parse_table(data: bytes) -> dict[str, Any]:
    """Decode any table into a dict: ``header`` plus the body fields by the names this module uses (the same names
    as the description files). Flag fields are integers; GAS fields are dicts; MADT/SRAT subtables are under
    ``subtables`` and FPDT records under ``records`` (each with ``type`` as a name, or the number if unknown);
    XSDT/RSDT entries under ``entries``; AML and unknown bodies as hex under ``body``. Bytes past the known layout
    are returned as hex under ``trailing``."""
    if data[:4] == b"FACS":
        if len(data) < FACS_SIZE:
            raise AcpiTableError(f"FACS is {len(data)} bytes, expected at least {FACS_SIZE}")
        out = {"header": {"signature": "FACS", "length": int.from_bytes(data[4:8], "little")}}
        fields, _ = _decode_fields(FACS_FIELDS, data, 8, FACS_SIZE)
        out.update(fields)
        return out
    header = parse_header(data)
    end = min(header["length"], len(data))
    sig = header["signature"]
    out = {"header": header}
    if sig in ("XSDT", "RSDT"):
        width = 8 if sig == "XSDT" else 4
        out["entries"] = [int.from_bytes(data[o:o + width], "little") for o in range(HEADER_SIZE, end, width)]
        return out
    layout = LAYOUTS.get(sig)
    if layout is None:
        out["body"] = data[HEADER_SIZE:end].hex()
        return out
    fields, off = _decode_fields(layout.fields, data, HEADER_SIZE, end)
    out.update(fields)
    if layout.subtables is not None:
        out[layout.subtables.key] = _parse_subtables(layout.subtables, data, off, end)
    elif off < end:
        out["trailing"] = data[off:end].hex()
    return out


def parse_fadt(data: bytes) -> dict[str, Any]:
    """Decode a FADT (signature ``FACP``) into a dict of its fields by ACPI name (``SCI_INT``, ``X_PM_TMR_BLK``
    as a GAS dict, ``FLAGS`` as an integer...), plus ``header``. Fields past a shorter FADT's length are absent."""
    if data[:4] != b"FACP":
        raise AcpiTableError(f"not a FADT: signature {data[:4]!r}, expected b'FACP'")
    return parse_table(data)


def parse_madt(data: bytes) -> dict[str, Any]:
    """Decode a MADT (signature ``APIC``): ``local_apic_address``, ``flags``, and ``subtables`` — a list of dicts
    with ``type`` (``LOCAL_APIC``, ``IO_APIC``, ``INTERRUPT_SOURCE_OVERRIDE``, ``LOCAL_APIC_NMI``...) and the
    structure's fields; INTI ``flags`` are also decoded to ``polarity`` and ``trigger`` names."""
    if data[:4] != b"APIC":
        raise AcpiTableError(f"not a MADT: signature {data[:4]!r}, expected b'APIC'")
    return parse_table(data)


# --------------------------------------------------------------------------------------------------------------
# Platform descriptions

@dataclasses.dataclass
class TableSpec:
    """One table of a normalized description: header values, body field values (integers, strings, GAS dicts,
    :class:`Ptr`), subtables/records, XSDT entries, or a fixed body (AML or opaque)."""

    signature: str
    header: dict[str, Any]
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    subtables: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    entries: list[Ptr] = dataclasses.field(default_factory=list)
    body: bytes | None = None
    include: bool = True
    sources: dict[str, Path] = dataclasses.field(default_factory=dict)   # AML tables: 'asl', 'aml_hex' files


@dataclasses.dataclass
class PlatformSpec:
    """A loaded, validated platform description."""

    name: str
    path: Path
    description: str
    rsdp: dict[str, Any]
    tables: dict[str, TableSpec]
    extras: dict[str, dict[str, Any]]
    changes: list[dict[str, Any]]


EXTRA_KINDS = {
    "fbpt": ("reset_end", "os_loader_load_image_start", "os_loader_start_image_start",
             "exit_boot_services_entry", "exit_boot_services_exit"),
    "bmp": ("width", "height"),
}


class _Ctx:
    """Where a description value sits, for error messages: file, then table/field path."""

    def __init__(self, file: Path | str, where: str = "") -> None:
        self.file = str(file)
        self.where = where

    def at(self, more: str) -> "_Ctx":
        return _Ctx(self.file, f"{self.where}, {more}" if self.where else more)

    def fail(self, msg: str) -> AcpiSpecError:
        return AcpiSpecError(f"{self.file}: {self.where}: {msg}" if self.where else f"{self.file}: {msg}")


def _want_int(v: Any, bits: int, ctx: _Ctx) -> int:
    # TOML booleans are Python bools, a subclass of int: refuse them explicitly.
    if type(v) is not int:
        raise ctx.fail(f"expected an integer, got {v!r}")
    if not 0 <= v < 1 << bits:
        raise ctx.fail(f"expected an integer in 0..{(1 << bits) - 1:#x} ({bits} bits), got {v:#x}")
    return v


def _want_table(v: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ctx.fail(f"expected a table, got {v!r}")
    return v


def _norm_value(f: Field, v: Any, ctx: _Ctx) -> Any:
    if f.ptr and isinstance(v, str):
        if not v.startswith("@") or len(v) < 2:
            raise ctx.fail(f"expected an integer or a pointer \"@SIG\", got {v!r}")
        return Ptr(v[1:])
    if f.kind == "int":
        if f.bits and isinstance(v, list):
            names = _bits_names(f.bits)
            value = 0
            for name in v:
                if name not in names:
                    raise ctx.fail(f"unknown flag {name!r}; expected one of {sorted(names)}")
                if value & (1 << names[name]):
                    raise ctx.fail(f"flag {name!r} given twice")
                value |= 1 << names[name]
            return value
        if f.bits and not isinstance(v, int):
            raise ctx.fail(f"expected a list of flag names {sorted(_bits_names(f.bits))} or an integer, got {v!r}")
        return _want_int(v, 8 * f.size, ctx)
    if f.kind == "str":
        if not isinstance(v, str) or not v.isascii() or len(v) > f.size or "\0" in v:
            raise ctx.fail(f"expected an ASCII string of at most {f.size} characters, got {v!r}")
        return v
    if f.kind == "gas":
        t = _want_table(v, ctx)
        if set(t) != set(_GAS_KEYS):
            raise ctx.fail(f"expected a generic address {{{', '.join(_GAS_KEYS)}}}, got keys {sorted(t)}")
        out = {}
        for key, bits in zip(_GAS_KEYS, (8, 8, 8, 8, 64)):
            val = t[key]
            if key == "space_id" and isinstance(val, str):
                if val not in GAS_SPACE_IDS:
                    raise ctx.at(key).fail(f"unknown address space {val!r}; expected one of {sorted(GAS_SPACE_IDS)}")
                val = GAS_SPACE_IDS[val]
            out[key] = _want_int(val, bits, ctx.at(key))
        if out["access_size"] > 4:
            raise ctx.at("access_size").fail(
                f"expected 0..4 (undefined, byte, word, dword, qword), got {out['access_size']}")
        return out
    if f.kind == "inti":
        if isinstance(v, dict):
            if set(v) != {"polarity", "trigger"}:
                raise ctx.fail(f"expected {{polarity, trigger}}, got keys {sorted(v)}")
            if v["polarity"] not in INTI_POLARITY:
                raise ctx.at("polarity").fail(f"expected one of {list(INTI_POLARITY)}, got {v['polarity']!r}")
            if v["trigger"] not in INTI_TRIGGER:
                raise ctx.at("trigger").fail(f"expected one of {list(INTI_TRIGGER)}, got {v['trigger']!r}")
            return INTI_POLARITY[v["polarity"]] | INTI_TRIGGER[v["trigger"]] << 2
        return _want_int(v, 16, ctx)
    if f.kind == "raw":
        if v == 0:
            return bytes(f.size)
        if isinstance(v, str):
            try:
                b = bytes.fromhex(v)
            except ValueError:
                b = b""
            if len(b) == f.size:
                return b
        raise ctx.fail(f"expected 0 or a hex string of {f.size} bytes, got {v!r}")
    raise AssertionError(f.kind)


def _norm_fields(fields: tuple[Field, ...], given: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
    known = {f.name for f in fields}
    for key in given:
        if key not in known:
            raise ctx.at(f"field {key}").fail(f"unknown field; expected one of {[f.name for f in fields]}")
    out: dict[str, Any] = {}
    for f in fields:
        if f.name in given:
            out[f.name] = _norm_value(f, given[f.name], ctx.at(f"field {f.name}"))
        elif f.optional:
            out[f.name] = bytes(f.size) if f.kind == "raw" else 0
        else:
            raise ctx.at(f"field {f.name}").fail("missing (every non-reserved field must be given)")
    return out


def _norm_header(sig: str, raw: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
    if raw.get("signature", sig) != sig:
        raise ctx.at("signature").fail(f"expected {sig!r} (the section name), got {raw['signature']!r}")
    fields = {f.name: f for f in HEADER_FIELDS}
    out = {}
    for name in DESCRIBED_HEADER:
        if name not in raw:
            raise ctx.at(name).fail("missing header field")
        out[name] = _norm_value(fields[name], raw[name], ctx.at(name))
    return out


def _read_aml_hex(path: Path, ctx: _Ctx) -> bytes:
    """Read AML carried as hex text ('#' starts a comment line)."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ctx.fail(f"cannot read AML file {path}: {exc}") from None
    hexdigits = "".join(line.strip() for line in text.splitlines() if not line.lstrip().startswith("#"))
    try:
        return bytes.fromhex(hexdigits)
    except ValueError:
        raise ctx.fail(f"{path} is not hex text (two hex digits per byte, '#' comment lines)") from None


def _norm_table(sig: str, raw: Any, ctx: _Ctx) -> TableSpec:
    raw = _want_table(raw, ctx)
    if len(sig) != 4 or not sig.isascii():
        raise ctx.fail("a table signature has exactly four ASCII characters")
    allowed = {"signature", "include", "fields", "subtables", "records", "body", "entries", *DESCRIBED_HEADER}
    for key in raw:
        if key not in allowed:
            raise ctx.at(key).fail(f"unknown key; expected one of {sorted(allowed)}")
    include = raw.get("include", True)
    if not isinstance(include, bool):
        raise ctx.at("include").fail(f"expected true or false, got {include!r}")

    if sig == "FACS":
        if raw.get("signature", sig) != sig:
            raise ctx.at("signature").fail(f"expected 'FACS', got {raw['signature']!r}")
        for key in raw:
            if key not in ("signature", "fields"):
                raise ctx.at(key).fail("the FACS has no standard header; only 'fields' may be given")
        fields = _norm_fields(FACS_FIELDS, _want_table(raw.get("fields", {}), ctx.at("fields")), ctx)
        return TableSpec(sig, {}, fields=fields)

    header = _norm_header(sig, raw, ctx)
    spec = TableSpec(sig, header, include=include)
    layout = LAYOUTS.get(sig)
    if sig == "XSDT":
        entries = raw.get("entries")
        if not isinstance(entries, list) or not all(isinstance(e, str) and e.startswith("@") for e in entries):
            raise ctx.at("entries").fail(f"expected a list of \"@SIG\" pointers, got {entries!r}")
        spec.entries = [Ptr(e[1:]) for e in entries]
        for key in ("fields", "subtables", "records", "body"):
            if key in raw:
                raise ctx.at(key).fail("the XSDT is described by its header and 'entries' only")
        return spec
    if "entries" in raw:
        raise ctx.at("entries").fail("only the XSDT has 'entries'")

    if layout is not None:
        if "body" in raw:
            raise ctx.at("body").fail(f"{sig} has a known layout: describe it with 'fields'"
                                      + (f" and '{layout.subtables.key}'" if layout.subtables else ""))
        given = raw.get("fields", {}) if not layout.fields else raw.get("fields")
        if given is None:
            raise ctx.at("fields").fail("missing [tables.%s.fields]" % sig)
        spec.fields = _norm_fields(layout.fields, _want_table(given, ctx.at("fields")), ctx)
        other = {"subtables", "records"} - ({layout.subtables.key} if layout.subtables else set())
        for key in other:
            if key in raw:
                raise ctx.at(key).fail(f"{sig} has no '{key}'")
        if layout.subtables is not None:
            items = raw.get(layout.subtables.key, [])
            if not isinstance(items, list):
                raise ctx.at(layout.subtables.key).fail(f"expected an array of tables, got {items!r}")
            spec.subtables = [_norm_subtable(layout.subtables, item, ctx.at(f"{layout.subtables.key}[{i}]"))
                              for i, item in enumerate(items)]
        return spec

    # AML or opaque body.
    for key in ("fields", "subtables", "records"):
        if key in raw:
            raise ctx.at(key).fail(f"{sig} has no field layout in gen2sim.acpi; describe it with [tables.{sig}.body]")
    body = _want_table(raw.get("body"), ctx.at("body")) if "body" in raw else None
    if body is None:
        raise ctx.at("body").fail("missing: give 'asl' and 'aml_hex' (AML tables) or 'opaque_length' and 'fill'")
    bctx = ctx.at("body")
    if sig in AML_TABLES:
        if set(body) != {"asl", "aml_hex"}:
            raise bctx.fail(f"expected keys ['aml_hex', 'asl'], got {sorted(body)}")
        base = Path(ctx.file).parent
        for key in ("asl", "aml_hex"):
            if not isinstance(body[key], str):
                raise bctx.at(key).fail(f"expected a file name, got {body[key]!r}")
        asl_path = base / body["asl"]
        if not asl_path.is_file():
            raise bctx.at("asl").fail(f"file {asl_path} not found")
        aml = _read_aml_hex(base / body["aml_hex"], bctx.at("aml_hex"))
        _check_aml(sig, aml, header, bctx.at("aml_hex"), base / body["aml_hex"])
        spec.body = aml[HEADER_SIZE:]
        spec.sources = {"asl": asl_path, "aml_hex": base / body["aml_hex"]}
        return spec
    if set(body) != {"opaque_length", "fill"}:
        raise bctx.fail(f"expected keys ['fill', 'opaque_length'], got {sorted(body)}")
    length = _want_int(body["opaque_length"], 32, bctx.at("opaque_length"))
    fill = _want_int(body["fill"], 8, bctx.at("fill"))
    spec.body = bytes([fill]) * length
    return spec


def _check_aml(sig: str, aml: bytes, header: dict[str, Any], ctx: _Ctx, path: Path) -> None:
    if len(aml) < HEADER_SIZE or aml[:4] != sig.encode():
        raise ctx.fail(f"{path}: expected an AML table with signature {sig!r}")
    h = parse_header(aml)
    if h["length"] != len(aml):
        raise ctx.fail(f"{path}: header length {h['length']} but {len(aml)} bytes of AML")
    if not checksum_ok(aml):
        raise ctx.fail(f"{path}: checksum does not sum to zero")
    for name in DESCRIBED_HEADER:
        if h[name] != header[name]:
            raise ctx.fail(f"{path}: AML header {name} is {h[name]!r} but the description says {header[name]!r}; "
                           "regenerate the AML (python -m gen2sim.acpi regen-dsdt) or fix the description")


def _norm_subtable(sset: SubtableSet, raw: Any, ctx: _Ctx) -> dict[str, Any]:
    raw = _want_table(raw, ctx)
    name = raw.get("type")
    kind = sset.by_name(name) if isinstance(name, str) else None
    if kind is None:
        raise ctx.at("type").fail(f"expected one of {[t.name for t in sset.types]}, got {name!r}")
    fields = _norm_fields(kind.fields, {k: v for k, v in raw.items() if k != "type"}, ctx.at(kind.name))
    return {"type": kind.name, **fields}


def _norm_extra(name: str, raw: Any, ctx: _Ctx) -> dict[str, Any]:
    raw = _want_table(raw, ctx)
    kind = raw.get("kind")
    if kind not in EXTRA_KINDS:
        raise ctx.at("kind").fail(f"expected one of {sorted(EXTRA_KINDS)}, got {kind!r}")
    keys = EXTRA_KINDS[kind]
    extra = set(raw) - set(keys) - {"kind"}
    if extra:
        raise ctx.fail(f"unknown keys {sorted(extra)}; a {kind!r} extra has {list(keys)}")
    out: dict[str, Any] = {"kind": kind}
    for key in keys:
        if key not in raw:
            raise ctx.at(key).fail("missing")
        out[key] = _want_int(raw[key], 64 if kind == "fbpt" else 16, ctx.at(key))
    if kind == "bmp" and not (out["width"] and out["height"]):
        raise ctx.fail("a bitmap needs a width and height of at least 1")
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise AcpiSpecError(f"{path}: platform description not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise AcpiSpecError(f"{path}: not valid TOML: {exc}") from None


def _resolve_platform_path(platform: str | Path) -> Path:
    p = Path(platform)
    if p.suffix == ".toml":
        return p
    if isinstance(platform, str) and "/" not in platform and (SPEC_DIR / f"{platform}.toml").is_file():
        return SPEC_DIR / f"{platform}.toml"
    known = sorted(x.stem for x in SPEC_DIR.glob("*.toml"))
    raise AcpiSpecError(f"unknown platform {platform!r}: expected one of {known} or a path to a .toml description")


def _load_raw(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a description, following ``platform.base`` and applying ``changes`` to the base's raw data."""
    path = path.resolve()
    if path in seen:
        raise AcpiSpecError(f"{path}: 'base' chain loops back to itself")
    raw = _read_toml(path)
    ctx = _Ctx(path)
    allowed = {"platform", "rsdp", "tables", "extras", "changes"}
    for key in raw:
        if key not in allowed:
            raise ctx.at(key).fail(f"unknown top-level key; expected one of {sorted(allowed)}")
    plat = _want_table(raw.get("platform", {}), ctx.at("platform"))
    base = plat.get("base")
    # Remember which file each table came from: AML/ASL file names are relative to it.
    for tsig, table in raw.get("tables", {}).items():
        if isinstance(table, dict):
            table["__file__"] = str(path)
    if base is None:
        if "changes" in raw:
            raise ctx.at("changes").fail("'changes' needs a [platform] base to change")
        return raw, []
    if not isinstance(base, str):
        raise ctx.at("platform.base").fail(f"expected a file name, got {base!r}")
    merged, applied = _load_raw(path.parent / base, seen + (path,))
    for key in ("rsdp", "tables", "extras"):
        if key in raw:
            raise ctx.at(key).fail(f"a variant changes its base only through [[changes]]; '{key}' is not allowed")
    merged["platform"] = {**merged.get("platform", {}), **plat}
    merged["platform"].pop("base", None)
    changes = raw.get("changes", [])
    if not isinstance(changes, list):
        raise ctx.at("changes").fail("expected an array of tables [[changes]]")
    for i, change in enumerate(changes):
        applied.append(_apply_change(merged, change, ctx.at(f"changes[{i}]")))
    return merged, applied


def _apply_change(merged: dict[str, Any], change: Any, ctx: _Ctx) -> dict[str, Any]:
    change = _want_table(change, ctx)
    op = change.get("op")
    table = change.get("table")
    reason = change.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ctx.at("reason").fail("every change needs a non-empty reason")
    tables = merged.get("tables", {})
    if table not in tables:
        raise ctx.at("table").fail(f"expected a table of the base {sorted(tables)}, got {table!r}")
    target = tables[table]
    cctx = ctx.at(f"table {table}")
    if op == "set":
        if set(change) != {"op", "table", "field", "value", "reason"}:
            raise ctx.fail(f"a 'set' change has keys ['field', 'op', 'reason', 'table', 'value'], got {sorted(change)}")
        field = change["field"]
        fields = target.get("fields", {})
        if field not in fields:
            raise cctx.at(f"field {field}").fail(
                f"the base does not describe this field; expected one of {sorted(fields)}")
        if fields[field] == change["value"]:
            raise cctx.at(f"field {field}").fail("the change sets the value the base already has")
        fields[field] = change["value"]
        return {"op": op, "table": table, "field": field, "value": change["value"], "reason": reason}
    if op == "insert_subtable":
        if set(change) != {"op", "table", "index", "subtable", "reason"}:
            raise ctx.fail(f"an 'insert_subtable' change has keys ['index', 'op', 'reason', 'subtable', 'table'], "
                           f"got {sorted(change)}")
        key = "records" if "records" in target else "subtables"
        items = target.setdefault(key, [])
        index = change["index"]
        if type(index) is not int or not 0 <= index <= len(items):
            raise cctx.at("index").fail(f"expected an integer in 0..{len(items)}, got {index!r}")
        items.insert(index, change["subtable"])
        return {"op": op, "table": table, "index": index, "subtable": change["subtable"], "reason": reason}
    raise ctx.at("op").fail(f"expected 'set' or 'insert_subtable', got {op!r}")


def load_platform(platform: str | Path) -> PlatformSpec:
    """Load and validate a platform description.

    ``platform`` is a name under ``specs/platforms`` (``"gen2"``, ``"gen1"``) or a path to a ``.toml`` file. A
    description with ``[platform] base = "..."`` is a variant: its ``[[changes]]`` (``op = "set"`` of a field, or
    ``op = "insert_subtable"``, each with a ``reason``) are applied to the base before validation. Raises
    :class:`AcpiSpecError` naming the file, table, field and what was expected.
    """
    path = _resolve_platform_path(platform)
    raw, changes = _load_raw(path)
    ctx = _Ctx(path)
    plat = _want_table(raw.get("platform", {}), ctx.at("platform"))
    name = plat.get("name", path.stem)
    rsdp_raw = _want_table(raw.get("rsdp"), ctx.at("rsdp")) if "rsdp" in raw else None
    if rsdp_raw is None:
        raise ctx.at("rsdp").fail("missing [rsdp] (oem_id, revision, rsdt_address)")
    rsdp = _norm_fields((_s("oem_id", 6), _u("revision", 1), _u("rsdt_address", 4)), rsdp_raw, ctx.at("rsdp"))
    if rsdp["revision"] < 2:
        raise ctx.at("rsdp").at("revision").fail("expected 2 or more: the image has an XSDT, which needs RSDP 2.0")

    tables_raw = _want_table(raw.get("tables", {}), ctx.at("tables"))
    tables: dict[str, TableSpec] = {}
    for sig in sorted(tables_raw):
        traw = dict(_want_table(tables_raw[sig], ctx.at(f"table {sig}")))
        tfile = traw.pop("__file__", str(path))
        tables[sig] = _norm_table(sig, traw, _Ctx(tfile, f"table {sig}"))
    for required in ("XSDT", "FACP"):
        if required not in tables:
            raise ctx.fail(f"missing [tables.{required}]")
    extras_raw = _want_table(raw.get("extras", {}), ctx.at("extras"))
    extras = {k: _norm_extra(k, v, ctx.at(f"extras {k}")) for k, v in sorted(extras_raw.items())}
    for k in extras:
        if k in tables:
            raise ctx.at(f"extras {k}").fail("an extra may not share its name with a table")

    spec = PlatformSpec(name, path, plat.get("description", ""), rsdp, tables, extras, changes)
    _check_pointers(spec, ctx)
    return spec


def _pointers(spec: PlatformSpec) -> list[tuple[str, Ptr]]:
    """Every pointer of the description as (where, Ptr)."""
    out: list[tuple[str, Ptr]] = []
    for sig, t in spec.tables.items():
        if not t.include:
            continue
        for fname, v in t.fields.items():
            if isinstance(v, Ptr):
                out.append((f"table {sig}, field {fname}", v))
        for i, item in enumerate(t.subtables):
            for fname, v in item.items():
                if isinstance(v, Ptr):
                    out.append((f"table {sig}, {LAYOUTS[sig].subtables.key}[{i}], field {fname}", v))
        for i, e in enumerate(t.entries):
            out.append((f"table {sig}, entries[{i}]", e))
    return out


def _check_pointers(spec: PlatformSpec, ctx: _Ctx) -> None:
    targets = {s for s, t in spec.tables.items() if t.include} | set(spec.extras)
    referenced = set()
    for where, p in _pointers(spec):
        if p.target in spec.tables and not spec.tables[p.target].include and where.startswith("table XSDT"):
            continue    # an excluded table simply drops out of the XSDT
        if p.target not in targets:
            raise ctx.at(where).fail(f"points at {p.target!r}, which the description does not provide "
                                     f"(expected one of {sorted(targets)})")
        referenced.add(p.target)
    for name in sorted(targets - referenced - {"XSDT"}):
        raise ctx.fail(f"{name!r} is described but nothing points at it (add it to the XSDT entries)")


# --------------------------------------------------------------------------------------------------------------
# Encoding

def _encode_header(sig: str, header: dict[str, Any], length: int) -> bytes:
    return (sig.encode("ascii") + length.to_bytes(4, "little") + bytes([header["revision"], 0])
            + header["oem_id"].encode("ascii").ljust(6, b"\0")
            + header["oem_table_id"].encode("ascii").ljust(8, b"\0")
            + header["oem_revision"].to_bytes(4, "little")
            + header["creator_id"].encode("ascii").ljust(4, b"\0")
            + header["creator_revision"].to_bytes(4, "little"))


def _with_header(sig: str, header: dict[str, Any], body: bytes) -> bytes:
    buf = bytearray(_encode_header(sig, header, HEADER_SIZE + len(body)) + body)
    _fix_checksum(buf, 9, len(buf))
    return bytes(buf)


def _encode_fields(fields: tuple[Field, ...], values: dict[str, Any], resolve: Callable[[str], int],
                   where: str) -> bytes:
    return b"".join(_encode_field(f, values[f.name], resolve, where) for f in fields)


def _encode_table(t: TableSpec, resolve: Callable[[str], int], included: set[str]) -> bytes:
    where = f"table {t.signature}"
    if t.signature == "FACS":
        body = _encode_fields(FACS_FIELDS, t.fields, resolve, where)
        return b"FACS" + FACS_SIZE.to_bytes(4, "little") + body
    if t.signature == "XSDT":
        body = b"".join(resolve(e.target).to_bytes(8, "little") for e in t.entries if e.target in included)
        return _with_header("XSDT", t.header, body)
    if t.body is not None:
        # AML: its header was checked against the description when loaded, so this reproduces the carried AML
        # byte for byte. Opaque bodies: the described header over the described body.
        return _with_header(t.signature, t.header, t.body)
    layout = LAYOUTS[t.signature]
    body = _encode_fields(layout.fields, t.fields, resolve, where)
    if layout.subtables is not None:
        sset = layout.subtables
        for i, item in enumerate(t.subtables):
            kind = sset.by_name(item["type"])
            length = sset.header_size + kind.size
            body += (kind.code.to_bytes(sset.type_size, "little") + bytes([length])
                     + _encode_fields(kind.fields, item, resolve, f"{where}, {sset.key}[{i}]"))
    return _with_header(t.signature, t.header, body)


def _encode_extra(extra: dict[str, Any]) -> bytes:
    if extra["kind"] == "fbpt":
        # Firmware Basic Boot Performance Table: "FBPT" + length, then one Firmware Basic Boot Performance Data
        # record (type 2, 48 bytes, revision 2) with its five 64-bit times (ns).
        times = [extra[k] for k in EXTRA_KINDS["fbpt"]]
        record = struct.pack("<HBBI5Q", 2, 48, 2, 0, *times)
        return b"FBPT" + (8 + len(record)).to_bytes(4, "little") + record
    if extra["kind"] == "bmp":
        # Uncompressed 24-bit BMP (BITMAPFILEHEADER + BITMAPINFOHEADER), black pixels, rows padded to 4 bytes.
        w, h = extra["width"], extra["height"]
        row = (3 * w + 3) & ~3
        pixels = bytes(row * h)
        info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
        size = 14 + len(info) + len(pixels)
        return struct.pack("<2sIHHI", b"BM", size, 0, 0, 14 + len(info)) + info + pixels
    raise AssertionError(extra["kind"])


def _encode_rsdp(oem_id: str, revision: int, rsdt_address: int, xsdt_address: int) -> bytes:
    buf = bytearray(b"RSD PTR " + b"\0" + oem_id.encode("ascii").ljust(6, b"\0") + bytes([revision])
                    + rsdt_address.to_bytes(4, "little") + RSDP_SIZE.to_bytes(4, "little")
                    + xsdt_address.to_bytes(8, "little") + bytes(4))
    _fix_checksum(buf, 8, 20)           # ACPI 1.0 checksum: first 20 bytes
    _fix_checksum(buf, 32, RSDP_SIZE)   # extended checksum: the whole structure
    return bytes(buf)


# --------------------------------------------------------------------------------------------------------------
# Layout

@dataclasses.dataclass(frozen=True)
class AcpiImage:
    """ACPI tables laid out in guest-physical memory.

    ``blob`` is placed at ``base_gpa``; ``rsdp_gpa`` is where the RSDP sits (what UEFI's configuration table
    would report), ``root_gpa`` the XSDT. ``tables`` maps each table's signature (``'XSDT'``, ``'FACP'``,
    ``'APIC'``, ``'DSDT'``, ``'FACS'``...) to ``(gpa, bytes)``; a second table with the same signature (only
    possible with :func:`load_tables`) gets a numeric suffix (``'SSDT2'``). ``extras`` holds objects tables
    point at that are not ACPI tables (``'FBPT'``, ``'BGRT_IMAGE'``).
    """

    blob: bytes
    rsdp_gpa: int
    root_gpa: int
    tables: dict[str, tuple[int, bytes]]
    base_gpa: int
    extras: dict[str, tuple[int, bytes]] = dataclasses.field(default_factory=dict)

    @property
    def rsdp(self) -> bytes:
        """The RSDP's 36 bytes."""
        return self.read(self.rsdp_gpa, RSDP_SIZE)

    def read(self, gpa: int, size: int) -> bytes:
        """Bytes of the image at a guest-physical address (raises ``ModelError`` outside the image)."""
        off = gpa - self.base_gpa
        if off < 0 or off + size > len(self.blob):
            raise ModelError(f"{gpa:#x}+{size} lies outside the ACPI image "
                             f"[{self.base_gpa:#x}, {self.base_gpa + len(self.blob):#x})")
        return self.blob[off:off + size]

    def object_at(self, gpa: int) -> str | None:
        """The name of the table or extra that starts at ``gpa``, if any."""
        for name, (addr, _) in {**self.tables, **self.extras}.items():
            if addr == gpa:
                return name
        return None


def _align(x: int) -> int:
    return (x + ALIGN - 1) & ~(ALIGN - 1)


def _check_base(base_gpa: int) -> None:
    if type(base_gpa) is not int or base_gpa < 0 or base_gpa % ALIGN:
        raise AcpiTableError(f"base_gpa must be a non-negative multiple of {ALIGN}, got {base_gpa!r}")


def _assemble(base_gpa: int, order: list[str], encoders: dict[str, Callable[[Callable[[str], int]], bytes]],
              extras: set[str]) -> AcpiImage:
    """Place objects in ``order`` (RSDP first), each 64-byte aligned, resolving pointers between them.

    Sizes never depend on addresses, so a first pass with every address 0 gives the sizes, a second pass the
    final bytes."""
    sizes = {name: len(encoders[name](lambda _t: 0)) for name in order}
    addrs: dict[str, int] = {}
    cur = base_gpa
    for name in order:
        addrs[name] = cur
        cur = _align(cur + sizes[name])

    def resolve(target: str) -> int:
        return addrs[target]

    blob = bytearray(cur - base_gpa)
    tables: dict[str, tuple[int, bytes]] = {}
    extra_out: dict[str, tuple[int, bytes]] = {}
    for name in order:
        data = encoders[name](resolve)
        assert len(data) == sizes[name], name
        off = addrs[name] - base_gpa
        blob[off:off + len(data)] = data
        if name == "RSDP":
            continue
        (extra_out if name in extras else tables)[name] = (addrs[name], data)
    return AcpiImage(bytes(blob), addrs["RSDP"], addrs["XSDT"], tables, base_gpa, extra_out)


def build_tables(platform: str, base_gpa: int) -> AcpiImage:
    """Build the ACPI tables of a platform description and lay them out at ``base_gpa``.

    ``platform`` is ``"gen2"``, ``"gen1"`` or a path to a description. The layout is: RSDP (revision 2, both
    checksums), XSDT, the XSDT's tables in XSDT order, the remaining tables (DSDT, FACS) by signature, then the
    extras (FBPT, BGRT image) by name — each on a 64-byte boundary. Pointer fields (XSDT entries, FADT
    FIRMWARE_CTRL/DSDT/X_DSDT as the description has them, BGRT image, FPDT record) get the new addresses and
    every checksum is fixed. ``base_gpa`` must be a multiple of 64; 32-bit pointer fields need the image below
    4 GiB.
    """
    _check_base(base_gpa)
    spec = load_platform(platform)
    included = {s for s, t in spec.tables.items() if t.include}
    xsdt = spec.tables["XSDT"]
    order = ["RSDP", "XSDT"]
    for e in xsdt.entries:
        if e.target in included and e.target not in order:
            order.append(e.target)
    order += sorted(included - set(order))
    order += sorted(spec.extras)
    encoders: dict[str, Callable[[Callable[[str], int]], bytes]] = {
        "RSDP": lambda r: _encode_rsdp(spec.rsdp["oem_id"], spec.rsdp["revision"], spec.rsdp["rsdt_address"],
                                       r("XSDT")),
    }
    for sig in included:
        encoders[sig] = (lambda t: lambda r: _encode_table(t, r, included))(spec.tables[sig])
    for name, extra in spec.extras.items():
        encoders[name] = (lambda x: lambda _r: _encode_extra(x))(extra)
    return _assemble(base_gpa, order, encoders, set(spec.extras))


def default_facs() -> bytes:
    """The FACS this model provides when a dump has none: 64 bytes, signature ``FACS``, version 2, all else 0."""
    values = {f.name: (bytes(f.size) if f.kind == "raw" else 0) for f in FACS_FIELDS}
    values["version"] = 2
    return b"FACS" + FACS_SIZE.to_bytes(4, "little") + _encode_fields(FACS_FIELDS, values, lambda _t: 0, "FACS")


def _expected_signature(stem: str, sig: str) -> bool:
    s = stem.upper()
    return s == sig or s.rstrip("0123456789") == sig


# Files load_tables ignores: it builds its own root pointer and root table.
_ROOT_FILES = ("rsdp", "xsdt", "rsdt")


def load_tables(directory: str | Path, base_gpa: int) -> AcpiImage:
    """Lay out raw ACPI tables a user dumped (``acpidump -b``: ``facp.dat``, ``apic.dat``, ``dsdt.dat``,
    ``ssdt1.dat``...) at ``base_gpa``, like :func:`build_tables`.

    Each ``*.dat`` must hold one table whose signature matches its file name (digits after the name are allowed:
    ``ssdt2.dat``), whose header length equals the file size and whose checksum is valid; errors name the file
    and what was expected. ``rsdp.dat``/``xsdt.dat``/``rsdt.dat`` are ignored: a new RSDP and XSDT are built, the
    XSDT listing FACP first and then the other tables in file-name order (DSDT and FACS are reached through the
    FADT). The FADT's FIRMWARE_CTRL/X_FIRMWARE_CTRL and DSDT/X_DSDT fields are rewritten where the dump has them
    non-zero. ``facs.dat`` is used if present, else :func:`default_facs`. Other pointers inside tables (BGRT
    image, FPDT records) are left as dumped: they refer to the original machine's memory.
    """
    _check_base(base_gpa)
    d = Path(directory)
    if not d.is_dir():
        raise AcpiTableError(f"{d}: not a directory of dumped tables")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() == ".dat"
                   and p.stem.lower() not in _ROOT_FILES)
    if not files:
        raise AcpiTableError(f"{d}: no *.dat table files")
    loaded: dict[str, bytes] = {}
    for p in files:
        data = p.read_bytes()
        key = _validate_dump(p, data)
        name = key
        n = 2
        while name in loaded:
            name = f"{key}{n}"
            n += 1
        loaded[name] = data
    if "FACP" not in loaded:
        raise AcpiTableError(f"{d}: no facp.dat (a FADT, signature 'FACP') — the FADT is required")
    fadt = loaded["FACP"]

    def field(name: str) -> int | None:
        off = FADT_OFFSETS[name]
        size = next(f.size for f in FADT_FIELDS if f.name == name)
        if off + size > len(fadt):
            return None
        return int.from_bytes(fadt[off:off + size], "little")

    wants_facs = bool(field("FIRMWARE_CTRL") or field("X_FIRMWARE_CTRL"))
    wants_dsdt = bool(field("DSDT") or field("X_DSDT"))
    if wants_dsdt and "DSDT" not in loaded:
        raise AcpiTableError(f"{d}: the FADT points at a DSDT but there is no dsdt.dat")
    if wants_facs and "FACS" not in loaded:
        loaded["FACS"] = default_facs()

    header = parse_header(fadt)
    xsdt_header = {"revision": 1, **{k: header[k] for k in DESCRIBED_HEADER if k != "revision"}}
    entries = ["FACP"] + sorted(k for k in loaded if k not in ("FACP", "DSDT", "FACS"))
    order = ["RSDP", "XSDT"] + entries + [k for k in ("DSDT", "FACS") if k in loaded]

    def fadt_encoder(resolve: Callable[[str], int]) -> bytes:
        buf = bytearray(fadt)
        for small, wide, target in (("FIRMWARE_CTRL", "X_FIRMWARE_CTRL", "FACS"), ("DSDT", "X_DSDT", "DSDT")):
            if target not in loaded:
                continue
            addr = resolve(target)
            for name, width in ((small, 4), (wide, 8)):
                if field(name):
                    if addr >= 1 << (8 * width):
                        raise AcpiTableError(f"{d / 'facp.dat'}: {name} is a 32-bit field but the {target} would lie "
                                             f"at {addr:#x}; choose a base_gpa below 4 GiB")
                    buf[FADT_OFFSETS[name]:FADT_OFFSETS[name] + width] = addr.to_bytes(width, "little")
        _fix_checksum(buf, 9, len(buf))
        return bytes(buf)

    encoders: dict[str, Callable[[Callable[[str], int]], bytes]] = {
        "RSDP": lambda r: _encode_rsdp(header["oem_id"], 2, 0, r("XSDT")),
        "XSDT": lambda r: _with_header("XSDT", xsdt_header, b"".join(r(e).to_bytes(8, "little") for e in entries)),
        "FACP": fadt_encoder,
    }
    for name, data in loaded.items():
        if name != "FACP":
            encoders[name] = (lambda b: lambda _r: b)(data)
    return _assemble(base_gpa, order, encoders, set())


def _validate_dump(p: Path, data: bytes) -> str:
    """Check one dumped table file; return its signature."""
    if p.stem.lower() == "facs" or data[:4] == b"FACS":
        if data[:4] != b"FACS":
            raise AcpiTableError(f"{p}: signature {data[:4]!r}, expected b'FACS' (from the file name)")
        if len(data) < FACS_SIZE:
            raise AcpiTableError(f"{p}: {len(data)} bytes, expected at least {FACS_SIZE} for a FACS")
        length = int.from_bytes(data[4:8], "little")
        if length != len(data):
            raise AcpiTableError(f"{p}: FACS length field says {length} but the file has {len(data)} bytes")
        return "FACS"
    if len(data) < HEADER_SIZE:
        raise AcpiTableError(f"{p}: {len(data)} bytes, expected at least the {HEADER_SIZE}-byte table header")
    sig = data[:4].decode("latin-1")
    if not _expected_signature(p.stem, sig):
        raise AcpiTableError(f"{p}: signature {sig!r}, expected {p.stem.upper().rstrip('0123456789')!r} "
                             "(from the file name)")
    length = int.from_bytes(data[4:8], "little")
    if length != len(data):
        raise AcpiTableError(f"{p}: header length {length} but the file has {len(data)} bytes "
                             "(expected one whole table per file)")
    if not checksum_ok(data):
        raise AcpiTableError(f"{p}: checksum byte {data[9]:#04x} leaves a byte sum of {sum(data) % 256:#04x}, "
                             "expected 0")
    if sig == "FACP" and len(data) < FADT_OFFSETS["INT_MODEL"]:
        raise AcpiTableError(f"{p}: a FADT of {len(data)} bytes is too short to hold FIRMWARE_CTRL and DSDT")
    return sig


# --------------------------------------------------------------------------------------------------------------
# AML: compile our ASL (project build step, not model run time)

# The platform's VMBus device has _HID "VMBus", which is not a 7- or 8-character ACPI/PNP ID; iasl refuses that
# with error 6033 unless told to accept it. That value is the platform's (the guest's vmbus driver matches it).
IASL_ARGS = ("-vw", "6033")


def compile_asl(asl_path: str | Path) -> bytes:
    """Compile an ASL file with ACPICA ``iasl`` and return the AML table bytes.

    This is the build step behind the AML carried in ``specs/platforms/*.aml.hex``; :func:`build_tables` itself
    never runs iasl, so the image bytes do not depend on the iasl installed. Raises :class:`AcpiSpecError` when
    iasl is missing or the compile fails.
    """
    iasl = shutil.which("iasl")
    if iasl is None:
        raise AcpiSpecError("iasl (ACPICA tools) is not installed; it is needed only to recompile the DSDT")
    asl_path = Path(asl_path).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        proc = subprocess.run([iasl, *IASL_ARGS, "-p", str(out), str(asl_path)], capture_output=True, text=True,
                              cwd=tmp, check=False)
        aml = out.with_suffix(".aml")
        if proc.returncode != 0 or not aml.is_file():
            raise AcpiSpecError(f"{asl_path}: iasl failed:\n{proc.stdout}{proc.stderr}")
        return aml.read_bytes()


def format_aml_hex(aml: bytes, source_name: str) -> str:
    """The text form of carried AML: comment lines, then 32 bytes of hex per line."""
    h = parse_header(aml)
    lines = [
        f"# AML of {h['signature']} compiled by ACPICA iasl (creator {h['creator_id']} {h['creator_revision']:#x})",
        f"# from {source_name}, the gen2hal project's own ASL. Generated file: do not edit; regenerate with",
        "#   python -m gen2sim.acpi regen-dsdt",
        f"# {len(aml)} bytes",
    ]
    lines += [aml[i:i + 32].hex() for i in range(0, len(aml), 32)]
    return "\n".join(lines) + "\n"


def write_tables(image: AcpiImage, directory: str | Path) -> list[Path]:
    """Write every table of an image as ``<signature>.dat`` (lower case, acpidump -b style) plus ``rsdp.dat``;
    returns the paths written."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (_, data) in sorted(image.tables.items()):
        p = d / f"{name.lower()}.dat"
        p.write_bytes(data)
        written.append(p)
    p = d / "rsdp.dat"
    p.write_bytes(image.rsdp)
    written.append(p)
    return written


def _regen_dsdt(platform: str) -> int:
    spec = load_platform(platform)
    regenerated = set()
    for sig in AML_TABLES:
        t = spec.tables.get(sig)
        if t is None or not t.sources:
            continue
        asl, out = t.sources["asl"], t.sources["aml_hex"]
        if out in regenerated:
            continue
        aml = compile_asl(asl)
        out.write_text(format_aml_hex(aml, asl.name), encoding="ascii")
        regenerated.add(out)
        h = parse_header(aml)
        print(f"wrote {out} ({len(aml)} bytes, creator {h['creator_id']} {h['creator_revision']:#x})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m gen2sim.acpi regen-dsdt [PLATFORM]`` recompiles the carried AML from its ASL;
    ``python -m gen2sim.acpi dump PLATFORM DIR [BASE_GPA]`` writes a built image's tables as ``*.dat``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["regen-dsdt"] and len(args) <= 2:
        return _regen_dsdt(args[1] if len(args) == 2 else "gen2")
    if args[:1] == ["dump"] and len(args) in (3, 4):
        image = build_tables(args[1], int(args[3], 0) if len(args) == 4 else 0xF0000000)
        for p in write_tables(image, args[2]):
            print(p)
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
