"""IOAPIC: registers, masking, edge/level delivery, remote IRR, and end-to-end wiring."""

import pytest

from gen2sim.bus import IoBus, MmioBus
from gen2sim.clock import PS_PER_S, VirtualClock, ps_for_ticks
from gen2sim.devices.ioapic import IoApic
from gen2sim.devices.lapic import LocalApic
from gen2sim.devices.rtc import Rtc
from gen2sim.trace import Trace

IOAPIC = 0xFEC0_0000


class Env:
    def __init__(self):
        self.clock = VirtualClock()
        self.trace = Trace(self.clock)
        self.lapic = LocalApic(self.clock, self.trace)
        self.ioapic = IoApic(self.clock, self.trace, self.lapic, ioapic_id=4)
        self.lapic.on_level_eoi = self.ioapic.eoi
        self.mmio = MmioBus(self.trace)
        self.mmio.add_device(self.lapic, 0x1000)
        self.mmio.add_device(self.ioapic, 0x1000)
        self.mmio.write(0xFEE0_00F0, 4, 0x1FF)  # software-enable the local APIC

    def reg_write(self, index, value):
        self.mmio.write(IOAPIC, 4, index)
        self.mmio.write(IOAPIC + 0x10, 4, value)

    def reg_read(self, index):
        self.mmio.write(IOAPIC, 4, index)
        return self.mmio.read(IOAPIC + 0x10, 4)

    def program(self, pin, low, dest=0):
        self.reg_write(0x11 + 2 * pin, dest << 24)
        self.reg_write(0x10 + 2 * pin, low)

    def take(self):
        """What the CPU core does: take the pending vector into service."""
        v = self.lapic.pending_vector()
        if v is not None:
            self.lapic.acknowledge(v)
        return v


@pytest.fixture
def env():
    return Env()


def test_identification_registers(env):
    assert env.reg_read(0x01) == 0x0017_0011
    assert env.reg_read(0x00) == 4 << 24
    assert env.reg_read(0x02) == 4 << 24
    env.reg_write(0x00, 2 << 24)
    assert env.reg_read(0x00) == 2 << 24
    assert env.mmio.read(IOAPIC, 4) == 0x00  # IOREGSEL reads back
    for pin in range(24):
        assert env.reg_read(0x10 + 2 * pin) == 0x0001_0000  # masked at power-on
    env.mmio.write(IOAPIC + 0x40, 4, 0x30)  # no EOI register in version 0x11
    assert env.trace.records[-1]["kind"] == "note"


def test_masked_pin_does_not_deliver(env):
    env.ioapic.set_irq(3, True)
    assert env.lapic.irr == 0
    env.program(3, 0x0001_0033)  # still masked, vector set
    env.ioapic.set_irq(3, False)
    env.ioapic.set_irq(3, True)
    assert env.lapic.irr == 0
    # unmasking an edge pin whose line is already high delivers nothing (edge was lost)
    env.program(3, 0x33)
    assert env.lapic.irr == 0


def test_edge_delivers_on_each_rising_edge(env):
    env.program(2, 0x30)
    env.ioapic.set_irq(2, True)
    assert env.take() == 0x30
    env.ioapic.set_irq(2, True)  # no edge
    assert env.lapic.pending_vector() is None
    env.ioapic.set_irq(2, False)
    env.ioapic.set_irq(2, True)
    assert env.lapic.irr_vectors() == [0x30]
    assert env.ioapic.deliveries == 2
    assert not env.ioapic.remote_irr(2)


def test_level_remote_irr_and_redelivery_on_eoi(env):
    env.program(9, (1 << 15) | 0x91)  # level, active high
    env.ioapic.set_irq(9, True)
    assert env.ioapic.remote_irr(9)
    assert env.reg_read(0x10 + 18) & (1 << 14)
    assert env.take() == 0x91
    env.ioapic.set_irq(9, True)
    assert env.lapic.irr == 0  # remote IRR holds it back
    env.mmio.write(0xFEE0_00B0, 4, 0)  # EOI: line still asserted -> redelivered
    assert env.lapic.irr_vectors() == [0x91]
    assert env.ioapic.remote_irr(9)
    assert env.take() == 0x91
    env.ioapic.set_irq(9, False)  # the device is serviced
    env.mmio.write(0xFEE0_00B0, 4, 0)
    assert not env.ioapic.remote_irr(9)
    assert env.lapic.irr == 0
    assert env.ioapic.deliveries == 2


