"""Importance-weighted bounds (DESIGN §2.2): the objective, VIMCO, DReG and STL against exact answers.

The exact answers (experiments/problems/importance_weighted.py) enumerate a discrete latent's particle
tuples and integrate a linear-Gaussian model's particle noise by Gauss–Hermite quadrature; here they are
first checked by independent routes (the closed-form ELBO, the exact posterior), then the library's
estimates against them: means within their standard errors, variances within theirs (false-alarm rate
``FALSE_ALARM`` per assertion, Bonferroni over coordinates).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from experiments.problems import importance_weighted as iw
from tests.stats import assert_mean_matches, assert_variance_matches

NUM_REPLICATES = 20_000


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)])


def replicate_grads(problem, estimator, num_samples, key, num_replicates=NUM_REPLICATES):
    """R estimates, flat (R, P) in the order of the params' leaves, float64; and the R values."""
    g = jax.jit(jax.vmap(est.value_and_grad(problem.objective, estimator, num_samples), in_axes=(None, 0)))
    values, grads = g(problem.params, jax.random.split(key, num_replicates))
    leaves = jax.tree_util.tree_leaves(grads)
    return (np.concatenate([np.asarray(x, np.float64).reshape(num_replicates, -1) for x in leaves], axis=1),
            np.asarray(values, np.float64))


@pytest.fixture(scope="module")
def problems():
    return {
        "bernoulli_iw3": iw.bernoulli_bound(3),
        "bernoulli_iw2": iw.bernoulli_bound(2),
        "linear_gaussian_iw2": iw.linear_gaussian_bound(2),
        "linear_gaussian_iw3": iw.linear_gaussian_bound(3),
        "linear_gaussian_elbo": iw.linear_gaussian_bound(1),
        "linear_gaussian_elbo_posterior": iw.linear_gaussian_bound(1, at_posterior=True),
        "linear_gaussian_iw2_shared": iw.linear_gaussian_bound(2, shared=True),
    }


# --- the exact answers, checked by independent routes ----------------------------------------------


def test_the_quadrature_elbo_gradient_is_the_closed_form(problems):
    """At K = 1 the bound is the ELBO, E_q[log N(z; 0, 1) + log N(x; z + b, 1)] + H(q), in closed form:
    ∂/∂b = x − μ − b, ∂/∂μ = x − 2μ − b, ∂/∂log σ = 1 − 2σ²; pathwise's variance in b is σ²."""
    problem = problems["linear_gaussian_elbo"]
    mu, sigma, b = float(problem.params["loc"][0]), math.exp(float(problem.params["log_scale"][0])), 0.2
    x = iw.LINEAR_GAUSSIAN_OBSERVATION
    np.testing.assert_allclose(flat(problem.exact_grad), [x - mu - b, x - 2 * mu - b, 1 - 2 * sigma**2], rtol=1e-7)
    np.testing.assert_allclose(problem.exact_variance("pathwise", 1)["b"], sigma**2, rtol=1e-7)


def test_the_bound_gradient_vanishes_in_the_proposal_at_the_posterior(problems):
    """With q the exact posterior, log w = log p(x) for every particle: the bound is log p(x) for every
    K, so its gradient in q's parameters is zero, and STL's and DReG's are zero sample by sample."""
    problem = problems["linear_gaussian_elbo_posterior"]
    np.testing.assert_allclose(flat({k: problem.exact_grad[k] for k in ("loc", "log_scale")}), 0.0, atol=1e-7)
    for name in ("stl", "dreg"):
        variance = problem.exact_variance(name, 1)
        np.testing.assert_allclose(flat({k: variance[k] for k in ("loc", "log_scale")}), 0.0, atol=1e-12)
    assert np.all(flat(problem.exact_variance("pathwise", 1)) > 0.4)


def test_tighter_bounds_lose_proposal_signal_under_pathwise_but_not_under_dreg(problems):
    """Rainforth et al. (2018): the IWAE pathwise gradient's signal-to-noise ratio in q's parameters falls
    with K; DReG's variance there is far below pathwise's (exact, by quadrature)."""
    snr = {}
    for name in ("linear_gaussian_elbo", "linear_gaussian_iw2", "linear_gaussian_iw3"):
        problem = problems[name]
        pathwise, dreg = problem.exact_variance("pathwise", 1), problem.exact_variance("dreg", 1)
        for key in ("loc", "log_scale"):
            assert dreg[key] < 0.5 * pathwise[key], (name, key)
        snr[name] = abs(problem.exact_grad["loc"][0]) / math.sqrt(pathwise["loc"][0])
    assert snr["linear_gaussian_elbo"] > snr["linear_gaussian_iw2"] > snr["linear_gaussian_iw3"]


