"""The reparameterizable families and their problems: densities and samples against scipy, gradients
through samples, exact gradients against quadrature, and both estimators against the exact gradients."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import estimators as est
from experiments import problems
from experiments.problems.families import PROBLEMS as FAMILY_PROBLEMS
from tests.stats import FALSE_ALARM, MANY_SAMPLES_COMPILER_OPTIONS, assert_mean_matches, z_threshold


@dataclasses.dataclass(frozen=True)
class Family:
    """A distribution at parameters with two coordinates each, and scipy's marginal of each coordinate."""

    make: Callable[[dict], est.Distribution]
    params: dict
    scipy_marginals: Callable[[dict], object]  # float64 params -> a frozen scipy distribution, vectorized

    def jax_params(self):
        return {name: jnp.asarray(value, jnp.float32) for name, value in self.params.items()}

    def scipy_params(self):
        return {name: np.asarray(value, np.float64) for name, value in self.params.items()}


FAMILIES = {
    "laplace": Family(lambda p: est.Laplace(p["loc"], p["scale"]), {"loc": [0.5, -1.0], "scale": [1.0, 0.25]},
                      lambda p: stats.laplace(p["loc"], p["scale"])),
    "logistic": Family(lambda p: est.Logistic(p["loc"], p["scale"]),
                       {"loc": [0.5, -1.0], "scale": [1.0, 0.25]}, lambda p: stats.logistic(p["loc"], p["scale"])),
    "cauchy": Family(lambda p: est.Cauchy(p["loc"], p["scale"]), {"loc": [0.5, -1.0], "scale": [1.0, 0.25]},
                     lambda p: stats.cauchy(p["loc"], p["scale"])),
    "gumbel": Family(lambda p: est.Gumbel(p["loc"], p["scale"]), {"loc": [0.5, -1.0], "scale": [1.0, 0.25]},
                     lambda p: stats.gumbel_r(p["loc"], p["scale"])),
    "student_t": Family(lambda p: est.StudentT(p["df"], p["loc"], p["scale"]),
                        {"df": [5.0, 12.0], "loc": [0.5, -1.0], "scale": [1.0, 0.25]},
                        lambda p: stats.t(p["df"], p["loc"], p["scale"])),
    "exponential": Family(lambda p: est.Exponential(p["rate"]), {"rate": [0.5, 3.0]},
                          lambda p: stats.expon(scale=1 / p["rate"])),
    "rayleigh": Family(lambda p: est.Rayleigh(p["scale"]), {"scale": [0.5, 2.0]},
                       lambda p: stats.rayleigh(scale=p["scale"])),
    # Concentrations above 3: the sample mean has a finite variance and skewness, so its normal
    # approximation holds out to the test's threshold.
    "pareto": Family(lambda p: est.Pareto(p["scale"], p["concentration"]),
                     {"scale": [1.0, 0.5], "concentration": [4.5, 6.0]},
                     lambda p: stats.pareto(p["concentration"], scale=p["scale"])),
    # A concentration below 1 exercises the gamma sampler's boosted branch.
    "gamma": Family(lambda p: est.Gamma(p["concentration"], p["rate"]),
                    {"concentration": [0.5, 3.0], "rate": [2.0, 0.75]},
                    lambda p: stats.gamma(p["concentration"], scale=1 / p["rate"])),
    "beta": Family(lambda p: est.Beta(p["a"], p["b"]), {"a": [0.5, 2.0], "b": [3.0, 1.5]},
                   lambda p: stats.beta(p["a"], p["b"])),
    # Two Dirichlet vectors; coordinate i of a vector is Beta(α_i, Σα − α_i).
    "dirichlet": Family(lambda p: est.Dirichlet(p["concentration"]),
                        {"concentration": [[1.5, 2.0, 4.0], [0.75, 1.0, 2.5]]},
                        lambda p: stats.beta(p["concentration"],
                                             p["concentration"].sum(-1, keepdims=True) - p["concentration"])),
}
PRODUCT_FAMILIES = [name for name in FAMILIES if name != "dirichlet"]


