"""IndeCateR against exact means and variances by enumeration, and its zero variance on a separable cost.

One sample's estimate in the logits of variable d is J_dᵀ (f(x_{−d}, k))_k, J_d the softmax's Jacobian:
a function of the sample, so its exact mean and variance are sums over the K^D outcomes, written here in
NumPy from that formula.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

import estimators as est
from experiments import problems
from tests.stats import assert_mean_matches, assert_variance_matches

LOGITS = np.array([[0.5, -0.2, 0.1], [-1.0, 0.3, 0.8]])  # 2 variables × 3 classes
VALUES = np.array([0.0, 0.4, 1.0])


def cost(x):
    """Not separable: the product couples the two variables."""
    first, second = x[0] @ VALUES, x[1] @ VALUES
    return (first - 0.3) ** 2 + 2.0 * first * second


def jax_cost(logits, x):
    first, second = x[0] @ jnp.asarray(VALUES), x[1] @ jnp.asarray(VALUES)
    return (first - 0.3) ** 2 + 2.0 * first * second


def exact_moments(logits=LOGITS):
    """(∇F, E ĝ, Var ĝ of one sample) in the logits, by enumeration."""
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    jacobians = np.einsum("dk,kj->dkj", p, np.eye(3)) - np.einsum("dk,dj->dkj", p, p)
    outcomes = [np.eye(3)[list(classes)] for classes in itertools.product(range(3), repeat=2)]
    probabilities = np.array([np.prod(p[[0, 1], x.argmax(axis=1)]) for x in outcomes])
    gradient = sum(w * cost(x) * (x - p) for w, x in zip(probabilities, outcomes))
    estimates = []
    for x in outcomes:
        per_variable = []
        for d in range(2):
            class_costs = np.array([cost(np.where(np.arange(2)[:, None] == d, np.eye(3)[k], x)) for k in range(3)])
            per_variable.append(jacobians[d] @ class_costs)
        estimates.append(np.stack(per_variable))
    estimates = np.array(estimates)
    mean = np.tensordot(probabilities, estimates, axes=1)
    return gradient, mean, np.tensordot(probabilities, (estimates - mean) ** 2, axes=1)


def test_the_enumerated_estimate_has_the_gradient_as_its_mean():
    gradient, mean, variance = exact_moments()
    np.testing.assert_allclose(mean, gradient, rtol=1e-12)
    assert variance.sum() > 1e-2  # the coupled cost leaves a variance to measure


def test_mean_and_variance_match_the_enumeration(key):
    gradient, _, variance = exact_moments()
    objective = est.Objective(dist=est.Categorical, cost=jax_cost)
    num_samples = 3
    estimate = jax.jit(jax.vmap(est.grad(objective, "indecater", num_samples), in_axes=(None, 0)))
    estimates = np.asarray(estimate(jnp.asarray(LOGITS, jnp.float32), jax.random.split(key, 100_000)))
    assert_mean_matches(estimates, gradient, label="indecater")
    assert_variance_matches(estimates, variance / num_samples, label="indecater")
    # Each variable's two other classes, and the sample itself.
    assert est.get("indecater").cost_evaluations(num_samples, est.Categorical(LOGITS)) == num_samples * (2 * 2 + 1)


def test_a_separable_cost_is_differentiated_exactly(key):
    """The categorical toy's cost Σ_d c(x_d): every estimate is the exact gradient."""
    problem = problems.get("categorical_toy")
    estimate = jax.vmap(est.grad(problem.objective, "indecater", 1), in_axes=(None, 0))
    estimates = estimate(problem.params, jax.random.split(key, 16))
    for leaf, exact in zip(jax.tree_util.tree_leaves(estimates), jax.tree_util.tree_leaves(problem.exact_grad)):
        np.testing.assert_allclose(leaf, np.broadcast_to(exact, leaf.shape), rtol=1e-5, atol=1e-7)


def test_a_cost_depending_on_the_parameters_adds_its_direct_term(key):
    """f(θ, x) = θ_w · (x_0 · v) + Σ_d (x_d · v)²: ∂F/∂w = E[x_0 · v], and the logits' gradient carries w."""
    params = {"logits": jnp.asarray(LOGITS, jnp.float32), "w": jnp.array(0.7)}
    values = jnp.asarray(VALUES)
    objective = est.Objective(dist=lambda q: est.Categorical(q["logits"]),
                              cost=lambda q, x: q["w"] * (x[0] @ values) + jnp.sum((x @ values) ** 2))
    p = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
    class_costs = np.stack([0.7 * VALUES + VALUES**2, VALUES**2])  # separable: exact at every sample
    exact_logits = p * (class_costs - np.sum(p * class_costs, axis=1, keepdims=True))
    grads = jax.vmap(est.grad(objective, "indecater", 2), in_axes=(None, 0))(params, jax.random.split(key, 50_000))
    np.testing.assert_allclose(grads["logits"], np.broadcast_to(exact_logits, grads["logits"].shape),
                               rtol=1e-4, atol=1e-6)
    assert_mean_matches(grads["w"], [p[0] @ VALUES], label="direct term")


def test_a_plate_sets_each_examples_variable_in_its_own_cost(key):
    """Two examples of two 3-class variables each; example n's cost couples its own variables only, so the
    plate's estimate of example n has example n's own enumerated mean."""
    logits = jnp.stack([jnp.asarray(LOGITS, jnp.float32), jnp.asarray(LOGITS[::-1], jnp.float32)])  # (2, 2, 3)
    objective = est.Objective(dist=est.Categorical, cost=lambda q, x: jax.vmap(jax_cost, in_axes=(None, 0))(q, x),
                              batch_ndims=1)
    assert est.get("indecater").cost_evaluations(3, objective.distribution(logits), batch_ndims=1) == 3 * (2 * 2 + 1)
    first, second = exact_moments()[0], exact_moments(LOGITS[::-1])[0]
    estimate = jax.jit(jax.vmap(est.grad(objective, "indecater", 2), in_axes=(None, 0)))
    assert_mean_matches(estimate(logits, jax.random.split(key, 50_000)), np.stack([first, second]), label="plate")


def test_on_bernoulli_latents_it_is_the_measure_valued_estimate_at_fewer_evaluations(key):
    """Two classes: the same estimate, key for key (to float rounding), as the measure-valued estimator's, which
    evaluates both classes of every coordinate where IndeCateR reuses the sample for one of them."""
    problem = problems.get("bernoulli_plate")
    keys = jax.random.split(key, 8)
    estimates = {name: jax.vmap(est.grad(problem.objective, name, 2), in_axes=(None, 0))(problem.params, keys)
                 for name in ("indecater", "measure_valued")}
    for a, b in zip(*map(jax.tree_util.tree_leaves, estimates.values())):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())
    dist, batch_ndims = problem.distribution(), problem.objective.batch_ndims
    variables = np.prod(dist.event_shape[batch_ndims:])
    assert est.get("indecater").cost_evaluations(2, dist, batch_ndims) == 2 * (variables + 1)
    assert est.get("measure_valued").cost_evaluations(2, dist, batch_ndims) == 2 * (2 * variables + 1)
