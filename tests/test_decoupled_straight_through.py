"""Decoupled straight-through: its forward samples are draws from softmax(ℓ/τ_f), its gradient is J(s)∇f/τ_b at
s = softmax(ℓ/τ_b + g) of the same noise, at τ_f = τ_b = 1 it is straight-through Gumbel draw for draw, its
mean and variance match quadrature on the Bernoulli toy (with a plate too), its value is unbiased for the
objective at every τ_f, and masked classes and bad options are handled."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from experiments import problems
from experiments.problems.discrete import decoupled_bernoulli_moments, relaxed_bernoulli_moments
from tests.stats import assert_mean_matches, assert_variance_matches

NAME = "decoupled_straight_through"
OPTIONS = [{}, {"forward_temperature": 0.5, "temperature": 2.0}, {"forward_temperature": 2.0, "temperature": 0.5}]
OPTION_IDS = ["default", "tf0.5_tb2", "tf2_tb0.5"]


@pytest.mark.parametrize("problem_name", ["bernoulli_toy", "categorical_toy", "bernoulli_plate"])
def test_equal_unit_temperatures_are_straight_through_gumbel_draw_for_draw(problem_name, key):
    problem = problems.get(problem_name)
    decoupled = est.value_and_grad(problem.objective, est.get(NAME, forward_temperature=1.0, temperature=1.0), 4)
    gumbel = est.value_and_grad(problem.objective, est.get("straight_through_gumbel"), 4)
    (value, grads), (gumbel_value, gumbel_grads) = decoupled(problem.params, key), gumbel(problem.params, key)
    np.testing.assert_allclose(value, gumbel_value, rtol=1e-6)
    for leaf, gumbel_leaf in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(gumbel_grads)):
        np.testing.assert_allclose(leaf, gumbel_leaf, rtol=1e-5, atol=1e-7)


def test_the_forward_samples_are_draws_from_the_tempered_distribution(key):
    """With f(θ, x) = w·x, the gradient in w is the forward sample itself: its mean over many estimates is
    softmax(ℓ/τ_f), not softmax(ℓ)."""
    logits = jnp.array([[1.0, 0.0, -1.5, 0.5], [-0.3, 2.0, 0.1, -2.0]])
    objective = est.Objective(dist=lambda q: est.Categorical(q["logits"]), cost=lambda q, x: jnp.sum(q["w"] * x))
    params = {"logits": logits, "w": jnp.zeros_like(logits)}
    for forward_temperature in (0.5, 1.0, 2.5):
        estimator = est.get(NAME, forward_temperature=forward_temperature)
        estimate = jax.jit(jax.vmap(est.grad(objective, estimator, 2), in_axes=(None, 0)))
        samples = np.asarray(estimate(params, jax.random.split(jax.random.fold_in(key, 1), 40_000))["w"])
        expected = np.asarray(jax.nn.softmax(logits / forward_temperature, axis=-1), np.float64)
        assert_mean_matches(samples, expected, label=f"τ_f = {forward_temperature}")


def test_the_gradient_is_the_backward_softmax_jacobian_at_the_same_noise(key):
    """One sample, recomputed by hand from the noise the estimator draws (sample i's key is fold_in(key, i))."""
    logits = jnp.array([[0.8, -0.4, 0.1], [-1.0, 0.3, 1.2]])
    values = jnp.array([0.0, 0.5, 1.0])
    objective = est.Objective(dist=est.Categorical, cost=lambda q, x: jnp.sum((x @ values - 0.45) ** 2))
    forward_temperature, backward_temperature = 1.7, 0.6
    estimator = est.get(NAME, forward_temperature=forward_temperature, temperature=backward_temperature)
    for i in range(5):
        sample_key = jax.random.fold_in(key, i)
        grads = np.asarray(est.grad(objective, estimator, 1)(logits, sample_key), np.float64)
        noise = np.asarray(jax.random.gumbel(jax.random.fold_in(sample_key, 0), logits.shape), np.float64)
        ell = np.asarray(logits, np.float64)
        one_hot = np.eye(3)[np.argmax(ell / forward_temperature + noise, axis=-1)]
        soft = np.exp(ell / backward_temperature + noise)
        soft /= soft.sum(axis=-1, keepdims=True)
        cost_gradient = 2 * (one_hot @ np.asarray(values) - 0.45)[:, None] * np.asarray(values)
        jacobian = np.einsum("dk,kj->dkj", soft, np.eye(3)) - np.einsum("dk,dj->dkj", soft, soft)
        np.testing.assert_allclose(grads, np.einsum("dkj,dj->dk", jacobian, cost_gradient) / backward_temperature,
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_mean_and_variance_match_the_quadrature_on_the_bernoulli_toy(options, key):
    problem = problems.get("bernoulli_toy")
    estimator = est.get(NAME, **options)
    num_samples = 4
    estimate = jax.jit(jax.vmap(est.grad(problem.objective, estimator, num_samples), in_axes=(None, 0)))
    grads = np.asarray(estimate(problem.params, jax.random.split(key, 50_000))["logits"])
    label = f"{NAME}{options}"
    assert_mean_matches(grads, problem.exact_mean(estimator)["logits"], label=label)
    assert_variance_matches(grads, problem.exact_variance(estimator, num_samples)["logits"], label=label)


def test_the_quadrature_at_equal_unit_temperatures_is_straight_through_gumbels():
    for logit in (-1.0, 0.2, 1.5):
        np.testing.assert_allclose(decoupled_bernoulli_moments(logit, 0.45, 1.0, 1.0),
                                   relaxed_bernoulli_moments(logit, 0.45, 1.0, straight_through=True), rtol=1e-12)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_it_is_biased(options):
    """Its expectation (exact, by quadrature) is not the gradient: the bias is at least a tenth of it."""
    problem = problems.get("bernoulli_toy")
    mean = problem.exact_mean(est.get(NAME, **options))["logits"]
    exact = problem.exact_grad["logits"]
    assert np.linalg.norm(mean - exact) > 0.1 * np.linalg.norm(exact)


def _toy_objective_values():
    """The exact objectives of the two toys, from their definitions."""
    target = 0.45
    p = 1 / (1 + np.exp(-np.linspace(-1.0, 1.0, 5)))
    bernoulli = np.sum(p * (1 - target) ** 2 + (1 - p) * target**2)
    logits = np.linspace(1.0, -1.0, 4)[None, :] * np.linspace(0.5, 1.5, 3)[:, None]
    q = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    categorical = np.sum(q * (np.linspace(0.0, 1.0, 4) - target) ** 2)
    return {"bernoulli_toy": bernoulli, "categorical_toy": categorical}


@pytest.mark.parametrize("problem_name", ["bernoulli_toy", "categorical_toy"])
@pytest.mark.parametrize("forward_temperature", [0.5, 1.0, 2.5])
def test_the_value_is_unbiased_for_the_objective_at_every_forward_temperature(problem_name, forward_temperature,
                                                                             key):
    problem = problems.get(problem_name)
    estimator = est.get(NAME, forward_temperature=forward_temperature)
    estimate = jax.jit(jax.vmap(est.value_and_grad(problem.objective, estimator, 2), in_axes=(None, 0)))
    values, _ = estimate(problem.params, jax.random.split(key, 40_000))
    assert_mean_matches(np.asarray(values)[:, None], _toy_objective_values()[problem_name],
                        label=f"value at τ_f = {forward_temperature} on {problem_name}")


def test_a_plate_gives_each_example_its_own_expectation_and_weight(key):
    """Two examples of three Bernoulli coordinates, cost_n = Σ_k (x_nk − t)²: each coordinate's mean is the
    quadrature at its own logit, and the value (weighted per example) is the summed objective."""
    logits = np.array([[-1.0, 0.3, 1.1], [0.6, -0.2, -1.4]])
    target, options = 0.45, {"forward_temperature": 2.0, "temperature": 0.7}
    objective = est.Objective(dist=est.Bernoulli, batch_ndims=1, cost=lambda q, x: jnp.sum((x - target) ** 2, axis=-1))
    estimate = jax.jit(jax.vmap(est.value_and_grad(objective, est.get(NAME, **options), 2), in_axes=(None, 0)))
    values, grads = estimate(jnp.asarray(logits, jnp.float32), jax.random.split(key, 50_000))
    expected = np.array([[decoupled_bernoulli_moments(logit, target, 2.0, 0.7)[0] for logit in row] for row in logits])
    assert_mean_matches(np.asarray(grads), expected, label="plate gradient")
    p = 1 / (1 + np.exp(-logits))
    assert_mean_matches(np.asarray(values)[:, None], np.sum(p * (1 - target) ** 2 + (1 - p) * target**2),
                        label="plate value")


def test_a_masked_class_gets_no_gradient_and_no_nan(key):
    logits = jnp.array([0.2, -jnp.inf, 0.5])
    objective = est.Objective(dist=est.Categorical, cost=lambda q, x: x @ jnp.array([1.0, 2.0, -1.0]))
    values, grads = jax.vmap(est.value_and_grad(objective, NAME, 3), in_axes=(None, 0))(logits,
                                                                                        jax.random.split(key, 100))
    assert np.all(np.isfinite(np.asarray(values))) and np.all(np.isfinite(np.asarray(grads)))
    assert np.all(np.asarray(grads)[:, 1] == 0)


@pytest.mark.parametrize("option", ["forward_temperature", "temperature"])
def test_a_non_positive_temperature_is_refused(option):
    with pytest.raises(ValueError, match=rf"{NAME} needs a positive .*got 0"):
        est.get(NAME, **{option: 0.0})
