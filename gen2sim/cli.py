"""``gen2hal boot`` and ``gen2hal bench``: run a hal.dll on the machine model.

``register(subparsers)`` is called by ``generator.cli`` to add the subcommands.  Exit status of ``boot``:
0 booted, 1 any other verdict, 2 usage or load errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from specs import SpecError, target_names

from .errors import ModelError
from .judge import bounds_text


def _features(text: str | None) -> tuple[str, ...]:
    return tuple(sorted({f.strip() for f in text.split(",") if f.strip()})) if text else ()


def _common(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        p.add_argument("dll", metavar="HAL.DLL", nargs="*", help="the hal.dlls to boot (each with the options)")
        p.add_argument("--target", choices=target_names(), help="kernel ABI the HALs are built for")
    else:
        p.add_argument("dll", metavar="HAL.DLL", help="the hal.dll to boot")
        p.add_argument("--target", required=True, choices=target_names(), help="kernel ABI the HAL is built for")
    p.add_argument("--platform", default="gen2", choices=("gen1", "gen2"), help="machine platform (default gen2)")
    p.add_argument("--hv-clear", metavar="F,...", help="Hyper-V features to clear (names from specs/hyperv.toml)")
    p.add_argument("--seconds", type=float, default=1.0, help="virtual seconds of idle with interrupts on")
    p.add_argument("--madt-pcat", choices=("on", "off"), help="force the MADT PC-AT compatibility flag")
    p.add_argument("--kernel", choices=("up", "mp"), default="up",
                   help="the kernel build the model stands in for: up (default) or mp, the pair of a "
                        "multiprocessor HAL (ReactOS halmp.dll checks KPRCB.BuildType)")
    p.add_argument("--acpi", metavar="DIR", help="use raw ACPI tables dumped into DIR instead of the platform's")
    p.add_argument("--no-fast-forward", action="store_true",
                   help="run polling loops step by step (same result, slower; also GEN2SIM_NO_FASTFORWARD=1)")


def _platform_options(p: argparse.ArgumentParser) -> None:
    """``boot``'s choices of the platform's behaviour: the Hyper-V host profile and the RTC's interrupts."""
    from .hosts import DEFAULT_HOST, host_names, load_host

    lines = []
    for name in host_names():
        try:
            h = load_host(name)
        except ModelError as exc:  # a broken profile file is reported, not hidden, when chosen
            lines.append(f"{name} (unreadable: {exc})")
            continue
        lines.append(f"{name}: {h.description}, TSC {h.tsc_hz / 1e9:g} GHz")
    p.add_argument("--host", metavar="NAME", default=None,
                   help=f"Hyper-V host profile of specs/hosts/ (CPUID leaves, TSC rate; default {DEFAULT_HOST}): "
                        + "; ".join(lines))
    p.add_argument("--tsc-page-invalid", action="store_true",
                   help="the reference TSC page is invalid (TscSequence 0) from the start (TLFS: use TIME_REF_COUNT)")
    p.add_argument("--tsc-sequence-change", metavar="US[,US...]",
                   help="republish the reference TSC page with a new sequence at these virtual microseconds")
    p.add_argument("--rtc-interrupts", choices=("on", "off"),
                   help="RTC periodic/alarm/update interrupts (default: on for gen1; off for gen2, where the "
                        "periodic interrupt was observed unusable on a real VM; on = as Microsoft's open VMM has them)")


def _check(args) -> str | None:
    for dll in args.dll if isinstance(args.dll, list) else [args.dll]:
        if not Path(dll).is_file():
            return f"{dll}: no such file"
    if args.acpi and not Path(args.acpi).is_dir():
        return f"{args.acpi}: not a directory"
    if args.seconds <= 0 or args.seconds > 3600:
        return "--seconds must be in (0, 3600]"
    change = getattr(args, "tsc_sequence_change", None)
    if change and not all(t.strip().isdigit() for t in change.split(",")):
        return f"--tsc-sequence-change {change!r}: expected increasing whole microseconds, comma-separated"
    return None


def _boot(args):
    from .scenario import boot

    madt = None if args.madt_pcat is None else args.madt_pcat == "on"
    return boot(args.dll, args.target, args.platform, hv_clear=_features(args.hv_clear), seconds=args.seconds,
                madt_pcat=madt, acpi_dir=args.acpi, fast_forward=False if args.no_fast_forward else None,
                kernel_build=args.kernel, host=args.host,
                rtc_interrupts=None if args.rtc_interrupts is None else args.rtc_interrupts == "on",
                tsc_page_invalid=args.tsc_page_invalid, tsc_sequence_changes_us=_microseconds(args.tsc_sequence_change))


