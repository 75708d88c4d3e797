"""The interface every distribution of the library implements."""

from __future__ import annotations

import abc
import inspect
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np


class Distribution(abc.ABC):
    """A distribution over one sample: an array whose shape is ``event_shape``.

    ``log_prob`` returns the joint log density (or mass) of one whole sample as a scalar, so an
    estimator can treat every distribution alike.  ``sample`` never carries a gradient with respect to
    the distribution's parameters; ``rsample`` does, where the distribution is reparameterizable.

    Every distribution of the library factorizes over the leading axes of a sample (all of them, or
    all but the last for the simplex-valued Categorical and Dirichlet, whose last ``event_ndims = 1``
    axis is one indivisible event), so the leading axes may index independent examples:
    ``example_log_prob(x, batch_ndims)`` is the log density of each example, an array of shape
    ``event_shape[:batch_ndims]`` that sums to ``log_prob(x)``.  Sampling and relaxations need no
    change: they act on every example at once.

    Every distribution is a pytree whose leaves are its parameters (the arguments of its constructor,
    stored under their names), so it can be passed to, and returned from, ``jit``, ``vmap`` and
    ``lax.scan``; rebuilding one from its leaves skips the constructor's conversions and checks.
    Constructor arguments named in ``static_arguments`` (a count, an axis) are part of the pytree's
    structure instead.
    """

    #: Constructor arguments that are structure, not parameters: static under ``jit`` and ``vmap``.
    static_arguments: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        static = tuple(cls.static_arguments)
        names = tuple(name for name in inspect.signature(cls.__init__).parameters
                      if name != "self" and name not in static)

        def flatten(dist):
            return tuple(getattr(dist, name) for name in names), tuple(getattr(dist, name) for name in static)

        def unflatten(static_values, parameters):
            dist = object.__new__(cls)
            dist.__dict__.update(zip(names, parameters))
            dist.__dict__.update(zip(static, static_values))
            return dist

        jax.tree_util.register_pytree_node(cls, flatten, unflatten)

    #: True where ``rsample`` returns a sample differentiable in the parameters.
    reparameterizable: ClassVar[bool] = False
    #: True for distributions over a discrete set (Bernoulli, categorical).
    discrete: ClassVar[bool] = False
    #: True where ``probs`` and ``relaxed_sample`` exist: a discrete distribution with a continuous
    #: relaxation (Concrete / Gumbel-Softmax), as the straight-through family needs.
    relaxable: ClassVar[bool] = False
    #: True where the support moves with the parameters (Pareto's [scale, ∞)): the score-to-path identities
    #: that DReG and STL rely on need a fixed support.
    support_depends_on_parameters: ClassVar[bool] = False
    #: Trailing axes of a sample that form one event which does not factorize (a one-hot vector, a
    #: point of the simplex); the leading ``len(event_shape) - event_ndims`` axes may index examples.
    event_ndims: ClassVar[int] = 0

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

    def _log_prob_elements(self, x: jax.Array) -> jax.Array:
        """The log densities of the independent parts of one sample ``x``: an array whose leading
        ``len(event_shape) - event_ndims`` axes are those of ``x`` (any trailing axes are summed).
        Every distribution of the library defines it; one that defines only ``log_prob`` serves
        objectives without a plate."""
        raise NotImplementedError(
            f"{type(self).__name__} defines no per-element log density (_log_prob_elements), so it cannot "
            "serve an Objective with batch_ndims > 0. Define it, returning the log density of each "
            "independent coordinate of x, or use batch_ndims=0."
        )

    def log_prob(self, x: jax.Array) -> jax.Array:
        """The joint log density of one sample ``x``: a scalar."""
        return jnp.sum(self._log_prob_elements(x))

    @property
    def max_batch_ndims(self) -> int:
        """The most leading axes of a sample that can index independent examples."""
        return len(self.event_shape) - self.event_ndims

    def example_log_prob(self, x: jax.Array, batch_ndims: int) -> jax.Array:
        """The log density of each example of one sample ``x`` whose leading ``batch_ndims`` axes index
        independent examples: an array of shape ``event_shape[:batch_ndims]``."""
        if not 0 <= batch_ndims <= self.max_batch_ndims:
            raise ValueError(
                f"batch_ndims={batch_ndims} does not fit a {type(self).__name__} sample of shape "
                f"{self.event_shape}: at most {self.max_batch_ndims} leading axes can index examples."
            )
        elements = self._log_prob_elements(x)
        return jnp.sum(elements, axis=tuple(range(batch_ndims, elements.ndim)))

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


def broadcast_parameters(distribution: str, dtype, positive: tuple[str, ...] = (), **parameters) -> list[jax.Array]:
    """The named parameters as arrays of ``dtype`` broadcast to one shape, or a ValueError that names the
    distribution, each parameter's shape and the fix; those named in ``positive`` are checked to be
    positive where they are concrete (:func:`check_positive`)."""
    arrays = [jnp.asarray(value, dtype) for value in parameters.values()]
    check_positive(distribution, **{name: a for name, a in zip(parameters, arrays) if name in positive})
    try:
        return jnp.broadcast_arrays(*arrays)
    except ValueError:
        shapes = ", ".join(f"{name} of shape {tuple(jnp.shape(a))}" for name, a in zip(parameters, arrays))
        raise ValueError(
            f"{distribution}: {shapes} do not broadcast to one shape (the event shape). Give them the same "
            "shape, or make one a scalar or of a shape that broadcasts (1 along the axes the other varies on)."
        ) from None


def check_positive(distribution: str, **parameters) -> None:
    """A ValueError naming the distribution and the parameter where a concrete parameter has an entry that
    is not positive (zero, negative or NaN: ``Gamma(0, 1)``); traced parameters (under ``jit``, ``vmap``
    or ``grad``) cannot be checked when the program is built and pass."""
    for name, value in parameters.items():
        if isinstance(value, jax.core.Tracer):
            continue
        array = np.asarray(value)
        invalid = ~(array > 0)
        if invalid.any():
            raise ValueError(
                f"{distribution}: {name} must be positive, got {array[invalid].flat[0]}"
                + (f" ({int(invalid.sum())} of its {array.size} entries are not)" if array.size > 1 else "")
                + f". {distribution} with {name} <= 0 (or NaN) is no distribution; for a parameter learned without "
                "constraint, map it through jnp.exp or jax.nn.softplus."
            )


def positive_temperature(temperature):
    """``temperature`` where it is positive, NaN where it is not.  Estimators check a concrete temperature
    when they are built; a traced one (a temperature swept under ``jax.vmap`` or learned) cannot be
    checked then, so a non-positive value makes the relaxed samples, and every estimate from them, NaN
    instead of a wrong number."""
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        return temperature
    temperature = jnp.asarray(temperature)
    return jnp.where(temperature > 0, temperature, jnp.nan)
