"""Estimators by name: the names the CLI, result files and plots use."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Callable

from estimators.base import GradientEstimator
from estimators.pathwise import Pathwise
from estimators.score_function import ScoreFunction

# A new estimator joins the library with one line here.
_FACTORIES: dict[str, Callable[..., GradientEstimator]] = {
    "pathwise": Pathwise,
    "score_function": ScoreFunction,
}


def names() -> list[str]:
    """The registered estimator names, in registration order."""
    return list(_FACTORIES)


def get(name: str, **options) -> GradientEstimator:
    """The estimator registered as ``name``, built with ``options`` (for example ``temperature=0.5``)."""
    if name not in _FACTORIES:
        close = difflib.get_close_matches(str(name), _FACTORIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown estimator {name!r}.{hint} Known estimators: {', '.join(_FACTORIES)}.")
    factory = _FACTORIES[name]
    known = [f.name for f in dataclasses.fields(factory)] if dataclasses.is_dataclass(factory) else []
    unknown = sorted(set(options) - set(known))
    if unknown:
        accepted = ", ".join(known) if known else "none"
        raise ValueError(
            f"Estimator {name!r} has no option {', '.join(map(repr, unknown))}; its options are: {accepted}."
        )
    return factory(**options)
