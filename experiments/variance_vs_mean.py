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

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

import estimators as est
from experiments.problems.gaussian_1d import DEFAULT_K, TEST_FUNCTIONS, gaussian_test_problem
from experiments.runner import RunSettings, check_estimators, run_sweep

NAME = "variance_vs_mean"
DEFAULT_FUNCTIONS = tuple(TEST_FUNCTIONS)
#: μ from −3 to 3: the quadratic's minimum sits at k = 0, the Gaussian bump and the cosine are even.
DEFAULT_MEANS = tuple(float(m) for m in np.linspace(-3.0, 3.0, 13))
DEFAULT_NUM_SAMPLES = (16,)
DEFAULT_REPLICATES = 2_000
SCALE = 1.0


@dataclasses.dataclass(frozen=True)
class Config(RunSettings):
    """Everything that defines a run; written to config.json."""

    functions: Sequence[str] = DEFAULT_FUNCTIONS
    means: Sequence[float] = DEFAULT_MEANS
    scale: float = SCALE
    estimators: Sequence[str] = tuple(est.names())
    num_samples: Sequence[int] = DEFAULT_NUM_SAMPLES
    replicates: int = DEFAULT_REPLICATES

    def validate(self) -> None:
        unknown = [name for name in self.functions if name not in TEST_FUNCTIONS]
        if unknown or not self.functions:
            raise ValueError(f"--functions: unknown test functions {unknown}; choose from {', '.join(TEST_FUNCTIONS)}.")
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
