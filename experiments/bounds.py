"""The command line of the variance-bound regression check (:mod:`experiments.regression`).

    python -m experiments.bounds check [RUN_DIR]     # measure the ci profile (or read a run) and compare
    python -m experiments.bounds regenerate          # after an intended change: new reference, new file,
                                                     # and a list of what moved
    python -m experiments.bounds extend              # a problem or an estimator added: its cells' bounds only
    python -m experiments.bounds calibrate --seeds 20   # the unmodified code on 20 seeds in a row

The check's functions are re-exported here for scripts that import them from this module.
"""

from __future__ import annotations

import argparse
import tempfile

from experiments.regression.bands import (
    CELL,
    CHECK,
    FAMILY_WISE_FALSE_ALARM,
    MAX_RELATIVE_SPREAD,
    BoundsMismatch,
    build_bounds,
    check,
    measured_statistics,
    moved_checks,
    report,
    uncovered_cells,
)
from experiments.regression.bounds_file import BOUNDS_FILE, PROFILE, Bounds, load_bounds
from experiments.regression.profile import (
    REFERENCE_REPLICATES,
    REFERENCE_SEED,
    _enable_compilation_cache,
    calibrate,
    check_run,
    exact_answers,
    extend,
    measure_profile,
    profile_cells,
    profile_config,
    regenerate,
)

__all__ = ["BOUNDS_FILE", "CELL", "CHECK", "FAMILY_WISE_FALSE_ALARM", "MAX_RELATIVE_SPREAD", "PROFILE", "Bounds",
           "BoundsMismatch", "build_bounds", "calibrate", "check", "check_run", "exact_answers", "extend",
           "load_bounds", "main", "measure_profile", "measured_statistics", "moved_checks", "profile_cells",
           "profile_config", "regenerate", "report", "uncovered_cells"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bounds",
                                     description="The variance-bound regression check: every estimator's mean and "
                                     "variance on the ci profile's cells inside committed bands.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = commands.add_parser("check", help="measure the ci profile (or read RUN_DIR) and compare with the bounds")
    sub.add_argument("run_dir", nargs="?", help="a finished `variance_vs_L --profile ci` run (default: measure one)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the run measured here (default: %(default)s)")
    sub.add_argument("--bounds", default=str(BOUNDS_FILE), help="the bounds file (default: %(default)s)")
    sub = commands.add_parser("regenerate", help="new reference run and bounds file; prints what moved")
    sub.add_argument("--replicates", type=int, default=REFERENCE_REPLICATES, help="reference R (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=REFERENCE_SEED, help="reference seed (default: %(default)s)")
    sub.add_argument("--bounds", default=str(BOUNDS_FILE), help="the file to write (default: %(default)s)")
    sub.add_argument("--output-dir", default="results", help="where the reference run folder goes")
    sub.add_argument("--dry-run", action="store_true", help="print what moved without writing the file")
    sub = commands.add_parser("extend", help="add bounds for the profile's cells the file lacks (a new problem or "
                              "estimator), from a reference run of those alone; existing checks keep their expected "
                              "values")
    sub.add_argument("--replicates", type=int, default=REFERENCE_REPLICATES, help="reference R (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=REFERENCE_SEED, help="reference seed (default: %(default)s)")
    sub.add_argument("--bounds", default=str(BOUNDS_FILE), help="the file to extend (default: %(default)s)")
    sub.add_argument("--output-dir", default="results", help="where the reference run folder goes")
    sub.add_argument("--dry-run", action="store_true", help="print what would be added without writing the file")
    sub = commands.add_parser("calibrate", help="check the unmodified code at many seeds")
    sub.add_argument("--seeds", type=int, default=20, help="how many seeds, 0, 1, ... (default: %(default)s)")
    sub.add_argument("--first-seed", type=int, default=0)
    sub.add_argument("--bounds", default=str(BOUNDS_FILE), help="the bounds file (default: %(default)s)")
    for command in commands.choices.values():
        command.set_defaults(command_parser=command)  # its errors show its own usage
    args = parser.parse_args(argv)
    try:
        return _run_command(args)
    except (ValueError, FileNotFoundError) as error:  # a bad run folder or bounds file: the message, no traceback
        args.command_parser.error(str(error))


def _run_command(args) -> int:
    if args.command == "regenerate":
        regenerate(args.bounds, args.replicates, args.seed, args.output_dir, write=not args.dry_run)
        return 0
    if args.command == "extend":
        extend(args.bounds, args.replicates, args.seed, args.output_dir, write=not args.dry_run)
        return 0
    bounds = load_bounds(args.bounds)
    if args.command == "calibrate":
        if args.first_seed <= bounds.reference["seed"] < args.first_seed + args.seeds:
            raise ValueError(f"the seeds include the reference run's, {bounds.reference['seed']}")
        _enable_compilation_cache()
        table = calibrate(range(args.first_seed, args.first_seed + args.seeds), bounds)
        print(f"{int(table['passed'].sum())} of {len(table)} seeds passed; max |z| over all runs: "
              f"{table['max_abs_z'].max():.2f} (threshold {bounds.z_threshold:.2f})")
        return 0 if table["passed"].all() else 1
    if args.run_dir:
        result = check_run(args.run_dir, bounds)
    else:
        with tempfile.TemporaryDirectory(prefix="bounds-") as output_dir:
            result = check_run(measure_profile(args.seed, output_dir, progress=True), bounds)
    print(report(result))
    return 0 if result["passed"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
