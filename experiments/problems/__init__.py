"""Problems by name: objectives at fixed parameters with exact gradients and variances."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable

from experiments.problems import families, importance_weighted, plates, real_data
from experiments.problems.base import Problem, iid_variance
from experiments.problems.discrete import bernoulli_toy, categorical_toy
from experiments.problems.gaussian_1d import DEFAULT_K, gaussian_test_problem
from experiments.problems.gaussian_elbo import gaussian_elbo
from experiments.problems.gaussian_nd import gaussian_quadratic_nd

# Factories, not instances: building a problem touches JAX, which must wait for the CLI's device and
# precision flags.  A new problem joins the benchmark with one line here.
_FACTORIES: dict[str, Callable[[], Problem]] = {
    "gaussian_quadratic": functools.partial(
        gaussian_test_problem, "quadratic", mu=1.0, sigma=1.0, k=DEFAULT_K["quadratic"]
    ),
    "gaussian_exp": functools.partial(gaussian_test_problem, "exp", mu=1.0, sigma=1.0, k=DEFAULT_K["exp"]),
    "gaussian_cosine": functools.partial(gaussian_test_problem, "cosine", mu=1.0, sigma=1.0, k=DEFAULT_K["cosine"]),
    "gaussian_elbo": gaussian_elbo,
    "gaussian_quadratic_20d": functools.partial(gaussian_quadratic_nd, 20),
    "bernoulli_toy": functools.partial(bernoulli_toy, "bernoulli_toy", target=0.45),
    "bernoulli_toy_499": functools.partial(bernoulli_toy, "bernoulli_toy_499", target=0.499),
    "categorical_toy": categorical_toy,
    "bernoulli_plate": plates.bernoulli_plate,
    "bernoulli_plate_summed": functools.partial(plates.bernoulli_plate, per_example=False),
    "gaussian_plate": plates.gaussian_plate,
    "gaussian_plate_summed": functools.partial(plates.gaussian_plate, per_example=False),
    **families.PROBLEMS,
    "bernoulli_iw3": functools.partial(importance_weighted.bernoulli_bound, 3),
    "linear_gaussian_elbo": functools.partial(importance_weighted.linear_gaussian_bound, 1),
    "linear_gaussian_iw2": functools.partial(importance_weighted.linear_gaussian_bound, 2),
    "logistic_regression": real_data.logistic_regression,
    "logistic_regression_init": functools.partial(real_data.logistic_regression, "init"),
    "gaussian_vae": real_data.gaussian_vae,
    "gaussian_vae_init": functools.partial(real_data.gaussian_vae, "init"),
    "binary_vae": real_data.binary_vae,
    "binary_vae_init": functools.partial(real_data.binary_vae, "init"),
    "gaussian_vae_summed": functools.partial(real_data.gaussian_vae, per_example=False),
    "binary_vae_summed": functools.partial(real_data.binary_vae, per_example=False),
    "binary_vae_iw2": functools.partial(real_data.binary_vae_bound, 2),
    "gaussian_vae_iw8": functools.partial(real_data.gaussian_vae_bound, 8),
}

# Families with a size in the name, available by name (``gaussian_quadratic_100d``) but not listed.
_FAMILIES: dict[str, Callable[[re.Match], Problem]] = {
    r"gaussian_quadratic_(\d+)d": lambda match: gaussian_quadratic_nd(int(match.group(1))),
}


def names() -> list[str]:
    """The registered problem names: the default set of every experiment."""
    return list(_FACTORIES)


def get(name: str) -> Problem:
    """The problem registered as ``name``, or a member of a sized family such as ``gaussian_quadratic_100d``."""
    if name in _FACTORIES:
        return _FACTORIES[name]()
    for pattern, factory in _FAMILIES.items():
        match = re.fullmatch(pattern, str(name))
        if match and int(match.group(1)) > 0:
            return factory(match)
    close = difflib.get_close_matches(str(name), _FACTORIES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown problem {name!r}.{hint} Known problems: {', '.join(_FACTORIES)}; "
        "and gaussian_quadratic_<D>d for any dimension D."
    )


__all__ = ["Problem", "get", "iid_variance", "names"]
