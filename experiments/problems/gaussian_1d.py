r"""The one-dimensional Gaussian test functions of Mohamed et al. (2020), with exact answers.

For :math:`x \sim \mathcal{N}(\mu, \sigma^2)` and the costs :math:`(x - k)^2`, :math:`\exp(-k x^2)` and
:math:`\cos(k x)`, the parameters are ``{"loc": μ, "scale": σ}``.  The expectations have closed forms,
differentiated here by hand; the per-sample variances of both estimators are expectations of
:math:`g(\epsilon)^2` under :math:`\epsilon \sim \mathcal{N}(0, 1)` with :math:`x = \mu + \sigma\epsilon`,
computed by Gauss–Hermite quadrature from the per-sample gradients

- pathwise: :math:`f'(x)` for μ and :math:`f'(x)\,\epsilon` for σ;
- score function: :math:`f(x)\,\epsilon/\sigma` for μ and :math:`f(x)\,(\epsilon^2 - 1)/\sigma` for σ.

The leave-one-out baseline's estimate is a U-statistic with kernel
:math:`h = \tfrac12 (f_1 - f_2)(s_1 - s_2)`, s the score above; its variance comes from
:math:`\zeta_1 = \tfrac14 \mathrm{Var}[(f - E f)\, s]` (1-D quadrature) and
:math:`\zeta_2 = \mathrm{Var}\, h` (2-D quadrature).

Reference: Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*,
JMLR 2020, sections 3 and 5 (figures 2 and 3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from estimators import Normal, Objective
from experiments.problems.base import Problem, iid_variance, u_statistic_variance
from experiments.problems.quadrature import standard_normal_expectation, standard_normal_expectation_2d


@dataclasses.dataclass(frozen=True)
class TestFunction:
    """A cost f(x) written against an array module (NumPy for exact answers, jax.numpy for the cost),
    its derivative, and the closed-form gradient of E[f(x)] with respect to (μ, σ)."""

    name: str
    formula: str
    f: Callable  # f(x, k, xp)
    df: Callable  # f'(x, k, xp)
    exact_grad: Callable[[float, float, float], tuple[float, float]]  # (μ, σ, k) -> (∂μ, ∂σ)


def _exp_grad(mu, sigma, k):
    # E exp(-k x²) = s^{-1/2} exp(-k μ² / s), s = 1 + 2kσ².
    s = 1 + 2 * k * sigma**2
    mean = s**-0.5 * np.exp(-k * mu**2 / s)
    d_mu = mean * (-2 * k * mu / s)
    d_sigma = mean * (-2 * k * sigma / s + 4 * k**2 * mu**2 * sigma / s**2)
    return d_mu, d_sigma


def _cos_grad(mu, sigma, k):
    # E cos(k x) = cos(kμ) exp(-k²σ²/2).
    damping = np.exp(-(k**2) * sigma**2 / 2)
    return -k * np.sin(k * mu) * damping, -(k**2) * sigma * np.cos(k * mu) * damping


TEST_FUNCTIONS = {
    "quadratic": TestFunction(
        name="quadratic",
        formula="(x - k)^2",
        f=lambda x, k, xp: (x - k) ** 2,
        df=lambda x, k, xp: 2 * (x - k),
        exact_grad=lambda mu, sigma, k: (2 * (mu - k), 2 * sigma),
    ),
    "exp": TestFunction(
        name="exp",
        formula="exp(-k x^2)",
        f=lambda x, k, xp: xp.exp(-k * x**2),
        df=lambda x, k, xp: -2 * k * x * xp.exp(-k * x**2),
        exact_grad=_exp_grad,
    ),
    "cosine": TestFunction(
        name="cosine",
        formula="cos(k x)",
        f=lambda x, k, xp: xp.cos(k * x),
        df=lambda x, k, xp: -k * xp.sin(k * x),
        exact_grad=_cos_grad,
    ),
}


#: The shape constant k of each test function in the registered problems (``gaussian_quadratic``, ...)
#: and in the sweep over the mean (:mod:`experiments.catalog.variance_vs_mean`).
DEFAULT_K = {"quadratic": 0.0, "exp": 1.0, "cosine": 2.0}


def scores(sigma: float):
    """∇_(μ, σ) log N(x; μ, σ²) as functions of ε = (x − μ)/σ."""
    return {"loc": lambda eps: eps / sigma, "scale": lambda eps: (eps**2 - 1) / sigma}


def per_sample_gradients(test_function: TestFunction, mu: float, sigma: float, k: float):
    """The per-sample gradients of each estimator as functions of the standard normal noise ε."""
    f = lambda eps: test_function.f(mu + sigma * eps, k, np)
    df = lambda eps: test_function.df(mu + sigma * eps, k, np)
    return {
        "pathwise": {"loc": df, "scale": lambda eps: df(eps) * eps},
        "score_function": {name: (lambda eps, s=s: f(eps) * s(eps)) for name, s in scores(sigma).items()},
    }


def leave_one_out_zetas(test_function: TestFunction, mu: float, sigma: float, k: float):
    """(ζ₁, ζ₂) of the leave-one-out baseline's U-statistic, per parameter."""
    f = lambda eps: test_function.f(mu + sigma * eps, k, np)
    return leave_one_out_zetas_by_quadrature(f, scores(sigma))


