"""Unbiasedness and exact variances of every estimator on every problem, in units of standard error.

The exact answers under test come from the problem modules (closed forms and Gauss–Hermite
quadrature).  They are checked here twice, independently: against adaptive quadrature (scipy) of the
per-sample gradients written in x-space, and against Monte Carlo estimates from the library.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import estimators as est
from experiments import problems
from tests.stats import assert_mean_matches, assert_variance_matches

# The 1-D test problems' costs, written here again so that the exact answers are derived independently.
ONE_D_COSTS = {
    "gaussian_quadratic": (lambda x: x**2, lambda x: 2 * x),
    "gaussian_exp": (lambda x: np.exp(-(x**2)), lambda x: -2 * x * np.exp(-(x**2))),
    "gaussian_cosine": (lambda x: np.cos(2 * x), lambda x: -2 * np.sin(2 * x)),
}
ESTIMATORS = ["pathwise", "score_function"]


def per_sample_gradient(name, estimator, mu, sigma):
    """The per-sample gradient (∂μ, ∂σ) as a function of x, from the textbook formulas."""
    f, df = ONE_D_COSTS[name]
    if estimator == "pathwise":  # x = μ + σ ε: ∂x/∂μ = 1, ∂x/∂σ = ε = (x − μ)/σ
        return lambda x: (df(x), df(x) * (x - mu) / sigma)
    # ∇ log N(x; μ, σ²) = ((x − μ)/σ², (x − μ)²/σ³ − 1/σ)
    return lambda x: (f(x) * (x - mu) / sigma**2, f(x) * ((x - mu) ** 2 / sigma**3 - 1 / sigma))


def normal_expectation(fn, mu, sigma):
    value, _ = integrate.quad(lambda x: fn(x) * stats.norm.pdf(x, mu, sigma), -np.inf, np.inf,
                              epsabs=1e-13, epsrel=1e-12, limit=400)
    return value


def exact_moments(name, estimator, mu, sigma):
    """Mean, variance and fourth central moment of each coordinate's per-sample gradient."""
    g = per_sample_gradient(name, estimator, mu, sigma)
    moments = []
    for coordinate in range(2):
        mean = normal_expectation(lambda x: g(x)[coordinate], mu, sigma)
        variance = normal_expectation(lambda x: (g(x)[coordinate] - mean) ** 2, mu, sigma)
        fourth = normal_expectation(lambda x: (g(x)[coordinate] - mean) ** 4, mu, sigma)
        moments.append((mean, variance, fourth))
    return np.array(moments).T  # rows: mean, variance, fourth central moment


def replicates(objective, estimator, num_samples, params, key, num_replicates):
    g = jax.jit(jax.vmap(est.grad(objective, estimator, num_samples), in_axes=(None, 0)))
    grads = g(params, jax.random.split(key, num_replicates))
    return {name: np.asarray(leaf, np.float64) for name, leaf in grads.items()}


def stack(grads):
    return np.stack([grads["loc"], grads["scale"]], axis=-1).reshape(len(grads["loc"]), -1)


