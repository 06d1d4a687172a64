"""Hyper-V's side of interrupt completion with the real local APIC (gen2sim.devices.lapic + gen2sim.hyperv):
the VP assist page's NoEoiRequired bit ("lazy EOI", TLFS virtual interrupts: EOI assist), SINT AutoEOI, and the
synthetic EOI/ICR/TPR MSRs.  Guest memory is a flat bytearray; time is virtual only."""

from __future__ import annotations

import struct

import pytest

from gen2sim.clock import VirtualClock
from gen2sim.devices.lapic import LocalApic
from gen2sim.errors import GuestFault
from gen2sim.hvspec import load_hyperv_spec
from gen2sim.hyperv import HyperV
from gen2sim.trace import Trace

SPEC = load_hyperv_spec()
MSR = {m.name: m.number for m in SPEC.msrs}
ASSIST_GPA = 0x3000
SIMP_GPA = 0x5000
NO_EOI_REQUIRED = 1  # ApicAssist bit 0 (TLFS), written out so the test does not echo the spec back
SVR_ENABLED = 0x1FF
REG_TPR, REG_EOI, REG_SVR = 0x80, 0xB0, 0xF0


class FlatMemory:
    """64 KiB of guest-physical memory."""

    def __init__(self) -> None:
        self.data = bytearray(0x10000)

    def read(self, gpa: int, size: int) -> bytes:
        return bytes(self.data[gpa:gpa + size])

    def write(self, gpa: int, data: bytes) -> None:
        self.data[gpa:gpa + len(data)] = data

    def u32(self, gpa: int) -> int:
        return struct.unpack_from("<I", self.data, gpa)[0]


class Vp:
    """One virtual processor's local APIC and Hyper-V, driven the way the CPU core drives them."""

    def __init__(self, cleared=()) -> None:
        self.clock = VirtualClock()
        self.trace = Trace(self.clock)
        self.mem = FlatMemory()
        self.lapic = LocalApic(self.clock, self.trace)
        self.lapic.mmio_write(REG_SVR, 4, SVR_ENABLED)
        self.hv = HyperV(self.clock, self.trace, self.mem, self.lapic, cleared=frozenset(cleared))

    def enable_assist(self) -> None:
        self.hv.wrmsr(MSR["VP_ASSIST_PAGE"], ASSIST_GPA | 1)

    def take(self) -> int:
        """The CPU takes the highest deliverable vector (what ``Cpu.deliver`` does)."""
        vector = self.lapic.pending_vector()
        assert vector is not None
        self.lapic.acknowledge(vector)
        return vector

    def guest_lazy_eoi(self) -> bool:
        """The guest's EOI through the assist page: atomically clear NoEoiRequired, report whether it was set."""
        word = self.mem.u32(ASSIST_GPA)
        self.mem.write(ASSIST_GPA, struct.pack("<I", word & ~NO_EOI_REQUIRED))
        return bool(word & NO_EOI_REQUIRED)

    @property
    def bit(self) -> bool:
        return bool(self.mem.u32(ASSIST_GPA) & NO_EOI_REQUIRED)


def test_edge_interrupt_alone_needs_no_eoi():
    vp = Vp()
    vp.enable_assist()
    vp.lapic.raise_vector(0xD1)
    assert vp.take() == 0xD1 and vp.bit
    assert vp.guest_lazy_eoi()  # the handler ends the interrupt without an exit
    assert vp.lapic.isr_vectors() == [0xD1]  # Hyper-V has not seen it yet: no exit happened
    vp.lapic.raise_vector(0xD1)  # the next tick is an exit: the lazy EOI is settled first
    assert vp.lapic.eoi_count == 0 and vp.hv.lazy_eois == 1
    assert vp.take() == 0xD1 and vp.bit  # deliverable again, and again without an EOI