def test_unmasking_an_asserted_level_pin_delivers(env):
    env.ioapic.set_irq(9, True)
    env.program(9, (1 << 16) | (1 << 15) | 0x92)
    assert env.lapic.irr == 0
    env.program(9, (1 << 15) | 0x92)
    assert env.lapic.irr_vectors() == [0x92]


def test_active_low_polarity(env):
    env.program(5, (1 << 13) | (1 << 15) | 0x55)  # active low, level
    # the physical line idles low, which an active-low pin sees as asserted at once
    assert env.lapic.irr_vectors() == [0x55]
    env.take()
    env.ioapic.set_irq(5, True)  # high = deasserted
    env.lapic.eoi()
    assert env.lapic.irr == 0 and not env.ioapic.remote_irr(5)
    env.ioapic.set_irq(5, False)  # low again = asserted
    assert env.lapic.irr_vectors() == [0x55]


def test_other_delivery_modes_and_destinations_not_delivered(env):
    env.program(4, (4 << 8) | 0x44)  # NMI
    env.ioapic.set_irq(4, True)
    env.program(6, 0x46, dest=7)  # physical destination 7: no such APIC
    env.ioapic.set_irq(6, True)
    env.program(7, (1 << 11) | (1 << 8) | 0x47, dest=0x01)  # logical, lowest priority
    env.mmio.write(0xFEE0_00D0, 4, 0x01 << 24)  # LDR: logical ID bit 0
    env.ioapic.set_irq(7, True)
    assert env.lapic.irr_vectors() == [0x47]
    details = [r["detail"] for r in env.trace.records if r["kind"] == "note"]
    assert any("NMI" in d for d in details)
    assert any("destination" in d for d in details)


def test_rtc_periodic_interrupt_end_to_end_gen1(env):
    rtc = Rtc(env.clock, env.trace, irq=env.ioapic.set_irq, legacy_interrupts=True)
    io = IoBus(env.trace)
    io.add(rtc)
    env.program(8, 0xD1)  # ReactOS style: pin 8, vector 0xD1, edge
    io.write(0x70, 1, 0x0A)
    io.write(0x71, 1, 0x26)  # 1024 Hz
    io.write(0x70, 1, 0x0B)
    io.write(0x71, 1, 0x42)  # PIE, 24 h
    io.write(0x70, 1, 0x0C)
    io.read(0x71, 1)
    taken = []
    while env.clock.now < PS_PER_S // 64:
        env.clock.advance_to(env.clock.next_deadline())
        v = env.take()
        if v is not None:
            taken.append(env.clock.now)
            io.write(0x70, 1, 0x0C)
            io.read(0x71, 1)  # re-arm, as every RTC handler must
            env.lapic.eoi()
    assert taken == [ps_for_ticks(k, 1024) for k in range(1, 17)]


def test_pit_irq0_through_gsi2_one_interrupt_per_period(env):
    from gen2sim.clock import PIT_HZ, ticks
    from gen2sim.devices.pit import Pit8254

    # Gen1 wiring: ISA IRQ 0 -> GSI 2 (interrupt source override)
    pit = Pit8254(env.clock, env.trace, irq=lambda line, level: env.ioapic.set_irq(2 if line == 0 else line, level))
    io = IoBus(env.trace)
    io.add(pit)
    io.write(0x43, 1, 0x34)  # mode 2 while the pin is still masked: that edge is lost
    env.program(2, 0x3D)
    io.write(0x40, 1, 0xA9)
    io.write(0x40, 1, 0x04)  # 1193 ticks, about 1 ms
    t0 = ticks(env.clock.now, PIT_HZ)
    taken = []
    while len(taken) < 5:
        env.clock.advance_to(env.clock.next_deadline())
        if env.take() is not None:
            taken.append(env.clock.now)
            env.lapic.eoi()
    assert taken == [ps_for_ticks(t0 + k * 1193, PIT_HZ) for k in range(1, 6)]


