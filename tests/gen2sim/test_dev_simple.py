"""i8042, FADT reset register, 16550 UART, 8259 PIC."""

import pytest

from gen2sim.bus import IoBus
from gen2sim.clock import VirtualClock
from gen2sim.devices.i8042 import I8042
from gen2sim.devices.pic import Pic8259
from gen2sim.devices.reset import ResetRegister
from gen2sim.devices.uart import Uart16550
from gen2sim.errors import MachineReset
from gen2sim.trace import Trace


def make(cls, **kw):
    clock = VirtualClock()
    trace = Trace(clock)
    bus = IoBus(trace)
    dev = bus.add(cls(clock, trace, **kw))
    return dev, bus, trace


# -- i8042 -------------------------------------------------------------------------------------------
def test_i8042_pulse_reset_raises_machine_reset():
    _, bus, _ = make(I8042)
    assert bus.read(0x64, 1) & 0x02 == 0  # IBF clear: ready for a command
    with pytest.raises(MachineReset) as info:
        bus.write(0x64, 1, 0xFE)
    assert info.value.reason == "i8042 pulse reset line"


def test_i8042_self_test_and_command_byte():
    _, bus, _ = make(I8042)
    assert bus.read(0x64, 1) & 0x01 == 0
    bus.write(0x64, 1, 0xAA)
    assert bus.read(0x64, 1) & 0x01 == 1
    assert bus.read(0x60, 1) == 0x55
    assert bus.read(0x64, 1) & 0x01 == 0
    bus.write(0x64, 1, 0x60)
    bus.write(0x60, 1, 0x30)
    bus.write(0x64, 1, 0x20)
    assert bus.read(0x60, 1) == 0x30


def test_i8042_pulse_without_reset_bit_and_output_port_reset():
    _, bus, _ = make(I8042)
    bus.write(0x64, 1, 0xFF)  # pulses nothing
    bus.write(0x64, 1, 0xD1)
    with pytest.raises(MachineReset):
        bus.write(0x60, 1, 0x02)  # output port with the reset line (bit 0) low


# -- reset register --------------------------------------------------------------------------------
def test_reset_register_value_resets_other_values_noted():
    dev, bus, trace = make(ResetRegister, port=0x433, value=1)
    bus.write(0x433, 1, 0x06)
    assert trace.records[-1]["kind"] == "note"
    with pytest.raises(MachineReset) as info:
        bus.write(0x433, 1, 0x01)
    assert info.value.reason == "FADT reset register"


# -- UART --------------------------------------------------------------------------------------------
def test_uart_collects_text_and_lsr():
    uart, bus, _ = make(Uart16550)
    bus.write(0x3FB, 1, 0x80)  # DLAB
    bus.write(0x3F8, 1, 0x01)  # divisor 1 = 115200
    bus.write(0x3F9, 1, 0x00)
    bus.write(0x3FB, 1, 0x03)
    assert uart.divisor == 1
    for ch in "hal: ok\n":
        assert bus.read(0x3FD, 1) & 0x20
        bus.write(0x3F8, 1, ord(ch))
    assert uart.text() == "hal: ok\n"
    assert bus.read(0x3FD, 1) == 0x60  # THRE | TEMT, DR = 0
    bus.write(0x3FF, 1, 0x5A)
    assert bus.read(0x3FF, 1) == 0x5A
    assert bus.read(0x3FA, 1) & 0x01  # no interrupt pending


def test_uart_loopback_and_thre_interrupt():
    lines = []
    clock = VirtualClock()
    trace = Trace(clock)
    uart = Uart16550(clock, trace, irq=lambda line, level: lines.append((line, level)))
    bus = IoBus(trace)
    bus.add(uart)
    bus.write(0x3FC, 1, 0x10 | 0x08 | 0x02)  # loop, OUT2, RTS
    bus.write(0x3F8, 1, 0x42)
    assert uart.output == bytearray()
    assert bus.read(0x3FD, 1) & 0x01
    assert bus.read(0x3F8, 1) == 0x42
    assert bus.read(0x3FE, 1) & 0xF0 == 0x90  # CTS (from RTS), DCD (from OUT2)
    bus.write(0x3F9, 1, 0x02)  # ETBEI: THR empty interrupt now
    assert lines == [(4, True)]
    assert bus.read(0x3FA, 1) & 0x0F == 0x02
    assert lines == [(4, True), (4, False)]


# -- PIC ------------------------------------------------------------------------------------------------
def test_pic_icw_sequence_and_masks_like_a_hal():
    pic, bus, trace = make(Pic8259)
    # What ReactOS HalpInitializeLegacyPICs does: ICW1 edge/cascade/ICW4, bases 0x30/0x38.
    bus.write(0x20, 1, 0x11)
    bus.write(0x21, 1, 0x30)
    bus.write(0x21, 1, 0x04)
    bus.write(0x21, 1, 0x01)
    bus.write(0xA0, 1, 0x11)
    bus.write(0xA1, 1, 0x38)
    bus.write(0xA1, 1, 0x02)
    bus.write(0xA1, 1, 0x01)
    bus.write(0x21, 1, 0xFF)
    bus.write(0xA1, 1, 0xFF)
    assert pic.master.vector_base == 0x30 and pic.slave.vector_base == 0x38
    assert pic.master.icw3 == 0x04 and pic.slave.icw3 == 0x02
    assert pic.master.initialized and pic.slave.initialized
    assert bus.read(0x21, 1) == 0xFF and bus.read(0xA1, 1) == 0xFF
    assert pic.imr == (0xFF, 0xFF)
    notes = [r for r in trace.records if r["kind"] == "note"]
    assert len(notes) == 2


def test_pic_irr_isr_reads_and_eoi_but_never_interrupts_cpu():
    pic, bus, _ = make(Pic8259)
    for port, data in ((0x20, (0x30, 0x04, 0x01)), (0xA0, (0x38, 0x02, 0x01))):
        bus.write(port, 1, 0x11)
        for d in data:
            bus.write(port + 1, 1, d)
    pic.set_irq(1, True)
    bus.write(0x20, 1, 0x0A)  # OCW3: read IRR
    assert bus.read(0x20, 1) == 0x02
    assert pic.would_interrupt()
    bus.write(0x20, 1, 0x0C)  # OCW3 poll
    assert bus.read(0x20, 1) == 0x81  # poll acknowledges IR1
    bus.write(0x20, 1, 0x0B)  # read ISR
    assert bus.read(0x20, 1) == 0x02
    bus.write(0x20, 1, 0x20)  # non-specific EOI
    assert bus.read(0x20, 1) == 0x00
    bus.write(0x21, 1, 0xFF)
    pic.set_irq(1, False)
    pic.set_irq(1, True)
    assert not pic.would_interrupt()  # masked


def test_pic_elcr_fixed_bits():
    pic, bus, _ = make(Pic8259)
    bus.write(0x4D0, 1, 0xFF)
    bus.write(0x4D1, 1, 0xFF)
    assert bus.read(0x4D0, 1) == 0xF8
    assert bus.read(0x4D1, 1) == 0xDE
    assert bus.read(0x4D0, 2) == 0xDEF8
