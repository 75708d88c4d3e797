"""Command-line options every experiment shares, and the settings they give."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from experiments.engine import compilation_cache


def comma_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; an empty list is an error (``--problems ""`` must not read as
    "the default set": leave the option out for that)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected at least one comma-separated value, got {text!r}; leave the "
                                         "option out for its default")
    return items


def numbers(kind):
    """A parser of comma-separated numbers of type ``kind`` with an error that shows an example."""

    def parse(text: str):
        try:
            return [kind(item) for item in comma_list(text)]
        except (ValueError, argparse.ArgumentTypeError):
            example = "1,4,16" if kind is int else "0.5,1,2"
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers such as {example}, got {text!r}") from None

    return parse


def check_choices(values: Sequence[str], known, where: str, what: str) -> None:
    """A ValueError ``"<where>: unknown <what> [...]; choose from ..."`` if ``values`` is empty or names
    something not in ``known``."""
    unknown = [name for name in values if name not in known]
    if unknown or not values:
        raise ValueError(f"{where}: unknown {what} {unknown}; choose from {', '.join(known)}.")


def add_run_options(sub: argparse.ArgumentParser) -> None:
    """The options of :class:`~experiments.engine.settings.RunSettings` and of the command itself."""
    sub.add_argument("--seed", type=int, default=0, help="seed of the base key (default: %(default)s)")
    sub.add_argument("--output-dir", default="results", metavar="DIR",
                     help="where run folders go (default: %(default)s)")
    sub.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                     help="where to compute; auto is JAX's default backend (default: %(default)s)")
    sub.add_argument("--precision", choices=("float32", "float64"), default="float32",
                     help="device precision; statistics are float64 on the host either way "
                     "(default: %(default)s)")
    sub.add_argument("--no-figures", action="store_true", help="skip drawing figures at the end")
    sub.add_argument("--compilation-cache", default=compilation_cache.default_directory(), metavar="DIR",
                     help="keep compiled programs in DIR, so that a second run of the same cells loads them "
                     "instead of compiling them; 'off' for none (default: %(default)s)")
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_argument("--list", action="store_true", help="list problems and estimators, then exit")


def add_measurement_options(sub: argparse.ArgumentParser, default_replicates: int,
                            default_max_cost_evaluations: int = 2**25) -> None:
    """The run options and those of :class:`~experiments.engine.settings.MeasurementSettings`."""
    sub.add_argument("--replicates", type=int, default=default_replicates, metavar="R",
                     help="independent estimates per cell; the variance's relative standard error is "
                     "about sqrt(2/R) for Gaussian-like estimates (default: %(default)s)")
    sub.add_argument("--max-cost-evaluations", type=int, default=default_max_cost_evaluations, metavar="N",
                     help="a cell whose R estimates would evaluate the cost more than N times uses fewer "
                     "replicates (at least 200; recorded per row); the cells of one program (a separable "
                     "estimator's L grid) share the R of its largest L (default: %(default)s)")
    add_run_options(sub)
    sub.add_argument("--num-devices", type=int, default=None, metavar="N",
                     help="split the replicates across the first N devices of the chosen platform "
                     "(default: all of them, on every host; results do not depend on N, but for R under a time budget)")
    sub.add_argument("--shared-programs", action=argparse.BooleanOptionalAction, default=True,
                     help="measure every L of an estimator with per-sample statistics (the separable ones, the "
                     "score function with a baseline) from one program, whose time is shared out among the L by "
                     "cost evaluations; --no-shared-programs compiles and times a program per L (default: shared)")
    sub.add_argument("--xla-optimization-level", choices=("0", "1", "2", "3", "default"), default=None,
                     metavar="LEVEL", help="XLA's backend optimization level (on CPU, LLVM's -O level) for the "
                     "timed programs: 0-3 or 'default' (XLA's, 3). Level 1 compiles in about 70%% of the time with "
                     "the same total compute; the full and ci profiles use XLA's default (default: 1)")
    sub.add_argument("--max-seconds-per-cell", type=seconds_or_none, default=None, metavar="S",
                     help="run a cell's replicates (a shared program's: its cells') in rounds of about 200 and stop "
                     "when the next round would take its estimates past S seconds, compilation excluded (at least "
                     "one round; R recorded per row); 'none' for no budget (default: the experiment's own, none "
                     "but for variance_vs_L's default run)")
    sub.add_argument("--resume", metavar="RUN_DIR", default=None,
                     help="continue the interrupted run in RUN_DIR (a results/<experiment>/<run_id>.partial folder) "
                     "with the settings in its config.json, skipping the cells it finished; only --device, "
                     "--num-devices, --no-figures, --quiet and --compilation-cache may be given with it")


def add_estimator_options(sub: argparse.ArgumentParser, default_num_samples: Sequence[int]) -> None:
    """``--estimators`` (default: every registered one that applies) and ``--num-samples``."""
    sub.add_argument("--estimators", type=comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: every registered estimator that applies)")
    sub.add_argument("--num-samples", type=numbers(int), default=list(default_num_samples),
                     metavar="LS", help="comma-separated sample counts L (default: %(default)s)")


def seconds_or_none(text: str) -> float | str:
    """A positive number of seconds, or 'none'."""
    if text.strip().lower() == "none":
        return "none"
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds or 'none', got {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds or 'none', got {text!r}")
    return seconds


def run_settings(args: argparse.Namespace) -> dict:
    """The :class:`~experiments.engine.settings.RunSettings` fields the options give."""
    return dict(seed=args.seed, output_dir=args.output_dir, device=args.device, precision=args.precision,
                figures=not args.no_figures)


def measurement_settings(args: argparse.Namespace) -> dict:
    """The :class:`~experiments.engine.settings.MeasurementSettings` fields the options give."""
    level = getattr(args, "xla_optimization_level", None)  # not given: the experiment's (or profile's) own
    seconds = getattr(args, "max_seconds_per_cell", None)  # likewise
    return dict(run_settings(args), replicates=args.replicates, max_cost_evaluations=args.max_cost_evaluations,
                num_devices=args.num_devices, share_programs=args.shared_programs,
                **({} if level is None else {"xla_optimization_level": None if level == "default" else int(level)}),
                **({} if seconds is None else {"max_seconds_per_cell": None if seconds == "none" else seconds}))