# --- the estimators against them ---------------------------------------------------------------------

CASES = [
    ("bernoulli_iw3", "score_function", 1),
    ("bernoulli_iw3", "vimco", 1),
    ("bernoulli_iw3", "vimco", 4),
    ("bernoulli_iw2", "vimco", 1),
    ("linear_gaussian_iw2", "pathwise", 1),
    ("linear_gaussian_iw2", "dreg", 1),
    ("linear_gaussian_iw2", "dreg", 4),
    ("linear_gaussian_iw3", "dreg", 1),
    ("linear_gaussian_elbo", "stl", 1),
    ("linear_gaussian_elbo", "dreg", 1),
    # A parameter of both the model and the proposal (b): DReG gives it both terms, from one pytree.
    ("linear_gaussian_iw2_shared", "dreg", 1),
    ("linear_gaussian_iw2_shared", "pathwise", 1),
]


@pytest.mark.parametrize("problem_name, name, num_samples", CASES)
def test_estimates_match_the_exact_gradient_and_variance(problems, problem_name, name, num_samples, key):
    """The Bernoulli bounds have two examples (a plate): their exact variances are the sums of each
    example's, so an estimator that mixed the examples' signals would fail the variance check."""
    problem = problems[problem_name]
    grads, _ = replicate_grads(problem, name, num_samples, key)
    label = f"{name} on {problem_name}, L = {num_samples}"
    assert_mean_matches(grads, flat(problem.exact_grad), label=label)
    assert_variance_matches(grads, flat(problem.exact_variance(name, num_samples)), label=label)


def test_unbiased_estimators_of_the_bound_agree_on_its_gradient(problems, key):
    """score_function_loo (L = 2) has no exact variance here; its mean is the bound's gradient too, and so
    is pathwise's with the score function's on the Gaussian bound."""
    for problem_name, name, num_samples in (("bernoulli_iw3", "score_function_loo", 2),
                                            ("linear_gaussian_iw2", "score_function", 1)):
        key, subkey = jax.random.split(key)
        grads, _ = replicate_grads(problems[problem_name], name, num_samples, subkey)
        assert_mean_matches(grads, flat(problems[problem_name].exact_grad), label=f"{name} on {problem_name}")


def test_the_value_estimates_the_bound(problems, key):
    """``value`` is the K-particle bound's estimate; K = 1 gives the ELBO, whose closed form is
    E[log N(z; 0, 1)] + E[log N(x; z + b, 1)] + H(q)."""
    problem = problems["linear_gaussian_elbo"]
    _, values = replicate_grads(problem, "stl", 1, key)
    mu, sigma, b = float(problem.params["loc"][0]), math.exp(float(problem.params["log_scale"][0])), 0.2
    x = iw.LINEAR_GAUSSIAN_OBSERVATION
    elbo = (-math.log(2 * math.pi) - 0.5 * (mu**2 + sigma**2) - 0.5 * ((x - b - mu) ** 2 + sigma**2)
            + 0.5 * math.log(2 * math.pi * math.e * sigma**2))
    assert_mean_matches(values[:, None], [elbo], label="the ELBO's estimate")


def test_stl_has_zero_proposal_gradient_at_the_posterior(problems, key):
    problem = problems["linear_gaussian_elbo_posterior"]
    g = jax.vmap(est.grad(problem.objective, "stl", 1), in_axes=(None, 0))(problem.params, jax.random.split(key, 64))
    np.testing.assert_allclose(flat({k: g[k] for k in ("loc", "log_scale")}), 0.0, atol=1e-5)
    assert np.std(np.asarray(g["b"])) > 0.1  # the model's gradient still varies with z


# --- the contract: construction, errors, shared programs --------------------------------------------


