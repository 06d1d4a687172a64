"""What a device promises about a polling loop, so the loop can be fast-forwarded (``gen2sim.fastforward``).

The fast-forward engine has watched the guest run one iteration of a loop and knows, per device, the ordered list
of accesses the iteration made (``Access``: read or write, port / window offset / MSR, size, written value).  It
then asks each device ``ff_plan(space, accesses)``: *if these same accesses are repeated, starting from your
present state, at any virtual time before ``until``, what does each read return, and is your state left as it
is?*  The answer is a ``Plan``:

- ``until``: the first instant (ps) at which the answer may stop holding -- the RTC's next update-in-progress edge,
  the next periodic flag, the next wrap of a counter's visible bits, a one-shot timer's expiry; ``None`` when
  nothing time-dependent is involved (a dead port, a constant register).
- ``reads``: for each read (its index in ``accesses``) either the constant value it returns, or a ``Counter``: the
  value as an exact function of virtual time (PM timer, local-APIC current count, TSC, reference counter).

A device answers ``None`` when it cannot promise (an access with side effects, a register it does not want to
reason about); the loop then simply runs step by step.  ``ff_state()`` returns everything in the device an access
or a clock event can change (not values derived from the clock): the engine compares it before and after an
observed iteration to prove that the iteration left the device as it found it.

Neither call may change the device.  Clock events are not the device's business here: the engine never
fast-forwards across the next scheduled event.
"""

from __future__ import annotations

from dataclasses import dataclass

from .clock import PS_PER_S, ps_for_ticks

MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Counter:
    """A read whose value follows virtual time ``t`` (ps):

    ``value(t) = ((base + sign * ((t - t0) * hz // PS_PER_S)) >> shift) & mask``

    (``mask + 1`` a power of two).  Before ``wraps_at`` the value moves monotonically (up for ``sign`` 1, down for
    -1), which is what lets the engine bound a whole range of iterations by its two ends.
    """

    hz: int
    t0: int = 0
    base: int = 0
    sign: int = 1
    shift: int = 0
    mask: int = MASK64

    def raw(self, t: int) -> int:
        """The counter before shift and mask at ``t`` (``t >= t0``)."""
        return self.base + self.sign * ((t - self.t0) * self.hz // PS_PER_S)

    def value(self, t: int) -> int:
        """What a read at ``t`` returns."""
        return (self.raw(t) >> self.shift) & self.mask

    def wraps_at(self, now: int) -> int:
        """The first instant after ``now`` at which the visible bits would wrap (or the raw count go negative)."""
        span = self.mask + 1
        block = (self.raw(now) >> self.shift) // span
        if self.sign > 0:
            limit = ((block + 1) * span) << self.shift  # first raw value of the next block
            return self.t0 + ps_for_ticks(limit - self.base, self.hz)
        limit = (block * span) << self.shift  # raw values below this belong to the previous block
        return self.t0 + ps_for_ticks(self.base - limit + 1, self.hz)

    def to_json(self) -> dict:
        """The counter as the trace's repeat record carries it."""
        return {"hz": self.hz, "t0_ps": self.t0, "base": self.base, "sign": self.sign, "shift": self.shift,
                "mask": self.mask}

    @classmethod
    def from_json(cls, data: dict) -> "Counter":
        """Inverse of ``to_json`` (``KeyError``/``TypeError`` on a malformed dict)."""
        return cls(int(data["hz"]), int(data["t0_ps"]), int(data["base"]), int(data["sign"]), int(data["shift"]),
                   int(data["mask"]))


@dataclass(frozen=True)
class Access:
    """One access of a loop iteration to one device: ``op`` ``"r"``/``"w"``, ``key`` (port, offset in the device's
    window or MSR number), ``size`` in bytes, ``value`` written (``None`` for reads)."""

    op: str
    key: int
    size: int
    value: int | None = None


@dataclass
class Plan:
    """A device's promise for a repeated access list (see the module docstring)."""

    until: int | None
    reads: dict[int, int | Counter]


def plan_reads(accesses: list[Access], answer, until: int | None = None) -> Plan | None:
    """A plan for devices whose writes are not allowed in a loop: ``answer(access)`` gives each read's value or
    ``Counter`` (``None`` refuses).  Any write refuses."""
    reads: dict[int, int | Counter] = {}
    for i, acc in enumerate(accesses):
        if acc.op != "r":
            return None
        value = answer(acc)
        if value is None:
            return None
        reads[i] = value
    return Plan(until, reads)


def earliest(*times: int | None) -> int | None:
    """The earliest of some instants, ``None`` standing for "never"."""
    known = [t for t in times if t is not None]
    return min(known) if known else None
