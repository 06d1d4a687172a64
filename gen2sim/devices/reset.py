"""FADT reset register in I/O space (Hyper-V: port 0x433, value 1).

Writing the FADT's RESET_VALUE to the port resets the machine; any other value
is recorded as a note and ignored.  Reads return 0 (the register is write-only;
the model does not claim to know what Hyper-V answers).
"""

from __future__ import annotations

from ..clock import VirtualClock
from ..errors import MachineReset
from ..ffplan import Access, Plan, plan_reads
from ..trace import Trace


class ResetRegister:
    """One-port FADT reset register: ``value`` written to ``port`` raises ``MachineReset``."""

    name = "reset"

    def __init__(self, clock: VirtualClock, trace: Trace, port: int = 0x433, value: int = 0x01) -> None:
        self.clock = clock
        self.trace = trace
        self.port = port
        self.value = value
        self.ports = (port,)

    def io_read(self, port: int, size: int) -> int:
        """The register is write-only: reads return 0."""
        return 0

    def io_write(self, port: int, size: int, value: int) -> None:
        """The reset value resets the machine; other values are noted and ignored.

        The FADT describes an 8-bit register, so only the low byte counts."""
        if value & 0xFF == self.value:
            self.trace.record("note", device=self.name, address=port, value=value, detail="FADT reset register")
            raise MachineReset("FADT reset register")
        self.trace.record(
            "note",
            device=self.name,
            address=port,
            value=value,
            detail="reset register written with a value other than RESET_VALUE; ignored",
        )

    @staticmethod
    def ff_state() -> tuple:
        """No state (see ``gen2sim.ffplan``)."""
        return ()

    @staticmethod
    def ff_plan(space: str, accesses: list[Access]) -> Plan | None:
        """Reads are 0 forever; writes refuse (they reset the machine or leave a note)."""
        return plan_reads(accesses, lambda acc: 0) if space == "io" else None