def test_refusals_name_the_estimator_that_serves(problems):
    bernoulli, gaussian = problems["bernoulli_iw3"], problems["linear_gaussian_iw2"]
    with pytest.raises(ValueError, match="use dreg"):
        est.grad(gaussian.objective, "stl", 1)(gaussian.params, jax.random.key(0))
    with pytest.raises(ValueError, match="use vimco"):
        est.grad(bernoulli.objective, "dreg", 1)(bernoulli.params, jax.random.key(0))
    elbo = iw.bernoulli_bound(1)
    with pytest.raises(ValueError, match="needs K >= 2"):
        est.grad(elbo.objective, "vimco", 1)(elbo.params, jax.random.key(0))
    plain = est.Objective(dist=lambda p: est.Normal(p["loc"], 1.0), cost=lambda p, x: jnp.sum(x**2))
    for name in ("vimco", "dreg", "stl"):
        with pytest.raises(ValueError, match="ImportanceWeightedObjective"):
            est.grad(plain, name, 2)({"loc": jnp.zeros(2)}, jax.random.key(0))
    with pytest.raises(ValueError, match="Estimators that can: .*vimco"):
        est.grad(bernoulli.objective, "arm", 1)(bernoulli.params, jax.random.key(0))


def test_dreg_and_stl_refuse_a_proposal_whose_support_moves():
    """Their score-to-path identity needs a fixed support: on a Pareto proposal (support [scale, ∞)) they
    would return a biased gradient in the scale, so they refuse it and name pathwise."""
    objective = est.ImportanceWeightedObjective(
        dist=lambda p: est.Pareto(p["scale"], 3.0), log_joint=lambda p, z: -jnp.sum(z), num_particles=1)
    for name in ("dreg", "stl"):
        with pytest.raises(ValueError, match="support .*use pathwise"):
            est.grad(objective, name, 1)({"scale": jnp.array([0.8])}, jax.random.key(0))


def test_vimco_signals_stay_finite_where_the_model_rules_a_particle_out():
    """A particle with log p(x, z) = −∞ (a latent the model gives no mass) has weight 0: the others'
    leave-one-out bounds stay finite and equal their definition, log (1/K)(Σ_{j≠k} w_j + geometric mean)."""
    from estimators.vimco import leave_one_out_bounds

    bounds = np.asarray(leave_one_out_bounds(jnp.array([-jnp.inf, 0.0, 1.0])))
    # Leaving out the ruled-out particle puts the others' geometric mean, e^0.5, in its place; leaving out
    # another puts a zero weight there (a geometric mean with a zero weight is zero).
    np.testing.assert_allclose(bounds, [math.log((math.exp(0.5) + 1 + math.e) / 3), 1 - math.log(3), -math.log(3)],
                               rtol=1e-6)


def test_bad_objectives_are_refused_clearly(problems):
    objective = problems["linear_gaussian_iw2"].objective
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_particles must be a positive integer"):
            est.ImportanceWeightedObjective(objective.proposal, objective.log_joint, bad)
    with pytest.raises(TypeError, match="log_joint must be a function"):
        est.ImportanceWeightedObjective(objective.proposal, 3.0, 2)
    wrong_shape = est.ImportanceWeightedObjective(objective.proposal, lambda p, z: z, 2)
    with pytest.raises(ValueError, match="log_joint must return a scalar"):
        est.grad(wrong_shape, "pathwise", 1)(problems["linear_gaussian_iw2"].params, jax.random.key(0))


def test_particles_stack_after_the_examples(problems):
    problem = problems["bernoulli_iw3"]
    dist = problem.distribution()
    assert isinstance(dist, est.Particles) and dist.event_shape == (2, 3, 2) and dist.max_batch_ndims == 1
    sample = dist.sample(jax.random.key(0))
    np.testing.assert_allclose(dist.example_log_prob(sample, 1),
                               sum(dist.proposal.example_log_prob(dist.particle(sample, k), 1) for k in range(3)),
                               rtol=1e-6)


def test_equal_objectives_share_a_compiled_program(problems):
    problem = problems["linear_gaussian_iw2"]
    again = est.ImportanceWeightedObjective(problem.objective.proposal, problem.objective.log_joint, np.int64(2))
    assert again == problem.objective and hash(again) == hash(problem.objective)
    assert problem.objective.with_num_particles(3).with_num_particles(2) == problem.objective
    assert problem.objective.with_num_particles(3).num_particles == 3
    traces = []

    @jax.jit
    def estimate(objective, params, key):
        traces.append(None)
        return est.grad(objective, "dreg", 2)(params, key)

    estimate(problem.objective, problem.params, jax.random.key(0))
    estimate(again, problem.params, jax.random.key(1))
    assert len(traces) == 1
