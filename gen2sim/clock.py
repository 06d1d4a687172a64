"""Virtual, deterministic time for the machine model.

All time is an integer number of picoseconds since power-on.  Nothing here reads
the host clock: every counter the guest can see (TSC, partition reference
counter, local-APIC timer, PM timer, RTC) is derived from ``VirtualClock.now``,
and ``now`` only moves when the CPU core charges guest work to it (a fixed cost
per guest instruction and per intercepted operation, see ``COSTS``) or when an
idle CPU fast-forwards to the next scheduled event.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

PS_PER_NS = 1_000
PS_PER_US = 1_000_000
PS_PER_S = 1_000_000_000_000

#: Frequencies of the modelled machine.  The TSC and APIC values are what
#: Hyper-V reports through MSRs 0x40000022/0x40000023 on a typical host (the APIC
#: timer of a Hyper-V VP counts at 200 MHz); the PM timer rate is fixed by ACPI.
TSC_HZ = 2_400_000_000
APIC_TIMER_HZ = 200_000_000
PM_TIMER_HZ = 3_579_545
REFERENCE_HZ = 10_000_000  # Hyper-V partition reference time: 100 ns units
PIT_HZ = 1_193_182

#: Fixed virtual cost of guest work, in picoseconds.  One guest instruction costs
#: 1 ns (a 1 GIPS virtual CPU); an intercepted operation (a VM exit on real
#: Hyper-V) costs 1 us, the order of a real exit round trip.
COSTS = {
    "instruction": 1 * PS_PER_NS,
    "port_io": 1 * PS_PER_US,
    "msr": 1 * PS_PER_US,
    "mmio": 1 * PS_PER_US,
    "cpuid": 1 * PS_PER_US,
    "hlt": 1 * PS_PER_US,
    "hypercall": 2 * PS_PER_US,
    "cr8": 0,  # CR8 writes do not exit on Hyper-V (TPR shadowing)
}


def ticks(now_ps: int, hz: int) -> int:
    """Return how many whole periods of a ``hz`` counter have elapsed at ``now_ps``."""
    return now_ps * hz // PS_PER_S


def ps_for_ticks(count: int, hz: int) -> int:
    """Return the picoseconds ``count`` periods of a ``hz`` counter take (rounded up)."""
    return -(-count * PS_PER_S // hz)


@dataclass(order=True)
class _Event:
    deadline: int
    seq: int
    callback: Callable[[], None] = field(compare=False)
    tag: str = field(compare=False, default="")
    cancelled: bool = field(compare=False, default=False)


class VirtualClock:
    """Integer picosecond clock with a deterministic event queue.

    Events due at the same instant fire in the order they were scheduled.
    """

    def __init__(self) -> None:
        self.now = 0
        #: TSC rate of this machine (a host profile may change it before the run).
        self.tsc_hz = TSC_HZ
        self._queue: list[_Event] = []
        self._seq = 0

    # -- counters derived from virtual time ---------------------------------
    def tsc(self) -> int:
        """Time-stamp counter value at ``now``."""
        return ticks(self.now, self.tsc_hz)

    def reference_100ns(self) -> int:
        """Hyper-V partition reference counter (100 ns units) at ``now``."""
        return ticks(self.now, REFERENCE_HZ)

    # -- events ---------------------------------------------------------------
    def schedule(self, deadline_ps: int, callback: Callable[[], None], tag: str = "") -> _Event:
        """Run ``callback`` once virtual time reaches ``deadline_ps``; returns a handle."""
        event = _Event(max(deadline_ps, self.now), self._seq, callback, tag)
        self._seq += 1
        heapq.heappush(self._queue, event)
        return event

    @staticmethod
    def cancel(event: _Event | None) -> None:
        """Cancel an event returned by ``schedule`` (``None`` is ignored)."""
        if event is not None:
            event.cancelled = True

    def next_deadline(self) -> int | None:
        """The deadline of the earliest pending event, or ``None``."""
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0].deadline if self._queue else None

    def advance(self, delta_ps: int) -> None:
        """Move time forward by ``delta_ps`` and fire every event that became due."""
        self.advance_to(self.now + delta_ps)

    def advance_to(self, when_ps: int) -> None:
        """Move time forward to ``when_ps`` (never backwards), firing due events in order."""
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > when_ps:
                break
            event = heapq.heappop(self._queue)
            self.now = max(self.now, event.deadline)
            event.callback()
        self.now = max(self.now, when_ps)
