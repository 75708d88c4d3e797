"""A problem: an objective at fixed parameters, with its exact gradient and estimator variances."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import numpy as np

from estimators import Objective

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Problem:
    """An objective at fixed parameters, with the answers estimators are judged against.

    Attributes:
      name: the name used by the CLI, in result files and in plots.
      description: one line for people: the cost, the distribution, the parameters.
      objective: the :class:`estimators.Objective`.
      params: the parameters at which gradients are estimated (a pytree of JAX arrays).
      exact_grad: ∇θ F(θ) in float64 (a pytree like ``params`` of NumPy arrays), or None if unknown.
      exact_variances: for each estimator name whose variance is known, a function of the number of
        samples L that returns the exact per-coordinate variance of the L-sample estimate (a pytree
        like ``params``).  :func:`iid_variance` builds it for estimators that average L i.i.d. terms.
    """

    name: str
    description: str
    objective: Objective
    params: PyTree
    exact_grad: PyTree | None
    exact_variances: Mapping[str, Callable[[int], PyTree]] = dataclasses.field(default_factory=dict)

    def exact_variance(self, estimator_name: str, num_samples: int) -> PyTree | None:
        """The exact per-coordinate variance of the L-sample estimate, or None where unknown."""
        variance = self.exact_variances.get(estimator_name)
        return None if variance is None else variance(num_samples)

    def distribution(self):
        """The distribution at the problem's parameters."""
        return self.objective.distribution(self.params)


def iid_variance(per_sample_variance: PyTree) -> Callable[[int], PyTree]:
    """Variance of the mean of L i.i.d. per-sample estimates: the per-sample variance over L."""
    per_sample = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), per_sample_variance)
    return lambda num_samples: jax.tree_util.tree_map(lambda v: v / num_samples, per_sample)
