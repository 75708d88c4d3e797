"""Monte Carlo gradient estimators in JAX behind one interface, ``estimators.grad``.

    import estimators as est
    obj = est.Objective(dist=lambda p: est.Normal(p["mu"], p["sigma"]), cost=lambda p, x: jnp.sum(x**2))
    g = est.grad(obj, est.get("score_function"), num_samples=16)
    grads = g(params, key=jax.random.key(0))

Every estimator lives in its own module and registers itself (:func:`estimators.registry.register`);
importing the package imports them all, and exports each registered class under its name.
"""

from estimators import baselines, control_variates, distributions, registry, relaxation
from estimators.base import Estimate, EstimatorInfo, GradientEstimator, estimator_dataclass, sample_keys, static
from estimators.distributions import *  # noqa: F403  (every distribution, listed in its __all__)
from estimators.importance_weighted import ImportanceWeightedObjective
from estimators.interface import StatefulGrad, grad, grad_with_state, value_and_grad, value_and_grad_with_state
from estimators.objective import Objective
from estimators.registry import get, names, options

registry.discover()
globals().update(registry.classes())

__all__ = [
    *distributions.__all__,
    *registry.classes(),
    "Estimate",
    "EstimatorInfo",
    "GradientEstimator",
    "ImportanceWeightedObjective",
    "Objective",
    "StatefulGrad",
    "baselines",
    "control_variates",
    "distributions",
    "estimator_dataclass",
    "get",
    "grad",
    "grad_with_state",
    "names",
    "options",
    "registry",
    "relaxation",
    "sample_keys",
    "static",
    "value_and_grad",
    "value_and_grad_with_state",
]
