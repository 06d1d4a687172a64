"""Speed figures of the model: wall time of a boot, guest instructions and exits per second, fast-forward ratio.

``bench`` times one boot; ``bench_many`` a list of them (``BootSpec``), ``suite`` names the standard list built by
the main job, per target: the reference HAL on Generation 1 (its calibration polls the timers); the same with the
ACPI PM timer block moved to a port nothing answers (the reference polls it until the hang limit); the variant
calibrating against the reference TSC page with the frequency MSRs cleared; the variant with every Hyper-V clock
cleared and the dead PM timer port (it waits a bounded number of reads for the timer to move, then bug-checks).

Wall time is measured here only; it never enters the deterministic result or the trace.  With ``check=True`` each
boot also runs step by step (fast-forward off) and the two results must be identical -- the measured "before".
"""

from __future__ import annotations

import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError

#: A port no platform device decodes (the suite's dead PM timer block).
DEAD_PORT = 0x1008
TARGETS = ("reactos-amd64", "win7sp1-amd64")
ALL_CLOCKS_CLEARED = ("frequency-msrs", "reference-counter", "reference-tsc-page")


@dataclass(frozen=True)
class BootSpec:
    """One boot to time: a DLL, its target and platform, and the boot options."""

    dll: str
    target: str
    platform: str = "gen2"
    hv_clear: tuple[str, ...] = ()
    acpi_dir: str | None = None
    seconds: float = 1.0
    madt_pcat: bool | None = None
    label: str = ""

    def name(self) -> str:
        """How the boot is shown in the table."""
        if self.label:
            return self.label
        extra = f" hv-clear {','.join(self.hv_clear)}" if self.hv_clear else ""
        extra += " acpi " + Path(self.acpi_dir).name if self.acpi_dir else ""
        return f"{self.dll} {self.platform}{extra}"


@dataclass
class Figures:
    """The measured figures of one boot."""

    spec: BootSpec
    verdict: str
    wall_seconds: float
    guest_instructions: int
    exits: int
    virtual_time_us: int
    iterations_skipped: int
    iterations_run: int
    loops: int
    slow_wall_seconds: float | None = None  # with check: the step-by-step run
    same_result: bool | None = None  # with check: whether both runs gave the same result
    extra: dict = field(default_factory=dict)

    @property
    def instructions_per_second(self) -> int | None:
        """Guest instructions per wall second."""
        return round(self.guest_instructions / self.wall_seconds) if self.wall_seconds else None

    @property
    def exits_per_second(self) -> int | None:
        """Intercepted operations per wall second."""
        return round(self.exits / self.wall_seconds) if self.wall_seconds else None

    @property
    def ff_ratio(self) -> float | None:
        """Loop iterations skipped per iteration run step by step in the loops that were fast-forwarded."""
        return round(self.iterations_skipped / self.iterations_run, 1) if self.iterations_run else None

    def as_dict(self) -> dict:
        """The figures as JSON-able data."""
        return {"boot": self.spec.name(), "verdict": self.verdict, "wall_seconds": self.wall_seconds,
                "guest_instructions": self.guest_instructions,
                "instructions_per_second": self.instructions_per_second, "exits": self.exits,
                "exits_per_second": self.exits_per_second, "virtual_time_us": self.virtual_time_us,
                "ff_loops": self.loops, "ff_iterations_skipped": self.iterations_skipped,
                "ff_iterations_run": self.iterations_run, "ff_ratio": self.ff_ratio,
                "slow_wall_seconds": self.slow_wall_seconds, "same_result": self.same_result}


def _boot(spec: BootSpec, fast_forward: bool):
    from .scenario import boot

    start = time.perf_counter()
    run = boot(spec.dll, spec.target, spec.platform, hv_clear=spec.hv_clear, seconds=spec.seconds,
               madt_pcat=spec.madt_pcat, acpi_dir=spec.acpi_dir, fast_forward=fast_forward)
    return run, time.perf_counter() - start


def measure(spec: BootSpec, *, repeat: int = 1, fast_forward: bool = True, check: bool = False) -> Figures:
    """Boot ``spec`` ``repeat`` times and keep the best wall time; with ``check`` also once step by step."""
    best = None
    for _ in range(max(1, repeat)):
        run, wall = _boot(spec, fast_forward)
        if best is None or wall < best[1]:
            best = (run, wall)
    run, wall = best
    result = run.result
    ff = run.machine.cpu.fastforward if run.machine is not None else None
    stats = ff.stats if ff is not None else None
    figures = Figures(spec, str(result.get("verdict")), round(wall, 3), result.get("guest_instructions") or 0,
                      (result.get("exits") or {}).get("total", 0), result.get("virtual_time_us") or 0,
                      stats.iterations_skipped if stats else 0, stats.iterations_run if stats else 0,
                      stats.loops if stats else 0)
    figures.extra = {"exits": result.get("exits"), "trace_records": result.get("trace_records")}
    if check:
        slow, slow_wall = _boot(spec, False)
        figures.slow_wall_seconds = round(slow_wall, 3)
        figures.same_result = slow.result == result
    return figures


