"""IoBus / MmioBus: dispatch, absent ports, one record per access."""

import pytest

from gen2sim.bus import IoBus, MmioBus, MmioRegion
from gen2sim.clock import VirtualClock
from gen2sim.devices.reset import ResetRegister
from gen2sim.devices.uart import Uart16550
from gen2sim.errors import MachineReset, ModelError
from gen2sim.trace import Trace


@pytest.fixture
def env():
    clock = VirtualClock()
    trace = Trace(clock)
    return clock, trace, IoBus(trace)


def test_absent_ports_read_all_ones_and_are_recorded(env):
    _, trace, bus = env
    assert bus.read(0x21, 1) == 0xFF
    assert bus.read(0x40, 2) == 0xFFFF
    assert bus.read(0xCFC, 4) == 0xFFFF_FFFF
    bus.write(0x43, 1, 0x34)
    assert [(r["kind"], r["device"], r["address"], r["value"], r["size"]) for r in trace.records] == [
        ("port_in", "absent", 0x21, 0xFF, 1),
        ("port_in", "absent", 0x40, 0xFFFF, 2),
        ("port_in", "absent", 0xCFC, 0xFFFF_FFFF, 4),
        ("port_out", "absent", 0x43, 0x34, 1),
    ]
    assert trace.exits["port_io"] == 4


def test_device_access_recorded_once_with_device_name(env):
    _, trace, bus = env
    uart = bus.add(Uart16550(env[0], trace))
    bus.write(0x3F8, 1, ord("A"))
    assert bus.read(0x3FD, 1) & 0x60 == 0x60
    assert uart.text() == "A"
    assert [(r["kind"], r["device"], r["address"]) for r in trace.records] == [
        ("port_out", "com1", 0x3F8),
        ("port_in", "com1", 0x3FD),
    ]


def test_overlapping_ports_are_a_model_error(env):
    clock, trace, bus = env
    bus.add(Uart16550(clock, trace))
    with pytest.raises(ModelError):
        bus.add(Uart16550(clock, trace, base=0x3F8, name="dup"))


def test_write_that_resets_is_still_recorded(env):
    clock, trace, bus = env
    bus.add(ResetRegister(clock, trace))
    with pytest.raises(MachineReset):
        bus.write(0x433, 1, 1)
    assert trace.records[0]["kind"] == "port_out"
    assert trace.records[0]["device"] == "reset"


def test_mmio_bus_dispatch_and_absent():
    clock = VirtualClock()
    trace = Trace(clock)
    mmio = MmioBus(trace)
    seen = []
    mmio.add(MmioRegion("dev", 0x1000, 0x100, lambda off, size: off + size, lambda off, size, v: seen.append((off, size, v))))
    assert mmio.read(0x1010, 4) == 0x14
    mmio.write(0x10FC, 4, 0x1234)
    assert seen == [(0xFC, 4, 0x1234)]
    assert mmio.read(0x2000, 4) == 0xFFFF_FFFF
    assert [(r["kind"], r["device"]) for r in trace.records] == [
        ("mmio_read", "dev"),
        ("mmio_write", "dev"),
        ("mmio_read", "absent"),
    ]
    assert trace.exits["mmio"] == 3


def test_mmio_region_follows_a_moving_and_disabled_device():
    class Dev:
        name = "d"
        base = 0x5000
        mmio_enabled = True

        def mmio_read(self, off, size):
            return 7

        def mmio_write(self, off, size, value):
            pass

    clock = VirtualClock()
    mmio = MmioBus(Trace(clock))
    dev = Dev()
    mmio.add_device(dev, 0x1000)
    assert mmio.read(0x5000, 4) == 7
    dev.base = 0x9000
    assert mmio.read(0x5000, 4) == 0xFFFF_FFFF
    assert mmio.read(0x9000, 4) == 7
    dev.mmio_enabled = False
    assert mmio.find(0x9000) is None
