"""Hardware touch-point rules: which calls and structure members mean which legacy (or Gen2-relevant) hardware.

The rules are data (the tables below) so that a new accessor name or port range is one line; the functions only
apply them to what the analyzer extracted from the AST (a callee name with its evaluated arguments, or a member
reference with the name of the record it belongs to). Nothing here imports libclang.

Facts: IBM PC/AT port map (8259 0x20/0x21/0xA0/0xA1, ELCR 0x4D0/0x4D1, 8254 0x40-0x43, port B 0x61, 8042
0x60/0x64, MC146818 0x70/0x71); MC146818 register map (0x00-0x09 time of day, 0x0A-0x0D status A-D); ACPI FADT
fields (PM_TMR_BLK, SMI_CMD, ACPI_ENABLE, PM1a_CNT_BLK with SCI_EN); MADT flags bit 0 PCAT_COMPAT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---- accessors ------------------------------------------------------------------------------------------------
#: Port I/O: name -> (access, index of the port argument, index of the value argument or None, width in bytes).
#: hal_src's hwio.h primitives, the DDK's READ_/WRITE_PORT_* and the compiler intrinsics.
PORT_ACCESSORS: dict[str, tuple[str, int, int | None, int]] = {
    "HalpReadPortUchar": ("read", 0, None, 1),
    "HalpReadPortUshort": ("read", 0, None, 2),
    "HalpReadPortUlong": ("read", 0, None, 4),
    "HalpWritePortUchar": ("write", 0, 1, 1),
    "HalpWritePortUshort": ("write", 0, 1, 2),
    "HalpWritePortUlong": ("write", 0, 1, 4),
    "READ_PORT_UCHAR": ("read", 0, None, 1),
    "READ_PORT_USHORT": ("read", 0, None, 2),
    "READ_PORT_ULONG": ("read", 0, None, 4),
    "WRITE_PORT_UCHAR": ("write", 0, 1, 1),
    "WRITE_PORT_USHORT": ("write", 0, 1, 2),
    "WRITE_PORT_ULONG": ("write", 0, 1, 4),
    "__inbyte": ("read", 0, None, 1),
    "__inword": ("read", 0, None, 2),
    "__indword": ("read", 0, None, 4),
    "__outbyte": ("write", 0, 1, 1),
    "__outword": ("write", 0, 1, 2),
    "__outdword": ("write", 0, 1, 4),
}
#: CMOS helpers taking a register index: name -> (access, index argument, value argument or None).
CMOS_ACCESSORS: dict[str, tuple[str, int, int | None]] = {
    "HalpReadCmos": ("read", 0, None),
    "HalpWriteCmos": ("write", 0, 1),
}
#: MSR accessors: name -> (access, MSR-number argument).
MSR_ACCESSORS: dict[str, tuple[str, int]] = {
    "HalpReadMsr": ("read", 0),
    "HalpWriteMsr": ("write", 0),
    "__readmsr": ("read", 0),
    "__writemsr": ("write", 0),
}
#: CPUID: name -> index of the leaf argument (the intrinsic takes the result array first).
CPUID_ACCESSORS: dict[str, int] = {"HalpCpuid": 0, "__cpuid": 1, "__cpuidex": 1}
#: Local APIC / IOAPIC register accessors: name -> (class, access, register-offset argument).
APIC_ACCESSORS: dict[str, tuple[str, str, int]] = {
    "ApicRead": ("lapic-mmio", "read", 0),
    "ApicWrite": ("lapic-mmio", "write", 0),
    "IoApicRead": ("ioapic-mmio", "read", 0),
    "IoApicWrite": ("ioapic-mmio", "write", 0),
    "IOApicRead": ("ioapic-mmio", "read", 0),
    "IOApicWrite": ("ioapic-mmio", "write", 0),
}
#: Calls that count as a CPUID check for the MSR lint.
CPUID_NAMES = frozenset(CPUID_ACCESSORS)

# ---- ports ----------------------------------------------------------------------------------------------------
#: (first, last, class, device) for legacy ports; first match wins.
PORT_CLASSES: tuple[tuple[int, int, str, str], ...] = (
    (0x20, 0x21, "8259", "master 8259"),
    (0xA0, 0xA1, "8259", "slave 8259"),
    (0x4D0, 0x4D1, "8259", "ELCR"),
    (0x40, 0x43, "pit", "8254 PIT"),
    (0x61, 0x61, "pit", "system control port B"),
    (0x70, 0x71, "rtc", "CMOS/RTC"),
    (0x60, 0x60, "i8042", "8042 data"),
    (0x64, 0x64, "i8042", "8042 command/status"),
)
#: Classes a busy-wait on which hangs or misbehaves on Generation 2 (the devices are absent there).
LEGACY_PORT_CLASSES = frozenset({"8259", "pit", "rtc", "i8042"})
CMOS_ADDRESS_PORT = 0x70
CMOS_DATA_PORT = 0x71

# ---- CMOS registers -------------------------------------------------------------------------------------------
RTC_TIME_OF_DAY = frozenset(range(0x00, 0x0A)) | {0x32}
RTC_INTERRUPT = frozenset({0x0A, 0x0B, 0x0C})
CMOS_REGISTER_NAMES = {
    0x00: "seconds", 0x02: "minutes", 0x04: "hours", 0x06: "day of week", 0x07: "day of month",
    0x08: "month", 0x09: "year", 0x0A: "register A", 0x0B: "register B", 0x0C: "register C",
    0x0D: "register D", 0x32: "century",
}

# ---- ACPI table members ---------------------------------------------------------------------------------------
#: FADT members by name (hal_src's CamelCase and ReactOS's FADT names) -> (class, what it is). The names are
#: distinctive enough that the record type is not checked.
FADT_MEMBERS: dict[str, tuple[str, str]] = {
    "PmTmrBlk": ("pm-timer-legacy-fadt", "legacy 32-bit FADT PM_TMR_BLK"),
    "pm_tmr_blk_io_port": ("pm-timer-legacy-fadt", "legacy 32-bit FADT PM_TMR_BLK"),
    "SmiCmd": ("acpi-enable", "FADT SMI_CMD"),
    "smi_cmd_io_port": ("acpi-enable", "FADT SMI_CMD"),
    "AcpiEnable": ("acpi-enable", "FADT ACPI_ENABLE value"),
    "acpi_on_value": ("acpi-enable", "FADT ACPI_ENABLE value"),
}
#: Legacy PM1a control block members: an ACPI-enable touch point only in a function that also uses SMI_CMD or
#: ACPI_ENABLE (elsewhere PM1a control is sleep/shutdown, not the enable handshake).
PM1A_CONTROL_MEMBERS = frozenset({"Pm1aCntBlk", "pm1a_cnt_blk_io_port"})
#: MADT flags member names, recognised only on a record whose tag or typedef name fully matches MADT_RECORD:
#: the MADT header itself, not its subtables (``ACPI_MADT_LOCAL_APIC.Flags`` is the processor-enabled bit).
MADT_FLAGS_MEMBERS = frozenset({"Flags", "flags"})
MADT_RECORD = re.compile(r"_?(ACPI_(TABLE_)?MADT|MADT|APIC_TABLE|MULTIPLE_APIC_DESCRIPTION_TABLE)", re.IGNORECASE)


@dataclass(frozen=True)
class Arg:
    """A call argument as the analyzer saw it: its constant value (or None) and its source text."""

    value: int | None
    text: str


@dataclass(frozen=True)
class Hit:
    """One classified touch point before it is placed in a function and a file."""

    cls: str
    detail: str
    access: str = ""
    port: int | None = None
    number: int | None = None  # MSR number, CPUID leaf, CMOS index or APIC register offset
    legacy_port_read: bool = False


def port_class(port: int) -> tuple[str, str] | None:
    """(class, device) of a legacy port number, or None for a port the rules do not know."""
    for first, last, cls, device in PORT_CLASSES:
        if first <= port <= last:
            return cls, device
    return None


def cmos_register(index: int | None) -> str:
    """A readable name for a CMOS index (``0x0A (register A)``), ``?`` when unresolved."""
    if index is None:
        return "?"
    name = CMOS_REGISTER_NAMES.get(index)
    return f"0x{index:02X}" + (f" ({name})" if name else "")


def rtc_use(accesses: set[tuple[int | None, str]]) -> str:
    """How a function uses the RTC, from the (CMOS index, access) pairs it selects.

    ``interrupt`` (periodic-interrupt programming/acknowledging or calibration against register A): it writes
    register A (rate), touches register C (interrupt flags), or uses registers A/B without any time-of-day
    register (a UIP poll for calibration, PIE in register B). ``time-of-day``: it reads or sets the time (reading
    A for UIP and B for the data format or SET bit belongs to that). ``unknown``: an index was not resolved and
    nothing else decides; ``cmos``: other CMOS bytes only.
    """
    known = {i for i, _ in accesses if i is not None}
    writes = {i for i, a in accesses if a == "write"}
    tod = known & RTC_TIME_OF_DAY
    if 0x0A in writes or 0x0C in known or (known & RTC_INTERRUPT and not tod):
        return "interrupt"
    if tod:
        return "time-of-day"
    if not accesses or any(i is None for i, _ in accesses):
        return "unknown"
    return "cmos"


def _hex(value: int | None) -> str:
    return "?" if value is None else f"0x{value:X}"


def classify_call(name: str, args: list[Arg]) -> list[Hit]:
    """Touch points of a call to ``name`` with ``args`` (empty for a call that touches no hardware)."""
    def arg(i: int | None) -> Arg | None:
        return args[i] if i is not None and i < len(args) else None

    if name in PORT_ACCESSORS:
        access, port_i, value_i, width = PORT_ACCESSORS[name]
        port_arg, value_arg = arg(port_i), arg(value_i)
        if port_arg is None:
            return []
        if port_arg.value is None:
            return [Hit("port-unknown", f"{access} port `{port_arg.text}` ({width}-byte)", access)]
        port = port_arg.value
        known = port_class(port)
        if known is None:
            return [Hit("port-other", f"{access} port 0x{port:X} ({width}-byte)", access, port)]
        cls, device = known
        detail = f"{access} 0x{port:X} {device}"
        number = None
        if port == CMOS_ADDRESS_PORT and access == "write" and value_arg is not None:
            # The byte written to 0x70 selects the CMOS register (bit 7 masks NMI, not part of the index).
            number = None if value_arg.value is None else value_arg.value & 0x7F
            detail += f" select {cmos_register(number)}"
            if number is None:
                detail += f" `{value_arg.text}`"
        elif access == "write" and value_arg is not None:
            detail += f" <- {_hex(value_arg.value) if value_arg.value is not None else '`' + value_arg.text + '`'}"
        return [Hit(cls, detail, access, port, number, legacy_port_read=(access == "read"))]

    if name in CMOS_ACCESSORS:
        access, index_i, _ = CMOS_ACCESSORS[name]
        index_arg = arg(index_i)
        number = None if index_arg is None or index_arg.value is None else index_arg.value & 0x7F
        detail = f"{name} {cmos_register(number)}"
        if number is None and index_arg is not None:
            detail += f" `{index_arg.text}`"
        return [Hit("rtc", detail, access, None, number, legacy_port_read=(access == "read"))]

    if name in MSR_ACCESSORS:
        access, msr_i = MSR_ACCESSORS[name]
        msr_arg = arg(msr_i)
        if msr_arg is None:
            return []
        number = msr_arg.value
        what = _hex(number) if number is not None else f"`{msr_arg.text}`"
        return [Hit("msr", f"{access} MSR {what}", access, None, number)]

    if name in CPUID_ACCESSORS:
        leaf_arg = arg(CPUID_ACCESSORS[name])
        number = None if leaf_arg is None else leaf_arg.value
        what = _hex(number) if number is not None else (f"`{leaf_arg.text}`" if leaf_arg else "?")
        return [Hit("cpuid", f"CPUID leaf {what}", "read", None, number)]

    if name in APIC_ACCESSORS:
        cls, access, reg_i = APIC_ACCESSORS[name]
        reg_arg = arg(reg_i)
        number = None if reg_arg is None else reg_arg.value
        what = _hex(number) if number is not None else (f"`{reg_arg.text}`" if reg_arg else "?")
        return [Hit(cls, f"{access} register {what}", access, None, number)]

    return []


def classify_member(member: str, records: list[str]) -> Hit | None:
    """Touch point of a reference to structure member ``member`` of a record named by any of ``records`` (struct
    tag and typedef names, for the MADT check), or None. PM1a control members are returned as ``acpi-enable`` candidates; the
    analyzer keeps them only where the enable handshake is (see PM1A_CONTROL_MEMBERS)."""
    if member in FADT_MEMBERS:
        cls, what = FADT_MEMBERS[member]
        access = "read" if cls == "pm-timer-legacy-fadt" else ""
        return Hit(cls, f"{what} ({member})", access)
    if member in PM1A_CONTROL_MEMBERS:
        return Hit("acpi-enable", f"legacy FADT PM1a_CNT_BLK ({member}): SCI_EN handshake")
    if member in MADT_FLAGS_MEMBERS and any(MADT_RECORD.fullmatch(r) for r in records):
        return Hit("madt-pcat", f"MADT {member} bit 0 (PCAT_COMPAT)", "read")
    return None
