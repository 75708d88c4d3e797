r"""Straight-through and Gumbel-Softmax estimators for Bernoulli and categorical distributions.

All three evaluate the cost at a sample that carries a gradient it would not otherwise have, and are
biased for the true objective; their bias is measured against the exact gradient, never hidden.

- ``straight_through``: the hard sample b forward, the gradient as if the sample were its
  probabilities backward, :math:`\tilde b = b + p - \mathrm{sg}(p)` (Bengio, Léonard & Courville 2013).
- ``gumbel_softmax``: the cost at the Concrete relaxation
  :math:`z = \mathrm{softmax}((\ell + g)/\tau)` (for a Bernoulli :math:`\sigma((\ell + u)/\tau)`,
  u logistic); unbiased for the relaxed objective :math:`E[f(z)]`, biased for E[f(b)], with bias
  vanishing as τ → 0 while the variance grows (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017).
- ``straight_through_gumbel``: the hard sample :math:`b = \arg\max(\ell + g)` forward and the relaxed
  sample's gradient backward, :math:`b + z - \mathrm{sg}(z)` (Jang et al. 2017, "ST Gumbel-Softmax").

The value returned with the gradient is always the cost at the hard samples, an unbiased estimate of
the objective.  Assumptions: the cost is differentiable in x (on the relaxed domain) and accepts
non-binary inputs.  With independent examples the per-example costs are summed; each example's
relaxed sample reaches only its own cost.
"""

from __future__ import annotations

import jax

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass
from estimators.registry import register
from estimators.relaxation import check_temperature, hard_sample, relaxed_cost_estimate, unsupported


@register("straight_through", family="relaxation")
@estimator_dataclass
class StraightThrough(GradientEstimator):
    r"""Straight-through: :math:`\nabla_\theta F \approx \frac1L\sum_i \nabla_\theta
    f(\theta, b_i + p_\theta - \mathrm{sg}(p_\theta))`, b_i the hard samples.  Biased.
    See :mod:`estimators.straight_through`."""

    info = EstimatorInfo("straight_through", unbiased=False, separable=True)

    def supports(self, dist):
        return unsupported(dist)

    def estimate(self, objective, params, key, num_samples, state):
        return relaxed_cost_estimate(objective, params, key, num_samples, state, self._surrogate_sample)

    def _surrogate_sample(self, dist, key):
        hard = jax.lax.stop_gradient(dist.sample(key))
        return hard + dist.probs - jax.lax.stop_gradient(dist.probs), hard


@register("gumbel_softmax", family="relaxation")
@estimator_dataclass
class GumbelSoftmax(GradientEstimator):
    r"""Gumbel-Softmax (Concrete): :math:`\frac1L\sum_i \nabla_\theta f(\theta, z_i)`,
    :math:`z_i = \mathrm{softmax}((\ell + g_i)/\tau)`.  Biased for F, unbiased for the relaxed
    objective.  Option: ``temperature`` τ > 0 (a pytree leaf: it may be traced and annealed).
    See :mod:`estimators.straight_through`."""

    temperature: float = 1.0
    info = EstimatorInfo("gumbel_softmax", unbiased=False, separable=True)

    def __post_init__(self):
        check_temperature(self)

    def supports(self, dist):
        return unsupported(dist)

    def estimate(self, objective, params, key, num_samples, state):
        return relaxed_cost_estimate(objective, params, key, num_samples, state, self._surrogate_sample)

    def _surrogate_sample(self, dist, key):
        relaxed = dist.relaxed_sample(key, self.temperature)
        return relaxed, hard_sample(dist, relaxed)


@register("straight_through_gumbel", family="relaxation")
@estimator_dataclass
class StraightThroughGumbel(GradientEstimator):
    r"""Straight-through Gumbel-Softmax: the hard sample forward, :math:`b + z - \mathrm{sg}(z)`, the
    relaxed sample's gradient backward.  Biased.  Option: ``temperature`` τ > 0 (a pytree leaf).
    See :mod:`estimators.straight_through`."""

    temperature: float = 1.0
    info = EstimatorInfo("straight_through_gumbel", unbiased=False, separable=True)

    def __post_init__(self):
        check_temperature(self)

    def supports(self, dist):
        return unsupported(dist)

    def estimate(self, objective, params, key, num_samples, state):
        return relaxed_cost_estimate(objective, params, key, num_samples, state, self._surrogate_sample)

    def _surrogate_sample(self, dist, key):
        relaxed = dist.relaxed_sample(key, self.temperature)
        hard = jax.lax.stop_gradient(hard_sample(dist, relaxed))
        return hard + relaxed - jax.lax.stop_gradient(relaxed), hard
