"""Local APIC: timers, priority, EOI, ICR, x2APIC mode."""

import pytest

from gen2sim.bus import MmioBus
from gen2sim.clock import APIC_TIMER_HZ, PS_PER_US, TSC_HZ, VirtualClock, ps_for_ticks, ticks
from gen2sim.devices.lapic import LocalApic, divide_value
from gen2sim.errors import GuestFault, ModelError
from gen2sim.trace import Trace

BASE = 0xFEE0_0000


class Env:
    def __init__(self, apic_id=0):
        self.clock = VirtualClock()
        self.trace = Trace(self.clock)
        self.lapic = LocalApic(self.clock, self.trace, apic_id=apic_id)
        self.mmio = MmioBus(self.trace)
        self.mmio.add_device(self.lapic, 0x1000)
        self.raised = []
        real = self.lapic.raise_vector

        def spy(vector, level=False):
            self.raised.append((self.clock.now, vector, level))
            return real(vector, level)

        self.lapic.raise_vector = spy

    def w(self, off, value):
        self.mmio.write(BASE + off, 4, value)

    def r(self, off):
        return self.mmio.read(BASE + off, 4)

    def enable(self):
        self.w(0xF0, 0x1FF)


@pytest.fixture
def env():
    e = Env()
    e.enable()
    return e


def test_power_on_registers(env):
    lapic = env.lapic
    assert lapic.rdmsr(0x1B) == 0xFEE0_0900
    assert env.r(0x30) == 0x0005_0014
    assert env.r(0x20) == 0
    assert env.r(0xE0) == 0xFFFF_FFFF
    for off in (0x320, 0x330, 0x340, 0x350, 0x360, 0x370):
        assert env.r(off) == 0x0001_0000
    assert Env(apic_id=3).r(0x20) == 3 << 24


def test_divide_values():
    assert [divide_value(c) for c in (0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB)] == [2, 4, 8, 16, 32, 64, 128, 1]


def test_one_shot_timer_exact(env):
    env.clock.advance(1234567)
    env.w(0x3E0, 0xB)  # divide by 1
    env.w(0x320, 0x40)  # one-shot, vector 0x40, unmasked
    env.w(0x380, 1000)
    start = ticks(env.clock.now, APIC_TIMER_HZ)
    env.clock.advance_to(ps_for_ticks(start + 250, APIC_TIMER_HZ))
    assert env.r(0x390) == 750
    env.clock.advance(100 * PS_PER_US)
    assert env.raised == [(ps_for_ticks(start + 1000, APIC_TIMER_HZ), 0x40, False)]
    assert env.r(0x390) == 0
    assert env.lapic.pending_vector() == 0x40
    assert env.clock.next_deadline() is None


def test_periodic_timer_exact_with_divider(env):
    env.w(0x3E0, 0x3)  # divide by 16
    env.w(0x320, (1 << 17) | 0x41)  # periodic
    env.w(0x380, 100)  # 1600 bus ticks = 8 us
    start = ticks(env.clock.now, APIC_TIMER_HZ)
    env.clock.advance(41 * PS_PER_US)
    times = [t for t, v, _ in env.raised]
    assert times == [ps_for_ticks(start + k * 1600, APIC_TIMER_HZ) for k in range(1, 6)]
    assert times[1] - times[0] == 8 * PS_PER_US
    # current count reloads: 41 us = 5 periods + 1 us = 200 bus ticks = 12 counts
    assert env.r(0x390) == 100 - 12
    # masking stops the events but not the count
    env.w(0x320, (1 << 17) | (1 << 16) | 0x41)
    assert env.clock.next_deadline() is None
    env.clock.advance(80 * PS_PER_US)
    assert len(env.raised) == 5


def test_divide_change_keeps_the_count(env):
    env.w(0x3E0, 0xB)
    env.w(0x320, 0x42)
    env.w(0x380, 1000)
    start = ticks(env.clock.now, APIC_TIMER_HZ)
    env.clock.advance_to(ps_for_ticks(start + 400, APIC_TIMER_HZ))
    env.w(0x3E0, 0x0)  # divide by 2 from here: 600 counts left = 1200 bus ticks
    changed = ticks(env.clock.now, APIC_TIMER_HZ)
    assert env.r(0x390) == 600
    env.clock.advance(50 * PS_PER_US)
    assert [t for t, _, _ in env.raised] == [ps_for_ticks(changed + 1200, APIC_TIMER_HZ)]


