"""Gapped straight-through: its moved logits against their definition, its mean and variance against the toys'
enumeration (at the default options and at others), its bias shown, and a plate, masked classes and bad
options."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from estimators.gapped_straight_through import gapped_logits
from experiments import problems
from experiments.problems.discrete import gapped_straight_through_moments
from tests.stats import assert_mean_matches, assert_variance_matches


def test_the_sampled_class_becomes_the_argmax_with_the_gap_to_the_others():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=2.0, size=(200, 5)).astype(np.float32)
    classes = rng.integers(0, 5, size=200)
    one_hot = np.eye(5, dtype=np.float32)[classes]
    for gap in (0.0, 1.0, 2.5):
        moved = np.asarray(gapped_logits(jnp.asarray(logits), jnp.asarray(one_hot), gap))
        top = logits.max(axis=-1)
        np.testing.assert_allclose(moved[np.arange(200), classes], top, atol=1e-6)  # float32 rounding
        others = np.where(one_hot > 0, -np.inf, moved)
        assert np.all(others.max(axis=-1) <= top - gap + 1e-6)
        # Classes already a gap below the top are left where they were.
        untouched = (one_hot == 0) & (logits <= top[:, None] - gap)
        np.testing.assert_array_equal(moved[untouched], logits[untouched])


OPTIONS = [{}, {"temperature": 0.5, "gap": 0.5}]


@pytest.mark.parametrize("problem_name", ["bernoulli_toy", "categorical_toy", "categorical_toy_10"])
@pytest.mark.parametrize("options", OPTIONS, ids=["default", "tau0.5_gap0.5"])
def test_mean_and_variance_match_the_enumeration(problem_name, options, key):
    problem = problems.get(problem_name)
    estimator = est.get("gapped_straight_through", **options)
    num_samples = 4
    estimate = jax.jit(jax.vmap(est.grad(problem.objective, estimator, num_samples), in_axes=(None, 0)))
    grads = np.asarray(estimate(problem.params, jax.random.split(key, 50_000))["logits"]).reshape(50_000, -1)
    label = f"gapped_straight_through{options} on {problem_name}"
    assert_mean_matches(grads, problem.exact_mean(estimator)["logits"].reshape(-1), label=label)
    assert_variance_matches(grads, problem.exact_variance(estimator, num_samples)["logits"].reshape(-1), label=label)


@pytest.mark.parametrize("problem_name", ["bernoulli_toy", "categorical_toy"])
def test_it_is_biased(problem_name):
    """Its expectation (exact, by enumeration) is not the gradient: the bias is at least a tenth of it."""
    problem = problems.get(problem_name)
    mean = problem.exact_mean(est.get("gapped_straight_through"))["logits"]
    exact = problem.exact_grad["logits"]
    assert np.linalg.norm(mean - exact) > 0.1 * np.linalg.norm(exact)


def test_a_plate_gives_each_example_its_own_expectation(key):
    """Two examples with their own logits; example n's cost reads its own variable only."""
    logits = np.array([[0.3, -0.5, 1.0], [-1.2, 0.4, 0.1]])
    values, target = np.array([0.0, 0.5, 1.0]), 0.45
    objective = est.Objective(dist=est.Categorical, batch_ndims=1,
                              cost=lambda q, x: (x @ jnp.asarray(values, x.dtype) - target) ** 2)
    estimate = jax.jit(jax.vmap(est.grad(objective, "gapped_straight_through", 2), in_axes=(None, 0)))
    grads = np.asarray(estimate(jnp.asarray(logits, jnp.float32), jax.random.split(key, 50_000)))
    class_gradients = np.broadcast_to(2 * (values - target)[:, None] * values[None, :], (2, 3, 3))
    mean, _ = gapped_straight_through_moments(logits, class_gradients, 1.0, 1.0)
    assert_mean_matches(grads.reshape(50_000, -1), mean.reshape(-1), label="plate")


def test_a_masked_class_gets_no_gradient_and_no_nan(key):
    logits = jnp.array([0.2, -jnp.inf, 0.5])
    objective = est.Objective(dist=est.Categorical, cost=lambda q, x: x @ jnp.array([1.0, 2.0, -1.0]))
    grads = jax.vmap(est.grad(objective, "gapped_straight_through", 3), in_axes=(None, 0))(
        logits, jax.random.split(key, 100))
    assert np.all(np.isfinite(np.asarray(grads)))
    assert np.all(np.asarray(grads)[:, 1] == 0)


@pytest.mark.parametrize("options, message", [({"gap": -0.5}, "non-negative gap"),
                                               ({"temperature": 0.0}, "positive temperature")])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        est.get("gapped_straight_through", **options)


def test_a_normal_is_refused():
    objective = est.Objective(dist=lambda q: est.Normal(q, 1.0), cost=lambda q, x: x**2)
    with pytest.raises(ValueError, match="Bernoulli or Categorical"):
        est.grad(objective, "gapped_straight_through", 1)(jnp.array(0.0), jax.random.key(0))