NUM_DRAWS = 100_000


@functools.cache
def draws_and_gradients(name):
    """For a family, a jitted map from keys to reparameterized samples and the gradient of Σx² with
    respect to every parameter, per sample.  Built once and shared, so the tests that use it compile
    (slowly, for the gamma-based families) once."""
    family = FAMILIES[name]

    def one(params, key):
        def squared_norm_and_sample(p):
            x = family.make(p).rsample(key)
            return jnp.sum(x**2), x

        return jax.grad(squared_norm_and_sample, has_aux=True)(params)

    draw = jax.jit(jax.vmap(one, in_axes=(None, 0)), compiler_options=MANY_SAMPLES_COMPILER_OPTIONS)
    return lambda key: draw(family.jax_params(), jax.random.split(key, NUM_DRAWS))


@pytest.mark.parametrize("name", PRODUCT_FAMILIES)
def test_log_prob_is_the_joint_density_of_scipy(name):
    family = FAMILIES[name]
    dist, marginals = family.make(family.jax_params()), family.scipy_marginals(family.scipy_params())
    points = marginals.ppf(np.array([[0.05], [0.3], [0.5], [0.8], [0.97]])).astype(np.float32)
    got = np.array([float(dist.log_prob(jnp.asarray(x))) for x in points])
    assert dist.log_prob(jnp.asarray(points[0])).shape == ()
    np.testing.assert_allclose(got, marginals.logpdf(points.astype(np.float64)).sum(-1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_log_prob_gradient_matches_central_differences_of_scipy(name):
    """∇θ log q(x; θ), which the score function relies on, at a fixed x in the support."""
    family = FAMILIES[name]
    params = family.scipy_params()
    if name == "dirichlet":
        x = np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])

        def scipy_log_prob(p):
            return sum(stats.dirichlet.logpdf(row, alpha) for row, alpha in zip(x, p["concentration"]))
    else:
        x = family.scipy_marginals(params).ppf(0.7)

        def scipy_log_prob(p):
            return family.scipy_marginals(p).logpdf(x).sum()

    jax_params = family.jax_params()
    if name == "pareto":  # its support moves with the scale: only the concentration is differentiable
        fixed_scale = jax_params.pop("scale")
        params = {"concentration": params["concentration"]}
        log_prob = lambda p: est.Pareto(fixed_scale, p["concentration"]).log_prob(jnp.asarray(x, jnp.float32))
        scipy_log_prob_all = scipy_log_prob
        scipy_log_prob = lambda p: scipy_log_prob_all({**family.scipy_params(), **p})
    else:
        log_prob = lambda p: family.make(p).log_prob(jnp.asarray(x, jnp.float32))
    got = jax.grad(log_prob)(jax_params)
    step = 1e-6
    for parameter, value in params.items():
        expected = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shift = np.zeros_like(value)
            shift[index] = step
            expected[index] = (scipy_log_prob({**params, parameter: value + shift})
                               - scipy_log_prob({**params, parameter: value - shift})) / (2 * step)
        np.testing.assert_allclose(got[parameter], expected, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{name}, {parameter}")


def test_dirichlet_log_prob_sums_scipy_over_the_leading_axes():
    family = FAMILIES["dirichlet"]
    dist, concentration = family.make(family.jax_params()), family.scipy_params()["concentration"]
    for x in (np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]]), np.array([[0.05, 0.15, 0.8], [0.25, 0.25, 0.5]])):
        expected = sum(stats.dirichlet.logpdf(row, alpha) for row, alpha in zip(x, concentration))
        got = dist.log_prob(jnp.asarray(x, jnp.float32))
        assert got.shape == () and float(got) == pytest.approx(expected, rel=1e-5)


