"""The categorical distribution over one-hot vectors, parameterized by logits, with its relaxation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.distributions.base import Distribution, float_dtype, positive_temperature


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
    event_ndims = 1

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

    def noisy_logits(self, key):
        r""":math:`z = \ell + g`, g ~ Gumbel(0, 1) per class; the sample is the one-hot argmax of z."""
        return self.logits + jax.random.gumbel(key, self.event_shape, self.dtype)

    def conditional_noisy_logits(self, key, sample):
        r""":math:`\tilde z \sim p(z \mid b)`, z = normalized logits + Gumbel noise, given its argmax b.

        With :math:`E_k = -\log v_k`, v ~ Uniform(0, 1)^K, and p = softmax(ℓ): the maximum is
        :math:`\tilde z_b = -\log E_b` (a standard Gumbel: the maximum's law does not depend on which
        class wins), and :math:`\tilde z_k = -\log(E_k / p_k + E_b)` for k ≠ b, Gumbels with location
        :math:`\log p_k` truncated to :math:`(-\infty, \tilde z_b)` (the conditional sample of Tucker et
        al. 2017 and Grathwohl et al. 2018); adding :math:`\log\sum_k e^{\ell_k}` puts them in the frame
        of :meth:`noisy_logits`, z = ℓ + g."""
        tiny = jnp.finfo(self.dtype).tiny
        v = jax.random.uniform(key, self.event_shape, self.dtype, minval=tiny, maxval=1.0)
        log_exponentials = jnp.log(-jnp.log(v))  # log E_k
        log_winner = jnp.sum(sample * log_exponentials, axis=-1, keepdims=True)  # log E_b
        others = -jnp.logaddexp(log_exponentials - jax.nn.log_softmax(self.logits, axis=-1), log_winner)
        normalized = jnp.where(sample > 0, -log_winner, others)
        return normalized + jax.nn.logsumexp(self.logits, axis=-1, keepdims=True)

    def hard(self, noisy_logits):
        return jax.nn.one_hot(jnp.argmax(noisy_logits, axis=-1), self.num_categories, dtype=noisy_logits.dtype)

    def soft(self, noisy_logits, temperature):
        return jax.nn.softmax(noisy_logits / positive_temperature(temperature), axis=-1)

    def _draw(self, key):
        return self.hard(self.noisy_logits(key))

    def relaxed_sample(self, key, temperature):
        r"""The Concrete (Gumbel-Softmax) sample :math:`\mathrm{softmax}((\ell + g)/\tau)`, g ~ Gumbel."""
        return self.soft(self.noisy_logits(key), temperature)

    def _log_prob_elements(self, x):
        return x * jax.nn.log_softmax(self.logits, axis=-1)