def bench(dll, target: str, platform: str = "gen2", *, repeat: int = 1, fast_forward: bool = True,
          **options) -> dict:
    """Boot ``dll`` ``repeat`` times; the figures of the best run as a dict, plus ``text`` (one boot's report)."""
    spec = BootSpec(str(dll), target, platform, **{k: (tuple(v) if k == "hv_clear" else v)
                                                   for k, v in options.items()})
    f = measure(spec, repeat=repeat, fast_forward=fast_forward)
    out = f.as_dict()
    out.update(f.extra)
    ex = f.extra.get("exits") or {}
    out["text"] = "\n".join([
        f"{dll}  target {target}  platform {platform}  verdict {f.verdict}",
        f"wall time of a boot: {f.wall_seconds} s (best of {max(1, repeat)})",
        f"guest instructions: {f.guest_instructions}  ->  {f.instructions_per_second} instructions/s",
        f"exits: {f.exits}  ->  {f.exits_per_second} exits/s   ("
        + "  ".join(f"{k} {v}" for k, v in ex.items() if k != "total") + ")",
        f"virtual time: {f.virtual_time_us} us   trace records: {f.extra.get('trace_records')}",
        f"fast-forward: {f.loops} loops, {f.iterations_skipped} iterations skipped, {f.iterations_run} run"
        f" step by step (ratio {f.ff_ratio})" if fast_forward else "fast-forward: off",
    ])
    return out


def bench_many(specs: list[BootSpec], *, repeat: int = 1, fast_forward: bool = True,
               check: bool = False) -> list[Figures]:
    """``measure`` each boot in turn."""
    return [measure(s, repeat=repeat, fast_forward=fast_forward, check=check) for s in specs]


def table(rows: list[Figures]) -> str:
    """The figures as a fixed-width table, one boot a line."""
    head = ["boot", "verdict", "wall s", "guest insns", "insns/s", "exits", "exits/s", "ff skipped", "ff run",
            "ff ratio"]
    check = any(r.slow_wall_seconds is not None for r in rows)
    if check:
        head += ["slow wall s", "same result"]
    lines = [head]
    for r in rows:
        line = [r.spec.name(), r.verdict, f"{r.wall_seconds:.3f}", str(r.guest_instructions),
                str(r.instructions_per_second), str(r.exits), str(r.exits_per_second), str(r.iterations_skipped),
                str(r.iterations_run), "-" if r.ff_ratio is None else str(r.ff_ratio)]
        if check:
            line += ["-" if r.slow_wall_seconds is None else f"{r.slow_wall_seconds:.3f}",
                     {True: "yes", False: "NO", None: "-"}[r.same_result]]
        lines.append(line)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))).rstrip() for row in lines)


def dead_pm_timer_tables(platform: str, directory: str | Path, port: int = DEAD_PORT) -> Path:
    """Write the platform's ACPI tables (``gen2hal boot --acpi`` layout) with the FADT's PM timer block, legacy
    field and X_ address both, moved to ``port``, where no device answers; returns the folder."""
    from . import acpi
    from .memory import ACPI_GPA

    d = Path(directory)
    image = acpi.build_tables(platform, ACPI_GPA)
    acpi.write_tables(image, d)
    fadt = bytearray((d / "facp.dat").read_bytes())
    struct.pack_into("<I", fadt, acpi.FADT_OFFSETS["PM_TMR_BLK"], port)
    x = acpi.FADT_OFFSETS["X_PM_TMR_BLK"]
    if x + 12 <= len(fadt):
        struct.pack_into("<Q", fadt, x + 4, port)  # the generic address's 64-bit address follows 4 header bytes
    fadt[9] = 0
    fadt[9] = -sum(fadt) & 0xFF
    (d / "facp.dat").write_bytes(bytes(fadt))
    return d


def suite(build_dir: str | Path, scratch: str | Path) -> list[BootSpec]:
    """The standard boots (see the module docstring) from a main-job build folder; ``scratch`` receives the dead
    PM timer tables.  Raises ``ModelError`` naming a missing DLL."""
    build = Path(build_dir)
    dead = {p: dead_pm_timer_tables(p, Path(scratch) / f"acpi-{p}-dead-pm-timer") for p in ("gen1", "gen2")}
    specs = []
    for t in TARGETS:
        ref, var = build / t / "reference" / "hal.dll", build / t / "gen2" / "hal.dll"
        for dll in (ref, var):
            if not dll.is_file():
                raise ModelError(f"{dll} missing: build it first ('scons', the main job)")
        specs += [
            BootSpec(str(ref), t, "gen1", label=f"{t} reference gen1"),
            BootSpec(str(ref), t, "gen1", acpi_dir=str(dead["gen1"]),
                     label=f"{t} reference gen1, PM timer at dead port {DEAD_PORT:#x}"),
            BootSpec(str(var), t, "gen2", hv_clear=("frequency-msrs",),
                     label=f"{t} variant gen2 hv-clear frequency-msrs"),
            BootSpec(str(var), t, "gen2", hv_clear=ALL_CLOCKS_CLEARED, acpi_dir=str(dead["gen2"]),
                     label=f"{t} variant gen2 no clock, PM timer at dead port {DEAD_PORT:#x}"),
        ]
    return specs


def run_suite(build_dir: str | Path, *, repeat: int = 1, fast_forward: bool = True,
              check: bool = False) -> list[Figures]:
    """``bench_many`` over ``suite(build_dir)`` (the dead-port tables live in a temporary folder meanwhile)."""
    with tempfile.TemporaryDirectory(prefix="gen2hal-bench-") as scratch:
        return bench_many(suite(build_dir, scratch), repeat=repeat, fast_forward=fast_forward, check=check)
