r"""Gapped straight-through (GST): straight-through through logits moved so that the sample is their argmax.

Straight-Through Gumbel-Softmax differentiates a relaxation whose argmax is the sample, at the price of the
Gumbel noise's variance; GST (Fan et al. 2022) keeps that property without the noise.  Given the sample D
(one-hot, drawn from :math:`\pi = \mathrm{softmax}(\ell)`), it moves the logits by a deterministic,
non-differentiated offset m: the sampled class is raised to the largest logit and every other class is
lowered, where needed, to at least a gap κ below it,

.. math::

    m_k = \begin{cases} \max_j \ell_j - \ell_k & k = D \\ -\big(\ell_k - \max_j \ell_j + \kappa\big)_+ & k \ne D,
    \end{cases}
    \qquad \hat g_\ell = J\big(\mathrm{softmax}((\ell + m)/\tau)\big)\,\tfrac1\tau\, \nabla_x f(\theta, x)|_{x = D},

with :math:`J(p) = \mathrm{diag}(p) - pp^\top`.  The forward value is the hard sample; the estimate is a
function of the sample alone (one cost evaluation and one backward pass per sample, no extra noise).  The
authors' experiments, and ReinMax's comparison, use κ = 1 ("GST-1.0"), the default here.  A Bernoulli is the
two-class categorical with logits (0, ℓ).  Biased: its expectation is :math:`\sum_D \pi_D \hat g(D)`, which
the toys' enumeration gives exactly (``experiments/problems/discrete.py``).  With independent examples the
per-example costs are summed; each example's sample reaches only its own cost.

Reference: Fan, Qi, Tao, Zhang, Yin & Zhang, *Training Discrete Deep Generative Models via Gapped
Straight-Through Estimator*, ICML 2022 (and the reference code of the ReinMax paper, which reuses it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.base import EstimatorInfo, GradientEstimator, check_option, estimator_dataclass
from estimators.registry import register
from estimators.relaxation import check_temperature, one_hot_surrogate, relaxed_cost_estimate, unsupported


def gapped_logits(logits: jax.Array, one_hot: jax.Array, gap) -> jax.Array:
    """``logits`` plus GST's offset (not differentiated): the sampled class at the largest logit, the others
    at least ``gap`` below it.  Masked classes (logit −inf, never sampled) stay at −inf."""
    fixed = jax.lax.stop_gradient(logits)
    top = jnp.max(fixed, axis=-1, keepdims=True)
    sampled = one_hot > 0
    offset = jnp.where(sampled, top - jnp.where(sampled, fixed, top), -jnp.maximum(fixed - top + gap, 0.0))
    return logits + jax.lax.stop_gradient(offset)


def gapped_straight_through_sample(logits: jax.Array, one_hot: jax.Array, temperature, gap) -> jax.Array:
    """The one-hot ``one_hot`` forward, the softmax of the gapped logits over τ backward."""
    soft = jax.nn.softmax(gapped_logits(logits, one_hot, gap) / temperature, axis=-1)
    return one_hot + soft - jax.lax.stop_gradient(soft)


@register("gapped_straight_through", family="relaxation")
@estimator_dataclass
class GappedStraightThrough(GradientEstimator):
    r"""Gapped straight-through: straight-through through the logits moved so that the sample is their
    argmax with a gap κ to the others.  Biased; options ``temperature`` (τ) and ``gap`` (κ).  See
    :mod:`estimators.gapped_straight_through`."""

    temperature: float = 1.0
    gap: float = 1.0
    info = EstimatorInfo("gapped_straight_through", unbiased=False, separable=True)

    def __post_init__(self):
        check_temperature(self)
        check_option(self, "gap", lambda g: g >= 0, "a non-negative gap κ between the sampled logit and the others "
                     "(1 is the authors' choice)")

    def supports(self, dist):
        return unsupported(dist)

    def estimate(self, objective, params, key, num_samples, state):
        return relaxed_cost_estimate(objective, params, key, num_samples, state, self._surrogate_sample)

    def _surrogate_sample(self, dist, key):
        return one_hot_surrogate(dist, key, lambda logits, one_hot: gapped_straight_through_sample(
            logits, one_hot, self.temperature, self.gap))
