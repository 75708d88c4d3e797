"""Gamma, Beta and Dirichlet at concentrations 0.01, 0.05 and 0.1 in float32, where much of the mass lies
below the smallest normal float t (or, for the Beta, within half a float spacing of 1) and a sample is
stored as 0 (or 1): the log-gamma draws' derivative against the implicit-function derivative of scipy's
incomplete gamma, log_prob at a stored 0 or 1 against the log of scipy's cell probability over the cell's
width, and the score-function and pathwise estimates, finite and unbiased against exact gradients."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import estimators as est
from estimators.distributions.gamma import log_gamma_draw
from tests.stats import FALSE_ALARM, MANY_SAMPLES_COMPILER_OPTIONS, assert_mean_matches

CONCENTRATIONS = (0.01, 0.05, 0.1)
TINY = float(jnp.finfo(jnp.float32).tiny)  # the smallest normal float32: a sample below it is stored as 0
HALF_EPSNEG = float(jnp.finfo(jnp.float32).epsneg) / 2  # a Beta sample closer than this to 1 is stored as 1


def test_log_gamma_draws_have_the_implicit_derivative_also_below_the_smallest_float(key):
    r"""∂ log G/∂α = -∂_α P(α, G) / (G q(G; α)), P the regularized lower incomplete gamma (the CDF), with
    ∂_α P by central differences of scipy's float64 ``gammainc`` at the float32 draw's log G."""
    draw = jax.jit(jax.vmap(jax.value_and_grad(lambda a, k: log_gamma_draw(k, a, (), jnp.float32)), in_axes=(None, 0)))
    keys = jax.random.split(key, len(CONCENTRATIONS))
    for alpha, k in zip(CONCENTRATIONS, keys):
        log_g, derivative = (np.asarray(v, np.float64) for v in draw(jnp.float32(alpha), jax.random.split(k, 4000)))
        # G underflows float64 below log G = -708 (one draw in a thousand at α = 0.01): checked from the others
        checked = log_g > -700
        assert checked.mean() > 0.95 and np.all(np.isfinite(derivative))
        if alpha < 0.1:  # the draws exercise the branch below t: 42% of them at α = 0.01, 1.3% (52) at 0.05
            assert np.sum(log_g < math.log(TINY)) >= 10
        log_g, derivative = log_g[checked], derivative[checked]
        g, step = np.exp(log_g), 1e-5 * alpha
        log_cdf = lambda a: np.log(special.gammainc(a, g))
        d_log_cdf = (log_cdf(alpha + step) - log_cdf(alpha - step)) / (2 * step)
        log_g_density = alpha * log_g - g - special.gammaln(alpha)  # log(G q(G; α))
        expected = -d_log_cdf * np.exp(log_cdf(alpha) - log_g_density)
        np.testing.assert_allclose(derivative, expected, rtol=1e-4, err_msg=f"α = {alpha}")


def scipy_log_cell(log_probability, params, width):
    """The log of the mean density over a cell, log(P(cell) / width), and its gradient in the parameters
    by central differences, from a float64 function params -> log P(cell)."""
    value = log_probability(params) - math.log(width)
    grad = []
    for i, p in enumerate(params):
        step = 1e-6 * p
        up, down = list(params), list(params)
        up[i], down[i] = p + step, p - step
        grad.append((log_probability(up) - log_probability(down)) / (2 * step))
    return value, np.array(grad)


def test_the_derivative_is_finite_where_log_g_sits_at_the_smallest_float():
    # exp of float32's log(tiny) rounds below tiny: the draw is then in the underflow branch, not 0 / 0.
    from estimators.distributions.gamma import _implicit_log_gamma, log_tiny

    alpha = jnp.float32(0.01)
    at_threshold = jnp.float32(log_tiny(jnp.float32))
    derivative = jax.grad(lambda a: _implicit_log_gamma(a, at_threshold))(alpha)
    assert np.isfinite(derivative)
    assert float(derivative) == pytest.approx((special.digamma(1.01) - float(at_threshold)) / 0.01, rel=1e-4)


@pytest.mark.parametrize("alpha", CONCENTRATIONS)
def test_log_prob_at_a_stored_zero_or_one_is_the_log_mean_density_of_its_cell(alpha):
    """At 0 (any draw below t) and at the Beta's 1 (any draw within half a float spacing of it), log_prob
    is log(P(cell) / width), and its gradient the mean score of the draws in the cell, ∇ log P(cell)."""
    cases = [  # (log_prob of float32 params, params, log P(cell) in float64, cell width)
        (lambda p: est.Gamma(p[0], p[1]).log_prob(jnp.float32(0)), (alpha, 2.0),
         lambda p: np.log(special.gammainc(p[0], p[1] * TINY)), TINY),
        (lambda p: est.Beta(p[0], p[1]).log_prob(jnp.float32(0)), (alpha, 0.5),
         lambda p: np.log(special.betainc(p[0], p[1], TINY)), TINY),
        (lambda p: est.Beta(p[0], p[1]).log_prob(jnp.float32(1)), (0.5, alpha),
         lambda p: np.log(special.betainc(p[1], p[0], HALF_EPSNEG)), HALF_EPSNEG),
        # Two components: a point (0, 1) of the simplex is a Beta(α_1, α_2) draw below t
        (lambda p: est.Dirichlet(jnp.stack([p[0], p[1]])).log_prob(jnp.array([0.0, 1.0])), (alpha, 0.3),
         lambda p: np.log(special.betainc(p[0], p[1], TINY)), TINY),
    ]
    for i, (log_prob, params, log_probability, width) in enumerate(cases):
        value, grad = jax.value_and_grad(log_prob)(tuple(jnp.float32(p) for p in params))
        expected_value, expected_grad = scipy_log_cell(log_probability, params, width)
        np.testing.assert_allclose(float(value), expected_value, rtol=1e-5, err_msg=f"case {i}")
        np.testing.assert_allclose(np.array(grad, np.float64), expected_grad, rtol=1e-4, err_msg=f"case {i}")


# Costs with a closed-form expectation, not constant near the stored 0 and 1, so that the score of those
# cells matters: exp(-x) for the Gamma, (x - 1/4)² for the Beta, Σ w_k (x_k - c_k)² for the Dirichlet.
RATE, BETA_CENTER = 2.0, 0.25
DIRICHLET_WEIGHTS, DIRICHLET_CENTERS = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.25, 0.25])


def beta_moments(a, s):
    """E[x] and E[x²] of a Beta(a, s - a) coordinate, and their derivatives in a and in s, each with the
    other held."""
    m1, m2 = a / s, a * (a + 1) / (s * (s + 1))
    dm1 = (1 / s, -a / s**2)
    dm2 = ((2 * a + 1) / (s * (s + 1)), -a * (a + 1) * (2 * s + 1) / (s * (s + 1)) ** 2)
    return m1, m2, dm1, dm2


def gamma_exact(alpha):
    """E[exp(-x)] = (1 + 1/β)^(-α) for x ~ Gamma(α, β): its gradient in (α, β)."""
    value = (1 + 1 / RATE) ** -alpha
    return [-math.log1p(1 / RATE) * value, alpha * value / (RATE * (RATE + 1))]


def beta_exact(a, b):
    """E[(x - c)²] = E[x²] - 2c E[x] + c²: its gradient in (a, b); a moves a and s = a + b, b moves s."""
    _, _, (d1a, d1s), (d2a, d2s) = beta_moments(a, a + b)
    return [d2a + d2s - 2 * BETA_CENTER * (d1a + d1s), d2s - 2 * BETA_CENTER * d1s]


def dirichlet_exact(alpha):
    """Σ_k w_k E[(x_k - c_k)²] for x ~ Dirichlet(α 1_3), x_k ~ Beta(α_k, s - α_k): its gradient in α."""
    concentration = np.full(3, alpha)
    s, grad = concentration.sum(), np.zeros(3)
    for k, (w, c) in enumerate(zip(DIRICHLET_WEIGHTS, DIRICHLET_CENTERS)):
        _, _, (d1a, d1s), (d2a, d2s) = beta_moments(concentration[k], s)
        grad += w * (d2s - 2 * c * d1s)  # α_j moves s for every j
        grad[k] += w * (d2a - 2 * c * d1a)
    return list(grad)


FAMILIES = {  # name -> (objective, float32 parameters stacked over the cases, exact gradients of each case)
    "gamma": (lambda: est.Objective(lambda p: est.Gamma(p[0], p[1]), lambda p, x: jnp.exp(-x)),
              [(alpha, RATE) for alpha in CONCENTRATIONS], lambda case: gamma_exact(case[0])),
    "beta": (lambda: est.Objective(lambda p: est.Beta(p[0], p[1]), lambda p, x: (x - BETA_CENTER) ** 2),
             [(alpha, alpha) for alpha in CONCENTRATIONS] + [(alpha, 1.0) for alpha in CONCENTRATIONS],
             lambda case: beta_exact(*case)),
    "dirichlet": (lambda: est.Objective(
        lambda p: est.Dirichlet(p),
        lambda p, x: jnp.sum(jnp.asarray(DIRICHLET_WEIGHTS, jnp.float32)
                             * (x - jnp.asarray(DIRICHLET_CENTERS, jnp.float32)) ** 2)),
        [(alpha,) * 3 for alpha in CONCENTRATIONS], lambda case: dirichlet_exact(case[0])),
}
ESTIMATORS = ("score_function", "pathwise")
NUM_ESTIMATES = 100_000  # single-sample estimates per case and estimator


@functools.cache
def estimates(name):
    """For every case of a family, NUM_ESTIMATES single-sample estimates by each estimator, flattened to
    (estimates, cases · estimators · parameters); one program, compiled once."""
    make_objective, cases, _ = FAMILIES[name]
    objective = make_objective()
    if name == "dirichlet":
        params = jnp.asarray(cases, jnp.float32)  # (cases, 3): one concentration vector per case
    else:
        params = tuple(jnp.asarray(column, jnp.float32) for column in zip(*cases))

    def both(p, key):
        return [est.grad(objective, estimator, 1)(p, key) for estimator in ESTIMATORS]

    draw = jax.jit(jax.vmap(jax.vmap(both, in_axes=(None, 0)), in_axes=(0, None)),  # (cases, estimates)
                   compiler_options=MANY_SAMPLES_COMPILER_OPTIONS)
    return lambda key: draw(params, jax.random.split(key, NUM_ESTIMATES))


@pytest.mark.parametrize("name", FAMILIES)
def test_estimates_are_finite_and_unbiased(name, key):
    """Each single-sample estimate is finite (a log density of -inf at a stored 0 or 1 made the score
    infinite), and their mean is within k standard errors of the exact gradient in every coordinate, k
    from the suite's false-alarm rate split over them all (Bonferroni)."""
    _, cases, exact = FAMILIES[name]
    columns, expected, labels = [], [], []
    for estimator, grads in zip(ESTIMATORS, estimates(name)(key)):
        leaves = [np.asarray(leaf, np.float64).reshape(len(cases), NUM_ESTIMATES, -1)
                  for leaf in jax.tree_util.tree_leaves(grads)]
        per_case = np.concatenate(leaves, axis=-1)  # (cases, estimates, parameters)
        for case, draws in zip(cases, per_case):
            finite = np.all(np.isfinite(draws), axis=1)
            assert finite.all(), f"{name}{case}, {estimator}: {np.mean(~finite):.2%} of the estimates are not finite"
            columns.append(draws)
            expected.extend(exact(case))
            labels.append(f"{name}{case} {estimator}")
    assert_mean_matches(np.concatenate(columns, axis=1), expected, FALSE_ALARM, label="; ".join(labels))


@pytest.mark.parametrize("distribution", [est.Gamma, est.Beta, est.Dirichlet])
def test_the_float32_limit_of_pathwise_gradients_is_documented_with_the_float64_remedy(distribution):
    """What float32 cannot make right (a pathwise gradient through log x at a draw stored as 0 or 1) is a
    warning in the class documentation, which names float64 and how to turn it on."""
    doc = distribution.__doc__
    warning = doc[doc.index(".. warning::"):]
    assert "pathwise gradient" in warning and "biased" in warning
    assert 'jax.config.update("jax_enable_x64", True)' in " ".join(warning.split())
