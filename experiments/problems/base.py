"""A problem: an objective at fixed parameters, with its exact gradient and estimator variances."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

import estimators as est
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
      exact_variances: for each estimator whose variance is known, a function of the number of samples
        L that returns the exact per-coordinate variance of the L-sample estimate (a pytree like
        ``params``).  :func:`iid_variance` builds it for estimators that average L i.i.d. terms.
      exact_means: for biased estimators whose expectation is known, that expectation (a pytree like
        ``params``, the same for every L).

      exact_grad_se: where ``exact_grad`` is a Monte Carlo reference rather than exact (the real-data
        problems without a closed form), its standard error per coordinate (a pytree like ``params``);
        None where ``exact_grad`` is exact.  Bias is then reported with that uncertainty included.
      dataset: the real dataset the objective is built on, or None for synthetic problems.
      exact_for_options: for answers that depend on an estimator's options (a temperature), a function
        of the estimator that returns ``(mean, variance_fn)`` (either may be None), or None where the
        problem has no answer for it.

    Both mappings are keyed by estimator: a registry name stands for the estimator with its default
    options, and an estimator object (``GumbelSoftmax(temperature=0.5)``) for exactly that one, so an
    answer is never compared with an estimator run at other options.
    """

    name: str
    description: str
    objective: Objective
    params: PyTree
    exact_grad: PyTree | None
    exact_variances: Mapping[Any, Callable[[int], PyTree]] = dataclasses.field(default_factory=dict)
    exact_means: Mapping[Any, PyTree] = dataclasses.field(default_factory=dict)
    exact_for_options: Callable[[Any], tuple[PyTree | None, Callable[[int], PyTree] | None] | None] | None = None
    exact_grad_se: PyTree | None = None
    dataset: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "exact_variances", {_as_estimator(k): v for k, v in self.exact_variances.items()})
        object.__setattr__(self, "exact_means", {_as_estimator(k): v for k, v in self.exact_means.items()})

    def _for_options(self, estimator):
        answers = self.exact_for_options(estimator) if self.exact_for_options else None
        return answers or (None, None)

    def exact_variance(self, estimator, num_samples: int) -> PyTree | None:
        """The exact per-coordinate variance of the L-sample estimate, or None where unknown."""
        estimator = _as_estimator(estimator)
        variance = self.exact_variances.get(estimator) or self._for_options(estimator)[1]
        return None if variance is None else variance(num_samples)

    def exact_mean(self, estimator) -> PyTree | None:
        """E[ĝ], the estimator's expectation: the exact gradient for unbiased estimators (where known),
        the stored expectation for biased ones, None where unknown."""
        estimator = _as_estimator(estimator)
        if estimator in self.exact_means:
            return self.exact_means[estimator]
        if estimator.unbiased:
            return self.exact_grad
        return self._for_options(estimator)[0]

    def distribution(self):
        """The distribution at the problem's parameters."""
        return self.objective.distribution(self.params)

    def cost_evaluations(self, estimator, num_samples: int) -> int:
        """How many times one L-sample estimate of ``estimator`` evaluates the cost (of every example); on an
        importance-weighted bound, a sample's K particles are K evaluations of the log joint."""
        per_sample = _as_estimator(estimator).cost_evaluations(num_samples, self.distribution(),
                                                               batch_ndims=self.objective.batch_ndims)
        return per_sample * getattr(self.objective, "num_particles", 1)


def _as_estimator(estimator):
    return est.get(estimator) if isinstance(estimator, str) else estimator


def u_statistic_variance(zeta1: PyTree, zeta2: PyTree) -> Callable[[int], PyTree]:
    r"""Variance of a U-statistic of order 2 over L samples,
    :math:`\frac{2}{L(L-1)}\,[2(L-2)\zeta_1 + \zeta_2]` (Hoeffding 1948), with
    :math:`\zeta_1 = \mathrm{Var}\,E[h(Z_1, Z_2) \mid Z_1]` and :math:`\zeta_2 = \mathrm{Var}\,h(Z_1, Z_2)`.
    The leave-one-out baseline is one, with :math:`h = \tfrac12 (f_1 - f_2)(s_1 - s_2)`."""
    zeta1, zeta2 = (jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), z) for z in (zeta1, zeta2))

    def variance(num_samples):
        if num_samples < 2:
            raise ValueError(f"A U-statistic of order 2 needs at least 2 samples, got {num_samples}.")
        factor = 2 / (num_samples * (num_samples - 1))
        return jax.tree_util.tree_map(lambda a, b: factor * (2 * (num_samples - 2) * a + b), zeta1, zeta2)

    return variance


def iid_variance(per_sample_variance: PyTree) -> Callable[[int], PyTree]:
    """Variance of the mean of L i.i.d. per-sample estimates: the per-sample variance over L."""
    per_sample = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), per_sample_variance)
    return lambda num_samples: jax.tree_util.tree_map(lambda v: v / num_samples, per_sample)
