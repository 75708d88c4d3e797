r"""Antithetic estimators for Bernoulli latents: ARM and DisARM.

Both draw one uniform vector u per sample and evaluate the cost at two antithetic binary vectors built
from it; both are unbiased and need no relaxation of the cost, which is only evaluated (at binary
points).  With :math:`p = \sigma(\ell)`, ℓ the logits:

- **ARM** (augment-REINFORCE-merge, Yin & Zhou 2019, theorem 1):

  .. math::

      \nabla_\ell F \approx \frac1L \sum_{i=1}^L \big(f(\mathbb{1}[u_i > \sigma(-\ell)])
          - f(\mathbb{1}[u_i < \sigma(\ell)])\big)\,(u_i - \tfrac12).

- **DisARM** (Dong, Mnih & Tucker 2020): the same pair, written
  :math:`b = \mathbb{1}[u < \sigma(\ell)]`, :math:`\tilde b = \mathbb{1}[1 - u < \sigma(\ell)]`, with u
  integrated out given the pair (Rao-Blackwellized), so its variance is never above ARM's:

  .. math::

      \nabla_{\ell_d} F \approx \frac1L \sum_{i=1}^L \tfrac12 \big(f(b_i) - f(\tilde b_i)\big)
          (-1)^{\tilde b_{i,d}}\, \mathbb{1}[b_{i,d} \ne \tilde b_{i,d}]\, \sigma(|\ell_d|).

The gradient with respect to θ follows from :math:`\nabla_\ell F` by the chain rule through the logits;
a cost that depends on θ adds :math:`\tfrac12(\nabla_\theta f(\theta, b) + \nabla_\theta f(\theta, \tilde b))`
(each of the pair is a Bernoulli(p) sample), and the value is :math:`\tfrac12(f(b) + f(\tilde b))`.
Two cost evaluations per sample.  With independent examples (``Objective(..., batch_ndims=B)``) the
pair is formed from the one u of all examples at once, and example n's logits are weighted by its own
costs :math:`f_n(b), f_n(\tilde b)` (the pairing is per example, as the cost of example n reads only
its own latents).  Defined for Bernoulli latents; for categoricals,
:mod:`estimators.categorical_disarm` carries the pair over by stick-breaking (Dong et al. 2021).

References:
  Yin & Zhou, *ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks*, ICLR 2019.
  Dong, Mnih & Tucker, *DisARM: An Antithetic Gradient Estimator for Binary Latent Variables*,
  NeurIPS 2020.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from estimators.base import (
    Estimate,
    EstimatorInfo,
    GradientEstimator,
    estimator_dataclass,
    sample_keys,
    surrogate_estimate,
)
from estimators.distributions import Bernoulli
from estimators.registry import register


def unsupported(dist) -> str | None:
    if isinstance(dist, Bernoulli):
        return None
    return (
        f"it is defined for Bernoulli latents, not {type(dist).__name__} (for categorical latents use "
        "categorical_disarm, rebar, relax or score_function_loo)"
    )


def antithetic_estimate(objective, params, key, num_samples, state, logit_gradient: Callable) -> Estimate:
    """The estimate of an antithetic pair estimator whose per-sample gradient in the logits is
    ``logit_gradient(logits, u, cost_b, cost_antithetic, b, antithetic)``, plus the direct term."""
    logits = jax.lax.stop_gradient(objective.distribution(params).logits)

    def antithetic_pair(sample_key):
        u = jax.random.uniform(sample_key, logits.shape, logits.dtype)
        b = (u < jax.nn.sigmoid(logits)).astype(logits.dtype)
        antithetic = (1 - u < jax.nn.sigmoid(logits)).astype(logits.dtype)
        return u, b, antithetic

    u, b, antithetic = jax.vmap(antithetic_pair)(sample_keys(key, num_samples))

    def mean_logit_gradient(cost_b, cost_antithetic):
        logit_grads = jax.vmap(logit_gradient, in_axes=(None, 0, 0, 0, 0, 0))(logits, u, cost_b, cost_antithetic, b,
                                                                              antithetic)
        return jnp.mean(logit_grads, axis=0)

    return antithetic_pairs_estimate(objective, params, state, b, antithetic, mean_logit_gradient)


def antithetic_pairs_estimate(objective, params, state, samples, antithetic, logit_gradient: Callable) -> Estimate:
    """The estimate of L antithetic pairs ``(samples, antithetic)`` (each (L, *event_shape)) whose gradient in the
    distribution's logits is ``logit_gradient(costs, antithetic_costs)`` (each (L, *batch_shape, 1, …), example
    n's costs broadcast over its logits), plus the direct term; the value is the pairs' mean cost."""
    ndim = objective.distribution(params).logits.ndim + 1

    def surrogate(p):
        # Each cost is evaluated once: its value weighs the logit gradient, its θ-gradient is the direct term.
        costs, antithetic_costs = objective.costs(p, samples), objective.costs(p, antithetic)  # (L, *batch_shape)
        weights = (_per_logit(jax.lax.stop_gradient(c), ndim) for c in (costs, antithetic_costs))
        logit_grad = jax.lax.stop_gradient(logit_gradient(*weights))
        value = jnp.mean(0.5 * (objective.sum_examples(costs) + objective.sum_examples(antithetic_costs)))
        return jnp.sum(logit_grad * objective.distribution(p).logits) + value, value

    return surrogate_estimate(surrogate, params, state)


def _per_logit(costs, ndim):
    """Per-example costs (L, *batch_shape) with trailing unit axes, to broadcast over each example's logits."""
    if costs.ndim == 1:
        return costs  # no plate: one cost per sample
    return costs.reshape(costs.shape + (1,) * (ndim - costs.ndim))


@register("arm", family="antithetic")
@estimator_dataclass
class ARM(GradientEstimator):
    r"""ARM: :math:`(f(\tilde b) - f(b))(u - \tfrac12)` per sample, :math:`\tilde b = \mathbb{1}[u > \sigma(-\ell)]`,
    :math:`b = \mathbb{1}[u < \sigma(\ell)]`.  Unbiased.  See :mod:`estimators.arm`."""

    info = EstimatorInfo("arm", separable=True)

    def supports(self, dist):
        return unsupported(dist)

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        return 2 * num_samples

    def estimate(self, objective, params, key, num_samples, state):
        return antithetic_estimate(objective, params, key, num_samples, state, self._logit_gradient)

    @staticmethod
    def _logit_gradient(logits, u, cost_b, cost_antithetic, b, antithetic):
        # 1[u > σ(-ℓ)] = 1[1 - u < σ(ℓ)]: the antithetic sample.
        return (cost_antithetic - cost_b) * (u - 0.5)


@register("disarm", family="antithetic")
@estimator_dataclass
class DisARM(GradientEstimator):
    r"""DisARM: :math:`\tfrac12 (f(b) - f(\tilde b))(-1)^{\tilde b}\mathbb{1}[b \ne \tilde b]\sigma(|\ell|)` per
    sample.  Unbiased, with variance at most ARM's.  See :mod:`estimators.arm`."""

    info = EstimatorInfo("disarm", separable=True)

    def supports(self, dist):
        return unsupported(dist)

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        return 2 * num_samples

    def estimate(self, objective, params, key, num_samples, state):
        return antithetic_estimate(objective, params, key, num_samples, state, self._logit_gradient)

    @staticmethod
    def _logit_gradient(logits, u, cost_b, cost_antithetic, b, antithetic):
        sign = 1 - 2 * antithetic
        return 0.5 * (cost_b - cost_antithetic) * sign * (b != antithetic) * jax.nn.sigmoid(jnp.abs(logits))
