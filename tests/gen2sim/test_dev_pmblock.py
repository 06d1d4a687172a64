"""ACPI PM block: PM timer, SCI_EN handshake, status registers, sleep."""

import pytest

from gen2sim.bus import IoBus
from gen2sim.clock import PM_TIMER_HZ, PS_PER_S, PS_PER_US, VirtualClock, ps_for_ticks, ticks
from gen2sim.devices.pmblock import PmBlock
from gen2sim.errors import MachineReset
from gen2sim.trace import Trace


def make(**kw):
    clock = VirtualClock()
    trace = Trace(clock)
    lines = []
    pm = PmBlock(clock, trace, irq=lambda line, level: lines.append((clock.now, line, level)), **kw)
    bus = IoBus(trace)
    bus.add(pm)
    return clock, pm, bus, lines, trace


def test_pm_timer_rate_exact():
    clock, pm, bus, _, _ = make()
    assert bus.read(0x408, 4) == 0
    clock.advance(PS_PER_S)
    assert bus.read(0x408, 4) == PM_TIMER_HZ
    target = PM_TIMER_HZ + 12345
    clock.advance_to(ps_for_ticks(target, PM_TIMER_HZ) - 1)
    assert bus.read(0x408, 4) == target - 1
    clock.advance(1)
    assert bus.read(0x408, 4) == target
    # narrower reads give the low bytes, byte reads the individual bytes
    value = bus.read(0x408, 4)
    assert bus.read(0x408, 2) == value & 0xFFFF
    assert bus.read(0x409, 1) == (value >> 8) & 0xFF


def test_pm_timer_32bit_wrap_and_tmr_sts():
    clock, pm, bus, _, _ = make()
    wrap_ps = ps_for_ticks(1 << 32, PM_TIMER_HZ)  # about 20 minutes
    clock.advance_to(wrap_ps - 1)
    assert bus.read(0x408, 4) == 0xFFFF_FFFF
    assert bus.read(0x400, 2) & 1  # bit 31 toggled at 2**31 ticks: TMR_STS
    bus.write(0x400, 2, 0x0001)  # write 1 to clear
    assert bus.read(0x400, 2) & 1 == 0
    clock.advance(1)
    assert bus.read(0x408, 4) == 0
    assert bus.read(0x400, 2) & 1  # and again at the wrap


def test_pm_timer_24bit_variant():
    clock, pm, bus, _, _ = make(timer_24bit=True)
    clock.advance_to(ps_for_ticks((1 << 24) + 5, PM_TIMER_HZ))
    assert bus.read(0x408, 4) == 5


def test_gen2_sci_en_set_and_no_smi_cmd():
    clock, pm, bus, _, _ = make()
    assert bus.read(0x404, 2) & 1 == 1
    assert 0xB2 not in pm.ports


def test_smi_cmd_handshake_sets_sci_en_after_latency():
    clock, pm, bus, _, trace = make(smi_cmd_port=0xB2, sci_en_initial=False, enable_latency_ps=50 * PS_PER_US)
    assert bus.read(0x404, 2) & 1 == 0
    clock.advance(7 * PS_PER_US)
    bus.write(0xB2, 1, 0xF0)
    written = clock.now
    clock.advance(50 * PS_PER_US - 1)
    assert bus.read(0x404, 2) & 1 == 0
    clock.advance(1)
    assert clock.now == written + 50 * PS_PER_US
    assert bus.read(0x404, 2) & 1 == 1
    assert bus.read(0xB2, 1) == 0xF0
    bus.write(0xB2, 1, 0xF1)  # ACPI_DISABLE
    clock.advance(50 * PS_PER_US)
    assert bus.read(0x404, 2) & 1 == 0
    notes = [r["detail"] for r in trace.records if r["kind"] == "note"]
    assert any("ACPI_ENABLE" in n for n in notes)


def test_status_write_one_to_clear_and_enable_rw():
    clock, pm, bus, _, _ = make()
    pm.pm1_sts = 0x8100
    bus.write(0x400, 2, 0x0100)
    assert bus.read(0x400, 2) == 0x8000
    bus.write(0x402, 2, 0x0121)
    assert bus.read(0x402, 2) == 0x0121
    pm.gpe0_sts = 0x3
    bus.write(0x40C, 2, 0x1)
    assert bus.read(0x40C, 2) == 0x2
    bus.write(0x40E, 2, 0xFFFF)
    assert bus.read(0x40E, 2) == 0xFFFF


def test_sci_raised_for_enabled_status():
    clock, pm, bus, lines, _ = make()
    pm.gpe0_sts = 0x1
    bus.write(0x40E, 2, 0x1)
    assert lines == [(clock.now, 9, True)]
    bus.write(0x40C, 2, 0x1)
    assert lines[-1][2] is False
    # timer carry with TMR_EN raises the SCI at the bit-31 toggle
    bus.write(0x402, 2, 0x0001)
    clock.advance_to(ps_for_ticks(1 << 31, PM_TIMER_HZ))
    assert lines[-1] == (ps_for_ticks(1 << 31, PM_TIMER_HZ), 9, True)
    assert ticks(clock.now, PM_TIMER_HZ) == 1 << 31


def test_slp_en_s5_powers_off_other_types_noted():
    clock, pm, bus, _, trace = make()
    bus.write(0x404, 2, 0x0001 | (5 << 10) | 0x2000)  # SLP_TYP 5 + SLP_EN
    assert trace.records[-1]["kind"] == "note"
    assert bus.read(0x404, 2) & 0x2000 == 0  # SLP_EN is write-only
    with pytest.raises(MachineReset) as info:
        bus.write(0x404, 2, 0x0001 | 0x2000)
    assert info.value.reason == "S5 power off"
