"""The measure-valued estimator on Bernoulli latents against exact means and variances by enumeration.

One sample's estimate in the logits is g_d(x) = p_d (1 − p_d) (f(x_{−d}, 1) − f(x_{−d}, 0)), a function of
the sample x, so its exact mean and variance are sums over the 2^D outcomes, written here in NumPy from
that formula.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

import estimators as est
from experiments import problems
from tests.stats import assert_mean_matches, assert_variance_matches

LOGITS = np.array([-0.6, 0.1, 0.8])


def cost(b):
    """Not separable: each coordinate's difference depends on the other coordinates."""
    return (b @ np.array([1.0, -0.7, 0.5]) - 0.3) ** 2 + b[0] * b[2]


def jax_cost(logits, b):
    return (b @ jnp.array([1.0, -0.7, 0.5]) - 0.3) ** 2 + b[0] * b[2]


def exact_moments():
    """(∇F, Var of one sample's estimate) in the logits, both by enumeration."""
    p = 1 / (1 + np.exp(-LOGITS))
    points = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    probabilities = np.prod(np.where(points == 1, p, 1 - p), axis=1)
    gradient = (probabilities * np.array([cost(b) for b in points])) @ (points - p)
    estimates = np.array([[p[d] * (1 - p[d]) * (cost(np.where(np.arange(3) == d, 1.0, b))
                                                  - cost(np.where(np.arange(3) == d, 0.0, b))) for d in range(3)]
                          for b in points])
    mean = probabilities @ estimates
    return gradient, mean, probabilities @ (estimates - mean) ** 2


def test_the_enumerated_estimate_has_the_gradient_as_its_mean():
    gradient, mean, _ = exact_moments()
    np.testing.assert_allclose(mean, gradient, rtol=1e-12)


def test_mean_and_variance_match_the_enumeration(key):
    gradient, _, variance = exact_moments()
    objective = est.Objective(dist=est.Bernoulli, cost=jax_cost)
    num_samples = 4
    estimate = jax.jit(jax.vmap(est.grad(objective, "measure_valued", num_samples), in_axes=(None, 0)))
    estimates = np.asarray(estimate(jnp.asarray(LOGITS, jnp.float32), jax.random.split(key, 100_000)))
    assert_mean_matches(estimates, gradient, label="measure_valued on Bernoulli")
    assert_variance_matches(estimates, variance / num_samples, label="measure_valued on Bernoulli")


def test_a_separable_cost_is_differentiated_exactly(key):
    """f = Σ_d c_d(x_d): each difference is c_d(1) − c_d(0) whatever the other coordinates, so every
    estimate is the exact gradient (on the Bernoulli toy, Σ (b − t)²)."""
    problem = problems.get("bernoulli_toy")
    estimate = jax.vmap(est.grad(problem.objective, "measure_valued", 1), in_axes=(None, 0))
    estimates = estimate(problem.params, jax.random.split(key, 16))
    for leaf, exact in zip(jax.tree_util.tree_leaves(estimates), jax.tree_util.tree_leaves(problem.exact_grad)):
        np.testing.assert_allclose(leaf, np.broadcast_to(exact, leaf.shape), rtol=1e-5, atol=1e-7)


def test_a_plate_perturbs_each_examples_coordinate_in_its_own_cost(key):
    """Two examples of two coordinates each: the plate's estimate of example n equals the one of example n
    alone (its own cost), so its mean is each example's own gradient."""
    logits = jnp.array([[-0.4, 0.9], [0.3, -1.2]])
    weights = jnp.array([[1.0, -2.0], [0.5, 1.5]])
    per_example = est.Objective(dist=est.Bernoulli, cost=lambda q, b: (jnp.sum(weights * b, axis=-1) - 0.5) ** 2
                                + b[:, 0] * b[:, 1], batch_ndims=1)
    assert est.get("measure_valued").cost_evaluations(3, per_example.distribution(logits), batch_ndims=1) == 3 * 5
    p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    exact = np.zeros((2, 2))
    for n in range(2):
        for b in itertools.product([0.0, 1.0], repeat=2):
            b = np.array(b)
            probability = np.prod(np.where(b == 1, p[n], 1 - p[n]))
            f = (np.sum(np.asarray(weights[n]) * b) - 0.5) ** 2 + b[0] * b[1]
            exact[n] += probability * f * (b - p[n])
    estimate = jax.jit(jax.vmap(est.grad(per_example, "measure_valued", 2), in_axes=(None, 0)))
    assert_mean_matches(estimate(logits, jax.random.split(key, 50_000)), exact, label="measure_valued plate")