def test_dirichlet_needs_a_component_axis():
    with pytest.raises(ValueError, match=r"Dirichlet needs a concentration with at least one axis.*Beta"):
        est.Dirichlet(jnp.float32(2.0))


def test_student_t_broadcasts_df_with_loc_and_scale():
    dist = est.StudentT(jnp.float32(5.0), jnp.zeros(3), 1.0)
    assert dist.event_shape == (3,) and dist.df.shape == (3,) and dist.scale.shape == (3,)


@pytest.mark.parametrize("name", FAMILIES)
def test_samples_have_scipy_quartiles_and_mean(name, key):
    """The fraction of samples below each quartile, and the sample mean (where the variance is finite,
    so not for the Cauchy), each within k standard errors of scipy's."""
    family = FAMILIES[name]
    dist, marginals = family.make(family.jax_params()), family.scipy_marginals(family.scipy_params())
    _, samples = draws_and_gradients(name)(key)
    samples = np.asarray(samples, np.float64)
    n = NUM_DRAWS
    assert samples.shape == (n, *dist.event_shape) and np.all(np.isfinite(samples))
    if isinstance(dist, est.Dirichlet):
        np.testing.assert_allclose(samples.sum(-1), 1.0, atol=1e-6)
    probabilities = np.array([0.25, 0.5, 0.75]).reshape(3, *[1] * len(dist.event_shape))
    below = (samples[:, None] < marginals.ppf(probabilities)).mean(axis=0)
    z_quartiles = (below - probabilities) / np.sqrt(probabilities * (1 - probabilities) / n)
    assert np.all(np.abs(z_quartiles) < z_threshold(FALSE_ALARM, z_quartiles.size)), z_quartiles
    if name != "cauchy":
        z_mean = (samples.mean(axis=0) - marginals.mean()) / (marginals.std() / np.sqrt(n))
        assert np.all(np.abs(z_mean) < z_threshold(FALSE_ALARM, z_mean.size)), z_mean


@pytest.mark.parametrize("name", FAMILIES)
def test_rsample_is_differentiable_in_every_parameter(name, key):
    """Per sample, ∇θ Σx² is finite, and it is not zero throughout (a sample cut off from its
    parameters would give exactly zero)."""
    grads, _ = draws_and_gradients(name)(key)
    for parameter, grad in grads.items():
        grad = np.asarray(grad, np.float64)
        assert np.all(np.isfinite(grad)), f"{name}: ∂/∂{parameter} is not finite"
        assert np.all(np.abs(grad).mean(axis=0) > 0), f"{name}: ∂/∂{parameter} is zero"


# The family problems, written here again: each cost as a sum over coordinates of a NumPy function,
# and each coordinate's scipy marginal at float64 parameters, so the exact gradients are checked
# against quadrature that shares nothing with the closed forms.
GUMBEL_K, EXPONENTIAL_K, RAYLEIGH_K, GAMMA_K = 2.0, 0.5, 1.0, 1.0
DIRICHLET_TARGET = [0.5, 0.25, 0.25]


def square(k):
    return lambda x: (x - k) ** 2


def dirichlet_marginals(p):
    alpha = p["concentration"]
    return [stats.beta(a, alpha.sum() - a) for a in alpha]


