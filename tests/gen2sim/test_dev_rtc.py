"""MC146818 RTC: time of day, UIP, periodic/update/alarm interrupts, Gen1 vs Gen2 (UIP blips, interrupts off by
default and on as an option), WAET's RTC_NO_ACK."""

import datetime as dt

from gen2sim.bus import IoBus
from gen2sim.clock import PS_PER_S, PS_PER_US, VirtualClock, ps_for_ticks
from gen2sim.devices.rtc import Rtc
from gen2sim.trace import Trace


def make(legacy, *, gen2=None, no_ack=False):
    """An RTC wired to a bus; ``legacy`` = interrupts on; ``gen2`` (default: not ``legacy``) = UIP blips."""
    clock = VirtualClock()
    trace = Trace(clock)
    lines = []
    rtc = Rtc(clock, trace, irq=lambda line, level: lines.append((clock.now, line, level)), legacy_interrupts=legacy,
              uip_blip=(not legacy) if gen2 is None else gen2, no_ack=no_ack)
    bus = IoBus(trace)
    bus.add(rtc)
    return clock, rtc, bus, lines


def cmos_read(bus, reg):
    bus.write(0x70, 1, 0x80 | reg)  # NMI mask bit must not affect addressing
    return bus.read(0x71, 1)


def cmos_write(bus, reg, value):
    bus.write(0x70, 1, reg)
    bus.write(0x71, 1, value)


