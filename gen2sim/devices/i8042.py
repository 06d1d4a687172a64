"""Intel 8042 keyboard controller at 0x60 (data) / 0x64 (status, command).

Present only on Generation 1.  Modelled for what a HAL does with it: reboot
(command 0xFE, or any 0xF0-0xFF pulse with bit 0 clear, or writing the output
port with the reset line low) and the handful of controller commands firmware and
drivers use to probe it.  No keyboard or mouse is attached: nothing ever types,
so IRQ 1 / IRQ 12 are never raised; keyboard commands written to port 0x60 are
simply acknowledged (0xFA, and 0xAA after a reset command).

Status (0x64): bit 0 OBF, bit 1 IBF (always 0: the controller consumes input
instantly), bit 2 system flag (1: self-test passed), bit 3 last write was a
command, bit 4 keyboard not inhibited, bit 5 output byte came from the aux port.
"""

from __future__ import annotations

from ..bus import ByteIoDevice
from ..clock import VirtualClock
from ..errors import MachineReset
from ..trace import Trace

ST_OBF, ST_IBF, ST_SYS, ST_CMD, ST_UNLOCKED, ST_AUX = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


class I8042(ByteIoDevice):
    """8042 keyboard controller; reset commands raise ``MachineReset``."""

    name = "i8042"

    def __init__(self, clock: VirtualClock, trace: Trace) -> None:
        self.clock = clock
        self.trace = trace
        self.ports = (0x60, 0x64)
        self.command_byte = 0x45  # kbd interrupt on, system flag, translation on
        self.output_port = 0x01 | 0x02  # reset line high (inactive), A20 enabled
        self._out: list[int] = []
        self._last_out = 0
        self._last_was_command = False
        self._expect: int | None = None  # controller command waiting for a data byte

    # -- port interface --------------------------------------------------------------------
    def read_byte(self, port: int) -> int:
        """0x60 pops the output buffer (repeats the last byte when empty); 0x64 is status."""
        if port == 0x64:
            status = ST_SYS | ST_UNLOCKED
            if self._out:
                status |= ST_OBF
            if self._last_was_command:
                status |= ST_CMD
            return status
        if self._out:
            self._last_out = self._out.pop(0)
        return self._last_out

    def write_byte(self, port: int, value: int) -> None:
        """0x64 takes a controller command; 0x60 takes its data byte or a keyboard command."""
        if port == 0x64:
            self._last_was_command = True
            self._command(value)
            return
        self._last_was_command = False
        expect, self._expect = self._expect, None
        if expect == 0x60:
            self.command_byte = value
        elif expect == 0xD1:
            self._write_output_port(value)
        elif expect in (0xD2, 0xD3):
            self._out.append(value)  # echo as if typed on the keyboard / aux port
        elif expect == 0xD4:
            self._out.append(0xFA)  # no mouse behind it, but acknowledge
        else:
            # A command for the keyboard itself.
            self._out.append(0xFA)
            if value == 0xFF:
                self._out.append(0xAA)  # basic assurance test passed

    def _command(self, cmd: int) -> None:
        if cmd == 0x20:
            self._out.append(self.command_byte)
        elif cmd in (0x60, 0xD1, 0xD2, 0xD3, 0xD4):
            self._expect = cmd
        elif cmd == 0xAA:
            self._out.append(0x55)  # controller self-test passed
        elif cmd in (0xAB, 0xA9):
            self._out.append(0x00)  # interface tests passed
        elif cmd == 0xAD:
            self.command_byte |= 0x10
        elif cmd == 0xAE:
            self.command_byte &= ~0x10
        elif cmd == 0xA7:
            self.command_byte |= 0x20
        elif cmd == 0xA8:
            self.command_byte &= ~0x20
        elif cmd == 0xD0:
            self._out.append(self.output_port)
        elif cmd >= 0xF0:
            # Pulse output lines: a clear bit in the low nibble pulses that line low;
            # bit 0 is the CPU reset line.
            if not cmd & 0x01:
                self.trace.record("note", device=self.name, address=0x64, value=cmd, detail="i8042 pulse reset line")
                raise MachineReset("i8042 pulse reset line")
        else:
            self.trace.record(
                "note",
                device=self.name,
                address=0x64,
                value=cmd,
                detail="unmodelled i8042 command ignored",
            )

    def _write_output_port(self, value: int) -> None:
        self.output_port = value
        if not value & 0x01:
            self.trace.record(
                "note",
                device=self.name,
                address=0x60,
                value=value,
                detail="i8042 output port reset line low",
            )
            raise MachineReset("i8042 output port reset line low")

    # -- fast-forward (gen2sim.ffplan) ---------------------------------------------------------------
    def ff_state(self) -> tuple:
        """Everything an access can change (see ``gen2sim.ffplan``)."""
        return (self.command_byte, self.output_port, tuple(self._out), self._last_out, self._last_was_command,
                self._expect)

    def ff_peek_byte(self, port: int) -> int | None:
        """Status is constant until something is written; the data port only once the output buffer is empty."""
        if port == 0x64:
            return self.read_byte(0x64)  # no side effects
        return None if self._out else self._last_out