def test_tsc_deadline_timer_exact(env):
    lapic = env.lapic
    env.w(0x320, (2 << 17) | 0x43)
    env.w(0x380, 5)  # ignored in TSC-deadline mode
    assert env.r(0x380) == 0
    env.clock.advance(3 * PS_PER_US)
    deadline = lapic.read_tsc() + 24_000  # 10 us at 2.4 GHz
    lapic.wrmsr(0x6E0, deadline)
    assert lapic.rdmsr(0x6E0) == deadline
    env.clock.advance(20 * PS_PER_US)
    assert env.raised == [(ps_for_ticks(deadline, TSC_HZ), 0x43, False)]
    assert lapic.rdmsr(0x6E0) == 0
    # a deadline already in the past fires immediately
    lapic.wrmsr(0x6E0, 1)
    assert env.raised[-1] == (env.clock.now, 0x43, False)
    # switching back to one-shot disarms and the MSR is ignored
    env.w(0x320, 0x43)
    lapic.wrmsr(0x6E0, lapic.read_tsc() + 100)
    assert lapic.rdmsr(0x6E0) == 0


def test_tpr_blocks_same_and_lower_class(env):
    lapic = env.lapic
    lapic.tpr = 0x50
    assert env.r(0x80) == 0x50
    lapic.raise_vector(0x55)
    lapic.raise_vector(0x4F)
    assert lapic.pending_vector() is None  # class 5 and 4 <= TPR class 5
    lapic.raise_vector(0x61)
    assert lapic.pending_vector() == 0x61
    env.w(0x80, 0x60)
    assert lapic.pending_vector() is None
    lapic.tpr = 0
    assert lapic.pending_vector() == 0x61


def test_isr_blocks_same_and_lower_class_and_eoi(env):
    lapic = env.lapic
    lapic.raise_vector(0x61)
    lapic.acknowledge(0x61)
    assert env.r(0xA0) == 0x60  # PPR = ISR class
    lapic.raise_vector(0x65)
    lapic.raise_vector(0x52)
    assert lapic.pending_vector() is None
    lapic.raise_vector(0x71)
    assert lapic.pending_vector() == 0x71
    lapic.acknowledge(0x71)
    assert lapic.isr_vectors() == [0x61, 0x71]
    assert env.r(0x100 + 0x30) == (1 << (0x61 - 0x60)) | (1 << (0x71 - 0x60))  # ISR bits 96-127
    env.w(0xB0, 0)  # EOI retires 0x71 (the highest)
    assert lapic.isr_vectors() == [0x61]
    assert lapic.pending_vector() is None  # 0x65 still blocked by 0x61
    env.w(0xB0, 0)
    assert lapic.pending_vector() == 0x65
    assert lapic.eoi_count == 2
    with pytest.raises(ModelError):
        lapic.acknowledge(0x99)


def test_eoi_of_level_vector_calls_hook(env):
    lapic = env.lapic
    eois = []
    lapic.on_level_eoi = eois.append
    lapic.raise_vector(0x81, level=True)
    lapic.raise_vector(0x91)
    assert env.r(0x180 + 0x40) == 1 << 1  # TMR bit 0x81
    lapic.acknowledge(0x91)
    lapic.eoi()
    assert eois == []  # edge vector
    lapic.acknowledge(0x81)
    lapic.eoi()
    assert eois == [0x81]


def test_illegal_vectors_and_esr(env):
    lapic = env.lapic
    assert not lapic.raise_vector(0x05)
    assert lapic.irr == 0
    env.w(0x280, 0)
    assert env.r(0x280) == 0x40  # receive illegal vector
    env.w(0x300, (1 << 18) | 0x03)  # self IPI with vector 3
    env.w(0x280, 0)
    assert env.r(0x280) == 0x20  # send illegal vector
    env.w(0x280, 0)
    assert env.r(0x280) == 0
    # with the error LVT unmasked an error raises its vector
    env.w(0x370, 0xE2)
    lapic.raise_vector(0x01)
    assert lapic.pending_vector() == 0xE2


def test_icr_self_ipi_and_physical_destination(env):
    lapic = env.lapic
    env.w(0x300, (1 << 18) | 0x2F)  # shorthand self, fixed
    assert lapic.irr_vectors() == [0x2F]
    assert env.r(0x300) & (1 << 12) == 0  # delivery status idle
    env.w(0x310, 0 << 24)
    env.w(0x300, 0xE1)  # physical destination 0 = this APIC
    env.w(0x300, (2 << 18) | 0xD2)  # all including self
    assert lapic.irr_vectors() == [0x2F, 0xD2, 0xE1]
    before = lapic.irr
    env.w(0x310, 5 << 24)
    env.w(0x300, 0xE3)  # another CPU: dropped
    env.w(0x300, (3 << 18) | 0xE4)  # all excluding self: nobody
    env.w(0x300, (5 << 8) | (1 << 14))  # INIT: noted
    assert lapic.irr == before
    notes = [r["detail"] for r in env.trace.records if r["kind"] == "note"]
    assert any("INIT" in n for n in notes)


def test_logical_flat_destination(env):
    lapic = env.lapic
    env.w(0xE0, 0xFFFF_FFFF)
    env.w(0xD0, 0x01 << 24)
    env.w(0x310, 0x01 << 24)
    env.w(0x300, (1 << 11) | 0x51)
    env.w(0x310, 0x02 << 24)
    env.w(0x300, (1 << 11) | 0x52)
    assert lapic.irr_vectors() == [0x51]


