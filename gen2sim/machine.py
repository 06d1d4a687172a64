"""A platform: devices, ACPI tables, the Hyper-V interface and the CPU, wired together.

``Machine(platform='gen2'|'gen1', ...)`` builds everything deterministic from the platform description:
- both: local APIC (0xFEE00000), IOAPIC (from the MADT), RTC/CMOS, ACPI PM block at 0x400, FADT reset register
  0x433, COM1, Hyper-V CPUID/MSRs;
- gen1 only: the 8259 pair, the PIT, the i8042, SMI_CMD 0xB2 with SCI_EN clear, RTC interrupts on ISA IRQ 8.
ISA IRQs reach the IOAPIC through the MADT's interrupt source overrides (gen1: IRQ0 → GSI2).
"""

from __future__ import annotations

import struct

from . import acpi
from .bus import IoBus, MmioBus
from .clock import VirtualClock
from .cpu import Cpu
from .devices.i8042 import I8042
from .devices.ioapic import IoApic
from .devices.lapic import LocalApic
from .devices.pic import Pic8259
from .devices.pit import Pit8254
from .devices.pmblock import PmBlock
from .devices.reset import ResetRegister
from .devices.rtc import Rtc
from .devices.uart import Uart16550
from .errors import ModelError
from .hyperv import HyperV
from .memory import ACPI_GPA, GuestMemory
from .trace import Trace

PLATFORMS = ("gen1", "gen2")
LAPIC_GPA = 0xFEE0_0000


def _patch_madt_pcat(image: acpi.AcpiImage, pcat: bool) -> acpi.AcpiImage:
    """Force MADT flags bit 0 (PCAT_COMPAT) and fix the table checksum."""
    gpa, table = image.tables["APIC"]
    buf = bytearray(table)
    (flags,) = struct.unpack_from("<I", buf, 0x28)
    flags = (flags | 1) if pcat else (flags & ~1)
    struct.pack_into("<I", buf, 0x28, flags)
    buf[9] = 0
    buf[9] = (-sum(buf)) & 0xFF
    blob = bytearray(image.blob)
    off = gpa - image.base_gpa
    blob[off : off + len(buf)] = buf
    tables = dict(image.tables)
    tables["APIC"] = (gpa, bytes(buf))
    return acpi.AcpiImage(bytes(blob), image.rsdp_gpa, image.root_gpa, tables, image.base_gpa, image.extras)


class Machine:
    """One virtual machine of ``platform`` ('gen1' or 'gen2')."""

    def __init__(self, platform: str = "gen2", *, hv_clear=frozenset(), madt_pcat: bool | None = None,
                 acpi_dir: str | None = None, ram: int = 64 << 20) -> None:
        if platform not in PLATFORMS:
            raise ModelError(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")
        self.platform = platform
        gen1 = platform == "gen1"
        self.clock = VirtualClock()
        self.trace = Trace(self.clock)
        self.memory = GuestMemory(ram)
        self.io = IoBus(self.trace)
        self.mmio = MmioBus(self.trace)

        image = acpi.load_tables(acpi_dir, ACPI_GPA) if acpi_dir else acpi.build_tables(platform, ACPI_GPA)
        if madt_pcat is not None and "APIC" in image.tables:
            image = _patch_madt_pcat(image, madt_pcat)
        self.acpi = image
        self.memory.write(ACPI_GPA, image.blob)
        madt = acpi.parse_madt(image.tables["APIC"][1]) if "APIC" in image.tables else {"subtables": []}
        fadt = acpi.parse_fadt(image.tables["FACP"][1]) if "FACP" in image.tables else {}
        self.isa_to_gsi = {irq: irq for irq in range(16)}
        ioapic_base = 0xFEC0_0000
        for sub in madt.get("subtables", []):
            if sub.get("type") == "INTERRUPT_SOURCE_OVERRIDE" and sub.get("bus") == 0:
                self.isa_to_gsi[sub["source"]] = sub["gsi"]
            elif sub.get("type") == "IO_APIC":
                ioapic_base = sub["address"]

        clock, trace = self.clock, self.trace
        self.lapic = LocalApic(clock, trace, base=LAPIC_GPA)
        self.ioapic = IoApic(clock, trace, self.lapic, base=ioapic_base)
        self.lapic.on_level_eoi = self.ioapic.eoi
        self.mmio.add_device(self.lapic, 0x1000)
        self.mmio.add_device(self.ioapic, 0x1000)

        self.devices: dict[str, object] = {}
        self.rtc = Rtc(clock, trace, self.isa_irq, legacy_interrupts=gen1)
        smi = fadt.get("SMI_CMD") or None
        self.pm = PmBlock(clock, trace, self.isa_irq, smi_cmd_port=smi if gen1 else None,
                          acpi_enable_value=fadt.get("ACPI_ENABLE", 0xF0) or 0xF0,
                          acpi_disable_value=fadt.get("ACPI_DISABLE", 0xF1) or 0xF1,
                          sci_en_initial=not gen1, sci_irq=fadt.get("SCI_INT", 9) or 9)
        devs = [self.rtc, self.pm, ResetRegister(clock, trace), Uart16550(clock, trace, irq=self.isa_irq)]
        if gen1:
            self.pic = Pic8259(clock, trace)
            self.pit = Pit8254(clock, trace, self.isa_irq)
            devs += [self.pic, self.pit, I8042(clock, trace)]
        else:
            self.pic = self.pit = None
        for dev in devs:
            self.io.add(dev)
            self.devices[dev.name] = dev
        self.uart = self.devices["com1"]

        self.hyperv = HyperV(clock, trace, self.memory, self.lapic, cleared=frozenset(hv_clear))
        self.cpu = Cpu(self.memory, clock, trace, self.io, self.mmio, self.lapic, self.hyperv)
        self.cpu.map_mmio(LAPIC_GPA, 0x1000)
        if ioapic_base != LAPIC_GPA and ioapic_base % 0x1000 == 0 and ioapic_base >= self.memory.ram.size:
            self.cpu.map_mmio(ioapic_base, 0x1000)

    def isa_irq(self, line: int, level: bool) -> None:
        """An ISA device drives its IRQ line: 8259 (gen1, state only) and IOAPIC through the MADT overrides."""
        if self.pic is not None:
            self.pic.set_irq(line, level)
        self.ioapic.set_irq(self.isa_to_gsi.get(line, line), level)