def _microseconds(text: str | None) -> tuple[int, ...]:
    """``--tsc-sequence-change US[,US...]`` as integers (argparse reports a bad value through ``_check``)."""
    return tuple(int(t) for t in text.split(",") if t.strip()) if text else ()


def cmd_boot(args) -> int:
    """``gen2hal boot``: print the summary, optionally write JSON and the trace."""
    from . import report

    problem = _check(args)
    if problem:
        print(f"gen2hal boot: {problem}", file=sys.stderr)
        return 2
    try:
        run = _boot(args)
    except (SpecError, ModelError) as exc:
        print(f"gen2hal boot: {exc}", file=sys.stderr)
        return 2
    result = run.result
    print(report.summary(result))
    if args.json:
        report.write_json(result, args.json)
    if args.trace and run.machine is not None:
        report.write_trace(run.machine.trace, args.trace)
    if result.get("verdict") == "load-error":
        return 2
    return 0 if result.get("verdict") == "booted" else 1


def cmd_bench(args) -> int:
    """``gen2hal bench``: per boot wall seconds, guest instructions (per second), exits per second and the
    fast-forward ratio; exit 0, 1 when ``--check`` found a result that differs step by step, 2 bad usage."""
    from . import report
    from .bench import BootSpec, bench_many, run_suite, table

    if args.suite == bool(args.dll):
        print("gen2hal bench: give HAL.DLL... (with --target) or --suite, not both", file=sys.stderr)
        return 2
    if args.repeat < 1:
        print("gen2hal bench: --repeat must be at least 1", file=sys.stderr)
        return 2
    fast = not args.no_fast_forward
    try:
        if args.suite:
            rows = run_suite(args.build, repeat=args.repeat, fast_forward=fast, check=args.check)
        else:
            problem = _check(args) or (None if args.target else "--target is required with HAL.DLL")
            if problem:
                print(f"gen2hal bench: {problem}", file=sys.stderr)
                return 2
            madt = None if args.madt_pcat is None else args.madt_pcat == "on"
            specs = [BootSpec(dll, args.target, args.platform, _features(args.hv_clear), args.acpi, args.seconds,
                              madt) for dll in args.dll]
            rows = bench_many(specs, repeat=args.repeat, fast_forward=fast, check=args.check)
    except (SpecError, ModelError) as exc:
        print(f"gen2hal bench: {exc}", file=sys.stderr)
        return 2
    print(table(rows))
    if args.json:
        data = [r.as_dict() for r in rows]
        report._atomic_write(args.json, lambda fh: fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n"))
    return 1 if any(r.same_result is False for r in rows) else 0


def cmd_compare(args) -> int:
    """``gen2hal compare``: two boots side by side; exit 0 compared, 2 bad input."""
    from . import compare, report

    if args.seconds <= 0 or args.seconds > 3600:
        print("gen2hal compare: --seconds must be in (0, 3600]", file=sys.stderr)
        return 2
    madt = None if args.madt_pcat is None else args.madt_pcat == "on"
    kw = {"hv_clear": _features(args.hv_clear), "seconds": args.seconds, "madt_pcat": madt}
    try:
        runs = [compare.load_input(text, label, args.target, args.platform, **kw)
                for text, label in ((args.a, "A"), (args.b, "B"))]
    except (compare.CompareError, SpecError, ModelError) as exc:
        print(f"gen2hal compare: {exc}", file=sys.stderr)
        return 2
    result = compare.compare(*runs)
    print(compare.text(result))
    if args.json:
        report._atomic_write(args.json, lambda fh: fh.write(compare.to_json(result) + "\n"))
    return 0


def cmd_kernel_imports(args) -> int:
    """``gen2hal kernel-imports``: every declared import of a target's kernel with prototype, status and counts."""
    from specs import load_target

    from . import report
    from .kernel import catalog

    try:
        listing = catalog.listing(load_target(args.target))
    except (SpecError, ModelError) as exc:
        print(f"gen2hal kernel-imports: {exc}", file=sys.stderr)
        return 2
    print(catalog.text(listing))
    if args.json:
        report.write_json(listing, args.json)
    return 0


def register(subparsers) -> None:
    """Add ``boot``, ``bench``, ``compare`` and ``kernel-imports`` to the ``gen2hal`` command line."""
    p = subparsers.add_parser("boot", help="boot a hal.dll on the deterministic Gen1/Gen2 machine model",
                              description="Load HAL.DLL like a kernel loader, run HalInitializeProcessor, "
                                          "HalInitSystem(0/1), idle with the clock running, query the performance "
                                          "counter and stall, and report a verdict: booted, misbehaved, bugcheck, "
                                          "hang, fault or load-error. A run that ends is booted only when it keeps "
                                          "every bound below, else misbehaved naming each broken property with its "
                                          "figure. Exit 0 booted, 1 other verdicts, 2 usage/load errors.",
                              epilog="Bounds of a booted verdict (specs/verdict_bounds.toml): "
                                     + " ".join(f"{line}." for line in bounds_text()))
    _common(p)
    _platform_options(p)
    p.add_argument("--json", metavar="OUT", help="write the result as JSON to OUT")
    p.add_argument("--trace", metavar="OUT.jsonl", help="write every intercepted operation as JSON lines")
    p.set_defaults(func=cmd_boot)
    p = subparsers.add_parser("bench", help="measure the model's speed booting hal.dlls",
                              description="Boot each HAL.DLL (all with the same options), or the standard suite "
                                          "(--suite: per target the reference on gen1, the variant with "
                                          "frequency-msrs cleared, the variant hanging on a dead PM timer port), "
                                          "and print per boot: wall seconds, guest instructions and instructions "
                                          "per second, exits and exits per second, and the fast-forward figures "
                                          "(loop iterations skipped, run step by step, their ratio). --check also "
                                          "boots step by step and says whether the results are identical. Exit 0, "
                                          "1 when --check found a difference, 2 bad usage.")
    _common(p, many=True)
    p.add_argument("--suite", action="store_true", help="the standard boots from the main job's build folder")
    p.add_argument("--build", default="build", metavar="DIR", help="build folder for --suite (default build)")
    p.add_argument("--repeat", type=int, default=1, help="boots to time each (the best is reported)")
    p.add_argument("--check", action="store_true", help="also boot step by step; compare results and wall time")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON to OUT")
    p.set_defaults(func=cmd_bench)
    p = subparsers.add_parser(
        "compare", help="compare two boots: verdicts, first divergence, touches by device, figures",
        description="Compare two boots of the machine model. A and B are each a boot JSON written by "
                    "'gen2hal boot --json X.json --trace X.jsonl' (the trace is read from beside the JSON) or a "
                    "hal.dll, booted here with --target/--platform (any x64 HAL, e.g. a copy of a Windows 7 SP1 "
                    "C:\\Windows\\System32\\hal.dll: see docs/windows7.md). Prints the verdicts, the first "
                    "record where the traces differ, the first divergence that matters (stretches only one HAL runs, "
                    "in functions the other never runs, skipped), touch counts by device and the figures side by "
                    "side. Exit 0 compared, 2 bad input.")
    p.add_argument("a", metavar="A", help="boot JSON (trace beside it) or hal.dll")
    p.add_argument("b", metavar="B", help="boot JSON (trace beside it) or hal.dll")
    p.add_argument("--target", choices=target_names(), help="kernel ABI, for DLL inputs")
    p.add_argument("--platform", default="gen2", choices=("gen1", "gen2"), help="platform for DLL inputs (gen2)")
    p.add_argument("--hv-clear", metavar="F,...", help="Hyper-V features to clear, for DLL inputs")
    p.add_argument("--seconds", type=float, default=1.0, help="virtual seconds of idle, for DLL inputs")
    p.add_argument("--madt-pcat", choices=("on", "off"), help="force the MADT PC-AT flag, for DLL inputs")
    p.add_argument("--json", metavar="OUT", help="also write the comparison as JSON to OUT")
    p.set_defaults(func=cmd_compare)
    p = subparsers.add_parser(
        "kernel-imports", help="list the kernel exports the model declares for a target, with their status",
        description="List every kernel export and variable the machine model declares for TARGET's kernel, and every "
                    "name of the target's HAL import list (marked *), each with its C prototype and status: "
                    "'behaviour' (modelled), 'fails' (declared: a HAL calling it stops with a verdict naming it) or "
                    "'undeclared'; then the counts. Exit 0, 2 on a bad target.")
    p.add_argument("--target", required=True, choices=target_names(), help="kernel ABI")
    p.add_argument("--json", metavar="OUT", help="also write the listing as JSON to OUT")
    p.set_defaults(func=cmd_kernel_imports)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: ``python -m gen2sim.cli boot ...``."""
    parser = argparse.ArgumentParser(prog="gen2sim")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
