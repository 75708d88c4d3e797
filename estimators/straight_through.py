r"""Straight-through and Gumbel-Softmax estimators for Bernoulli and categorical distributions.

All three evaluate the cost at a sample that carries a gradient it would not otherwise have, and are
biased for the true objective; their bias is measured against the exact gradient, never hidden.

- ``straight_through``: the hard sample b forward, the gradient as if the sample were its
  probabilities backward, :math:`\tilde b = b + p - \mathrm{sg}(p)` (Bengio, Léonard & Courville 2013).
- ``gumbel_softmax``: the cost at the Concrete relaxation
  :math:`z = \mathrm{softmax}((\ell + g)/\tau)` (for a Bernoulli :math:`\sigma((\ell + u)/\tau)`,
  u logistic); unbiased for the relaxed objective :math:`E[f(z)]`, biased for E[f(b)], with bias
  vanishing as τ → 0 while the variance grows (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017).
- ``straight_through_gumbel``: the hard sample :math:`b = \arg\max(\ell + g)` forward and the relaxed
  sample's gradient backward, :math:`b + z - \mathrm{sg}(z)` (Jang et al. 2017, "ST Gumbel-Softmax").

The value returned with the gradient is always the cost at the hard samples, an unbiased estimate of
the objective.  Assumptions: the cost is differentiable in x (on the relaxed domain) and accepts
non-binary inputs.  With independent examples the per-example costs are summed; each example's
relaxed sample reaches only its own cost.
"""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp

from estimators.base import GradientEstimator, sample_keys, surrogate_estimate
from estimators.distributions import Categorical


def check_temperature(estimator) -> None:
    """Check that a frozen estimator's ``temperature`` is a positive number, and store it as a float."""
    temperature = estimator.temperature
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise ValueError(
            f"{estimator.name} needs a positive temperature τ (the relaxation's sharpness; 0.5 to 1 is "
            f"common), got {temperature!r}."
        )
    object.__setattr__(estimator, "temperature", float(temperature))


def relaxation_incompatibility(dist) -> str | None:
    """Why an estimator that needs the continuous relaxation cannot serve ``dist``; None where it can."""
    if dist.relaxable:
        return None
    return (
        f"it needs a discrete distribution with a continuous relaxation (Bernoulli or Categorical), "
        f"and {type(dist).__name__} is not one"
    )


class _Relaxation(GradientEstimator):
    """The shared checks and surrogate; subclasses choose the sample the cost sees."""

    unbiased = False

    def incompatibility(self, dist):
        return relaxation_incompatibility(dist)

    def _surrogate_sample(self, dist, key):
        """(the sample the cost sees, differentiable in the parameters; the hard sample)."""
        raise NotImplementedError

    def estimate(self, objective, params, key, num_samples, state):
        keys = sample_keys(key, num_samples)

        def surrogate(p):
            dist = objective.distribution(p)
            relaxed, hard = jax.vmap(lambda k: self._surrogate_sample(dist, k))(keys)
            value = jnp.mean(objective.sum_examples(objective.costs(p, jax.lax.stop_gradient(hard))))
            return jnp.mean(objective.sum_examples(objective.costs(p, relaxed))), value

        return surrogate_estimate(surrogate, params, state)


def _hard(dist, relaxed):
    """The discrete sample a relaxed sample rounds to (same noise, so the same draw)."""
    if isinstance(dist, Categorical):
        return jax.nn.one_hot(jnp.argmax(relaxed, axis=-1), relaxed.shape[-1], dtype=relaxed.dtype)
    return (relaxed > 0.5).astype(relaxed.dtype)


@dataclasses.dataclass(frozen=True)
class StraightThrough(_Relaxation):
    r"""Straight-through: :math:`\nabla_\theta F \approx \frac1L\sum_i \nabla_\theta
    f(\theta, b_i + p_\theta - \mathrm{sg}(p_\theta))`, b_i the hard samples.  Biased.
    See :mod:`estimators.straight_through`."""

    name = "straight_through"

    def _surrogate_sample(self, dist, key):
        hard = jax.lax.stop_gradient(dist.sample(key))
        return hard + dist.probs - jax.lax.stop_gradient(dist.probs), hard


@dataclasses.dataclass(frozen=True)
class _Tempered(_Relaxation):
    """A relaxation with a temperature τ > 0, checked at construction."""

    temperature: float = 1.0

    def __post_init__(self):
        check_temperature(self)


@dataclasses.dataclass(frozen=True)
class GumbelSoftmax(_Tempered):
    r"""Gumbel-Softmax (Concrete): :math:`\frac1L\sum_i \nabla_\theta f(\theta, z_i)`,
    :math:`z_i = \mathrm{softmax}((\ell + g_i)/\tau)`.  Biased for F, unbiased for the relaxed
    objective.  See :mod:`estimators.straight_through`."""

    name = "gumbel_softmax"

    def _surrogate_sample(self, dist, key):
        relaxed = dist.relaxed_sample(key, self.temperature)
        return relaxed, _hard(dist, relaxed)


@dataclasses.dataclass(frozen=True)
class StraightThroughGumbel(_Tempered):
    r"""Straight-through Gumbel-Softmax: the hard sample forward, :math:`b + z - \mathrm{sg}(z)`, the
    relaxed sample's gradient backward.  Biased.  See :mod:`estimators.straight_through`."""

    name = "straight_through_gumbel"

    def _surrogate_sample(self, dist, key):
        relaxed = dist.relaxed_sample(key, self.temperature)
        hard = jax.lax.stop_gradient(_hard(dist, relaxed))
        return hard + relaxed - jax.lax.stop_gradient(relaxed), hard
