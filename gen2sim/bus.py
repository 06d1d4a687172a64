"""Port I/O and MMIO dispatch, and the one place where device accesses are recorded.

The CPU core hands every intercepted ``IN``/``OUT`` to ``IoBus`` and every MMIO
access outside RAM to ``MmioBus``.  The bus finds the device, calls it, and writes
exactly one trace record for the access (``port_in``/``port_out`` or
``mmio_read``/``mmio_write``).  Devices never record their own accesses; they
only record events of their own (``interrupt``, ``note``).

Nothing is decoded here beyond "which device owns the first byte": a device
receives ``(port, size)`` and decides what a wide access means for it.  The
``ByteIoDevice`` mix-in gives 8-bit devices the usual PC behaviour of splitting a
wide access into consecutive byte accesses.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

from .errors import ModelError
from .ffplan import Access, Plan, plan_reads
from .trace import Trace

#: All-ones value of an access of each size: what a floating bus returns.
ALL_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: 0xFFFF_FFFF_FFFF_FFFF}

ABSENT = "absent"


def _mask(size: int) -> int:
    """Mask of an access of ``size`` bytes (checked: port sizes are 1, 2 or 4; MMIO up to 8)."""
    try:
        return ALL_ONES[size]
    except KeyError:
        raise ModelError(f"unsupported access size {size}") from None


class PortDevice(Protocol):
    """What ``IoBus`` needs from a device: a name, the ports it owns and two handlers."""

    name: str
    ports: Iterable[int]

    def io_read(self, port: int, size: int) -> int:
        """Value of an access of ``size`` bytes at ``port``."""
        ...

    def io_write(self, port: int, size: int, value: int) -> None:
        """Perform a write of ``size`` bytes at ``port``."""
        ...


class ByteIoDevice:
    """Mix-in for devices whose registers are 8 bits wide.

    On a PC a 16- or 32-bit access to an 8-bit device is split by the chipset into
    byte accesses to consecutive ports; a byte that falls on a port this device
    does not own reads as all ones and its write is dropped.  Subclasses implement
    ``read_byte(port)`` and ``write_byte(port, value)``.
    """

    ports: tuple[int, ...] = ()

    def read_byte(self, port: int) -> int:  # pragma: no cover - always overridden
        """Return the byte at ``port`` (a port this device owns)."""
        raise NotImplementedError

    def write_byte(self, port: int, value: int) -> None:  # pragma: no cover - always overridden
        """Write the byte ``value`` to ``port`` (a port this device owns)."""
        raise NotImplementedError

    def io_read(self, port: int, size: int) -> int:
        """Read ``size`` bytes starting at ``port``, one byte access per port, little-endian."""
        value = 0
        for i in range(size):
            p = (port + i) & 0xFFFF
            byte = self.read_byte(p) & 0xFF if p in self.ports else 0xFF
            value |= byte << (8 * i)
        return value

    def io_write(self, port: int, size: int, value: int) -> None:
        """Write ``size`` bytes of ``value`` starting at ``port``, one byte access per port."""
        for i in range(size):
            p = (port + i) & 0xFFFF
            if p in self.ports:
                self.write_byte(p, (value >> (8 * i)) & 0xFF)

    def ff_peek_byte(self, port: int) -> int | None:
        """For fast-forward: the byte a read of ``port`` returns, if repeating that read from the present state
        returns it again and changes nothing, independent of time; ``None`` refuses (the default)."""
        return None

    def ff_plan(self, space: str, accesses: list[Access]) -> Plan | None:
        """Fast-forward plan (``gen2sim.ffplan``) for devices of constant registers: reads only, byte by byte
        through ``ff_peek_byte``."""
        if space != "io":
            return None

        def answer(acc: Access) -> int | None:
            value = 0
            for i in range(acc.size):
                p = (acc.key + i) & 0xFFFF
                byte = self.ff_peek_byte(p) if p in self.ports else 0xFF
                if byte is None:
                    return None
                value |= (byte & 0xFF) << (8 * i)
            return value

        return plan_reads(accesses, answer)


class AbsentDevice:
    """What answers where no device decodes a port or an address, as far as fast-forward is concerned: reads are
    all ones and writes vanish, forever (``gen2sim.ffplan``)."""

    name = ABSENT

    @staticmethod
    def ff_state() -> tuple:
        """Nothing to change."""
        return ()

    @staticmethod
    def ff_plan(space: str, accesses: list[Access]) -> Plan:
        """All-ones reads, dropped writes, no time dependence."""
        return Plan(None, {i: ALL_ONES[acc.size] for i, acc in enumerate(accesses) if acc.op == "r"})


class IoBus:
    """The 64 KiB x86 I/O port space.

    ``add(device)`` registers every port in ``device.ports``; a port owned twice
    is a model bug (``ModelError``).  Ports nobody owns behave like the missing
    devices of a Generation 2 VM: reads return all ones, writes are dropped, and
    the access is recorded with device ``"absent"``.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._ports: dict[int, PortDevice] = {}
        self.devices: list[PortDevice] = []

    def add(self, device: PortDevice) -> PortDevice:
        """Register ``device`` on all of its ports; returns the device."""
        ports = list(device.ports)
        for port in ports:
            if not 0 <= port <= 0xFFFF:
                raise ModelError(f"{device.name}: port {port:#x} outside the I/O space")
            owner = self._ports.get(port)
            if owner is not None:
                raise ModelError(f"port {port:#x} claimed by both {owner.name} and {device.name}")
        for port in ports:
            self._ports[port] = device
        self.devices.append(device)
        return device

    def device_at(self, port: int) -> PortDevice | None:
        """The device owning ``port``, or ``None`` when the port is absent."""
        return self._ports.get(port)

    def read(self, port: int, size: int) -> int:
        """Perform an ``IN`` of ``size`` bytes from ``port`` and record it once.

        The device owning the first byte handles the whole access.  If the device
        raises (``GuestFault``, ``MachineReset``) the access is still recorded,
        with no value, before the exception propagates.
        """
        mask = _mask(size)
        port &= 0xFFFF
        device = self._ports.get(port)
        if device is None:
            self.trace.record("port_in", device=ABSENT, address=port, value=mask, size=size)
            return mask
        try:
            value = device.io_read(port, size) & mask
        except Exception:
            self.trace.record("port_in", device=device.name, address=port, value=None, size=size)
            raise
        self.trace.record("port_in", device=device.name, address=port, value=value, size=size)
        return value

    def write(self, port: int, size: int, value: int) -> None:
        """Perform an ``OUT`` of ``size`` bytes to ``port`` and record it once.

        The record is written before the device runs, so an access that resets
        the machine or faults still appears in the trace.
        """
        mask = _mask(size)
        port &= 0xFFFF
        value &= mask
        device = self._ports.get(port)
        self.trace.record(
            "port_out", device=ABSENT if device is None else device.name, address=port, value=value, size=size
        )
        if device is not None:
            device.io_write(port, size, value)


