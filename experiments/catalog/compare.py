"""``compare``: every applicable estimator ranked on a user's own objective (:func:`experiments.compare`),
written as a run folder that ``python -m analysis.report`` turns into the usual report.

    python -m experiments.run compare --objective my_model:make_objective --budget-seconds 60

``my_model.make_objective()`` (a module on the Python path, such as one in the current directory) returns
``(objective, params)``, or ``(objective, params, reference)`` where the true gradient is known.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Sequence
from pathlib import Path

import jax

from experiments import catalog
from experiments.comparison import compare
from experiments.engine import options
from experiments.engine.experiment import Experiment, FigureSpec
from experiments.engine.results import RunFolder, environment
from experiments.engine.runner import PlanningError, as_json, check_estimators
from experiments.engine.settings import RunSettings

NAME = "compare"


@dataclasses.dataclass(frozen=True)
class Config(RunSettings):
    objective: str = ""  #: ``module:function``, the function returning (objective, params[, reference])
    estimators: tuple[str, ...] = ("applicable",)
    num_samples: tuple[int, ...] = (1, 4, 16, 64)
    budget_seconds: float = 60.0
    replicates: int = 10_000

    def validate(self) -> None:
        if not self.objective:
            raise ValueError("compare needs --objective MODULE:FUNCTION: the function (in a module on the Python "
                             "path) that returns (objective, params).")
        if self.objective.count(":") != 1 or not all(self.objective.split(":")):
            raise ValueError(f"--objective must be MODULE:FUNCTION (such as my_model:make_objective), got "
                             f"{self.objective!r}.")
        if not self.budget_seconds > 0:
            raise ValueError(f"--budget-seconds must be positive, got {self.budget_seconds}.")
        if self.estimators != ("applicable",):
            check_estimators(self.estimators, self.num_samples)
        elif not self.num_samples or any(n < 1 for n in self.num_samples):
            raise ValueError(f"--num-samples must be positive integers, got {list(self.num_samples)}.")
        super().validate()


def load_objective(spec: str):
    """``(objective, params, reference or None)`` from the function named by ``module:function``; a
    :class:`PlanningError` that says what is missing otherwise (the command line shows it as a usage error)."""
    module_name, function_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PlanningError(f"--objective {spec}: cannot import {module_name!r} ({error}); run from the folder that "
                         "holds it or put it on PYTHONPATH.") from error
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise PlanningError(f"--objective {spec}: {module_name} has no function {function_name!r}.")
    made = factory()
    if not isinstance(made, tuple) or len(made) not in (2, 3):
        raise PlanningError(f"--objective {spec}: {function_name}() must return (objective, params) or "
                         f"(objective, params, reference), got {type(made).__name__}.")
    return (*made, None) if len(made) == 2 else made


def run(config: Config, device: jax.Device | None = None, progress: bool = True, resume=None) -> Path:
    """Rank the estimators on the configured objective and write the run folder; return its path."""
    if resume is not None:
        raise ValueError("a compare run is not resumable: run it again (it keeps to its time budget).")
    config.validate()
    objective, params, reference = load_objective(config.objective)
    estimators = "applicable" if config.estimators == ("applicable",) else list(config.estimators)
    with jax.default_device(device or jax.devices()[0]):
        result = compare(objective, params, jax.random.key(config.seed), estimators=estimators,
                         num_samples=config.num_samples, budget_seconds=config.budget_seconds,
                         replicates=config.replicates, reference=reference, name=config.objective,
                         progress=progress)
    cell_keys = ["estimator", "num_samples"]
    cells = list(result.metrics.groupby(cell_keys, sort=False)) if not result.metrics.empty else []
    coordinates = result.coordinate_metrics
    coordinates_by_cell = dict(list(coordinates.groupby(cell_keys, sort=False))) if not coordinates.empty else {}
    folder = RunFolder(config.output_dir, NAME, as_json(config), environment(config.seed))
    folder.update_config(skipped=[{"problem": config.objective, "estimator": s["estimator"],
                                   "num_samples": s["num_samples"], "reason": s["error"]} for s in result.skipped],
                         reference_source=result.reference_source, wall_time_s=round(result.wall_time_s, 3),
                         cells=len(cells))
    for index, (cell, rows) in enumerate(cells):
        cell_coordinates = coordinates_by_cell.get(cell)
        folder.append(rows.to_dict("records"), [] if cell_coordinates is None else cell_coordinates.to_dict("records"),
                      index=index)
    result.table.to_csv(folder.path / "comparison.csv", index=False)
    result.recommendations.to_csv(folder.path / "recommendations.csv", index=False)
    if progress:
        print(result)
    return folder.finish()


def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--objective", default="", metavar="MODULE:FUNCTION",
                     help="the function that returns (objective, params) or (objective, params, reference), "
                     "such as my_model:make_objective for make_objective in my_model.py")
    sub.add_argument("--estimators", type=options.comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: every registered estimator that applies)")
    sub.add_argument("--num-samples", type=options.numbers(int), default=[1, 4, 16, 64], metavar="LS",
                     help="comma-separated sample counts L (default: %(default)s)")
    sub.add_argument("--budget-seconds", type=float, default=60.0, metavar="S",
                     help="wall time to spend, compiling included (default: %(default)s)")
    sub.add_argument("--replicates", type=int, default=10_000, metavar="R",
                     help="the most replicates per estimator and L (default: %(default)s)")
    options.add_run_options(sub)


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    return Config(objective=args.objective, estimators=tuple(args.estimators or ("applicable",)),
                  num_samples=tuple(args.num_samples), budget_seconds=args.budget_seconds,
                  replicates=args.replicates, **options.run_settings(args))


EXPERIMENT = catalog.register(Experiment(
    name=NAME,
    summary="rank every applicable estimator on your own objective (--objective module:function)",
    description="Measure every registered estimator that applies to your objective at your parameters, "
    "within a time budget, and rank them per L by MSE × time per estimate (experiments.compare).",
    title="Your objective: the estimators ranked",
    config=Config,
    add_options=add_options,
    make_config=make_config,
    run=run,
    figures=(
        FigureSpec("variance_vs_L", "Variance (trace of the covariance) of the L-sample gradient estimate against "
                   "L, per parameter group, with 95% bands; dashed grey: a 1/L line."),
        FigureSpec("mse_vs_L", "Mean squared error of the whole gradient against L, against the run's reference "
                   "gradient (given, or formed from the most precise unbiased estimator, its noise accounted for)."),
        FigureSpec("efficiency_vs_L", "Variance of the whole gradient × wall time per estimate against L: lower is "
                   "better; the recommendation ranks by MSE × time."),
    ),
    report=("recommendation", "figures"),
    resumable=False,
))
