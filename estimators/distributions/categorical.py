"""The categorical distribution over one-hot vectors, parameterized by logits, with its relaxation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.distributions.base import Distribution, float_dtype


class Categorical(Distribution):
    r"""Independent categorical variables over the last axis of ``logits``, as one-hot float vectors.

    With ``logits`` of shape ``(..., K)``, a sample has the same shape and is one-hot along the last
    axis: :math:`x \sim \mathrm{Categorical}(\mathrm{softmax}(\ell))`, drawn by the Gumbel-max
    trick :math:`x = \mathrm{onehot}(\arg\max_k (\ell_k + g_k))`, so that the relaxed sample
    :math:`\mathrm{softmax}((\ell + g)/\tau)` of the same key has the same argmax.  One-hot samples
    let a cost be written as a linear map of the sample, and let relaxations substitute a point of the
    simplex.
    """

    discrete = True
    relaxable = True

    def __init__(self, logits):
        logits = jnp.asarray(logits, float_dtype(logits))
        if logits.ndim == 0:
            raise ValueError(
                "Categorical needs logits with at least one axis (the K categories are the last axis); "
                "got a scalar. For a binary variable use Bernoulli(logits)."
            )
        self.logits = logits

    @property
    def _defining_parameter(self):
        return self.logits

    @property
    def num_categories(self) -> int:
        return self.logits.shape[-1]

    @property
    def probs(self):
        return jax.nn.softmax(self.logits, axis=-1)

    def _noisy_logits(self, key):
        return self.logits + jax.random.gumbel(key, self.event_shape, self.dtype)

    def _draw(self, key):
        index = jnp.argmax(self._noisy_logits(key), axis=-1)
        return jax.nn.one_hot(index, self.num_categories, dtype=self.dtype)

    def relaxed_sample(self, key, temperature):
        r"""The Concrete (Gumbel-Softmax) sample :math:`\mathrm{softmax}((\ell + g)/\tau)`, g ~ Gumbel."""
        return jax.nn.softmax(self._noisy_logits(key) / temperature, axis=-1)

    def log_prob(self, x):
        return jnp.sum(x * jax.nn.log_softmax(self.logits, axis=-1))
