r"""Decoupled straight-through Gumbel-Softmax: one temperature for the forward sample, another for the backward pass.

Straight-through Gumbel-Softmax ties the forward pass's sample and the backward pass's relaxation to one
temperature.  Decoupled ST (Shah et al. 2024) gives each its own, with the temperature dividing the logits
only (not the noise), so that the forward one changes which classes are drawn.  With one Gumbel draw g per
sample (logistic noise u for a Bernoulli), a forward temperature :math:`\tau_f` and a backward one
:math:`\tau_b`,

.. math::

    D = \mathrm{onehot}\big(\arg\max_k(\ell_k/\tau_f + g_k)\big), \qquad
    s = \mathrm{softmax}(\ell/\tau_b + g), \qquad
    \hat g_\theta = \nabla_\theta f\big(\theta, D + s - \mathrm{sg}(s)\big),

so the logit gradient is :math:`J(s)\,\nabla_x f(\theta, x)|_{x = D}/\tau_b`, with
:math:`J(s) = \mathrm{diag}(s) - ss^\top` (for a Bernoulli, :math:`b = \mathbb 1[\ell/\tau_f + u > 0]` and
:math:`\sigma'(\ell/\tau_b + u)/\tau_b`).  D is a draw from the tempered distribution
:math:`\mathrm{softmax}(\ell/\tau_f)`: :math:`\tau_f > 1` explores more than the model, :math:`\tau_f < 1`
less, and only :math:`\tau_f = 1` draws from the model itself.  At :math:`\tau_f = \tau_b = 1` this is
``straight_through_gumbel``, draw for draw; at other equal temperatures it is the single-temperature
method in the authors' parameterization, softmax(ℓ/τ + g), which is not Jang et al.'s softmax((ℓ + g)/τ).

Biased for :math:`\nabla_\theta E_{\mathrm{softmax}(\ell)}[f]` at every temperature, and its bias is
measured against the exact gradient (the Bernoulli toy's expectation by quadrature,
``experiments/problems/discrete.py``).  The value is the cost at the forward samples weighted by
:math:`p_\theta(D)/p_{\tau_f}(D)` (per example with a plate): unbiased for the objective at every
:math:`\tau_f`, and the plain mean cost at :math:`\tau_f = 1`.  One cost evaluation and one backward pass per
sample.  Options ``forward_temperature`` (τ_f) and ``temperature`` (τ_b, the relaxation's temperature, as
for the other relaxations); both are pytree leaves.  Defaults τ_f = 1.6, τ_b = 1.3, the configuration of the
authors' bias–variance analysis against exact gradients (a categorical VAE); their grid searches find the
best pair off the diagonal τ_f = τ_b, and on different sides of it for different models, so tune both.
With independent examples the per-example costs are summed; each example's sample reaches only its own cost.

Reference: Shah, Yan, Mozer & Liu, *Improving Discrete Optimisation Via Decoupled Straight-Through
Gumbel-Softmax* (arXiv 2410.13331, 2024; v2: *... Decoupled Straight-Through Estimator*).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.base import (
    EstimatorInfo,
    GradientEstimator,
    check_option,
    estimator_dataclass,
    sample_keys,
    surrogate_estimate,
)
from estimators.distributions import Bernoulli, Categorical
from estimators.registry import register
from estimators.relaxation import check_temperature, unsupported


def tempered(dist, temperature):
    """The distribution with logits ℓ/τ (a Bernoulli or a Categorical; ``-inf`` logits stay masked)."""
    return type(dist)(dist.logits / temperature)


def log_weight_elements(dist, proposal, sample: jax.Array) -> jax.Array:
    """:math:`\\log p(x) - \\log q(x)` per independent coordinate of ``sample`` (per variable for a categorical),
    written so that a masked class (logit ``-inf`` in both, never drawn) contributes 0, not NaN."""
    if isinstance(dist, Categorical):
        ratio = jax.nn.log_softmax(dist.logits, axis=-1) - jax.nn.log_softmax(proposal.logits, axis=-1)
        return jnp.sum(jnp.where(sample > 0, ratio, 0.0), axis=-1)
    if isinstance(dist, Bernoulli):
        return jnp.where(sample > 0, jax.nn.log_sigmoid(dist.logits) - jax.nn.log_sigmoid(proposal.logits),
                         jax.nn.log_sigmoid(-dist.logits) - jax.nn.log_sigmoid(-proposal.logits))
    raise TypeError(f"no tempered proposal for {type(dist).__name__}")


@register("decoupled_straight_through", family="relaxation")
@estimator_dataclass
class DecoupledStraightThrough(GradientEstimator):
    r"""Decoupled straight-through Gumbel-Softmax: :math:`D = \mathrm{onehot}(\arg\max(\ell/\tau_f + g))`
    forward, :math:`s = \mathrm{softmax}(\ell/\tau_b + g)` backward, :math:`\nabla_\theta f(\theta, D + s -
    \mathrm{sg}(s))`.  Biased; options ``forward_temperature`` (τ_f) and ``temperature`` (τ_b).  See
    :mod:`estimators.decoupled_straight_through`."""

    forward_temperature: float = 1.6
    temperature: float = 1.3
    info = EstimatorInfo("decoupled_straight_through", unbiased=False, separable=True)

    def __post_init__(self):
        check_temperature(self)
        check_option(self, "forward_temperature", lambda t: t > 0,
                     "a positive forward temperature τ_f (1 draws from the model itself)")

    def supports(self, dist):
        return unsupported(dist)

    def estimate(self, objective, params, key, num_samples, state):
        keys = sample_keys(key, num_samples)

        def surrogate(p):
            dist = objective.distribution(p)
            forward, backward = tempered(dist, self.forward_temperature), tempered(dist, self.temperature)

            def one_sample(k):  # one Gumbel (logistic) draw g, shared by both passes
                noise = type(dist)(jnp.zeros_like(dist.logits)).noisy_logits(k)
                hard = jax.lax.stop_gradient(forward.hard(forward.logits + noise))
                soft = backward.soft(backward.logits + noise, 1.0)
                return hard + soft - jax.lax.stop_gradient(soft), hard

            relaxed, hard = jax.vmap(one_sample)(keys)
            elements = jax.vmap(lambda x: log_weight_elements(dist, forward, x))(jax.lax.stop_gradient(hard))
            log_weights = jnp.sum(elements, axis=tuple(range(1 + objective.batch_ndims, elements.ndim)))
            weighted = jnp.exp(jax.lax.stop_gradient(log_weights)) * objective.costs(p, hard)
            value = jnp.mean(objective.sum_examples(weighted))
            return jnp.mean(objective.sum_examples(objective.costs(p, relaxed))), value

        return surrogate_estimate(surrogate, params, state)
