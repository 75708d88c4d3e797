"""The Bernoulli distribution, parameterized by logits, with its Concrete relaxation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.distributions.base import Distribution, float_dtype


class Bernoulli(Distribution):
    r"""Independent binary coordinates, :math:`b_i \sim \mathrm{Bernoulli}(\sigma(\ell_i))`.

    Samples are floats in {0, 1} with the shape of ``logits``, drawn as
    :math:`b = \mathbb{1}[\ell + u > 0]` with logistic noise u, so that the relaxed sample
    :math:`\sigma((\ell + u) / \tau)` of the same key rounds to the same b (Maddison et al. 2017,
    Jang et al. 2017).  The log mass is written with ``log_sigmoid`` of the logits,
    :math:`b \log\sigma(\ell) + (1 - b)\log\sigma(-\ell)`, rather than through probabilities,
    which round to 0 or 1 for large logits and lose the gradient.
    """

    discrete = True
    relaxable = True

    def __init__(self, logits):
        self.logits = jnp.asarray(logits, float_dtype(logits))

    @property
    def _defining_parameter(self):
        return self.logits

    @property
    def probs(self):
        return jax.nn.sigmoid(self.logits)

    def _noisy_logits(self, key):
        return self.logits + jax.random.logistic(key, self.event_shape, self.dtype)

    def _draw(self, key):
        return (self._noisy_logits(key) > 0).astype(self.dtype)

    def relaxed_sample(self, key, temperature):
        r"""The binary Concrete sample :math:`\sigma((\ell + u)/\tau)`, u ~ Logistic(0, 1)."""
        return jax.nn.sigmoid(self._noisy_logits(key) / temperature)

    def log_prob(self, x):
        return jnp.sum(x * jax.nn.log_sigmoid(self.logits) + (1 - x) * jax.nn.log_sigmoid(-self.logits))
