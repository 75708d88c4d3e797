r"""Variance of each estimator against the mean of the Gaussian, for the three test functions.

The experiment of Mohamed et al. (2020, figure 3): for :math:`x \sim \mathcal{N}(\mu, \sigma^2)` with
σ fixed and the costs :math:`(x - k)^2`, :math:`\exp(-k x^2)` and :math:`\cos(k x)`, sweep μ and
measure the variance of the gradient with respect to μ and σ.  The pathwise estimator's variance
follows the cost's derivative near μ; the score function's follows the cost's magnitude, so it grows
as μ moves away from the cost's minimum for the quadratic and stays large where the other two costs
are flat but not zero.  The exact variances of the pathwise, score-function and leave-one-out
estimators are computed by quadrature at every μ and written beside the measured ones.

The rows carry a ``mu`` column (the Gaussian's mean); the problem names are those of the registered
problems (``gaussian_quadratic``, ...), which sit at μ = 1 with the same σ and k.

Reference: Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*,
JMLR 2020, section 3 and figure 3.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

import estimators as est
from experiments import catalog
from experiments.engine import options
from experiments.engine.experiment import Experiment, FigureSpec, LinePlot
from experiments.engine.runner import check_estimators, run_sweep
from experiments.engine.settings import MeasurementSettings
from experiments.problems.gaussian_1d import DEFAULT_K, TEST_FUNCTIONS, gaussian_test_problem

NAME = "variance_vs_mean"
DEFAULT_FUNCTIONS = tuple(TEST_FUNCTIONS)
#: μ from −3 to 3: the quadratic's minimum sits at k = 0, the Gaussian bump and the cosine are even.
DEFAULT_MEANS = tuple(float(m) for m in np.linspace(-3.0, 3.0, 13))
DEFAULT_NUM_SAMPLES = (16,)
DEFAULT_REPLICATES = 2_000
SCALE = 1.0


@dataclasses.dataclass(frozen=True)
class Config(MeasurementSettings):
    """Everything that defines a run; written to config.json."""

    functions: Sequence[str] = DEFAULT_FUNCTIONS
    means: Sequence[float] = DEFAULT_MEANS
    scale: float = SCALE
    estimators: Sequence[str] = tuple(est.names())
    num_samples: Sequence[int] = DEFAULT_NUM_SAMPLES
    replicates: int = DEFAULT_REPLICATES

    def validate(self) -> None:
        options.check_choices(self.functions, TEST_FUNCTIONS, "--functions", "test functions")
        if not self.means or not all(np.isfinite(self.means)):
            raise ValueError(f"--means must be finite numbers, got {list(self.means)}.")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"--scale must be a positive number, got {self.scale}.")
        check_estimators(self.estimators, self.num_samples)
        super().validate()


def run(config: Config, device: jax.Device | None = None, progress: bool = True, resume=None) -> Path:
    """Measure every (function, μ, estimator, L) cell and write the run folder; return its path."""

    def problems():
        return [({"mu": float(mu)}, gaussian_test_problem(name, mu=float(mu), sigma=config.scale, k=DEFAULT_K[name]))
                for name in config.functions for mu in sorted(set(config.means))]

    return run_sweep(NAME, config, problems, "mu", device, progress, resume)


def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--functions", type=options.comma_list, default=list(DEFAULT_FUNCTIONS), metavar="NAMES",
                     help="comma-separated test functions (default: %(default)s)")
    sub.add_argument("--means", type=options.numbers(float), default=list(DEFAULT_MEANS), metavar="MUS",
                     help="comma-separated means μ; write --means=-1,0,1 when the first is negative "
                     "(default: -3 to 3 in steps of 0.5)")
    sub.add_argument("--scale", type=float, default=SCALE, metavar="SIGMA",
                     help="the standard deviation σ (default: %(default)s)")
    options.add_estimator_options(sub, DEFAULT_NUM_SAMPLES)
    options.add_measurement_options(sub, default_replicates=DEFAULT_REPLICATES)


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    return Config(functions=tuple(args.functions), means=tuple(args.means), scale=args.scale,
                  estimators=tuple(args.estimators or est.names()), num_samples=tuple(args.num_samples),
                  **options.measurement_settings(args))


EXPERIMENT = catalog.register(Experiment(
    name=NAME,
    summary="variance of each estimator on the Gaussian test functions against the mean μ",
    description="For each Gaussian test function (x - k)², exp(-k x²), cos(k x) under N(μ, σ²), sweep μ "
    "and report the variance of every applicable estimator's gradient with respect to μ and σ, with "
    "the exact variance where it is known (Mohamed et al. 2020, figure 3).",
    title="Variance against the mean of the Gaussian",
    config=Config,
    add_options=add_options,
    make_config=make_config,
    run=run,
    figures=(
        FigureSpec(
            "variance_vs_mean",
            "Variance of the gradient with respect to the mean μ (left) and the standard deviation σ (right) of "
            "x ~ N(μ, σ²) against μ, for each test function, with 95% bands; dotted: exact variances by "
            "quadrature (Mohamed et al. 2020, figure 3). The pathwise estimator's variance follows the cost's "
            "slope, the score function's the cost's size.",
            LinePlot(x="mu", panels=("problem", "num_samples", "parameter"), log_x=False,
                     x_label="mean of the Gaussian, μ",
                     title="Variance of the gradient against the Gaussian's mean μ (σ fixed)"),
        ),
    ),
))
