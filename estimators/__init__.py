"""Monte Carlo gradient estimators in JAX behind one interface, ``estimators.grad``.

    import estimators as est
    obj = est.Objective(dist=lambda p: est.Normal(p["mu"], p["sigma"]), cost=lambda p, x: jnp.sum(x**2))
    g = est.grad(obj, est.get("score_function"), num_samples=16)
    grads = g(params, jax.random.key(0))
"""

from estimators import distributions
from estimators.base import Estimate, GradientEstimator, sample_keys
from estimators.distributions import *  # noqa: F403  (every distribution, listed in its __all__)
from estimators.interface import StatefulGrad, grad, grad_with_state, value_and_grad
from estimators.objective import Objective
from estimators.pathwise import Pathwise
from estimators.registry import get, names
from estimators.score_function import ScoreFunction

__all__ = [
    *distributions.__all__,
    "Estimate",
    "GradientEstimator",
    "Objective",
    "Pathwise",
    "ScoreFunction",
    "StatefulGrad",
    "distributions",
    "get",
    "grad",
    "grad_with_state",
    "names",
    "sample_keys",
    "value_and_grad",
]
