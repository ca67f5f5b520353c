"""`harmonyset report`: tables (markdown, CSV) and charts of one or more results.json files."""

from __future__ import annotations

import argparse


def register(cli) -> None:
    """Add the `report` verb."""
    p = cli.command("report", run=_run,
                    help="Table 2 (OE) and Table 5 (MC) layouts of several results side by side, plus charts")
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files or folders holding one")
    p.add_argument("--out", required=True, help="output folder (report.md, *.csv, *.png)")
    p.add_argument("--compare-paper", action="store_true", help="add the paper's published numbers as rows")


def _run(args: argparse.Namespace) -> int:
    from ..evaluation.report import write_report

    written = write_report(args.results, args.out, paper=args.compare_paper)
    print(written["summary"])
    print(f"report: {len(written['files'])} files in {args.out}")
    return 0
