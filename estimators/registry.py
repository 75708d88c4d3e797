"""Estimators by name: the names the CLI, result files and plots use."""

from __future__ import annotations

import difflib
import inspect
from typing import Callable

from estimators import baselines
from estimators.arm import ARM, DisARM
from estimators.base import GradientEstimator
from estimators.delta_method import PathwiseDelta, ScoreFunctionDelta
from estimators.gumbel_rao import GumbelRao
from estimators.measure_valued import MeasureValued
from estimators.pathwise import Pathwise
from estimators.rebar import Rebar, Relax
from estimators.score_function import ScoreFunction
from estimators.straight_through import GumbelSoftmax, StraightThrough, StraightThroughGumbel


def _score_function_ema(decay: float = 0.9) -> ScoreFunction:
    return ScoreFunction(baseline=baselines.MovingAverage(decay))


def _score_function_loo() -> ScoreFunction:
    return ScoreFunction(baseline=baselines.LeaveOneOut())


def _score_function_optimal() -> ScoreFunction:
    return ScoreFunction(baseline=baselines.OptimalConstant())


# A new estimator joins the library with one line here; its keyword arguments are its options.
_FACTORIES: dict[str, Callable[..., GradientEstimator]] = {
    "pathwise": Pathwise,
    "score_function": ScoreFunction,
    "score_function_ema": _score_function_ema,
    "score_function_loo": _score_function_loo,
    "score_function_optimal": _score_function_optimal,
    "pathwise_delta": PathwiseDelta,
    "score_function_delta": ScoreFunctionDelta,
    "measure_valued": MeasureValued,
    "straight_through": StraightThrough,
    "gumbel_softmax": GumbelSoftmax,
    "straight_through_gumbel": StraightThroughGumbel,
    "arm": ARM,
    "disarm": DisARM,
    "rebar": Rebar,
    "relax": Relax,
    "gumbel_rao": GumbelRao,
}


def names() -> list[str]:
    """The registered estimator names, in registration order."""
    return list(_FACTORIES)


def options(name: str) -> list[str]:
    """The keyword options the estimator ``name`` accepts."""
    return [p for p in inspect.signature(_FACTORIES[name]).parameters if p != "baseline"]


def get(name: str, **kwargs) -> GradientEstimator:
    """The estimator registered as ``name``, built with its options (for example ``temperature=0.5``)."""
    if name not in _FACTORIES:
        close = difflib.get_close_matches(str(name), _FACTORIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown estimator {name!r}.{hint} Known estimators: {', '.join(_FACTORIES)}.")
    known = options(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        accepted = ", ".join(known) if known else "none"
        raise ValueError(
            f"Estimator {name!r} has no option {', '.join(map(repr, unknown))}; its options are: {accepted}."
        )
    return _FACTORIES[name](**kwargs)
