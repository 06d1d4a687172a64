"""``gen2hal report RUNS... --out DIR [--analysis ANALYSIS.json] [--changes CHANGES.md]``.

Exit status: 0 the report was written (whatever the verdicts), 2 a missing or invalid input (the message names the
file and the field; nothing is written).
"""

from __future__ import annotations

import argparse
import sys


def cmd_report(args: argparse.Namespace) -> int:
    """Write DIR/index.html from boot JSONs and print the verdict table."""
    from . import ReportInputError, make_report
    from .progress import Progress

    try:
        out, table = make_report(args.runs, args.out, analysis=args.analysis, changes=args.changes,
                                 progress=Progress(stream=sys.stderr))  # stdout carries only the table
    except ReportInputError as exc:
        print(f"gen2hal report: {exc}", file=sys.stderr)
        return 2
    print(table)
    print(f"report: {out}")
    return 0


def register(subparsers) -> None:
    """Add ``report`` to the ``gen2hal`` command line."""
    p = subparsers.add_parser(
        "report", help="write an offline HTML report (verdict matrix, figures, timelines) from boot JSONs",
        description="Read boot results (gen2hal boot --json; folders are searched for boot-*.json) and write "
                    "DIR/index.html: the verdict matrix (HAL x target x platform), each boot's figures and "
                    "timeline picture, the legacy touch points of an analysis and a change list. Nothing is "
                    "re-run. A boot JSON without a 'timeline' uses the trace beside it (same name, .jsonl). "
                    "Prints the verdict table. Exit 2 on a missing or invalid input.")
    p.add_argument("runs", nargs="+", metavar="RUNS", help="boot JSON files, or folders holding boot-*.json")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write index.html into")
    p.add_argument("--analysis", metavar="ANALYSIS.json", action="append",
                   help="gen2hal analyze --json output: its touch points and lints (repeatable)")
    p.add_argument("--changes", metavar="CHANGES.md", action="append",
                   help="a change list of gen2hal generate: CHANGES.md or manifest.json (repeatable)")
    p.set_defaults(func=cmd_report)
