"""The interface every gradient estimator implements, and the pieces they share."""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from estimators.distributions import Distribution
from estimators.objective import Objective, Params

PyTree = Any


class Estimate(NamedTuple):
    """What one call of an estimator returns."""

    value: jax.Array  #: the L-sample Monte Carlo estimate of the objective F(θ)
    grads: PyTree  #: the estimate of ∇θ F(θ): a pytree like the parameters
    state: PyTree  #: the estimator's next state; () for stateless estimators


class GradientEstimator(abc.ABC):
    """A Monte Carlo estimator of ∇θ E_{x ~ q(x; θ)}[f(θ, x)].

    Subclasses are small frozen dataclasses whose fields are the estimator's options.  They implement
    :meth:`estimate`, and :meth:`incompatibility` where they serve only some distributions.  Users call
    them through :func:`estimators.grad`, which validates the inputs first.
    """

    #: The registry name, used by the CLI, in result files and in plots.
    name: ClassVar[str]
    #: True where the estimator carries state between calls (use ``grad_with_state``).
    stateful: ClassVar[bool] = False
    #: The smallest number of samples the estimator is defined for.
    min_num_samples: ClassVar[int] = 1
    #: False for estimators biased by design (straight-through, relaxations); their bias is measured.
    unbiased: ClassVar[bool] = True

    def incompatibility(self, dist: Distribution) -> str | None:
        """Why this estimator cannot serve ``dist``, with what would; None where it can."""
        del dist
        return None

    def init(self, params: Params) -> PyTree:
        """The initial state; stateless estimators have the empty state ``()``."""
        del params
        return ()

    def init_state(self, objective: Objective, params: Params) -> PyTree:
        """The initial state for ``objective`` at ``params``: ``init(params)``, unless the state depends
        on the objective (RELAX's network is sized by the samples).  Users reach it as ``init(params)``
        from :func:`estimators.grad_with_state`."""
        del objective
        return self.init(params)

    def cost_evaluations(self, num_samples: int, dist: Distribution, batch_ndims: int = 0) -> int:
        """How many times one estimate evaluates the cost (or its gradient) of a whole sample (one
        evaluation gives every example's cost, with ``batch_ndims`` leading axes of examples)."""
        del dist, batch_ndims
        return num_samples

    @abc.abstractmethod
    def estimate(
        self, objective: Objective, params: Params, key: jax.Array, num_samples: int, state: PyTree
    ) -> Estimate:
        """One estimate from ``num_samples`` samples drawn with keys ``fold_in(key, i)``."""


def sample_keys(key: jax.Array, num_samples: int) -> jax.Array:
    """One key per sample, ``fold_in(key, i)``: sample i is the same whatever the number of samples."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(num_samples))


def surrogate_estimate(surrogate, params: Params, state: PyTree = ()) -> Estimate:
    """The estimate whose gradient is that of a surrogate objective.

    ``surrogate(params)`` returns ``(s, value)``: a scalar ``s`` whose gradient is the estimator
    (its value is meaningless) and the Monte Carlo estimate of the objective.  This is the surrogate
    loss of stochastic computation graphs (Schulman et al. 2015): one reverse pass over all samples.
    """
    (_, value), grads = jax.value_and_grad(surrogate, has_aux=True)(params)
    return Estimate(value=value, grads=grads, state=state)
