r"""Categorical DisARM: the antithetic pair of DisARM carried to categoricals by stick-breaking.

A categorical variable with probabilities :math:`p_1, \dots, p_K` (classes in a fixed order, see
``order``) is the first success of K − 1 independent binary variables,
:math:`b_i \sim \mathrm{Bernoulli}(\sigma(\alpha_i))`, with the stick-breaking logits

.. math::

    \alpha_i = \log p_i - \log \textstyle\sum_{j > i} p_j, \qquad i = 1, \dots, K - 1,

and :math:`z = \min\{i : b_i = 1\}` (z = K where none succeeds).  One uniform vector u per sample gives an
antithetic pair, :math:`b = \mathbb{1}[u < \sigma(\alpha)]` and :math:`\tilde b = \mathbb{1}[1 - u <
\sigma(\alpha)]`, hence two categorical samples z and z̃, each with the categorical's law.  The cost
depends on b only through z, so the DisARM estimate of :math:`\nabla_\alpha F` is Rao-Blackwellized
coordinate by coordinate (Dong, Mnih & Tucker 2021, as in their code): with
:math:`\Delta = \tfrac12(f(z) - f(\tilde z))`,

.. math::

    \hat g_{\alpha_i} = \Delta \cdot \begin{cases}
        (-1)^{\tilde b_i}\,\mathbb{1}[b_i \ne \tilde b_i]\,\sigma(|\alpha_i|) & i \le \min(z, \tilde z)
            \text{ (both samples still breaking: DisARM)}, \\
        b_i - \sigma(\alpha_i) & \tilde z < i \le z \text{ (only z still breaking)}, \\
        -(\tilde b_i - \sigma(\alpha_i)) & z < i \le \tilde z, \\
        0 & i > \max(z, \tilde z).
    \end{cases}

The middle cases are DisARM's term with :math:`\tilde b_i` integrated out given :math:`b_i` (f(z̃) does
not read it), the last is DisARM's term with both integrated out (mean zero).  The gradient in the
categorical's logits θ follows by the chain rule through α(θ), and
:math:`\nabla_\theta F \approx \frac1L \sum_{l=1}^L J_\alpha(\theta)^\top \hat g_{\alpha}^{(l)}` over L
pairs.  Unbiased for any cost (DisARM is unbiased for any function of independent binaries).  Two cost
evaluations per pair, 2L in all, like ``disarm``; at K = 2 it is DisARM on the Bernoulli
:math:`\sigma(\theta_1 - \theta_2)`.  A cost that depends on θ adds
:math:`\tfrac12(\nabla_\theta f(\theta, z) + \nabla_\theta f(\theta, \tilde z))`, and the value is
:math:`\tfrac12(f(z) + f(\tilde z))`.  With independent examples (``Objective(..., batch_ndims=B)``) the
pair is drawn for all examples at once and example n's logits are weighted by its own costs.

``order`` fixes which class breaks the stick first: ``"natural"`` (the classes as given, the default of
the authors' code) or ``"descending"`` (the classes sorted by decreasing logit, one of the orderings their
code offers: the most probable class then breaks the stick first).  The order is a function of θ only, so
either is unbiased.

Reference: Dong, Mnih & Tucker, *Coupled Gradient Estimators for Discrete Latent Variables*, NeurIPS 2021
(the stick-breaking estimator, without importance weighting or the tree construction).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.arm import antithetic_pairs_estimate
from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, sample_keys, static
from estimators.distributions import Categorical
from estimators.registry import register

ORDERS = ("natural", "descending")


def stick_breaking_logits(logits: jax.Array) -> jax.Array:
    r""":math:`\alpha_i = \ell_i - \log\sum_{j > i} e^{\ell_j}`, i = 1, …, K − 1, over the last axis: the
    logit of :math:`p_i / \sum_{j \ge i} p_j`, the probability that the stick breaks at class i given that it
    reached it."""
    tail = jax.lax.cumlogsumexp(logits, axis=logits.ndim - 1, reverse=True)  # log Σ_{j ≥ i} e^{ℓ_j}
    return logits[..., :-1] - tail[..., 1:]


def first_success(bits: jax.Array) -> jax.Array:
    """The index of the first 1 over the last axis of K − 1 binaries, K − 1 (the last class) where none."""
    num_bits = bits.shape[-1]
    return jnp.min(jnp.where(bits > 0, jnp.arange(num_bits), num_bits), axis=-1)


def pair_logit_gradient(alpha, b, antithetic, cost, cost_antithetic):
    """The Rao-Blackwellized DisARM estimate of ∇α for one pair of bit vectors (the module's formula); ``cost`` and
    ``cost_antithetic`` broadcast against α (one per example under a plate)."""
    sigma = jax.nn.sigmoid(alpha)
    z, z_antithetic = first_success(b)[..., None], first_success(antithetic)[..., None]
    index = jnp.arange(alpha.shape[-1]).reshape((1,) * (alpha.ndim - 1) + (-1,))
    both_breaking = index <= jnp.minimum(z, z_antithetic)
    disarm = (1 - 2 * antithetic) * (b != antithetic) * jax.nn.sigmoid(jnp.abs(alpha))
    only_first = (index > z_antithetic) & (index <= z)
    only_second = (index > z) & (index <= z_antithetic)
    factor = jnp.where(both_breaking, disarm, 0.0)
    factor = factor + jnp.where(only_first, b - sigma, 0.0) - jnp.where(only_second, antithetic - sigma, 0.0)
    return 0.5 * (cost - cost_antithetic) * factor


@register("categorical_disarm", family="antithetic")
@estimator_dataclass
class CategoricalDisARM(GradientEstimator):
    r"""Categorical DisARM: the DisARM pair of the stick-breaking binaries, Rao-Blackwellized, chained to the
    categorical logits; L pairs, 2L evaluations.  Unbiased.  See :mod:`estimators.categorical_disarm`."""

    order: str = static(default="natural")
    info = EstimatorInfo("categorical_disarm", separable=True)

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")

    def supports(self, dist):
        if isinstance(dist, Categorical):
            return None
        return (
            f"it is defined for categorical latents, not {type(dist).__name__} (for Bernoulli latents use "
            "disarm, its binary form)"
        )

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        return 2 * num_samples

    def _permutation(self, logits):
        """Per variable, the classes in breaking order (the identity for ``"natural"``)."""
        if self.order == "descending":
            return jnp.argsort(-logits, axis=-1, stable=True)
        return jnp.broadcast_to(jnp.arange(logits.shape[-1]), logits.shape)

    def estimate(self, objective, params, key, num_samples, state):
        logits = jax.lax.stop_gradient(objective.distribution(params).logits)
        num_classes = logits.shape[-1]
        permutation = self._permutation(logits)
        ordered = lambda theta: jnp.take_along_axis(theta, permutation, axis=-1)
        alpha, alpha_vjp = jax.vjp(lambda theta: stick_breaking_logits(ordered(theta)), logits)

        def antithetic_bits(sample_key):
            u = jax.random.uniform(sample_key, alpha.shape, alpha.dtype)
            sigma = jax.nn.sigmoid(alpha)
            return (u < sigma).astype(alpha.dtype), (1 - u < sigma).astype(alpha.dtype)

        b, antithetic = jax.vmap(antithetic_bits)(sample_keys(key, num_samples))  # (L, *alpha.shape) each
        # Each pair's categorical samples: the class of each variable's first success, one-hot.
        classes = lambda bits: jnp.take_along_axis(permutation[None], first_success(bits)[..., None], axis=-1)[..., 0]
        one_hot = lambda bits: jax.nn.one_hot(classes(bits), num_classes, dtype=alpha.dtype)

        def logit_gradient(costs, antithetic_costs):
            alpha_grads = jax.vmap(pair_logit_gradient, in_axes=(None, 0, 0, 0, 0))(alpha, b, antithetic, costs,
                                                                                   antithetic_costs)
            return alpha_vjp(jnp.mean(alpha_grads, axis=0))[0]

        return antithetic_pairs_estimate(objective, params, state, one_hot(b), one_hot(antithetic), logit_gradient)