def test_bit_cleared_at_the_next_exit_then_conventional_eoi_counts():
    vp = Vp()
    vp.enable_assist()
    vp.lapic.raise_vector(0x61)
    vp.take()
    assert vp.bit
    vp.lapic.mmio_read(REG_TPR, 4)  # an exit that observes the APIC before the guest ended the interrupt
    assert not vp.bit and vp.lapic.isr_vectors() == [0x61]
    assert not vp.guest_lazy_eoi()  # so the guest falls back to a real EOI
    vp.lapic.mmio_write(REG_EOI, 4, 0)
    assert vp.lapic.isr_vectors() == [] and vp.lapic.eoi_count == 1 and vp.hv.lazy_eois == 0


def test_conventional_eoi_while_bit_set_ends_the_interrupt_once():
    vp = Vp()
    vp.enable_assist()
    vp.lapic.raise_vector(0x61)
    vp.lapic.raise_vector(0x41)
    vp.take()  # 0x61; 0x41 still requested: no assist
    assert not vp.bit
    vp.lapic.mmio_write(REG_EOI, 4, 0)
    assert vp.take() == 0x41 and vp.bit  # nothing else requested now
    vp.hv.wrmsr(MSR["EOI"], 0)  # a guest that ignores the bit and EOIs through the synthetic MSR
    assert not vp.bit and vp.lapic.isr_vectors() == [] and vp.hv.lazy_eois == 0
    vp.lapic.raise_vector(0x51)  # and nothing is retired twice
    assert vp.lapic.isr_vectors() == [] and vp.lapic.eoi_count == 2


def test_no_assist_for_level_interrupts_or_with_another_request():
    vp = Vp()
    vp.enable_assist()
    vp.lapic.raise_vector(0x71, level=True)
    vp.take()
    assert not vp.bit and vp.hv.lazy_vector is None  # a level interrupt's EOI must reach the I/O APIC
    vp.lapic.mmio_write(REG_EOI, 4, 0)
    vp.lapic.raise_vector(0x81)
    vp.lapic.raise_vector(0x31)
    vp.take()
    assert not vp.bit  # a lower-priority interrupt is requested


def test_nested_interrupts_only_the_innermost_skips_its_eoi():
    vp = Vp()
    vp.enable_assist()
    vp.lapic.raise_vector(0x51)
    vp.take()
    assert vp.bit
    vp.lapic.raise_vector(0xE1)  # arrives while 0x51 runs: the outer bit is withdrawn
    assert not vp.bit
    assert vp.take() == 0xE1 and vp.bit
    assert vp.guest_lazy_eoi()  # the inner handler ends without an exit
    assert not vp.guest_lazy_eoi()  # the outer one finds the bit clear
    vp.lapic.mmio_write(REG_EOI, 4, 0)  # that exit settles 0xE1 first, then the EOI ends 0x51
    assert vp.lapic.isr_vectors() == [] and vp.hv.lazy_eois == 1 and vp.lapic.eoi_count == 1


def test_disabled_or_never_enabled_page_sets_nothing():
    vp = Vp()
    vp.lapic.raise_vector(0x51)
    vp.take()
    assert not vp.bit and vp.hv.lazy_vector is None
    vp.lapic.mmio_write(REG_EOI, 4, 0)
    vp.enable_assist()
    vp.hv.wrmsr(MSR["VP_ASSIST_PAGE"], ASSIST_GPA)  # Enable = 0
    vp.lapic.raise_vector(0x51)
    vp.take()
    assert not vp.bit


def test_disabling_the_page_settles_a_lazy_eoi():
    vp = Vp()
    vp.enable_assist()
    vp.lapic.raise_vector(0x51)
    vp.take()
    assert vp.guest_lazy_eoi()
    vp.hv.wrmsr(MSR["VP_ASSIST_PAGE"], 0)
    assert vp.lapic.isr_vectors() == [] and vp.hv.lazy_eois == 1


def test_bit_preserves_the_rest_of_apic_assist():
    vp = Vp()
    vp.mem.write(ASSIST_GPA, struct.pack("<I", 0xABCD0000))
    vp.enable_assist()
    vp.lapic.raise_vector(0x51)
    vp.take()
    assert vp.mem.u32(ASSIST_GPA) == 0xABCD0001


