"""The Bernoulli distribution, parameterized by logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.distributions.base import Distribution, float_dtype


class Bernoulli(Distribution):
    r"""Independent binary coordinates, :math:`b_i \sim \mathrm{Bernoulli}(\sigma(\ell_i))`.

    Samples are floats in {0, 1} with the shape of ``logits``.  The log mass is written with
    ``log_sigmoid`` of the logits, :math:`b \log\sigma(\ell) + (1 - b)\log\sigma(-\ell)`, rather than
    through probabilities, which would round to 0 or 1 for large logits and lose the gradient.
    """

    discrete = True

    def __init__(self, logits):
        self.logits = jnp.asarray(logits, float_dtype(logits))

    @property
    def _defining_parameter(self):
        return self.logits

    @property
    def probs(self):
        return jax.nn.sigmoid(self.logits)

    def _draw(self, key):
        return jax.random.bernoulli(key, self.probs).astype(self.dtype)

    def log_prob(self, x):
        return jnp.sum(x * jax.nn.log_sigmoid(self.logits) + (1 - x) * jax.nn.log_sigmoid(-self.logits))