class MmioRegion:
    """One device window in guest-physical address space.

    ``base`` may be an integer or a zero-argument callable (the local APIC can be
    moved by the guest through MSR 0x1B, so its window follows the device).
    ``enabled``, when given, is consulted on every lookup: a disabled window is
    not decoded (the x2APIC-mode local APIC, for example).
    """

    def __init__(
        self,
        name: str,
        base: int | Callable[[], int],
        size: int,
        read: Callable[[int, int], int],
        write: Callable[[int, int, int], None],
        enabled: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._base = base
        self.size = size
        self.read = read
        self.write = write
        self._enabled = enabled
        self.device = None  # the device object behind the window, when there is one (fast-forward asks it)

    @property
    def base(self) -> int:
        """Current base address of the window."""
        return self._base() if callable(self._base) else self._base

    @property
    def enabled(self) -> bool:
        """Whether the window is decoded right now."""
        return True if self._enabled is None else bool(self._enabled())

    def contains(self, address: int, size: int = 1) -> bool:
        """Whether ``[address, address + size)`` lies inside the enabled window."""
        base = self.base
        return self.enabled and base <= address and address + size <= base + self.size

    @classmethod
    def for_device(cls, device, size: int) -> "MmioRegion":
        """Window for a device with ``name``, ``base``, ``mmio_read``/``mmio_write``
        and optionally an ``mmio_enabled`` attribute (property or plain value)."""
        enabled = None
        if hasattr(device, "mmio_enabled"):
            enabled = lambda: device.mmio_enabled  # noqa: E731 - read the live attribute
        region = cls(device.name, lambda: device.base, size, device.mmio_read, device.mmio_write, enabled)
        region.device = device
        return region


class MmioBus:
    """Device windows outside RAM; records each access once.

    An address no window decodes behaves like an unclaimed bus cycle: reads return
    all ones, writes are dropped, the access is recorded with device ``"absent"``.
    Whether an address is RAM is the CPU core's business; it asks ``find`` first.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.regions: list[MmioRegion] = []

    def add(self, region: MmioRegion) -> MmioRegion:
        """Register a window; returns it."""
        self.regions.append(region)
        return region

    def add_device(self, device, size: int) -> MmioRegion:
        """Register a window for ``device`` (see ``MmioRegion.for_device``)."""
        return self.add(MmioRegion.for_device(device, size))

    def find(self, address: int, size: int = 1) -> MmioRegion | None:
        """The enabled window holding the access, or ``None`` (first registered wins)."""
        for region in self.regions:
            if region.contains(address, size):
                return region
        return None

    def read(self, address: int, size: int) -> int:
        """Read ``size`` bytes at guest-physical ``address`` and record it once."""
        mask = _mask(size)
        region = self.find(address, size)
        if region is None:
            self.trace.record("mmio_read", device=ABSENT, address=address, value=mask, size=size)
            return mask
        try:
            value = region.read(address - region.base, size) & mask
        except Exception:
            self.trace.record("mmio_read", device=region.name, address=address, value=None, size=size)
            raise
        self.trace.record("mmio_read", device=region.name, address=address, value=value, size=size)
        return value

    def write(self, address: int, size: int, value: int) -> None:
        """Write ``size`` bytes at guest-physical ``address``; recorded before the device runs."""
        mask = _mask(size)
        value &= mask
        region = self.find(address, size)
        self.trace.record(
            "mmio_write", device=ABSENT if region is None else region.name, address=address, value=value, size=size
        )
        if region is not None:
            region.write(address - region.base, size, value)
