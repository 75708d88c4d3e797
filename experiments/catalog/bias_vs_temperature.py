"""Bias, variance and MSE of the Gumbel-Softmax family against the relaxation's temperature τ.

Low temperatures make the relaxed sample nearly discrete (small bias) but its gradient spiky (large
variance); high temperatures smooth the gradient and bias it.  For every relaxable problem, every
estimator with a temperature option and every τ of the grid, R replicate L-sample estimates are drawn
and compared with the exact gradient, and with the estimator's exact expectation where the problem
knows it (so the bias² is shown against its exact value).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax

import estimators as est
from experiments import catalog
from experiments import problems as problem_registry
from experiments.engine import options
from experiments.engine.experiment import Experiment, FigureSpec
from experiments.engine.runner import Cell, applicable_pairs, as_json, check_names, run_cells
from experiments.engine.settings import MeasurementSettings

NAME = "bias_vs_temperature"
DEFAULT_TEMPERATURES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
DEFAULT_NUM_SAMPLES = (1,)


def temperature_estimators() -> list[str]:
    """Registered estimators with a ``temperature`` option."""
    return [name for name in est.names() if "temperature" in est.registry.options(name)]


def relaxable_problems() -> list[str]:
    """The synthetic problems with a relaxable (discrete) distribution; real-data ones by name only, and the
    batch-level variants of plate problems not at all (a relaxation differentiates the same summed cost)."""
    problems = [problem_registry.get(name) for name in problem_registry.names() if not name.endswith("_summed")]
    return [p.name for p in problems if p.dataset is None and p.distribution().relaxable]


@dataclasses.dataclass(frozen=True)
class Config(MeasurementSettings):
    """Everything that defines a run; written to config.json."""

    problems: Sequence[str] = ()  # empty: every problem with a relaxable (discrete) distribution
    estimators: Sequence[str] = ()  # empty: every estimator with a temperature option
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES
    num_samples: Sequence[int] = DEFAULT_NUM_SAMPLES

    def resolved(self) -> Config:
        return dataclasses.replace(self, problems=tuple(self.problems or relaxable_problems()),
                                   estimators=tuple(self.estimators or temperature_estimators()))

    def validate(self) -> None:
        check_names(self.problems, self.estimators, self.num_samples)
        self.validate_options()
        super().validate()

    def validate_options(self) -> None:
        """The checks that need no problem built: an estimator without a temperature, a temperature ≤ 0."""
        without = [name for name in self.estimators if name not in temperature_estimators()]
        if without:
            raise ValueError(
                f"{', '.join(without)} has no temperature; choose from {', '.join(temperature_estimators())}."
            )
        if not self.temperatures or any(t <= 0 for t in self.temperatures):
            raise ValueError(f"--temperatures must be positive numbers, got {list(self.temperatures)}.")


def run(config: Config, device: jax.Device | None = None, progress: bool = True, resume=None) -> Path:
    """Measure every (problem, estimator, τ, L) cell and write the run folder; return its path."""
    config = config.resolved()
    config.validate()
    device = device or jax.devices()[0]
    with jax.default_device(device):
        cells, skipped = [], []
        # Built once: the cells of one (problem, estimator, L) at every τ then share one compiled program,
        # the temperature being a leaf of the estimator, an argument of the program.
        built = {name: problem_registry.get(name) for name in config.problems}
        for temperature in sorted(set(config.temperatures)):
            estimators = [est.get(name, temperature=temperature) for name in config.estimators]
            pairs, skipped_here = applicable_pairs(config.problems, estimators, built)
            skipped += [s for s in skipped_here if s not in skipped]
            cells += [Cell(problem, estimator, n, {"temperature": temperature}) for problem, estimator in pairs
                      for n in sorted(set(config.num_samples))]
        return run_cells(NAME, config, as_json(config), cells, skipped, device, progress, label_columns=["temperature"],
                         resume=resume)


def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--problems", type=options.comma_list, default=[], metavar="NAMES",
                     help="comma-separated problem names (default: every problem with a discrete distribution)")
    sub.add_argument("--estimators", type=options.comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: every estimator with a temperature)")
    sub.add_argument("--temperatures", type=options.numbers(float), default=list(DEFAULT_TEMPERATURES),
                     metavar="TAUS", help="comma-separated temperatures (default: %(default)s)")
    sub.add_argument("--num-samples", type=options.numbers(int), default=list(DEFAULT_NUM_SAMPLES),
                     metavar="LS", help="comma-separated sample counts L (default: %(default)s)")
    options.add_measurement_options(sub, default_replicates=10_000)


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    config = Config(problems=tuple(args.problems), estimators=tuple(args.estimators or ()),
                    temperatures=tuple(args.temperatures), num_samples=tuple(args.num_samples),
                    **options.measurement_settings(args))
    # Resolving the default problems builds every problem (the real-data ones train or load a model): a
    # mistyped option is refused before that, in a second rather than twenty.
    config.validate_options()
    return config.resolved()


EXPERIMENT = catalog.register(Experiment(
    name=NAME,
    summary="bias, variance and MSE of the Gumbel-Softmax family against the temperature",
    description="For every discrete problem and every estimator with a temperature (gumbel_softmax, "
    "straight_through_gumbel), sweep the temperature and report bias², variance and MSE against the "
    "exact gradient, with the exact bias where the problem knows it.",
    title="The Gumbel-Softmax family against the temperature",
    config=Config,
    add_options=add_options,
    make_config=make_config,
    run=run,
    figures=(
        FigureSpec("bias_vs_temperature", "Squared bias (top), variance (middle) and MSE (bottom) of the whole "
                   "gradient against the relaxation temperature τ, per problem and L, with 95% error bars; dotted: "
                   "the exact squared bias. Low τ: small bias, large variance; high τ the reverse."),
    ),
    report=("temperature", "figures", "agreement"),
))
