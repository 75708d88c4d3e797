"""Monte Carlo gradient estimators in JAX behind one interface, ``estimators.grad``.

    import estimators as est
    obj = est.Objective(dist=lambda p: est.Normal(p["mu"], p["sigma"]), cost=lambda p, x: jnp.sum(x**2))
    g = est.grad(obj, est.get("score_function"), num_samples=16)
    grads = g(params, jax.random.key(0))
"""

from estimators import baselines, control_variates, distributions, registry
from estimators.base import Estimate, GradientEstimator, sample_keys
from estimators.distributions import *  # noqa: F403  (every distribution, listed in its __all__)
from estimators.interface import StatefulGrad, grad, grad_with_state, value_and_grad, value_and_grad_with_state
from estimators.objective import Objective
from estimators.arm import ARM, DisARM
from estimators.delta_method import PathwiseDelta, ScoreFunctionDelta
from estimators.gumbel_rao import GumbelRao
from estimators.measure_valued import MeasureValued
from estimators.pathwise import Pathwise
from estimators.rebar import Rebar, Relax
from estimators.registry import get, names
from estimators.score_function import ScoreFunction
from estimators.straight_through import GumbelSoftmax, StraightThrough, StraightThroughGumbel

__all__ = [
    *distributions.__all__,
    "ARM",
    "DisARM",
    "Estimate",
    "GradientEstimator",
    "GumbelRao",
    "GumbelSoftmax",
    "MeasureValued",
    "Objective",
    "Pathwise",
    "PathwiseDelta",
    "Rebar",
    "Relax",
    "ScoreFunction",
    "ScoreFunctionDelta",
    "StraightThrough",
    "StraightThroughGumbel",
    "baselines",
    "control_variates",
    "StatefulGrad",
    "distributions",
    "get",
    "grad",
    "grad_with_state",
    "names",
    "registry",
    "sample_keys",
    "value_and_grad",
    "value_and_grad_with_state",
]