@pytest.mark.parametrize("name", list(ONE_D_COSTS))
def test_problem_costs_are_the_ones_derived_here(name):
    problem = problems.get(name)
    xs = np.linspace(-3, 3, 13)
    got = jax.vmap(problem.objective.cost, in_axes=(None, 0))(problem.params, jnp.asarray(xs, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), ONE_D_COSTS[name][0](xs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(ONE_D_COSTS))
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_one_d_exact_answers_agree_with_adaptive_quadrature(name, estimator):
    problem = problems.get(name)
    mu, sigma = float(problem.params["loc"]), float(problem.params["scale"])
    mean, variance, _ = exact_moments(name, estimator, mu, sigma)
    np.testing.assert_allclose(mean, [problem.exact_grad["loc"], problem.exact_grad["scale"]], rtol=1e-9, atol=1e-12)
    exact = problem.exact_variance(estimator, 1)
    np.testing.assert_allclose(variance, [exact["loc"], exact["scale"]], rtol=1e-8)


def test_quoted_values_for_x_squared_at_standard_normal_shifted_by_one():
    # f = x², x ~ N(1, 1): per-sample variance w.r.t. the mean is 4σ² = 4 (pathwise) and
    # E[x⁴(x − 1)²] − 2² = 34 − 4 = 30 (score function), from the normal moments 1, 3, 15.
    problem = problems.get("gaussian_quadratic")
    assert problem.exact_variance("pathwise", 1)["loc"] == pytest.approx(4.0, rel=1e-12)
    assert problem.exact_variance("score_function", 1)["loc"] == pytest.approx(30.0, rel=1e-12)
    assert problem.exact_variance("score_function", 8)["loc"] == pytest.approx(30.0 / 8, rel=1e-12)


@pytest.mark.parametrize("name", list(ONE_D_COSTS))
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("num_samples, num_replicates", [(1, 200_000), (8, 50_000)])
def test_one_d_mean_and_variance(name, estimator, num_samples, num_replicates, key):
    problem = problems.get(name)
    mu, sigma = float(problem.params["loc"]), float(problem.params["scale"])
    mean, variance, fourth = exact_moments(name, estimator, mu, sigma)
    # Moments of the mean of L i.i.d. terms: variance σ²/L, fourth central moment κ₄/L³ + 3σ⁴/L².
    fourth_of_mean = (fourth - 3 * variance**2) / num_samples**3 + 3 * variance**2 / num_samples**2
    grads = stack(replicates(problem.objective, estimator, num_samples, problem.params, key, num_replicates))
    label = f"{estimator} on {name}, L={num_samples}"
    assert_mean_matches(grads, mean, label=label)
    assert_variance_matches(grads, variance / num_samples, fourth_of_mean, label=label)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("num_samples", [1, 4])
def test_gaussian_quadratic_20d_mean_and_variance(estimator, num_samples, key):
    problem = problems.get("gaussian_quadratic_20d")
    grads = stack(replicates(problem.objective, estimator, num_samples, problem.params, key, 20_000))
    exact_variance = problem.exact_variance(estimator, num_samples)
    label = f"{estimator} on gaussian_quadratic_20d, L={num_samples}"
    assert_mean_matches(grads, np.stack([problem.exact_grad["loc"], problem.exact_grad["scale"]], -1), label=label)
    assert_variance_matches(grads, np.stack([exact_variance["loc"], exact_variance["scale"]], -1), label=label)


def test_nd_closed_form_reduces_to_the_one_d_quadrature():
    from experiments.problems.gaussian_nd import exact_per_sample_variances

    one_d = problems.get("gaussian_quadratic")  # (x − 0)², N(1, 1)
    closed_form = exact_per_sample_variances(np.array([1.0]), np.array([1.0]), np.array([0.0]))
    for estimator in ESTIMATORS:
        for parameter in ("loc", "scale"):
            assert closed_form[estimator][parameter][0] == pytest.approx(
                float(one_d.exact_variance(estimator, 1)[parameter]), rel=1e-10
            )


def test_score_function_variance_grows_with_dimension_and_pathwise_does_not():
    from experiments.problems.gaussian_nd import exact_per_sample_variances

    def first_coordinate(dim):
        ones = np.ones(dim)
        return exact_per_sample_variances(ones, ones, np.zeros(dim))

    small, large = first_coordinate(2), first_coordinate(50)
    assert large["pathwise"]["loc"][0] == small["pathwise"]["loc"][0]
    assert large["score_function"]["loc"][0] > 100 * small["score_function"]["loc"][0]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_direct_term_when_the_cost_depends_on_parameters(estimator, key):
    # F(μ, σ, c) = E[(x − c)²] = (μ − c)² + σ², so ∇F = (2(μ − c), 2σ, −2(μ − c)); the c-gradient is
    # pure direct term, which a score function without it would miss.
    objective = est.Objective(
        dist=lambda p: est.Normal(p["loc"], p["scale"]),
        cost=lambda p, x: (x - p["shift"]) ** 2,
    )
    params = {"loc": jnp.float32(0.5), "scale": jnp.float32(1.5), "shift": jnp.float32(-1.0)}
    g = jax.jit(jax.vmap(est.grad(objective, estimator, 4), in_axes=(None, 0)))
    grads = g(params, jax.random.split(key, 50_000))
    stacked = np.stack([np.asarray(grads[k], np.float64) for k in ("loc", "scale", "shift")], axis=-1)
    assert_mean_matches(stacked, [3.0, 3.0, -3.0], label=f"{estimator} with a direct term")


def elbo_cost_in_x(x, mu, sigma, w, y=3):
    """The negative ELBO's cost written out in x-space: log q − log prior − log Poisson likelihood."""
    return (stats.norm.logpdf(x, mu, sigma) - stats.norm.logpdf(x)
            - stats.poisson.logpmf(y, np.exp(w * x)))


def truncated_normal_expectation(fn, mu, sigma, width=30):
    """E fn(x) under N(μ, σ²) by adaptive quadrature over μ ± 30σ (the rest weighs below 1e-190)."""
    value, _ = integrate.quad(lambda x: fn(x) * stats.norm.pdf(x, mu, sigma), mu - width * sigma,
                              mu + width * sigma, epsabs=1e-13, epsrel=1e-12, limit=400)
    return value


def test_gaussian_elbo_exact_answers_agree_with_adaptive_quadrature():
    problem = problems.get("gaussian_elbo")
    mu, sigma, w = (float(problem.params[k]) for k in ("loc", "scale", "weight"))

    def objective(mu, sigma, w):
        return truncated_normal_expectation(lambda x: elbo_cost_in_x(x, mu, sigma, w), mu, sigma)

    step = 1e-4  # central differences of the adaptive-quadrature objective
    numerical = [
        (objective(mu + step, sigma, w) - objective(mu - step, sigma, w)) / (2 * step),
        (objective(mu, sigma + step, w) - objective(mu, sigma - step, w)) / (2 * step),
        (objective(mu, sigma, w + step) - objective(mu, sigma, w - step)) / (2 * step),
    ]
    exact = [float(problem.exact_grad[k]) for k in ("loc", "scale", "weight")]
    np.testing.assert_allclose(exact, numerical, rtol=1e-6, atol=1e-8)

    # Score function per sample in x-space: f ∇ log q + ∇_θ f (direct term), with ∇_θ f = (∇ log q, ∂_w f).
    def score_function(x):
        f = elbo_cost_in_x(x, mu, sigma, w)
        scores = ((x - mu) / sigma**2, (x - mu) ** 2 / sigma**3 - 1 / sigma)
        return ((f + 1) * scores[0], (f + 1) * scores[1], x * (np.exp(w * x) - 3))

    for coordinate, name in enumerate(("loc", "scale", "weight")):
        g = lambda x: score_function(x)[coordinate]
        mean = truncated_normal_expectation(g, mu, sigma)
        variance = truncated_normal_expectation(lambda x: (g(x) - mean) ** 2, mu, sigma)
        assert mean == pytest.approx(exact[coordinate], rel=1e-7, abs=1e-9)
        assert variance == pytest.approx(float(problem.exact_variance("score_function", 1)[name]), rel=1e-7)


@pytest.mark.parametrize("estimator, num_samples", [("pathwise", 1), ("score_function", 4), ("score_function_loo", 4)])
def test_gaussian_elbo_mean_and_variance(estimator, num_samples, key):
    problem = problems.get("gaussian_elbo")
    grads = replicates(problem.objective, estimator, num_samples, problem.params, key, 100_000)
    stacked = np.stack([grads[k] for k in ("loc", "scale", "weight")], axis=-1)
    exact_variance = problem.exact_variance(estimator, num_samples)
    label = f"{estimator} on gaussian_elbo, L={num_samples}"
    assert_mean_matches(stacked, [problem.exact_grad[k] for k in ("loc", "scale", "weight")], label=label)
    assert_variance_matches(stacked, [exact_variance[k] for k in ("loc", "scale", "weight")], label=label)
