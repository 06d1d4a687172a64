"""A platform: devices, ACPI tables, the Hyper-V interface and the CPU, wired together.

``Machine(platform='gen2'|'gen1', ...)`` builds everything deterministic from the platform description:
- both: local APIC (0xFEE00000), one IOAPIC per MADT I/O APIC entry (at its 1 KiB-aligned address, with its ID and
  GSI base), RTC/CMOS, ACPI PM block at 0x400, FADT reset register 0x433, COM1, Hyper-V CPUID/MSRs as the chosen
  host profile presents them (``specs/hosts/``, TSC rate included);
- gen1 only: the 8259 pair, the PIT, the i8042, SMI_CMD 0xB2 with SCI_EN clear.
RTC interrupts on ISA IRQ 8: on by default on gen1, off on gen2 (``rtc_interrupts`` overrides; see devices/rtc.py);
the RTC honours the published WAET's RTC_NO_ACK flag.
ISA IRQs reach the IOAPICs through the MADT's interrupt source overrides (gen1: IRQ0 → GSI2).
Physical addresses that are neither RAM nor a device window read all ones and drop writes, as on a PC (the
whole physical address space above RAM is routed to the MMIO bus, which answers so for unclaimed addresses).
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
from .hosts import DEFAULT_HOST, load_host
from .hyperv import HyperV
from .memory import ACPI_GPA, GuestMemory
from .trace import Trace

PLATFORMS = ("gen1", "gen2")
LAPIC_GPA = 0xFEE0_0000
#: Register window of one IOAPIC: the MADT gives 1 KiB-aligned addresses (IOREGSEL 0x00, IOWIN 0x10, EOI 0x40).
IOAPIC_WINDOW = 0x400
#: Physical address bits of the modelled CPU (CPUID 0x80000008 EAX[7:0] = 40 in gen2sim.cpu).
PHYSICAL_BITS = 40


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
                 acpi_dir: str | None = None, ram: int = 64 << 20, host: str | None = None,
                 rtc_interrupts: bool | None = None) -> None:
        if platform not in PLATFORMS:
            raise ModelError(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")
        self.platform = platform
        gen1 = platform == "gen1"
        self.host = load_host(host or DEFAULT_HOST)
        self.clock = VirtualClock()
        self.clock.tsc_hz = self.host.tsc_hz
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
        io_apics = []
        for sub in madt.get("subtables", []):
            if sub.get("type") == "INTERRUPT_SOURCE_OVERRIDE" and sub.get("bus") == 0:
                self.isa_to_gsi[sub["source"]] = sub["gsi"]
            elif sub.get("type") == "IO_APIC":
                io_apics.append(sub)
        if not io_apics and not acpi_dir:
            raise ModelError("the platform's MADT lists no I/O APIC")

        clock, trace = self.clock, self.trace
        self.lapic = LocalApic(clock, trace, base=LAPIC_GPA)
        self.mmio.add_device(self.lapic, 0x1000)
        #: One IOAPIC per MADT entry, in MADT order (a window already claimed by an earlier entry stays the earlier
        #: one's: the bus decodes the first registered window).
        self.ioapics: list[IoApic] = []
        for i, sub in enumerate(io_apics):
            dev = IoApic(clock, trace, self.lapic, ioapic_id=sub["io_apic_id"], base=sub["address"],
                         gsi_base=sub["gsi_base"], name="ioapic" if i == 0 else f"ioapic{i}")
            self.ioapics.append(dev)
            self.mmio.add_device(dev, IOAPIC_WINDOW)
        #: The first IOAPIC (the one a HAL meets first; reports name its pins).
        self.ioapic = self.ioapics[0] if self.ioapics else IoApic(clock, trace, self.lapic)
        self.lapic.on_level_eoi = self._level_eoi

        waet = acpi.parse_table(image.tables["WAET"][1]) if "WAET" in image.tables else {}
        #: WAET RTC_NO_ACK: the published tables promise an RTC whose interrupts need no register-C read.
        self.rtc_no_ack = bool(waet.get("flags", 0) >> acpi.WAET_FLAG_BITS["RTC_NO_ACK"] & 1)
        self.devices: dict[str, object] = {}
        self.rtc = Rtc(clock, trace, self.isa_irq, legacy_interrupts=gen1 if rtc_interrupts is None else rtc_interrupts,
                       uip_blip=not gen1, no_ack=self.rtc_no_ack)
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

        self.hyperv = HyperV(clock, trace, self.memory, self.lapic, cleared=frozenset(hv_clear),
                             cpuid=self.host.cpuid)
        self.cpu = Cpu(self.memory, clock, trace, self.io, self.mmio, self.lapic, self.hyperv)
        # Everything above RAM goes to the MMIO bus: device windows answer, the rest reads all ones.
        self.cpu.map_mmio(self.memory.ram.size, (1 << PHYSICAL_BITS) - self.memory.ram.size)

    def _level_eoi(self, vector: int) -> None:
        """A level-triggered vector's EOI reaches every IOAPIC (each clears the remote IRR of its own pins)."""
        for dev in self.ioapics:
            dev.eoi(vector)

    def ioapic_for(self, gsi: int) -> IoApic | None:
        """The IOAPIC whose input range holds ``gsi`` (the first such in MADT order), or ``None``."""
        for dev in self.ioapics:
            if dev.gsi_base <= gsi < dev.gsi_base + dev.pins:
                return dev
        return None

    def set_gsi(self, gsi: int, level: bool) -> None:
        """Drive global system interrupt ``gsi``; a GSI no IOAPIC serves is noted (the line goes nowhere)."""
        dev = self.ioapic_for(gsi)
        if dev is None:
            self.trace.record("note", device="ioapic", address=gsi, detail="interrupt on a GSI no IOAPIC serves")
            return
        dev.set_irq(gsi - dev.gsi_base, level)

    def isa_irq(self, line: int, level: bool) -> None:
        """An ISA device drives its IRQ line: 8259 (gen1, state only) and the IOAPICs through the MADT overrides."""
        if self.pic is not None:
            self.pic.set_irq(line, level)
        self.set_gsi(self.isa_to_gsi.get(line, line), level)