PROBLEM_REFERENCES = {  # name -> (cost of each coordinate, params -> marginal of each coordinate)
    "laplace_quadratic": ([square(0.0)], lambda p: [stats.laplace(p["loc"], p["scale"])]),
    "logistic_quadratic": ([square(0.0)], lambda p: [stats.logistic(p["loc"], p["scale"])]),
    "cauchy_bounded": ([lambda x: 1 / (1 + x**2)], lambda p: [stats.cauchy(p["loc"], p["scale"])]),
    "studentt_quadratic": ([square(0.0)], lambda p: [stats.t(10.0, p["loc"], p["scale"])]),
    "gumbel_quadratic": ([square(GUMBEL_K)], lambda p: [stats.gumbel_r(p["loc"], p["scale"])]),
    "exponential_quadratic": ([square(EXPONENTIAL_K)], lambda p: [stats.expon(scale=1 / p["rate"])]),
    "rayleigh_quadratic": ([square(RAYLEIGH_K)], lambda p: [stats.rayleigh(scale=p["scale"])]),
    "pareto_mean": ([lambda x: x], lambda p: [stats.pareto(p["concentration"], scale=1.0)]),
    "gamma_quadratic": ([square(GAMMA_K)], lambda p: [stats.gamma(p["concentration"], scale=1 / p["rate"])]),
    "beta_quadratic": ([square(0.0)], lambda p: [stats.beta(p["a"], p["b"])]),
    "dirichlet_quadratic": ([square(t) for t in DIRICHLET_TARGET], dirichlet_marginals),
}
ESTIMATORS = ["pathwise", "score_function"]


def test_every_family_problem_is_checked_here():
    assert set(FAMILY_PROBLEMS) == set(PROBLEM_REFERENCES)


def expectation(name, params) -> float:
    costs, marginals = PROBLEM_REFERENCES[name]
    total = 0.0
    for cost, marginal in zip(costs, marginals(params)):
        with np.errstate(over="ignore"):  # far in the Gumbel's left tail exp(-z) overflows: the pdf is 0
            value, _ = integrate.quad(lambda x: cost(x) * marginal.pdf(x), *marginal.support(),
                                      epsabs=1e-13, epsrel=1e-12, limit=400)
        total += value
    return total


def five_point_gradient(name, params, step=1e-3):
    """∇F by the five-point central difference (error O(h⁴)) of quadrature, as a dict like params."""
    grad = {}
    for parameter, value in params.items():
        grad[parameter] = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            def shifted(offset):
                moved = value.copy()
                moved[index] += offset
                return expectation(name, {**params, parameter: moved})

            grad[parameter][index] = (-shifted(2 * step) + 8 * shifted(step) - 8 * shifted(-step)
                                      + shifted(-2 * step)) / (12 * step)
    return grad


def flat(tree, leading=()):
    """The leaves of a gradient pytree side by side, after ``leading`` axes (the replicates)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return np.concatenate([np.asarray(leaf, np.float64).reshape(*leading, -1) for leaf in leaves], axis=-1)


@pytest.mark.parametrize("name", PROBLEM_REFERENCES)
def test_problem_cost_is_the_one_written_here(name):
    problem = problems.get(name)
    costs, _ = PROBLEM_REFERENCES[name]
    points = np.linspace(0.1, 2.5, 5 * len(costs)).reshape(5, *problem.distribution().event_shape)
    points = points.astype(np.float32)
    got = jax.vmap(problem.objective.cost, in_axes=(None, 0))(problem.params, jnp.asarray(points))
    expected = [sum(cost(x) for cost, x in zip(costs, np.ravel(point).astype(np.float64)))
                for point in points]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)


@pytest.mark.parametrize("name", PROBLEM_REFERENCES)
def test_exact_gradient_agrees_with_finite_differences_of_quadrature(name):
    problem = problems.get(name)
    params = {parameter: np.asarray(value, np.float64) for parameter, value in problem.params.items()}
    np.testing.assert_allclose(flat(problem.exact_grad), flat(five_point_gradient(name, params)),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", PROBLEM_REFERENCES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_pathwise_and_score_function_are_unbiased(name, estimator, key):
    problem = problems.get(name)
    num_replicates = 50_000
    g = jax.jit(jax.vmap(est.grad(problem.objective, estimator, 1), in_axes=(None, 0)))
    grads = g(problem.params, jax.random.split(key, num_replicates))
    assert_mean_matches(flat(grads, (num_replicates,)), flat(problem.exact_grad),
                        label=f"{estimator} on {name}")
