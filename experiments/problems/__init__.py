"""Problems by name: objectives at fixed parameters with exact gradients and variances."""

from __future__ import annotations

import difflib
import functools
from typing import Callable

from experiments.problems.base import Problem, iid_variance
from experiments.problems.gaussian_1d import gaussian_test_problem
from experiments.problems.gaussian_nd import gaussian_quadratic_nd

# Factories, not instances: building a problem touches JAX, which must wait for the CLI's device and
# precision flags.  A new problem joins the benchmark with one line here.
_FACTORIES: dict[str, Callable[[], Problem]] = {
    "gaussian_quadratic": functools.partial(gaussian_test_problem, "quadratic", mu=1.0, sigma=1.0, k=0.0),
    "gaussian_exp": functools.partial(gaussian_test_problem, "exp", mu=1.0, sigma=1.0, k=1.0),
    "gaussian_cosine": functools.partial(gaussian_test_problem, "cosine", mu=1.0, sigma=1.0, k=2.0),
    "gaussian_quadratic_20d": functools.partial(gaussian_quadratic_nd, 20),
    "gaussian_quadratic_100d": functools.partial(gaussian_quadratic_nd, 100),
}


def names() -> list[str]:
    """The registered problem names."""
    return list(_FACTORIES)


def get(name: str) -> Problem:
    """The problem registered as ``name``."""
    if name not in _FACTORIES:
        close = difflib.get_close_matches(str(name), _FACTORIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown problem {name!r}.{hint} Known problems: {', '.join(_FACTORIES)}.")
    problem = _FACTORIES[name]()
    assert problem.name == name, (problem.name, name)
    return problem


__all__ = ["Problem", "get", "iid_variance", "names"]
