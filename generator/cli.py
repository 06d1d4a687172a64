"""The ``gen2hal`` command line: one entry point, a subcommand a job.

Exit status: 0 success, 1 the job ran and its answer is negative (an invalid image, a HAL that did not boot),
2 bad usage or input.
"""

from __future__ import annotations

import argparse
import sys

from specs import SpecError, load_target, target_names

from . import __version__, pecheck


def _cmd_targets(args: argparse.Namespace) -> int:
    """List the kernel ABIs a HAL can be built for."""
    for name in target_names():
        target = load_target(name)
        print(f"{name:16} {target.title}: {len(target.exports)} exports, "
              f"{len(target.allowed_imports)} importable names")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    """Check a hal.dll the way the build does."""
    target = load_target(args.target)
    status = 0
    for path in args.dll:
        result = pecheck.validate(path, target)
        print(result.summary())
        for problem in result.problems:
            print(f"  problem: {problem}")
        status = max(status, 0 if result.ok else 1)
    return status


def _open_unit(path: str, target: str, name: str):
    """The build unit at ``path`` (``generator.unit.open_unit``), or None after printing why not."""
    from .unit import UnitError, open_unit

    try:
        return open_unit(path, target, name=name)
    except UnitError as exc:
        print(f"gen2hal: {exc}", file=sys.stderr)
        return None


def _cmd_analyze(args: argparse.Namespace) -> int:
    """Analyze a HAL build unit; exit 2 on bad input or a tree that does not parse."""
    from . import analyze  # libclang is loaded only for this command

    unit = _open_unit(args.src, args.target, args.unit)
    if unit is None:
        return 2
    try:
        model = analyze.analyze(unit, args.target, keep_going=args.keep_going)
    except analyze.AnalyzeError as exc:
        print(f"gen2hal analyze: {exc}", file=sys.stderr)
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        return 2
    print(analyze.report(model))
    if args.json:
        analyze.write_json(model, args.json)
    if args.profile is None:
        return 0
    return _check_roles(model, args.profile)


def _check_roles(model, profile_name: str) -> int:
    """Print whether each role of the profile (every feature) binds to a function of ``model`` showing the
    hardware it expects, as ``generate`` would verify it; 1 when a binding is refused, 2 for a bad profile."""
    from . import rules

    try:
        profile = rules.load_profile(profile_name)
    except rules.RuleError as exc:
        print(f"gen2hal analyze: {exc}", file=sys.stderr)
        return 2
    print("")
    print(f"== roles of profile {profile.name} (checked against {profile.checked_revision})")
    try:
        bindings = rules.bind(model, profile, rules.parse_features(None))
    except rules.RuleError as exc:
        print(f"  {exc}")
        for line in exc.lines:
            print(f"  refused: {line}")
        return 1
    for b in bindings:
        target = b.function.name if b.function is not None else b.role.file
        state = f"skipped ({b.skipped})" if b.skipped else "bound"
        print(f"  {b.role.name:22} {target:32} {state}")
    return 0