def test_software_disable_drops_and_masks():
    e = Env()
    lapic = e.lapic
    assert not lapic.raise_vector(0x40)  # SVR enable bit is clear at power-on
    e.enable()
    e.w(0x320, 0x40)
    assert e.r(0x320) == 0x40
    e.w(0xF0, 0xFF)
    assert e.r(0x320) & (1 << 16)
    e.w(0x320, 0x40)
    assert e.r(0x320) & (1 << 16)  # cannot unmask while software-disabled


def test_x2apic_msrs_gp_when_extd_clear(env):
    lapic = env.lapic
    assert lapic.handles_msr(0x802) and lapic.handles_msr(0x1B) and lapic.handles_msr(0x6E0)
    assert not lapic.handles_msr(0x40000070)
    for msr in (0x802, 0x808, 0x830):
        with pytest.raises(GuestFault) as info:
            lapic.rdmsr(msr)
        assert info.value.vector == "#GP"
    with pytest.raises(GuestFault):
        lapic.wrmsr(0x80B, 0)


def test_x2apic_mode():
    e = Env(apic_id=2)
    lapic = e.lapic
    lapic.wrmsr(0x1B, 0xFEE0_0000 | (1 << 11) | (1 << 10))
    assert lapic.x2apic
    assert e.mmio.read(BASE + 0x30, 4) == 0xFFFF_FFFF  # MMIO page no longer decoded
    assert e.trace.records[-1]["device"] == "absent"
    assert lapic.rdmsr(0x802) == 2
    assert lapic.rdmsr(0x803) == 0x0005_0014
    assert lapic.rdmsr(0x80D) == (0 << 16) | (1 << 2)
    lapic.wrmsr(0x80F, 0x1FF)
    lapic.wrmsr(0x83F, 0x31)  # self IPI
    lapic.wrmsr(0x830, (2 << 32) | 0x32)  # physical destination 2 = self
    assert lapic.irr_vectors() == [0x31, 0x32]
    assert lapic.rdmsr(0x830) == (2 << 32) | 0x32
    lapic.wrmsr(0x808, 0x20)
    assert lapic.rdmsr(0x80A) == 0x20  # PPR
    lapic.acknowledge(0x32)
    lapic.wrmsr(0x80B, 0)
    assert lapic.eoi_count == 1
    for bad in ((0x80B, 1), (0x802, 0), (0x80A, 0), (0x83F, 0x100), (0x808, 1 << 32)):
        with pytest.raises(GuestFault):
            lapic.wrmsr(*bad)
    for bad in (0x80B, 0x83F, 0x809, 0x80E, 0x831):
        with pytest.raises(GuestFault):
            lapic.rdmsr(bad)
    # x2APIC -> xAPIC is illegal; x2APIC -> disabled is fine and resets state
    with pytest.raises(GuestFault):
        lapic.wrmsr(0x1B, 0xFEE0_0000 | (1 << 11))
    lapic.wrmsr(0x1B, 0xFEE0_0000)
    assert not lapic.enabled and lapic.irr == 0
    with pytest.raises(GuestFault):
        lapic.wrmsr(0x1B, 0xFEE0_0000 | (1 << 11) | (1 << 10))  # disabled -> x2APIC
    with pytest.raises(GuestFault):
        lapic.wrmsr(0x1B, 0xFEE0_0000 | (1 << 10))  # EXTD without EN
    lapic.wrmsr(0x1B, 0xFEE0_0000 | (1 << 11))
    assert lapic.mmio_enabled and lapic.rdmsr(0x1B) == 0xFEE0_0900  # the BSP flag is not software-writable


def test_apic_base_relocation_moves_mmio():
    e = Env()
    e.lapic.wrmsr(0x1B, 0xFED0_0000 | (1 << 11) | (1 << 8))
    assert e.mmio.read(0xFED0_0030, 4) == 0x0005_0014
    assert e.mmio.read(BASE + 0x30, 4) == 0xFFFF_FFFF
    with pytest.raises(GuestFault):
        e.lapic.wrmsr(0x1B, 0xFEE0_0001 | (1 << 11))  # reserved bit


def test_mmio_reserved_and_narrow_access(env):
    env.w(0x500, 0x10000)  # AMD extended LVT as written by ReactOS: reserved here
    env.w(0x280, 0)
    assert env.r(0x280) == 0x80  # illegal register address
    assert env.mmio.read(BASE + 0x31, 1) == 0x00  # byte 1 of the version register
    assert env.mmio.read(BASE + 0x32, 1) == 0x05
    env.mmio.write(BASE + 0x80, 1, 0x30)  # narrow write ignored
    assert env.r(0x80) == 0