def test_hv_clear_takes_lazy_eoi_away():
    """``lazy-eoi`` clears the hint the variant gates lazy EOI on; ``apic-msrs`` removes the page's MSR itself."""
    recommend = SPEC.cpuid_bit("UseApicMsrs")
    assert Vp().hv.granted("UseApicMsrs")  # granted by default
    assert not Vp(cleared=("lazy-eoi",)).hv.cpuid(recommend.leaf)[recommend.register_index] & recommend.mask
    with pytest.raises(GuestFault, match="AccessIntrCtrlRegs clear"):
        Vp(cleared=("apic-msrs",)).enable_assist()


# ----------------------------------------------------------------------------------------------- AutoEOI
def _message_timer(vp: Vp, sint_value: int) -> None:
    vp.hv.wrmsr(MSR["SIMP"], SIMP_GPA | 1)
    vp.hv.wrmsr(MSR["SINT2"], sint_value)
    vp.hv.wrmsr(MSR["SCONTROL"], 1)
    vp.hv.wrmsr(MSR["STIMER0_COUNT"], 1000)  # 100 us, periodic, message mode on SINT2
    vp.hv.wrmsr(MSR["STIMER0_CONFIG"], 1 | 2 | (2 << 16))
    vp.clock.advance_to(vp.clock.next_deadline())


def test_auto_eoi_sint_never_enters_service():
    vp = Vp()
    _message_timer(vp, 0x93 | (1 << 17))  # AutoEOI
    assert vp.take() == 0x93
    assert vp.lapic.isr_vectors() == [] and vp.lapic.ppr == 0  # Hyper-V did the EOI on delivery
    assert vp.lapic.implicit_eoi_count == 1 and vp.lapic.eoi_count == 0


def test_sint_without_auto_eoi_stays_in_service_until_eoi():
    vp = Vp()
    _message_timer(vp, 0x93)
    assert vp.take() == 0x93
    assert vp.lapic.isr_vectors() == [0x93]
    vp.hv.wrmsr(MSR["EOI"], 0)
    assert vp.lapic.isr_vectors() == [] and vp.lapic.eoi_count == 1


# ---------------------------------------------------------------------------------- synthetic APIC MSRs
def test_synthetic_tpr_masks_and_icr_raises_on_the_real_apic():
    vp = Vp()
    vp.hv.wrmsr(MSR["TPR"], 0x50)
    assert vp.lapic.tpr == 0x50 and vp.lapic.mmio_read(REG_TPR, 4) == 0x50
    vp.hv.wrmsr(MSR["ICR"], (1 << 18) | 0x45)  # self IPI, class 4: masked by TPR class 5
    assert vp.lapic.irr_vectors() == [0x45] and vp.lapic.pending_vector() is None
    vp.hv.wrmsr(MSR["TPR"], 0x00)
    assert vp.hv.rdmsr(MSR["TPR"]) == 0 and vp.take() == 0x45
    vp.hv.wrmsr(MSR["EOI"], 0)
    assert vp.lapic.isr_vectors() == []


def test_injection_settles_a_lazy_eoi_left_by_a_request_that_made_no_exit():
    """An APIC error interrupt is requested by the APIC itself (no exit): taking it still settles the lazy EOI."""
    vp = Vp()
    vp.enable_assist()
    vp.lapic.raise_vector(0x51)
    vp.take()
    assert vp.guest_lazy_eoi()
    vp.lapic.lvt[0x370] = 0xFE  # error LVT unmasked on vector 0xFE
    vp.lapic._error(0x80)  # what an illegal register access does, without passing through raise_vector
    assert vp.take() == 0xFE
    assert vp.lapic.isr_vectors() == [0xFE] and vp.hv.lazy_eois == 1


def test_apic_disabled_while_a_lazy_eoi_is_outstanding():
    vp = Vp()
    vp.enable_assist()
    vp.lapic.raise_vector(0x51)
    vp.take()
    assert vp.guest_lazy_eoi()
    vp.lapic.wrmsr(0x1B, 0)  # globally disabled: the APIC's state is reset
    assert vp.lapic.isr_vectors() == [] and vp.hv.lazy_vector is None
