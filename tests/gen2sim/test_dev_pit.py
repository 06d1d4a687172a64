"""8254 PIT: periods, one-shot, latches, read-back, port 0x61."""

from gen2sim.bus import IoBus
from gen2sim.clock import PIT_HZ, PS_PER_US, VirtualClock, ps_for_ticks, ticks
from gen2sim.devices.pit import Pit8254
from gen2sim.trace import Trace


def make():
    clock = VirtualClock()
    trace = Trace(clock)
    edges = []
    pit = Pit8254(clock, trace, irq=lambda line, level: edges.append((clock.now, line, level)))
    bus = IoBus(trace)
    bus.add(pit)
    return clock, pit, bus, edges


def rising(edges):
    return [t for t, line, level in edges if line == 0 and level]


def test_mode2_period_exact_in_virtual_time():
    clock, pit, bus, edges = make()
    clock.advance(3 * PS_PER_US + 123)  # start off a tick boundary
    bus.write(0x43, 1, 0x34)  # ch0, lo/hi, mode 2, binary
    assert rising(edges) == [clock.now]  # control word: OUT goes high
    edges.clear()
    n = 1193
    bus.write(0x40, 1, n & 0xFF)
    bus.write(0x40, 1, n >> 8)
    t0 = ticks(clock.now, PIT_HZ)
    clock.advance(10 * 1000 * PS_PER_US)  # 10 ms
    times = rising(edges)
    expected = [ps_for_ticks(t0 + k * n, PIT_HZ) for k in range(1, len(times) + 1)]
    assert times == expected
    assert len(times) == (ticks(clock.now, PIT_HZ) - t0) // n
    assert len(times) == 10
    # each period is exactly n PIT ticks
    assert all(ticks(b, PIT_HZ) - ticks(a, PIT_HZ) == n for a, b in zip(times, times[1:]))
    # the line drops and rises at each period: an edge-triggered IOAPIC pin sees one edge each
    falls = [t for t, line, level in edges if not level]
    assert falls == times
    assert pit.irq0_edges == 11


def test_mode2_count_readout_and_counter_latch():
    clock, pit, bus, _ = make()
    bus.write(0x43, 1, 0x34)
    bus.write(0x40, 1, 0x00)
    bus.write(0x40, 1, 0x10)  # 0x1000
    t0 = ticks(clock.now, PIT_HZ)
    clock.advance(ps_for_ticks(t0 + 100, PIT_HZ) - clock.now)
    bus.write(0x43, 1, 0x00)  # latch channel 0
    clock.advance(1000 * PS_PER_US)  # the latched value does not move
    lo = bus.read(0x40, 1)
    hi = bus.read(0x40, 1)
    assert hi << 8 | lo == 0x1000 - 100
    # unlatched reads follow time again
    e = ticks(clock.now, PIT_HZ) - t0
    lo = bus.read(0x40, 1)
    hi = bus.read(0x40, 1)
    assert hi << 8 | lo == 0x1000 - (e % 0x1000)


def test_mode0_one_shot_single_interrupt():
    clock, pit, bus, edges = make()
    bus.write(0x43, 1, 0x30)  # ch0 lo/hi mode 0
    bus.write(0x40, 1, 0xE8)
    bus.write(0x40, 1, 0x03)  # 1000 ticks
    t0 = ticks(clock.now, PIT_HZ)
    clock.advance(5000 * PS_PER_US)
    assert rising(edges) == [ps_for_ticks(t0 + 1000, PIT_HZ)]
    assert clock.next_deadline() is None  # nothing left scheduled


def test_mode3_square_wave_period_and_reprogram_takes_effect_next_period():
    clock, pit, bus, edges = make()
    bus.write(0x43, 1, 0x36)  # ch0 lo/hi mode 3
    edges.clear()
    bus.write(0x40, 1, 0x00)
    bus.write(0x40, 1, 0x01)  # 256
    t0 = ticks(clock.now, PIT_HZ)
    clock.advance(ps_for_ticks(t0 + 256 + 10, PIT_HZ) - clock.now)
    bus.write(0x40, 1, 0x00)
    bus.write(0x40, 1, 0x02)  # 512 from the next period boundary (t0 + 512)
    clock.advance(ps_for_ticks(t0 + 512 + 2 * 512, PIT_HZ) - clock.now)
    assert rising(edges) == [ps_for_ticks(t0 + k, PIT_HZ) for k in (256, 512, 1024, 1536)]


def test_read_back_status_and_lobyte_access():
    clock, pit, bus, _ = make()
    bus.write(0x43, 1, 0x54)  # ch1, LSB only, mode 2
    bus.write(0x41, 1, 18)  # DRAM refresh style
    bus.write(0x43, 1, 0xE4)  # read-back: status only (count bit 5 = 1), channel 1
    status = bus.read(0x41, 1)
    assert status & 0x3F == 0x14  # RW = LSB, mode 2, binary
    assert status & 0x40 == 0  # null count clear: count loaded
    assert status & 0x80  # OUT high in mode 2
    assert bus.read(0x41, 1) == 18  # then the (unlatched) count
    start = ticks(clock.now, PIT_HZ)
    clock.advance(ps_for_ticks(start + 23, PIT_HZ) - clock.now)
    assert bus.read(0x41, 1) == 18 - 23 % 18


def test_port61_gate_out2_and_refresh_toggle():
    clock, pit, bus, _ = make()
    # HalMakeBeep-style: ch2 mode 3, gate + speaker on
    bus.write(0x43, 1, 0xB6)
    bus.write(0x42, 1, 0x00)
    bus.write(0x42, 1, 0x10)  # 4096 ticks
    bus.write(0x61, 1, 0x03)
    start = ticks(clock.now, PIT_HZ)
    assert bus.read(0x61, 1) & 0x23 == 0x23  # gate, speaker, OUT2 high at the start
    clock.advance(ps_for_ticks(start + 2048 + 1, PIT_HZ) - clock.now)
    assert bus.read(0x61, 1) & 0x20 == 0  # low half of the square wave
    clock.advance(ps_for_ticks(start + 4096 + 1, PIT_HZ) - clock.now)
    assert bus.read(0x61, 1) & 0x20
    # refresh bit toggles every 15.085 us
    clock.advance_to((clock.now // 15_085_000 + 1) * 15_085_000)
    a = bus.read(0x61, 1) & 0x10
    clock.advance(15_085_000)
    b = bus.read(0x61, 1) & 0x10
    assert a != b
    # mode 0 with gate low: counting paused, OUT2 stays low
    bus.write(0x61, 1, 0x00)
    bus.write(0x43, 1, 0xB0)
    bus.write(0x42, 1, 100)
    bus.write(0x42, 1, 0)
    clock.advance(1000 * PS_PER_US)
    assert bus.read(0x61, 1) & 0x20 == 0
    bus.write(0x61, 1, 0x01)
    clock.advance(ps_for_ticks(ticks(clock.now, PIT_HZ) + 100, PIT_HZ) - clock.now)
    assert bus.read(0x61, 1) & 0x20
    assert clock.next_deadline() is None  # channel 2 never schedules events
