"""The headline experiment: bias, variance, MSE and cost of each estimator against the sample count L.

For every applicable (problem, estimator) pair and every L of the grid, R replicate L-sample estimates
are drawn (replicate r with key ``fold_in(seed_key, r)``, sample i with ``fold_in(replicate_key, i)``,
so all cells share common random numbers), summarized on the host in float64, and written as tidy rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import jax

import estimators as est
from experiments.runner import Cell, RunSettings, applicable_pairs, as_json, check_names, run_cells

NAME = "variance_vs_L"
#: The headline problems: the Gaussian test functions, the 20-D quadratic and the two discrete toys,
#: with every estimator that applies, in a few minutes on 2 CPU cores.  ``--problems all`` adds the
#: other registered problems (one per distribution family, the t = 0.499 Bernoulli toy).
DEFAULT_PROBLEMS = (
    "gaussian_quadratic",
    "gaussian_exp",
    "gaussian_cosine",
    "gaussian_quadratic_20d",
    "bernoulli_toy",
    "categorical_toy",
)
DEFAULT_NUM_SAMPLES = (1, 16, 128, 1024)


@dataclasses.dataclass(frozen=True)
class Config(RunSettings):
    """Everything that defines a run; written to config.json."""

    problems: Sequence[str] = DEFAULT_PROBLEMS
    estimators: Sequence[str] = tuple(est.names())
    num_samples: Sequence[int] = DEFAULT_NUM_SAMPLES

    def validate(self) -> None:
        check_names(self.problems, self.estimators, self.num_samples)
        super().validate()


def run(config: Config, device: jax.Device | None = None, progress: bool = True) -> Path:
    """Measure every cell of ``config`` and write the run folder; return its path."""
    config.validate()
    device = device or jax.devices()[0]
    with jax.default_device(device):
        pairs, skipped = applicable_pairs(config.problems, [est.get(name) for name in config.estimators])
        cells = []
        for problem, estimator in pairs:
            for n in sorted(set(config.num_samples)):
                if n >= estimator.min_num_samples:
                    cells.append(Cell(problem, estimator, n, {}))
                else:
                    skipped.append({"problem": problem.name, "estimator": estimator.name, "num_samples": n,
                                    "reason": f"needs L >= {estimator.min_num_samples}"})
        return run_cells(NAME, config, as_json(config), cells, skipped, device, progress)