# -- the machine's IOAPICs: one per MADT entry, at its address, with its ID and GSI base --------------------------------
def test_gen2_machine_ioapic_id_is_the_madts():
    from gen2sim import acpi
    from gen2sim.machine import Machine

    m = Machine("gen2")
    entries = [s for s in acpi.parse_madt(m.acpi.tables["APIC"][1])["subtables"] if s["type"] == "IO_APIC"]
    assert [(d.base, d.ioapic_id, d.gsi_base) for d in m.ioapics] == \
        [(e["address"], e["io_apic_id"], e["gsi_base"]) for e in entries]
    m.mmio.write(m.ioapic.base, 4, 0x00)
    assert m.mmio.read(m.ioapic.base + 0x10, 4) == entries[0]["io_apic_id"] << 24
    m.mmio.write(m.ioapic.base, 4, 0x02)  # arbitration ID
    assert m.mmio.read(m.ioapic.base + 0x10, 4) == entries[0]["io_apic_id"] << 24


def _madt_tables(tmp_path, io_apics):
    """A copy of the Gen2 tables whose MADT lists ``io_apics`` [(id, address, gsi_base)] instead of its own."""
    import struct

    from gen2sim import acpi

    image = acpi.build_tables("gen2", 0x10_0000)
    for sig, (_gpa, data) in image.tables.items():
        if sig in ("FACP", "DSDT"):
            (tmp_path / f"{sig.lower()}.dat").write_bytes(data)
    madt = image.tables["APIC"][1]
    body, pos, subs = bytearray(), 0x2C, []
    while pos < len(madt):
        kind, length = madt[pos], madt[pos + 1]
        if kind != 1:
            subs.append(madt[pos:pos + length])
        pos += length
    for ident, address, gsi in io_apics:
        body += struct.pack("<BBBBII", 1, 12, ident, 0, address, gsi)
    for s in subs:
        body += s
    table = bytearray(madt[:0x2C]) + body
    struct.pack_into("<I", table, 4, len(table))
    table[9] = 0
    table[9] = (-sum(table)) & 0xFF
    (tmp_path / "apic.dat").write_bytes(bytes(table))
    return str(tmp_path)


def test_several_ioapics_route_gsis_by_base_and_sit_at_1k_aligned_addresses(tmp_path):
    from gen2sim.machine import Machine

    m = Machine("gen2", acpi_dir=_madt_tables(tmp_path, [(4, 0xFEC00400, 0), (7, 0xFEC01000, 24)]))
    first, second = m.ioapics
    assert (first.base, first.ioapic_id, second.base, second.ioapic_id) == (0xFEC00400, 4, 0xFEC01000, 7)
    # each window answers at its own address; the page below the first (0xFEC00000) is unclaimed: all ones
    m.mmio.write(0xFEC01000, 4, 0)
    assert m.mmio.read(0xFEC01010, 4) == 7 << 24
    assert m.mmio.read(0xFEC00000, 4) == 0xFFFF_FFFF
    # GSI 30 is pin 6 of the second IOAPIC; GSI 9 pin 9 of the first
    m.mmio.write(0xFEE000F0, 4, 0x1FF)  # software-enable the local APIC
    second.write_register(0x10 + 2 * 6, 0x0000_0041)  # vector 0x41, edge, unmasked
    first.write_register(0x10 + 2 * 9, 0x0000_0042)
    m.set_gsi(30, True)
    m.set_gsi(9, True)
    assert (second.deliveries, first.deliveries) == (1, 1)
    assert m.ioapic_for(48) is None


def test_unbacked_physical_memory_reads_all_ones_from_the_guest():
    # A real machine's unclaimed bus cycle reads all ones; the model once faulted.
    from unicorn import x86_const as X

    from gen2sim.machine import Machine

    m = Machine("gen2")
    for gpa, size in ((m.memory.ram.size, 4), (0xE000_0000, 8), (0x1_0000_0000, 4), (0xFEC0_2000, 1)):
        assert int.from_bytes(m.cpu.uc.mem_read(gpa, size), "little") == (1 << (8 * size)) - 1, hex(gpa)
        m.cpu.uc.mem_write(gpa, b"\0" * size)  # dropped
        assert int.from_bytes(m.cpu.uc.mem_read(gpa, size), "little") == (1 << (8 * size)) - 1, hex(gpa)
    assert X.UC_X86_REG_RAX  # the core is the real Unicorn one
