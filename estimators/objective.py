"""The objective every estimator differentiates: an expectation of a cost under a distribution."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from estimators.distributions import Distribution

Params = Any  # a pytree of float arrays


@dataclasses.dataclass(frozen=True)
class Objective:
    r"""The objective :math:`F(\theta) = \mathbb{E}_{x \sim q(x; \theta)}[f(\theta, x)]`.

    Args:
      dist: maps the parameters :math:`\theta` (any pytree of float arrays) to a
        :class:`~estimators.Distribution`, :math:`q(\cdot; \theta)`.
      cost: maps the parameters and ONE sample to a scalar, :math:`f(\theta, x)`.  It may depend on
        :math:`\theta` directly (an ELBO does); every estimator then adds the direct term
        :math:`\mathbb{E}[\nabla_\theta f(\theta, x)]`.

    Example::

        obj = Objective(
            dist=lambda p: Normal(loc=p["mu"], scale=jnp.exp(p["log_sigma"])),
            cost=lambda p, x: jnp.sum(x ** 2),
        )
    """

    dist: Callable[[Params], Distribution]
    cost: Callable[[Params, jax.Array], jax.Array]

    def __post_init__(self):
        for field in ("dist", "cost"):
            if not callable(getattr(self, field)):
                raise TypeError(
                    f"Objective.{field} must be a function, got {type(getattr(self, field)).__name__}. "
                    "Write Objective(dist=lambda params: Normal(...), cost=lambda params, x: ...)."
                )

    def distribution(self, params: Params) -> Distribution:
        """``dist(params)``, checked to be a :class:`Distribution`."""
        dist = self.dist(params)
        if not isinstance(dist, Distribution):
            raise TypeError(
                f"Objective.dist must return an estimators distribution (Normal, Bernoulli, ...), got "
                f"{type(dist).__name__}."
            )
        return dist

    def costs(self, params: Params, samples: jax.Array) -> jax.Array:
        """The cost of each sample along the leading axis of ``samples``: a vector of length L."""
        num_samples = samples.shape[0]
        costs = jax.vmap(self.cost, in_axes=(None, 0))(params, samples)
        if jnp.shape(costs) != (num_samples,):
            raise ValueError(
                f"Objective.cost must return a scalar for one sample, but returned shape "
                f"{jnp.shape(costs)[1:]}. Reduce it inside cost (for example with jnp.sum); the "
                "estimators average over samples themselves."
            )
        return costs
