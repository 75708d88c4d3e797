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

import dataclasses

import jax
import jax.numpy as jnp

from estimators.straight_through import _Tempered


@dataclasses.dataclass(frozen=True)
class GumbelRao(_Tempered):
    r"""Gumbel-Rao: the hard sample forward, the mean over K conditional noise draws of the relaxed
    sample's Jacobian backward.  Biased (as straight-through Gumbel).  See :mod:`estimators.gumbel_rao`."""

    num_conditional_samples: int = 10
    name = "gumbel_rao"

    def __post_init__(self):
        super().__post_init__()
        count = self.num_conditional_samples
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(
                f"gumbel_rao needs a positive integer num_conditional_samples K (the conditional noise draws "
                f"averaged per sample; 10 to 100 is common), got {count!r}."
            )

    def _surrogate_sample(self, dist, key):
        noise_key, conditional_key = jax.random.split(key)
        hard = jax.lax.stop_gradient(dist.hard(dist.noisy_logits(noise_key)))
        conditional_keys = jax.random.split(conditional_key, self.num_conditional_samples)
        noise = jax.lax.stop_gradient(
            jax.vmap(lambda k: dist.conditional_noisy_logits(k, hard) - dist.logits)(conditional_keys)
        )
        relaxed = jnp.mean(jax.vmap(lambda g: dist.soft(dist.logits + g, self.temperature))(noise), axis=0)
        return hard + relaxed - jax.lax.stop_gradient(relaxed), hard