def test_start_time_bcd_and_following_virtual_time():
    clock, rtc, bus, _ = make(False)
    assert [cmos_read(bus, r) for r in (9, 8, 7, 6, 4, 2, 0)] == [0x26, 0x01, 0x01, 0x05, 0, 0, 0]  # Thursday = 5
    assert cmos_read(bus, 0x32) == 0x20
    clock.advance(3661 * PS_PER_S + PS_PER_S // 2)
    assert [cmos_read(bus, r) for r in (4, 2, 0)] == [0x01, 0x01, 0x01]
    assert rtc.datetime() == dt.datetime(2026, 1, 1, 1, 1, 1)
    assert cmos_read(bus, 0x0D) == 0x80


def test_uip_timing_gen1():
    clock, rtc, bus, _ = make(True)

    def uip():
        return cmos_read(bus, 0x0A) & 0x80

    clock.advance_to(PS_PER_S - 244 * PS_PER_US - 1)
    assert not uip()
    assert cmos_read(bus, 0) == 0x00
    clock.advance_to(PS_PER_S - 244 * PS_PER_US)
    assert uip()
    clock.advance_to(PS_PER_S - 1)
    assert uip()
    assert cmos_read(bus, 0) == 0x00
    clock.advance_to(PS_PER_S)
    assert not uip()
    assert cmos_read(bus, 0) == 0x01
    clock.advance_to(2 * PS_PER_S - 100 * PS_PER_US)
    assert uip()
    assert cmos_read(bus, 0x0A) & 0x7F == 0x26


def test_gen2_uip_blips_once_a_second_and_no_interrupts_by_default():
    clock, rtc, bus, lines = make(False)
    cmos_write(bus, 0x0B, 0x02 | 0x40 | 0x20 | 0x10)  # PIE, AIE, UIE
    blips = []
    for step in range(0, 3 * PS_PER_S + PS_PER_S // 2, 37 * PS_PER_US):
        clock.advance_to(step)
        if cmos_read(bus, 0x0A) & 0x80:
            blips.append(step)
    # the first read more than 1 s after the previous blip (power-on counts as one) sees UIP = 1, once
    assert len(blips) == 3
    assert blips[0] > PS_PER_S and blips[0] - PS_PER_S <= 37 * PS_PER_US
    for a, b in zip(blips, blips[1:]):
        assert PS_PER_S < b - a <= PS_PER_S + 37 * PS_PER_US
    assert cmos_read(bus, 0x0C) == 0
    assert lines == []
    assert clock.next_deadline() is None
    assert cmos_read(bus, 0) == 0x03  # the time of day still runs


def test_gen2_uip_blip_depends_on_reads_not_on_the_second_boundary():
    clock, rtc, bus, _ = make(False)
    clock.advance_to(5 * PS_PER_S + PS_PER_S // 3)  # nobody read register A for 5 s
    assert cmos_read(bus, 0x0A) & 0x80  # this read blips...
    assert not cmos_read(bus, 0x0A) & 0x80  # ...and the next one does not
    clock.advance(PS_PER_S)
    assert not cmos_read(bus, 0x0A) & 0x80  # exactly 1 s later: not "more than" 1 s
    clock.advance(1)
    assert cmos_read(bus, 0x0A) & 0x80
    cmos_write(bus, 0x0B, 0x80 | 0x02)  # SET: no update in progress while the clock is held
    clock.advance(2 * PS_PER_S)
    assert not cmos_read(bus, 0x0A) & 0x80


def test_gen2_periodic_interrupt_as_an_option():
    # --rtc-interrupts on: the open VMM's behaviour, the line held until register C is read; UIP still blips.
    clock, rtc, bus, lines = make(True, gen2=True)
    cmos_write(bus, 0x0A, 0x26)  # 1024 Hz
    cmos_write(bus, 0x0B, 0x02 | 0x40)  # PIE
    clock.advance(PS_PER_S // 1024 + 1)
    assert lines and lines[-1][1:] == (8, True)
    assert cmos_read(bus, 0x0C) == 0xC0
    assert lines[-1][2] is False
    clock.advance_to(PS_PER_S + 1)
    assert cmos_read(bus, 0x0A) & 0x80


def test_no_ack_periodic_interrupt_edges_without_register_c_reads():
    # WAET RTC_NO_ACK: every period is an edge on IRQ 8 though nobody reads register C.
    clock, rtc, bus, lines = make(True, no_ack=True)
    cmos_write(bus, 0x0A, 0x26)
    cmos_write(bus, 0x0B, 0x02 | 0x40)
    clock.advance_to(ps_for_ticks(10, 1024))
    rises = [t for t, _, level in lines if level]
    assert rises == [ps_for_ticks(k, 1024) for k in range(1, 11)]
    assert rtc.interrupts == 10
    # without the flag the line stays up after the first period: one edge only
    clock, rtc, bus, lines = make(True)
    cmos_write(bus, 0x0A, 0x26)
    cmos_write(bus, 0x0B, 0x02 | 0x40)
    clock.advance_to(ps_for_ticks(10, 1024))
    assert [t for t, _, level in lines if level] == [ps_for_ticks(1, 1024)]


def test_periodic_1024hz_exact_and_reg_c_read_to_clear():
    clock, rtc, bus, lines = make(True)
    cmos_write(bus, 0x0A, 0x26)  # rate 6: 1024 Hz
    assert cmos_read(bus, 0x0C) == 0  # no periodic edge yet at t = 0
    handled = []

    def handler(line, level):
        lines.append((clock.now, line, level))
        if level:
            handled.append(clock.now)
            assert rtc.read_register(0x0C) == 0xC0  # IRQF | PF, and the read drops the line

    rtc.irq = handler
    clock.advance(PS_PER_S // 1024 // 2)  # half a period, so PF is set when PIE goes on
    lines.clear()
    clock.advance(PS_PER_S // 1024)  # one edge passes with PIE clear: PF set, no IRQ
    assert lines == []
    pie_time = clock.now
    cmos_write(bus, 0x0B, 0x02 | 0x40)  # PIE
    clock.advance_to(PS_PER_S // 8)  # to the 128th periodic edge
    assert handled[0] == pie_time  # PF already pending: IRQF and the line go up at the PIE write
    periodic = handled[1:]
    assert periodic == [ps_for_ticks(k, 1024) for k in range(2, len(periodic) + 2)]
    assert len(periodic) == 127 and periodic[0] == 2 * 976_562_500
    # each assertion is followed by a deassertion when register C is read
    assert [level for _, _, level in lines] == [True, False] * len(handled)
    # without a handler reading register C, the line stays high: one assertion only
    rtc.irq = lambda line, level: lines.append((clock.now, line, level))
    lines.clear()
    clock.advance(PS_PER_S // 8)
    assert lines == [(ps_for_ticks(129, 1024), 8, True)]
    assert rtc.irq_level
    assert cmos_read(bus, 0x0C) == 0xC0
    assert not rtc.irq_level
    assert cmos_read(bus, 0x0C) == 0x00
    assert lines[-1][2] is False


def test_update_and_alarm_interrupts_gen1():
    clock, rtc, bus, lines = make(True)
    cmos_write(bus, 0x0A, 0x20)  # periodic off
    cmos_write(bus, 0x01, 0x05)  # alarm at hh:mm:05, any hour/minute
    cmos_write(bus, 0x03, 0xC0)
    cmos_write(bus, 0x05, 0xFF)
    cmos_read(bus, 0x0C)
    cmos_write(bus, 0x0B, 0x02 | 0x20)  # AIE only
    clock.advance(10 * PS_PER_S)
    assert [t for t, _, level in lines if level] == [5 * PS_PER_S]
    assert cmos_read(bus, 0x0C) == 0x80 | 0x20 | 0x10  # IRQF, AF, UF (UF is set regardless of UIE)
    lines.clear()
    cmos_write(bus, 0x0B, 0x02 | 0x10)  # UIE
    clock.advance(PS_PER_S)
    assert [t for t, _, level in lines if level] == [11 * PS_PER_S]


def test_set_clock_binary_and_12_hour():
    clock, rtc, bus, _ = make(False)
    cmos_write(bus, 0x0B, 0x80 | 0x04 | 0x02)  # SET, binary, 24 h
    for reg, value in ((9, 30), (8, 6), (7, 15), (4, 13), (2, 34), (0, 56)):
        cmos_write(bus, reg, value)
    clock.advance(5 * PS_PER_S)  # frozen while SET = 1
    assert cmos_read(bus, 0) == 56
    cmos_write(bus, 0x0B, 0x04 | 0x02)
    assert rtc.datetime() == dt.datetime(2030, 6, 15, 13, 34, 56)
    clock.advance(PS_PER_S)
    assert cmos_read(bus, 0) == 57
    cmos_write(bus, 0x0B, 0x00)  # BCD, 12 hour
    assert cmos_read(bus, 4) == 0x81  # 1 PM
    assert cmos_read(bus, 9) == 0x30
    # writes with SET = 0 also set the clock (BCD, 12 h: 11 AM)
    cmos_write(bus, 4, 0x11)
    assert rtc.datetime().hour == 11


def test_cmos_ram_and_index_port():
    clock, rtc, bus, _ = make(False)
    cmos_write(bus, 0x40, 0xA5)
    assert cmos_read(bus, 0x40) == 0xA5
    bus.write(0x70, 1, 0x8F)
    assert bus.read(0x70, 1) == 0x8F
    assert rtc.index == 0x0F and rtc.nmi_masked


def test_machine_rtc_follows_the_published_waet_and_platform():
    # The RTC needs no register-C acknowledge exactly when the WAET the machine publishes says so.
    from gen2sim import acpi
    from gen2sim.machine import Machine

    for platform in ("gen1", "gen2"):
        m = Machine(platform)
        flags = acpi.parse_table(m.acpi.tables["WAET"][1])["flags"]
        assert m.rtc.no_ack == bool(flags & 1) and m.rtc.no_ack  # both generations publish RTC_NO_ACK
        assert m.rtc.legacy_interrupts == (platform == "gen1")  # gen2: interrupts off unless asked for
        assert m.rtc.uip_blip == (platform == "gen2")
    assert Machine("gen2", rtc_interrupts=True).rtc.legacy_interrupts
    assert not Machine("gen1", rtc_interrupts=False).rtc.legacy_interrupts


def test_tables_without_waet_need_the_acknowledge(tmp_path):
    from gen2sim import acpi
    from gen2sim.machine import Machine

    image = acpi.build_tables("gen2", 0x10_0000)
    for sig in ("APIC", "FACP", "DSDT"):
        (tmp_path / f"{sig.lower()}.dat").write_bytes(image.tables[sig][1])
    assert not Machine("gen1", acpi_dir=str(tmp_path)).rtc.no_ack


def test_gen2_uip_fast_forward_plan_stops_before_the_blip():
    # A loop polling register A may be skipped only up to the first read that would blip; that read is refused.
    from gen2sim.ffplan import Access

    clock, rtc, bus, _ = make(False)
    poll = [Access("w", 0x70, 1, 0x0A), Access("r", 0x71, 1)]
    clock.advance_to(PS_PER_S // 2)
    plan = rtc.ff_plan("io", poll)
    assert plan.reads == {1: 0x26} and plan.until == PS_PER_S + 1
    clock.advance_to(PS_PER_S + 1)
    assert rtc.ff_plan("io", poll) is None  # this read changes the state (it blips)
    assert cmos_read(bus, 0x0A) == 0xA6
    assert rtc.ff_plan("io", poll).until == 2 * PS_PER_S + 2