def _cmd_bench_analyze(args: argparse.Namespace) -> int:
    """Time the analysis of a unit: reading the unit, then each analysis run (wall seconds)."""
    import time

    from . import analyze

    started = time.perf_counter()
    unit = _open_unit(args.src, args.target, args.unit)
    if unit is None:
        return 2
    opened = time.perf_counter() - started
    print(f"bench-analyze: unit {unit.name} from {unit.origin or args.src}: {len(unit.c_sources)} C files, "
          f"{len(unit.asm_sources)} assembly files (assembled and read); reading the unit {opened:.3f} s "
          f"(build-time headers cached)")
    modes = [("precompiled preamble + token scan", True, False)]
    if args.compare:
        modes.append(("from scratch, exhaustive cursor walk", False, True))
    for label, use_pch, exhaustive in modes:
        times = []
        for _ in range(args.runs):
            try:
                model = analyze.analyze(unit, args.target, use_pch=use_pch, exhaustive=exhaustive)
            except analyze.AnalyzeError as exc:
                print(f"gen2hal bench-analyze: {exc}", file=sys.stderr)
                return 2
            times.append(model.seconds)
        times.sort()
        print(f"  {label}: min {times[0]:.3f} s, median {times[len(times) // 2]:.3f} s, max {times[-1]:.3f} s "
              f"over {len(times)} runs; {len(model.functions)} functions, {len(model.touch_points)} touch points")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    """Generate the Hyper-V variant of a HAL tree; exit 2 (nothing written) on bad input or a refused binding."""
    from . import generate  # libclang is loaded only for this command

    try:
        result = generate.generate(args.src, args.out, args.features, args.profile, args.target)
    except generate.GenerateError as exc:
        print(f"gen2hal generate: {exc} -- nothing written", file=sys.stderr)
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        return 2
    print(generate.summary(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gen2hal",
        description="Analyze, generate, build and boot x64 NT-family HALs for Hyper-V Generation 2.",
    )
    parser.add_argument("--version", action="version", version=f"gen2hal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("targets", help="list the kernel ABIs (targets) a HAL can be built for")
    p.set_defaults(func=_cmd_targets)

    p = sub.add_parser("validate", help="check hal.dll files against a target (exports, imports, PE header)",
                       description="Check that each DLL is an AMD64 PE32+ native DLL with an entry point, exports "
                                   "exactly the target's names, imports only allowed names, has a valid checksum "
                                   "and no timestamp. Exit 1 if any is invalid.")
    p.add_argument("dll", nargs="+", help="hal.dll to check")
    p.add_argument("--target", required=True, choices=target_names(), help="kernel ABI to check against")
    p.set_defaults(func=_cmd_validate)

    unit_help = ("HAL build unit: a ReactOS checkout (its top or hal/halx86; hal/halx86/CMakeLists.txt says what "
                 "each DLL is made of), a configured ReactOS build folder (compile_commands.json), or a unit.toml "
                 "(hal_src/unit.toml) or its folder")
    p = sub.add_parser("analyze", help="find a HAL's legacy-hardware touch points with libclang",
                       description="Read the build unit at SRC (which C files make up the DLL and each file's "
                                   "include folders and defines), parse each C file with libclang, build the call "
                                   "graph from the DLL's exports and list each hardware touch point (8259, PIT, "
                                   "RTC, i8042, legacy FADT fields, MADT PC-AT check, APIC, MSRs, CPUID) with its "
                                   "call path, plus lints. Assembly files are listed as not analysed. For a ReactOS "
                                   "tree the build-time headers are made first into a cache outside the tree "
                                   "(GEN2HAL_CACHE, default ~/.cache/gen2hal). Exit 2 if SRC is not a build unit "
                                   "or any file does not parse, except for diagnostics the unit's kind declares as "
                                   "known, which are reported by name (nothing is written).")
    p.add_argument("src", metavar="SRC", help=unit_help)
    p.add_argument("--unit", default="hal", help="which DLL of the tree: hal (default), halmp, ...")
    p.add_argument("--target", default="reactos-amd64", help="kernel ABI whose flags and exports to use")
    p.add_argument("--profile", metavar="NAME",
                   help="also check the role map NAME (hal_src or reactos; what `generate --profile` binds) against "
                        "the analysis and list each role's function; exit 1 if a binding is refused")
    p.add_argument("--json", metavar="OUT", help="also write the model as JSON to OUT")
    p.add_argument("--keep-going", action="store_true", help="report the errors of every file, not just the first")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("bench-analyze", help="time the analysis of a build unit (wall seconds)",
                       description="Read the unit at SRC once, then analyze it RUNS times and print the minimum, "
                                   "median and maximum wall time; --compare also times the slow reference path "
                                   "(every file parsed from scratch, every cursor enumerated).")
    p.add_argument("src", metavar="SRC", help=unit_help)
    p.add_argument("--unit", default="hal", help="which DLL of the tree (default hal)")
    p.add_argument("--target", default="reactos-amd64", help="kernel ABI whose flags and exports to use")
    p.add_argument("--runs", type=int, default=3, help="analysis runs per mode (default 3)")
    p.add_argument("--compare", action="store_true", help="also time the from-scratch, exhaustive path")
    p.set_defaults(func=_cmd_bench_analyze)

    from .rules import FEATURES, profile_names

    p = sub.add_parser("generate", help="generate the Hyper-V Generation 2 variant of a HAL tree",
                       description="Analyze SRC, bind each role the features need to a function through the profile "
                                   "(refusing a binding whose function no longer shows the expected hardware touch "
                                   "points), rewrite those functions by source extent with rendered code and add "
                                   "the Hyper-V files. Writes OUT/src (the variant tree), OUT/CHANGES.md, "
                                   "OUT/variant.patch (git apply in the original tree), OUT/analysis.json and "
                                   "OUT/manifest.json. "
                                   "Never writes inside SRC; same inputs give the same bytes. Exit 2 (nothing "
                                   "written) on bad input or a refused binding.",
                       epilog="features: " + "; ".join(f"{k}: {v}" for k, v in FEATURES.items()))
    p.add_argument("src", metavar="SRC", help="HAL source tree (hal_src, or a ReactOS checkout or its hal/halx86)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (replaced if it is an earlier output)")
    p.add_argument("--features", metavar="F,...",
                   help=f"comma-separated features (default: all): {', '.join(FEATURES)}")
    p.add_argument("--profile", default="hal_src", help=f"role map: {' or '.join(profile_names())} (default hal_src)")
    p.add_argument("--target", default="reactos-amd64", help="kernel ABI: " + ", ".join(target_names()))
    p.set_defaults(func=_cmd_generate)

    for register in _extensions():
        register(sub)
    return parser


def _extensions():
    """Subcommands registered by the other parts of gen2hal: the machine model (boot, bench, compare), the report."""
    from gen2sim import cli as sim_cli

    from .report import cli as report_cli

    return [sim_cli.register, report_cli.register]


def main(argv: list[str] | None = None) -> int:
    """Run the ``gen2hal`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(f"gen2hal: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `gen2hal boot ... | head`): not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
