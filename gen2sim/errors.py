"""Exceptions that cross the boundary between devices, the CPU core and the verdict logic."""


class GuestFault(Exception):
    """The guest must receive a processor exception (``#GP``, ``#UD``, ``#PF``).

    Raised from inside an intercepted access; the CPU core turns it into a
    ``fault`` verdict naming the guest function.
    """

    def __init__(self, vector: str, detail: str) -> None:
        super().__init__(f"{vector}: {detail}")
        self.vector = vector
        self.detail = detail


class MachineReset(Exception):
    """The guest reset the machine (i8042 0xFE, FADT reset register, Hyper-V RESET MSR)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelError(Exception):
    """A defect or unsupported use of the model itself; never a guest verdict."""
