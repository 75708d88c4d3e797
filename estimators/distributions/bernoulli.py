"""The Bernoulli distribution, parameterized by logits, with its Concrete relaxation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.distributions.base import Distribution, float_dtype, positive_temperature


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

    def noisy_logits(self, key):
        r""":math:`z = \ell + u`, u ~ Logistic(0, 1); :math:`b = \mathbb{1}[z > 0]`."""
        return self.logits + jax.random.logistic(key, self.event_shape, self.dtype)

    def conditional_noisy_logits(self, key, sample):
        r""":math:`\tilde z \sim p(z \mid b)`: the logistic noise restricted to the side of 0 that b names.

        With v ~ Uniform(0, 1) and :math:`s = 2b - 1`,
        :math:`\tilde z = s\,[\mathrm{softplus}(s\ell + \log v) - \log(1 - v)]`, the inverse CDF of z
        on :math:`z > 0` (b = 1) or :math:`z \le 0` (b = 0), written to stay finite for large logits
        (the conditional sample of Tucker et al. 2017 and Grathwohl et al. 2018)."""
        tiny = jnp.finfo(self.dtype).tiny
        v = jax.random.uniform(key, self.event_shape, self.dtype, minval=tiny, maxval=1.0)
        sign = 2 * sample - 1
        return sign * (jax.nn.softplus(sign * self.logits + jnp.log(v)) - jnp.log1p(-v))

    def hard(self, noisy_logits):
        return (noisy_logits > 0).astype(noisy_logits.dtype)

    def soft(self, noisy_logits, temperature):
        return jax.nn.sigmoid(noisy_logits / positive_temperature(temperature))

    def _draw(self, key):
        return self.hard(self.noisy_logits(key))

    def relaxed_sample(self, key, temperature):
        r"""The binary Concrete sample :math:`\sigma((\ell + u)/\tau)`, u ~ Logistic(0, 1)."""
        return self.soft(self.noisy_logits(key), temperature)

    def _log_prob_elements(self, x):
        return x * jax.nn.log_sigmoid(self.logits) + (1 - x) * jax.nn.log_sigmoid(-self.logits)
