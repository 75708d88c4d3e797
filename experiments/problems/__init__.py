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
    # The target of the DisARM and ARMS papers' toys (Dong et al. 2020; Dimitriev & Zhou 2021).
    "bernoulli_toy_49": functools.partial(bernoulli_toy, "bernoulli_toy_49", target=0.49),
    "categorical_toy": categorical_toy,
    "categorical_toy_3": functools.partial(categorical_toy, "categorical_toy_3", num_categories=3),
    "categorical_toy_10": functools.partial(categorical_toy, "categorical_toy_10", num_categories=10),
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

# What ``describe`` (and ``--list``) gives for each registered problem without building it: building one
# computes its exact answers (seconds for the real-data models).  A test checks each against the built
# problem's description.
_DESCRIPTIONS: dict[str, str] = {
    "gaussian_quadratic": "f(x) = (x - 0)^2, x ~ N(1, 1²)",
    "gaussian_exp": "f(x) = exp(-1 x^2), x ~ N(1, 1²)",
    "gaussian_cosine": "f(x) = cos(2 x), x ~ N(1, 1²)",
    "gaussian_elbo": "negative ELBO, z ~ N(0,1), y=3 ~ Poisson(exp(w z)), q = N(0.8, 0.6²), w = 0.6",
    "gaussian_quadratic_20d": "f(x) = ||x - 0.5||², x ~ N(μ, diag σ²) in 20 dimensions",
    "bernoulli_toy": "f(b) = Σ (b - 0.45)², b ~ Bernoulli(σ(θ)) in 5 dimensions",
    "bernoulli_toy_499": "f(b) = Σ (b - 0.499)², b ~ Bernoulli(σ(θ)) in 5 dimensions",
    "bernoulli_toy_49": "f(b) = Σ (b - 0.49)², b ~ Bernoulli(σ(θ)) in 5 dimensions",
    "categorical_toy": "f(x) = Σ_d (v·x_d - 0.45)², x_d ~ Categorical(softmax(ℓ_d)), 3 variables × 4 classes",
    "categorical_toy_3": "f(x) = Σ_d (v·x_d - 0.45)², x_d ~ Categorical(softmax(ℓ_d)), 3 variables × 3 classes",
    "categorical_toy_10": "f(x) = Σ_d (v·x_d - 0.45)², x_d ~ Categorical(softmax(ℓ_d)), 3 variables × 10 classes",
    "bernoulli_plate": "3 examples x 3 bits, b ~ Bernoulli(σ(φ_n W + c)), f_n = (v·b_n - t_n)², signal: each "
                       "example's own cost",
    "bernoulli_plate_summed": "3 examples x 3 bits, b ~ Bernoulli(σ(φ_n W + c)), f_n = (v·b_n - t_n)², signal: "
                              "the batch's summed cost (no plate)",
    "gaussian_plate": "3 examples x 2 latents, z ~ N(φ_n W + c, e^2s), f_n = Σ a_k (z_nk - y_nk)² + β z_n1 z_n2, "
                      "signal: each example's own cost",
    "gaussian_plate_summed": "3 examples x 2 latents, z ~ N(φ_n W + c, e^2s), f_n = Σ a_k (z_nk - y_nk)² + β z_n1"
                             " z_n2, signal: the batch's summed cost (no plate)",
    "laplace_quadratic": "f(x) = (x - 0)², x ~ Laplace(1, 0.75)",
    "logistic_quadratic": "f(x) = (x - 0)², x ~ Logistic(1, 0.75)",
    "cauchy_bounded": "f(x) = 1 / (1 + x²), x ~ Cauchy(0.5, 1.5)",
    "studentt_quadratic": "f(x) = (x - 0)², x ~ StudentT(df=10, 1, 0.75)",
    "gumbel_quadratic": "f(x) = (x - 2)², x ~ Gumbel(1, 0.75)",
    "exponential_quadratic": "f(x) = (x - 0.5)², x ~ Exponential(rate=1.5)",
    "rayleigh_quadratic": "f(x) = (x - 1)², x ~ Rayleigh(1.5)",
    "pareto_mean": "f(x) = x, x ~ Pareto(scale=1, concentration=5)",
    "gamma_quadratic": "f(x) = (x - 1)², x ~ Gamma(2, rate=1.5)",
    "beta_quadratic": "f(x) = (x - 0)², x ~ Beta(2, 3)",
    "dirichlet_quadratic": "f(x) = ||x - (0.5, 0.25, 0.25)||², x ~ Dirichlet((1.5, 2.0, 4.0))",
    "bernoulli_iw3": "importance-weighted bound, K = 3, two examples with a two-bit Bernoulli latent; exact by "
                     "enumerating the particle tuples",
    "linear_gaussian_elbo": "importance-weighted bound, K = 1, of a 1-D linear-Gaussian model; exact by Gauss-"
                            "Hermite quadrature over the particles' noise",
    "linear_gaussian_iw2": "importance-weighted bound, K = 2, of a 1-D linear-Gaussian model; exact by Gauss-"
                           "Hermite quadrature over the particles' noise",
    "logistic_regression": "Bayesian logistic regression, breast cancer (455 × 31), mean-field Gaussian q, "
                           "trained parameters; exact gradient by quadrature",
    "logistic_regression_init": "Bayesian logistic regression, breast cancer (455 × 31), mean-field Gaussian q, "
                                "init parameters; exact gradient by quadrature",
    "gaussian_vae": "VAE, 4 Gaussian latents, binarized digits, 64 images, Bernoulli decoder, trained parameters;"
                    " reference gradient from 2^20 pathwise samples",
    "gaussian_vae_init": "VAE, 4 Gaussian latents, binarized digits, 64 images, Bernoulli decoder, init "
                         "parameters; reference gradient from 2^20 pathwise samples",
    "binary_vae": "VAE, 8 Bernoulli latents, binarized digits, 64 images, Bernoulli decoder, trained parameters; "
                  "exact gradient and variances by enumeration",
    "binary_vae_init": "VAE, 8 Bernoulli latents, binarized digits, 64 images, Bernoulli decoder, init "
                       "parameters; exact gradient and variances by enumeration",
    "gaussian_vae_summed": "VAE, 4 Gaussian latents, binarized digits, 64 images, Bernoulli decoder, trained "
                           "parameters; reference gradient from 2^20 pathwise samples; one batch-level cost for "
                           "every image's latents (no plate)",
    "binary_vae_summed": "VAE, 8 Bernoulli latents, binarized digits, 64 images, Bernoulli decoder, trained "
                         "parameters; exact gradient and variances by enumeration; one batch-level cost for every"
                         " image's latents (no plate)",
    "binary_vae_iw2": "binary VAE's importance-weighted bound, K = 2, per image of 64, trained parameters; exact "
                      "gradient by enumerating every image's particle tuples",
    "gaussian_vae_iw8": "Gaussian VAE's importance-weighted bound, K = 8, per image of 64, trained parameters; "
                        "reference gradient from 65,536 DReG samples",
}

# Families with a size in the name, available by name (``gaussian_quadratic_100d``) but not listed.
_FAMILIES: dict[str, Callable[[re.Match], Problem]] = {
    r"gaussian_quadratic_(\d+)d": lambda match: gaussian_quadratic_nd(int(match.group(1))),
}


def names() -> list[str]:
    """The registered problem names: the default set of every experiment."""
    return list(_FACTORIES)


def describe(name: str) -> str:
    """The description of the problem registered as ``name`` (its :attr:`Problem.description`), without
    building it."""
    if name not in _DESCRIPTIONS:
        return get(name).description
    return _DESCRIPTIONS[name]


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


__all__ = ["Problem", "describe", "get", "iid_variance", "names"]
