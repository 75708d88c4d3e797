"""The interface every distribution of the library implements."""

from __future__ import annotations

import abc
from typing import ClassVar

import jax
import jax.numpy as jnp


class Distribution(abc.ABC):
    """A distribution over one sample: an array whose shape is ``event_shape``.

    ``log_prob`` returns the joint log density (or mass) of one whole sample as a scalar, so an
    estimator can treat every distribution alike.  ``sample`` never carries a gradient with respect to
    the distribution's parameters; ``rsample`` does, where the distribution is reparameterizable.
    """

    #: True where ``rsample`` returns a sample differentiable in the parameters.
    reparameterizable: ClassVar[bool] = False
    #: True for distributions over a discrete set (Bernoulli, categorical).
    discrete: ClassVar[bool] = False
    #: True where ``probs`` and ``relaxed_sample`` exist: a discrete distribution with a continuous
    #: relaxation (Concrete / Gumbel-Softmax), as the straight-through family needs.
    relaxable: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def _defining_parameter(self) -> jax.Array:
        """The parameter array whose shape and dtype a sample has (after broadcasting)."""

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one sample."""
        return self._defining_parameter.shape

    @property
    def dtype(self) -> jnp.dtype:
        """The floating dtype of samples and log densities."""
        return self._defining_parameter.dtype

    @abc.abstractmethod
    def _draw(self, key: jax.Array) -> jax.Array:
        """One sample, possibly differentiable in the parameters."""

    @abc.abstractmethod
    def log_prob(self, x: jax.Array) -> jax.Array:
        """The joint log density of one sample ``x``: a scalar."""

    def sample(self, key: jax.Array) -> jax.Array:
        """One sample, with no gradient flowing to the parameters."""
        return jax.lax.stop_gradient(self._draw(key))

    def rsample(self, key: jax.Array) -> jax.Array:
        """One reparameterized sample, differentiable in the parameters."""
        if not self.reparameterizable:
            raise ValueError(
                f"{type(self).__name__} has no reparameterized sampler (rsample): its samples are not a "
                "differentiable function of its parameters. Use sample() with a score-function estimator."
            )
        return self._draw(key)

    def relaxed_sample(self, key: jax.Array, temperature) -> jax.Array:
        """A continuous relaxation of ``sample(key)``, differentiable in the parameters."""
        raise ValueError(
            f"{type(self).__name__} has no continuous relaxation; relaxations exist for Bernoulli and "
            "Categorical."
        )

    # The relaxation's pieces, for the estimators that couple a discrete sample with its relaxation
    # (REBAR, RELAX, Gumbel-Rao): the noisy logits z whose hard map is a sample, z given that sample,
    # and the two maps from z.

    def noisy_logits(self, key: jax.Array) -> jax.Array:
        """z = logits + noise, with ``hard(z)`` distributed as ``sample(key)`` (the same draw)."""
        raise self._not_relaxable()

    def conditional_noisy_logits(self, key: jax.Array, sample: jax.Array) -> jax.Array:
        """A draw of z from its law given ``hard(z) == sample``, differentiable in the parameters."""
        raise self._not_relaxable()

    def hard(self, noisy_logits: jax.Array) -> jax.Array:
        """The discrete sample that noisy logits z map to."""
        raise self._not_relaxable()

    def soft(self, noisy_logits: jax.Array, temperature) -> jax.Array:
        """The relaxed sample that noisy logits z map to at ``temperature``."""
        raise self._not_relaxable()

    def _not_relaxable(self):
        return ValueError(
            f"{type(self).__name__} has no continuous relaxation; relaxations exist for Bernoulli and "
            "Categorical."
        )

    def __repr__(self):
        return f"{type(self).__name__}(event_shape={self.event_shape}, dtype={self.dtype})"


def float_dtype(*arrays) -> jnp.dtype:
    """The floating dtype shared by the parameters: theirs if floating, JAX's default float otherwise."""
    dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype
