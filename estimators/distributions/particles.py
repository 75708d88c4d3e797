"""K independent draws of one distribution, stacked: the particles of an importance-weighted bound."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp

from estimators.distributions.base import Distribution


class Particles(Distribution):
    """``num_particles`` independent draws of ``proposal``, stacked along the sample axis ``axis``.

    A sample has the proposal's shape with an axis of length K inserted at ``axis``; draw k is
    ``proposal``'s sample from the k-th key of ``jax.random.split(key, K)``, and the log density of a
    sample is the sum of its K draws' log densities.  The axes before ``axis`` are the proposal's
    leading axes and may index independent examples (``max_batch_ndims == axis``): an importance-weighted
    objective with ``batch_ndims = B`` puts its particles at ``axis = B``, so a sample is
    ``(*examples, K, *latent)``.  It is reparameterizable and discrete as the proposal is, and offers no
    relaxation (a relaxed particle has no density under a discrete proposal).
    """

    static_arguments = ("num_particles", "axis")

    def __init__(self, proposal: Distribution, num_particles: int, axis: int = 0):
        if not isinstance(proposal, Distribution):
            raise TypeError(
                f"Particles needs an estimators distribution as its proposal, got {type(proposal).__name__}.")
        count = None if isinstance(num_particles, bool) else _as_int(num_particles)
        if count is None or count < 1:
            raise ValueError(
                f"num_particles must be a positive integer (K draws of the proposal), got {num_particles!r}.")
        position = None if isinstance(axis, bool) else _as_int(axis)
        if position is None or not 0 <= position <= proposal.max_batch_ndims:
            raise ValueError(
                f"Particles axis must be an integer between 0 and {proposal.max_batch_ndims} (the proposal's "
                f"{type(proposal).__name__} samples have shape {proposal.event_shape}), got {axis!r}.")
        self.proposal = proposal
        self.num_particles = count
        self.axis = position

    @property
    def reparameterizable(self) -> bool:  # type: ignore[override]
        return self.proposal.reparameterizable

    @property
    def discrete(self) -> bool:  # type: ignore[override]
        return self.proposal.discrete

    @property
    def support_depends_on_parameters(self) -> bool:  # type: ignore[override]
        return self.proposal.support_depends_on_parameters

    @property
    def event_ndims(self) -> int:  # type: ignore[override]
        return self.proposal.event_ndims

    @property
    def _defining_parameter(self) -> jax.Array:
        return self.proposal._defining_parameter

    @property
    def event_shape(self) -> tuple[int, ...]:
        shape = self.proposal.event_shape
        return (*shape[: self.axis], self.num_particles, *shape[self.axis :])

    @property
    def dtype(self) -> jnp.dtype:
        return self.proposal.dtype

    @property
    def max_batch_ndims(self) -> int:
        return self.axis

    def particle(self, x: jax.Array, k) -> jax.Array:
        """Draw k of the sample ``x``: an array of the proposal's shape."""
        return jnp.take(x, k, axis=self.axis)

    def _draw(self, key: jax.Array) -> jax.Array:
        draws = jax.vmap(self.proposal._draw)(jax.random.split(key, self.num_particles))
        return jnp.moveaxis(draws, 0, self.axis)

    def _log_prob_elements(self, x: jax.Array) -> jax.Array:
        elements = jax.vmap(self.proposal._log_prob_elements, in_axes=self.axis)(x)  # (K, *leading axes)
        return jnp.moveaxis(elements, 0, self.axis)

    def __repr__(self):
        return f"Particles({self.proposal!r}, num_particles={self.num_particles}, axis={self.axis})"


def _as_int(value) -> int | None:
    try:
        return operator.index(value)
    except TypeError:
        return None
