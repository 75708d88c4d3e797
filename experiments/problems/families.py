r"""One problem per reparameterizable distribution family beyond the Gaussian, with exact gradients.

Each cost is chosen so that its expectation has a closed form, differentiated here by hand.  Most are
the quadratic :math:`f(x) = \lVert x - k \rVert^2`, whose expectation needs only the mean m and the
variance v of each coordinate, :math:`F = \sum_i (m_i - k_i)^2 + v_i`, so
:math:`\nabla F = \sum_i 2 (m_i - k_i) \nabla m_i + \nabla v_i`.  The exceptions: a Cauchy has no
mean, so its cost is the bounded :math:`1 / (1 + x^2)`; the Pareto's cost is x itself, with the
concentration as the only parameter, because its support moves with its scale.  Each factory's
docstring gives its expectation and gradient.

Heavy tails are kept mild enough (Student-t with 10 degrees of freedom, Pareto with concentration 5)
that the per-sample gradients have finite fourth moments, so the variances the benchmark measures,
and their standard errors, are reliable; finite variance alone needs only df > 4 and concentration > 2.
Exact per-sample variances are not given.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from estimators import (
    Beta,
    Cauchy,
    Dirichlet,
    Exponential,
    Gamma,
    Gumbel,
    Laplace,
    Logistic,
    Objective,
    Pareto,
    Rayleigh,
    StudentT,
)
from experiments.problems.base import Problem


def _problem(name, description, dist, cost, params, exact_grad) -> Problem:
    """A problem whose cost depends on the sample only, with params in the default float dtype."""
    dtype = jnp.result_type(float)
    return Problem(
        name=name,
        description=description,
        objective=Objective(dist=dist, cost=lambda p, x: cost(x)),
        params={parameter: jnp.asarray(value, dtype) for parameter, value in params.items()},
        exact_grad={parameter: np.asarray(value, np.float64) for parameter, value in exact_grad.items()},
    )


def _squared_distance(k):
    return lambda x: jnp.sum((x - k) ** 2)


def laplace_quadratic(loc=1.0, scale=0.75, k=0.0) -> Problem:
    r"""(x − k)² under Laplace(μ, b): variance 2b², so F = (μ − k)² + 2b² and ∇F = (2(μ − k), 4b)."""
    return _problem(
        "laplace_quadratic", f"f(x) = (x - {k:g})², x ~ Laplace({loc:g}, {scale:g})",
        dist=lambda p: Laplace(p["loc"], p["scale"]), cost=_squared_distance(k),
        params={"loc": loc, "scale": scale},
        exact_grad={"loc": 2 * (loc - k), "scale": 4 * scale},
    )


def logistic_quadratic(loc=1.0, scale=0.75, k=0.0) -> Problem:
    r"""(x − k)² under Logistic(μ, s): variance π²s²/3, so ∇F = (2(μ − k), 2π²s/3)."""
    return _problem(
        "logistic_quadratic", f"f(x) = (x - {k:g})², x ~ Logistic({loc:g}, {scale:g})",
        dist=lambda p: Logistic(p["loc"], p["scale"]), cost=_squared_distance(k),
        params={"loc": loc, "scale": scale},
        exact_grad={"loc": 2 * (loc - k), "scale": 2 * np.pi**2 * scale / 3},
    )


def cauchy_bounded(loc=0.5, scale=1.5) -> Problem:
    r"""1/(1 + x²) under Cauchy(m, γ).

    :math:`1/(1 + x^2) = \pi\,p_{C(0,1)}(x)`, and a Cauchy(m, γ) plus an independent Cauchy(0, 1) is a
    Cauchy(m, 1 + γ), so :math:`F = \pi\,p_{C(m, 1+\gamma)}(0) = c / (c^2 + m^2)` with :math:`c = 1 +
    \gamma`.  With :math:`D = c^2 + m^2`: :math:`\partial_m F = -2mc / D^2`, :math:`\partial_\gamma F =
    (m^2 - c^2) / D^2`.
    """
    c = 1 + scale
    d = c**2 + loc**2
    return _problem(
        "cauchy_bounded", f"f(x) = 1 / (1 + x²), x ~ Cauchy({loc:g}, {scale:g})",
        dist=lambda p: Cauchy(p["loc"], p["scale"]), cost=lambda x: jnp.sum(1 / (1 + x**2)),
        params={"loc": loc, "scale": scale},
        exact_grad={"loc": -2 * loc * c / d**2, "scale": (loc**2 - c**2) / d**2},
    )


def studentt_quadratic(df=10.0, loc=1.0, scale=0.75, k=0.0) -> Problem:
    r"""(x − k)² under a Student t with ν = ``df`` fixed: variance σ²ν/(ν − 2), so
    ∇F = (2(μ − k), 2σν/(ν − 2))."""
    return _problem(
        "studentt_quadratic", f"f(x) = (x - {k:g})², x ~ StudentT(df={df:g}, {loc:g}, {scale:g})",
        dist=lambda p: StudentT(df, p["loc"], p["scale"]), cost=_squared_distance(k),
        params={"loc": loc, "scale": scale},
        exact_grad={"loc": 2 * (loc - k), "scale": 2 * scale * df / (df - 2)},
    )


def gumbel_quadratic(loc=1.0, scale=0.75, k=2.0) -> Problem:
    r"""(x − k)² under Gumbel(μ, β): mean m = μ + γβ (γ Euler's constant), variance π²β²/6, so
    ∇F = (2(m − k), 2γ(m − k) + π²β/3)."""
    mean = loc + np.euler_gamma * scale
    return _problem(
        "gumbel_quadratic", f"f(x) = (x - {k:g})², x ~ Gumbel({loc:g}, {scale:g})",
        dist=lambda p: Gumbel(p["loc"], p["scale"]), cost=_squared_distance(k),
        params={"loc": loc, "scale": scale},
        exact_grad={"loc": 2 * (mean - k), "scale": 2 * np.euler_gamma * (mean - k) + np.pi**2 * scale / 3},
    )


def exponential_quadratic(rate=1.5, k=0.5) -> Problem:
    r"""(x − k)² under Exponential(λ): F = 2/λ² − 2k/λ + k², so ∂λ F = −4/λ³ + 2k/λ²."""
    return _problem(
        "exponential_quadratic", f"f(x) = (x - {k:g})², x ~ Exponential(rate={rate:g})",
        dist=lambda p: Exponential(p["rate"]), cost=_squared_distance(k),
        params={"rate": rate},
        exact_grad={"rate": -4 / rate**3 + 2 * k / rate**2},
    )


def rayleigh_quadratic(scale=1.5, k=1.0) -> Problem:
    r"""(x − k)² under Rayleigh(σ): E x = σ√(π/2), E x² = 2σ², so ∂σ F = 4σ − 2k√(π/2)."""
    return _problem(
        "rayleigh_quadratic", f"f(x) = (x - {k:g})², x ~ Rayleigh({scale:g})",
        dist=lambda p: Rayleigh(p["scale"]), cost=_squared_distance(k),
        params={"scale": scale},
        exact_grad={"scale": 4 * scale - 2 * k * np.sqrt(np.pi / 2)},
    )


def pareto_mean(scale=1.0, concentration=5.0) -> Problem:
    r"""x under Pareto(x_m, α) with the scale x_m fixed: F = α x_m/(α − 1), so ∂α F = −x_m/(α − 1)².

    Only the concentration is a parameter: the support [x_m, ∞) moves with x_m, which the score
    function cannot account for.
    """
    return _problem(
        "pareto_mean", f"f(x) = x, x ~ Pareto(scale={scale:g}, concentration={concentration:g})",
        dist=lambda p: Pareto(scale, p["concentration"]), cost=jnp.sum,
        params={"concentration": concentration},
        exact_grad={"concentration": -scale / (concentration - 1) ** 2},
    )


def gamma_quadratic(concentration=2.0, rate=1.5, k=1.0) -> Problem:
    r"""(x − k)² under Gamma(α, β) (rate β): mean m = α/β, variance α/β², so
    ∂α F = 2(m − k)/β + 1/β² and ∂β F = −2(m − k)α/β² − 2α/β³."""
    mean = concentration / rate
    return _problem(
        "gamma_quadratic", f"f(x) = (x - {k:g})², x ~ Gamma({concentration:g}, rate={rate:g})",
        dist=lambda p: Gamma(p["concentration"], p["rate"]), cost=_squared_distance(k),
        params={"concentration": concentration, "rate": rate},
        exact_grad={
            "concentration": 2 * (mean - k) / rate + 1 / rate**2,
            "rate": -2 * (mean - k) * concentration / rate**2 - 2 * concentration / rate**3,
        },
    )


def beta_quadratic(a=2.0, b=3.0, k=0.0) -> Problem:
    r"""(x − k)² under Beta(a, b), s = a + b: mean m = a/s, variance v = ab/(s²(s + 1)), so with
    ∂ log v/∂a = 1/a − 2/s − 1/(s + 1), ∂a F = 2(m − k) b/s² + v (1/a − 2/s − 1/(s + 1)), and likewise
    ∂b F = −2(m − k) a/s² + v (1/b − 2/s − 1/(s + 1))."""
    s = a + b
    mean, variance = a / s, a * b / (s**2 * (s + 1))
    return _problem(
        "beta_quadratic", f"f(x) = (x - {k:g})², x ~ Beta({a:g}, {b:g})",
        dist=lambda p: Beta(p["a"], p["b"]), cost=_squared_distance(k),
        params={"a": a, "b": b},
        exact_grad={
            "a": 2 * (mean - k) * b / s**2 + variance * (1 / a - 2 / s - 1 / (s + 1)),
            "b": -2 * (mean - k) * a / s**2 + variance * (1 / b - 2 / s - 1 / (s + 1)),
        },
    )


def dirichlet_quadratic(concentration=(1.5, 2.0, 4.0), target=(0.5, 0.25, 0.25)) -> Problem:
    r"""‖x − t‖² under Dirichlet(α), α₀ = Σα: mean m = α/α₀, variance v = m(1 − m)/(α₀ + 1).

    With :math:`\partial m_i / \partial\alpha_j = (\delta_{ij} - m_i)/\alpha_0` and
    :math:`\partial v_i / \partial\alpha_j = (1 - 2m_i)\,\partial m_i/\partial\alpha_j/(\alpha_0 + 1)
    - v_i/(\alpha_0 + 1)`, the gradient is
    :math:`\partial_j F = (w_j - w \cdot m)/\alpha_0 - \sum_i v_i/(\alpha_0 + 1)` with
    :math:`w = 2(m - t) + (1 - 2m)/(\alpha_0 + 1)`.
    """
    alpha, t = np.asarray(concentration, np.float64), np.asarray(target, np.float64)
    total = alpha.sum()
    mean = alpha / total
    variance = mean * (1 - mean) / (total + 1)
    w = 2 * (mean - t) + (1 - 2 * mean) / (total + 1)
    target_device = jnp.asarray(t, jnp.result_type(float))
    return _problem(
        "dirichlet_quadratic", f"f(x) = ||x - {tuple(t.tolist())}||², x ~ Dirichlet({tuple(alpha.tolist())})",
        dist=lambda p: Dirichlet(p["concentration"]), cost=_squared_distance(target_device),
        params={"concentration": alpha},
        exact_grad={"concentration": (w - w @ mean) / total - variance.sum() / (total + 1)},
    )


#: name -> factory; joined into the problem registry.
PROBLEMS: dict[str, Callable[[], Problem]] = {
    factory.__name__: factory
    for factory in (
        laplace_quadratic, logistic_quadratic, cauchy_bounded, studentt_quadratic, gumbel_quadratic,
        exponential_quadratic, rayleigh_quadratic, pareto_mean, gamma_quadratic, beta_quadratic,
        dirichlet_quadratic,
    )
}
