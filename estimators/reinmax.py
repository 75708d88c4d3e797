r"""ReinMax: straight-through made second-order (Heun's method) for categorical and Bernoulli latents.

Straight-through reads the gradient of :math:`F(\theta) = \sum_k \pi_k f(e_k)` off the first-order
expansion of f at the sample; ReinMax (Liu et al. 2023) integrates that expansion with Heun's method,
averaging the slope at the sample D and at :math:`\pi_{1/2} = \tfrac12(\pi_\tau + D)`, which removes the
first-order error.  With :math:`g = \nabla_x f(\theta, x)|_{x = D}` the cost's gradient at the one-hot
sample, :math:`\pi_0 = \mathrm{softmax}(\ell)`, :math:`\pi_\tau = \mathrm{softmax}(\ell/\tau)` and
:math:`J(\pi) = \mathrm{diag}(\pi) - \pi\pi^\top` the softmax's Jacobian written at π, the estimate in the
logits is, per sample and variable,

.. math::

    \hat g_\ell = 2\, J\big(\tfrac12(\pi_\tau + D)\big)\, g - \tfrac12\, J(\pi_0)\, g,

(the authors' ``ReinMaxCore.backward``; straight-through is :math:`J(\pi_\tau)\,g`).  It is computed as the
gradient of the cost at :math:`y = D + u - \mathrm{sg}(u)`, :math:`u = 2\,\mathrm{softmax}(\ell +
\mathrm{sg}(\log\pi_{1/2} - \ell)) - \tfrac12\,\mathrm{softmax}(\ell)`, whose Jacobian in ℓ is the bracket;
the chain rule carries it to θ, and a cost that depends on θ adds its direct term.  A Bernoulli is the
two-class categorical with logits (0, ℓ), the classes 0 and 1.

Biased, like straight-through, but exact to second order: at τ = 1, for a cost quadratic in the latents
(the one-hot vectors of all variables jointly, cross terms included), :math:`E[\hat g] = \nabla F` exactly,
where straight-through's expectation is not (tests/test_reinmax.py checks both by enumeration).  The authors
recommend τ ≥ 1.  One cost evaluation and one backward pass per sample.  The value is the mean cost at
the hard samples.  With independent examples the per-example costs are summed; each example's sample
reaches only its own cost.

Reference: Liu, Dong, Liu, Yu & Gao, *Bridging Discrete and Backpropagation: Straight-Through and Beyond*,
NeurIPS 2023.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass
from estimators.registry import register
from estimators.relaxation import check_temperature, one_hot_surrogate, relaxed_cost_estimate, unsupported


def reinmax_sample(logits: jax.Array, one_hot: jax.Array, temperature) -> jax.Array:
    """The one-hot ``one_hot`` (classes along the last axis) forward, ReinMax's Jacobian in ``logits`` backward."""
    halfway = 0.5 * (jax.nn.softmax(logits / temperature, axis=-1) + one_hot)
    # softmax(ℓ + sg(log π − ℓ)) is π, and its Jacobian in ℓ is the softmax's, written at π.  A masked class
    # (ℓ = −inf, never sampled) has π = 0: its offset is left at 0 so that its logit stays −inf, not NaN.
    offset = jnp.where(halfway > 0, jnp.log(jnp.where(halfway > 0, halfway, 1.0)) - logits, 0.0)
    at_halfway = jax.nn.softmax(logits + jax.lax.stop_gradient(offset), axis=-1)
    slope = 2 * at_halfway - 0.5 * jax.nn.softmax(logits, axis=-1)
    return one_hot + slope - jax.lax.stop_gradient(slope)


@register("reinmax", family="relaxation")
@estimator_dataclass
class ReinMax(GradientEstimator):
    r"""ReinMax: the gradient of the cost at :math:`D + u - \mathrm{sg}(u)`, whose logit Jacobian is
    :math:`2J(\tfrac12(\pi_\tau + D)) - \tfrac12 J(\pi_0)`.  Biased (exact for quadratics at τ = 1); option
    ``temperature``.  See :mod:`estimators.reinmax`."""

    temperature: float = 1.0
    info = EstimatorInfo("reinmax", unbiased=False, separable=True)

    def __post_init__(self):
        check_temperature(self)

    def supports(self, dist):
        return unsupported(dist)

    def estimate(self, objective, params, key, num_samples, state):
        return relaxed_cost_estimate(objective, params, key, num_samples, state, self._surrogate_sample)

    def _surrogate_sample(self, dist, key):
        return one_hot_surrogate(dist, key, lambda logits, one_hot: reinmax_sample(logits, one_hot, self.temperature))
