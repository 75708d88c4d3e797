r"""The Gumbel-Rao estimator: straight-through Gumbel-Softmax, Rao-Blackwellized over the noise.

Straight-through Gumbel-Softmax sends the hard sample :math:`b = H(z)`, :math:`z = \ell + g`, forward
and the Jacobian of the relaxed sample :math:`\mathrm{softmax}(z/\tau)` (for a Bernoulli
:math:`\sigma(z/\tau)`) backward.  Gumbel-Rao replaces that Jacobian by its conditional expectation
given b, estimated with K draws of the noise given the sample, :math:`\tilde g_k = \tilde z_k - \ell`,
:math:`\tilde z_k \sim p(z \mid b)`:

.. math::

    \hat g = \frac{\partial f}{\partial b}(b)\; \frac1K \sum_{k=1}^K
        \frac{\partial}{\partial \theta}\,\mathrm{softmax}\big((\ell_\theta + \tilde g_k)/\tau\big),

the noise held fixed while the logits move, as in straight-through Gumbel.  It has the same expectation
as straight-through Gumbel at the same temperature (so the same bias, which is measured against the
exact gradient, never hidden) and no larger a variance; K = 1 is straight-through Gumbel in law.  The
cost is evaluated once per sample (with its gradient); the K relaxed samples cost no evaluation of f.
Options: ``temperature`` τ and ``num_conditional_samples`` K.

Assumptions: a Bernoulli or categorical distribution parameterized by logits, a cost differentiable in
x on the relaxed domain.  Biased for the true objective.

Reference: Paulus, Maddison & Krause, *Rao-Blackwellizing the Straight-Through Gumbel-Softmax Gradient
Estimator*, ICLR 2021.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, static
from estimators.registry import register
from estimators.relaxation import check_temperature, relaxed_cost_estimate, unsupported


@register("gumbel_rao", family="conditional_relaxation")
@estimator_dataclass
class GumbelRao(GradientEstimator):
    r"""Gumbel-Rao: the hard sample forward, the mean over K conditional noise draws of the relaxed
    sample's Jacobian backward.  Biased (as straight-through Gumbel).  Options: ``temperature`` τ (a
    pytree leaf) and ``num_conditional_samples`` K (static: it shapes the program).
    See :mod:`estimators.gumbel_rao`."""

    temperature: float = 1.0
    num_conditional_samples: int = static(default=10)
    info = EstimatorInfo("gumbel_rao", unbiased=False, separable=True)

    def __post_init__(self):
        check_temperature(self)
        count = self.num_conditional_samples
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(
                f"gumbel_rao needs a positive integer num_conditional_samples K (the conditional noise draws "
                f"averaged per sample; 10 to 100 is common), got {count!r}."
            )

    def supports(self, dist):
        return unsupported(dist)

    def estimate(self, objective, params, key, num_samples, state):
        return relaxed_cost_estimate(objective, params, key, num_samples, state, self._surrogate_sample)

    def _surrogate_sample(self, dist, key):
        noise_key, conditional_key = jax.random.split(key)
        hard = jax.lax.stop_gradient(dist.hard(dist.noisy_logits(noise_key)))
        conditional_keys = jax.random.split(conditional_key, self.num_conditional_samples)
        noise = jax.lax.stop_gradient(
            jax.vmap(lambda k: dist.conditional_noisy_logits(k, hard) - dist.logits)(conditional_keys)
        )
        relaxed = jnp.mean(jax.vmap(lambda g: dist.soft(dist.logits + g, self.temperature))(noise), axis=0)
        return hard + relaxed - jax.lax.stop_gradient(relaxed), hard
