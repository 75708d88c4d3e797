r"""Every discrete estimator at equal cost evaluations: which one to use for Bernoulli and categorical latents.

An estimator's sample count L is not its cost: DisARM evaluates the cost twice per sample, the measure-valued
estimator twice per coordinate, IndeCateR :math:`D(K-1) + 1` times, straight-through once.  So for each
budget B of cost evaluations per estimate (of the whole objective: every example of a plate), each estimator
is measured at the largest L whose estimate costs at most B (and that it accepts: leave-one-out and the
group baselines need L ≥ 2); one that cannot fit B at any L is skipped there, with the reason.  The report
then compares, per problem and budget, the MSE of the whole gradient (against the exact gradient of the
toys, the reference gradient of the binary VAE), with time per estimate beside it.

The problems: the Bernoulli toy at t = 0.45 and at t = 0.499 (a gradient 10⁻³ of the cost), the categorical
toy with K = 3 and K = 10 classes (exact answers by enumeration), and the binary VAE at its trained
checkpoint with each image's own cost (a plate), at fewer replicates.  The L's a run measures are those the
budgets need; cells of one estimator that differ only in L share one compiled program where the estimator
allows, as in ``variance_vs_L``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax

import estimators as est
from experiments import catalog
from experiments.engine import options
from experiments.engine.experiment import Experiment, FigureSpec
from experiments.engine.measure import score_rows_per_sample
from experiments.engine.runner import Cell, applicable_pairs, as_json, check_names, run_cells
from experiments.engine.settings import MeasurementSettings

NAME = "discrete"
DEFAULT_PROBLEMS = ("bernoulli_toy", "bernoulli_toy_499", "categorical_toy_3", "categorical_toy_10", "binary_vae")
#: Cost evaluations per estimate: two decades, from one DisARM pair with a second sample to spare.
DEFAULT_COST_BUDGETS = (4, 16, 64, 256)
DEFAULT_REPLICATES = 2_000
#: The binary VAE's every cost evaluation runs the decoder on its images: fewer replicates there.
REAL_DATA_REPLICATES = 400
#: Cells whose one estimate takes more backward passes than this are skipped, with the reason, as in a quick
#: ``variance_vs_L`` run: the optimal baseline needs each example's score per sample (L·N passes).
MAX_BACKWARD_PASSES = 512


@dataclasses.dataclass(frozen=True)
class Config(MeasurementSettings):
    """Everything that defines a run; written to config.json."""

    problems: Sequence[str] = DEFAULT_PROBLEMS
    estimators: Sequence[str] = tuple(est.names())
    cost_budgets: Sequence[int] = DEFAULT_COST_BUDGETS
    replicates: int = DEFAULT_REPLICATES

    def validate(self) -> None:
        bad = [b for b in self.cost_budgets if int(b) != b or b < 1]
        if bad or not self.cost_budgets:
            raise ValueError(f"--cost-budgets must be positive integers (cost evaluations per estimate), got "
                             f"{list(self.cost_budgets)}.")
        check_names(self.problems, self.estimators, (1,))
        super().validate()


def largest_affordable_num_samples(problem, estimator: est.GradientEstimator, dist, budget: int) -> int | None:
    """The largest L whose estimate evaluates the cost at most ``budget`` times and that ``estimator``
    accepts, or None.  Evaluations grow with L, so the search stops at the first L over budget."""
    best = None
    for num_samples in range(1, budget + 1):
        if problem.cost_evaluations(estimator, num_samples) > budget:
            break
        if estimator.applicability(dist, num_samples, problem.objective.batch_ndims) is None:
            best = num_samples
    return best


def plan(config: Config) -> tuple[list[Cell], list[dict]]:
    """One cell per (problem, estimator, L) that some budget needs; the pairs and budgets skipped, with why."""
    pairs, skipped = applicable_pairs(config.problems, [est.get(name) for name in config.estimators])
    cells = []
    for problem, estimator in pairs:
        if not _is_discrete(problem):
            skipped.append({"problem": problem.name, "estimator": estimator.name,
                            "reason": "not a discrete problem: this experiment compares discrete estimators"})
            continue
        dist = problem.distribution()
        grid = set()
        for budget in sorted(set(config.cost_budgets)):
            num_samples = largest_affordable_num_samples(problem, estimator, dist, budget)
            if num_samples is None:
                smallest = problem.cost_evaluations(estimator, _smallest(problem, estimator, dist))
                skipped.append({"problem": problem.name, "estimator": estimator.name, "cost_budget": budget,
                                "reason": f"no L it accepts fits {budget} cost evaluations per estimate (at its "
                                f"smallest L: {smallest})"})
            elif num_samples * score_rows_per_sample(problem, estimator) > MAX_BACKWARD_PASSES:
                passes = num_samples * score_rows_per_sample(problem, estimator)
                skipped.append({"problem": problem.name, "estimator": estimator.name, "cost_budget": budget,
                                "num_samples": num_samples, "reason": f"{passes} backward passes per estimate (a "
                                f"score per sample and example; more than {MAX_BACKWARD_PASSES})"})
            else:
                grid.add(num_samples)
        replicates = REAL_DATA_REPLICATES if problem.dataset is not None else None
        cells += [Cell(problem, estimator, n, {}, replicates) for n in sorted(grid)]
    return cells, skipped


def _smallest(problem, estimator: est.GradientEstimator, dist) -> int:
    return next(n for n in range(1, 1024) if estimator.applicability(dist, n, problem.objective.batch_ndims) is None)


def _is_discrete(problem) -> bool:
    return isinstance(problem.distribution(), (est.Bernoulli, est.Categorical))


def run(config: Config, device: jax.Device | None = None, progress: bool = True, resume=None) -> Path:
    """Measure every cell the budgets need and write the run folder; return its path."""
    config.validate()
    device = device or jax.devices()[0]
    with jax.default_device(device):
        cells, skipped = plan(config)
        return run_cells(NAME, config, as_json(config), cells, skipped, device, progress, resume=resume)


def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--problems", type=options.comma_list, default=list(DEFAULT_PROBLEMS), metavar="NAMES",
                     help="comma-separated discrete problems (default: %(default)s)")
    sub.add_argument("--estimators", type=options.comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: every registered estimator that applies)")
    sub.add_argument("--cost-budgets", type=options.numbers(int), default=list(DEFAULT_COST_BUDGETS), metavar="BS",
                     help="comma-separated budgets of cost evaluations per estimate (default: %(default)s)")
    options.add_measurement_options(sub, default_replicates=DEFAULT_REPLICATES)


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    return Config(problems=tuple(args.problems), estimators=tuple(args.estimators or est.names()),
                  cost_budgets=tuple(args.cost_budgets), **options.measurement_settings(args))


EXPERIMENT = catalog.register(Experiment(
    name=NAME,
    summary="every discrete estimator at equal cost evaluations per estimate, on Bernoulli and categorical "
    "toys and the binary VAE",
    description="For each budget of cost evaluations per estimate, measure each discrete estimator at the "
    "largest L that fits it, and rank them by the MSE of the whole gradient at equal cost.",
    title="Discrete estimators at equal cost evaluations",
    config=Config,
    add_options=add_options,
    make_config=make_config,
    run=run,
    figures=(
        FigureSpec("mse_vs_cost", "Mean squared error of the whole gradient estimate against the cost evaluations "
                   "one estimate takes, per problem, with 95% bands: at a vertical line every estimator has spent "
                   "the same budget. Unbiased estimators fall as 1/cost; a biased one flattens at its squared bias "
                   "(dotted where known exactly)."),
    ),
    report=("equal_cost", "figures", "agreement"),
))