def leave_one_out_zetas_by_quadrature(f, scores_by_parameter, direct_by_parameter=None):
    r"""(ζ₁, ζ₂) per parameter of the leave-one-out estimate
    :math:`\frac1L \sum_i (f_i - \bar f_{-i})\, s_i + \frac1L \sum_i d_i`, a U-statistic with kernel
    :math:`h = \tfrac12 (f_1 - f_2)(s_1 - s_2) + \tfrac12 (d_1 + d_2)`, where f, the scores s and the
    direct terms d (zero where not given) are functions of standard normal noise ε.  Then
    :math:`\zeta_1 = \tfrac14 \mathrm{Var}[(f - E f)\, s + d]` (1-D quadrature) and
    :math:`\zeta_2 = \mathrm{Var}\, h` (2-D quadrature)."""
    direct_by_parameter = direct_by_parameter or {}
    mean_f = standard_normal_expectation(f)
    zeta1, zeta2 = {}, {}
    for name, s in scores_by_parameter.items():
        d = direct_by_parameter.get(name, lambda eps: 0.0 * eps)
        zeta1[name] = 0.25 * noise_variance(lambda eps: (f(eps) - mean_f) * s(eps) + d(eps))
        kernel = lambda e1, e2: 0.5 * (f(e1) - f(e2)) * (s(e1) - s(e2)) + 0.5 * (d(e1) + d(e2))
        kernel_mean = standard_normal_expectation_2d(kernel)
        zeta2[name] = standard_normal_expectation_2d(lambda e1, e2: (kernel(e1, e2) - kernel_mean) ** 2)
    return zeta1, zeta2


def noise_variance(per_sample_gradient) -> float:
    """Var g(ε) for ε ~ N(0, 1), by Gauss–Hermite quadrature."""
    mean = standard_normal_expectation(per_sample_gradient)
    second_moment = standard_normal_expectation(lambda eps: per_sample_gradient(eps) ** 2)
    return float(second_moment - mean**2)


def _normal(params) -> Normal:
    return Normal(params["loc"], params["scale"])


@dataclasses.dataclass(frozen=True)
class _TestCost:
    """The cost f(x) of a test function at constant k: a callable compared by value, so that the
    objectives of problems at other means or scales are equal and share a compiled program."""

    function: str
    k: float

    def __call__(self, params, x):
        del params
        return TEST_FUNCTIONS[self.function].f(x, self.k, jnp)


def test_objective(function: str, k: float) -> Objective:
    """E_{x ~ N(loc, scale²)}[f(x)] for the test function ``function`` with constant k, params
    ``{"loc", "scale"}``; equal for equal (function, k)."""
    return Objective(dist=_normal, cost=_TestCost(function, float(k)))


def gaussian_test_problem(function: str, mu: float = 1.0, sigma: float = 1.0, k: float = 1.0) -> Problem:
    """The test function ``function`` ("quadratic", "exp" or "cosine") under N(mu, sigma²)."""
    test_function = TEST_FUNCTIONS[function]
    dtype = jnp.result_type(float)
    params = {"loc": jnp.asarray(mu, dtype), "scale": jnp.asarray(sigma, dtype)}
    objective = test_objective(function, float(k))
    d_mu, d_sigma = test_function.exact_grad(mu, sigma, k)
    exact_grad = {"loc": np.float64(d_mu), "scale": np.float64(d_sigma)}
    variances = {
        estimator: iid_variance({name: np.float64(noise_variance(g)) for name, g in grads.items()})
        for estimator, grads in per_sample_gradients(test_function, mu, sigma, k).items()
    }
    variances["score_function_loo"] = u_statistic_variance(*leave_one_out_zetas(test_function, mu, sigma, k))
    return Problem(
        name=f"gaussian_{function}",
        description=f"f(x) = {test_function.formula.replace('k', f'{k:g}')}, x ~ N({mu:g}, {sigma:g}²)",
        objective=objective,
        params=params,
        exact_grad=exact_grad,
        exact_variances=variances,
    )
