"""The report's command line, ``python -m analysis.report RUN_DIR [RUN_DIR ...]``."""

from __future__ import annotations

import argparse
import sys

from analysis.report.writing import DEFAULT_OUTPUT, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Write one report (figures, recommendation and agreement tables) from run folders.",
        epilog="Example: python -m analysis.report results/variance_vs_L/<run_id> results/training/<run_id> "
        "--output results/report",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folders written by python -m experiments.run (results/<experiment>/<run_id>)")
    parser.add_argument("--output", "-o", default=str(DEFAULT_OUTPUT), metavar="DIR",
                        help="the report folder, replaced if it holds an older report (default: %(default)s)")
    parser.add_argument("--format", choices=("markdown", "html"), default="markdown",
                        help="markdown: report.md beside PNG figures; html: one self-contained report.html "
                        "(default: %(default)s)")
    parser.add_argument("--title", default="Monte Carlo gradient estimators: report", help="the report's title")
    parser.add_argument("--allow-partial", action="store_true",
                        help="also report runs whose folder ends in .partial (interrupted or still running), from "
                        "the cells they finished, marked as incomplete")
    args = parser.parse_args(argv)
    command = "python -m analysis.report " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        path = write_report(args.run_dirs, args.output, args.format, args.title, command, args.allow_partial)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print(f"report: wrote {path}")
    return 0
