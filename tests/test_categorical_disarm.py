"""Categorical DisARM against its exact mean and variance, by enumeration of the stick-breaking bits.

Each variable's K − 1 stick-breaking coordinates are independent, and per coordinate, with s = σ(α_i), the
antithetic pair of bits (b_i, b̃_i) = (1[u < s], 1[1 − u < s]) takes the values (0, 0), (1, 0), (0, 1) and
(1, 1) with probabilities (1 − 2s)_+, min(s, 1 − s), min(s, 1 − s) and (2s − 1)_+.  The estimate of every
one of the 4^(D(K−1)) joint outcomes is written here in NumPy from the formula, bit by bit, so its exact
mean and variance are sums over them.  The problems' exact variances reduce the same law to the pair
(z, z̃) of each variable (experiments.problems.discrete.categorical_disarm_pairs); one test checks the
reduction against these sums.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from tests.stats import assert_mean_matches, assert_variance_matches

VALUES = np.array([0.0, 1.0, 2.5, -1.0])  # the classes' values (the first K of them)
LOGITS = {3: np.array([[0.4, -0.3, 0.9], [-0.5, 0.2, 1.6]]),
          4: np.array([[0.3, -0.5, 1.1, 0.2], [-1.0, 0.4, 0.0, 0.7]])}


def coupled_cost(x):
    """Not separable: the product couples the two variables (x one-hot, (2, K))."""
    a, b = x[0] @ VALUES[: x.shape[-1]], x[1] @ VALUES[: x.shape[-1]]
    return (a - 0.3) ** 2 + 2.0 * a * b - b


def separable_cost(x):
    return np.sum((x @ VALUES[: x.shape[-1]] - 0.45) ** 2)


def exact_gradient(logits, cost):
    num_vars, num_classes = logits.shape
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gradient = np.zeros_like(p)
    for classes in itertools.product(range(num_classes), repeat=num_vars):
        x = np.eye(num_classes)[list(classes)]
        gradient += np.prod(p[np.arange(num_vars), classes]) * cost(x) * (x - p)
    return gradient


def exact_moments(logits, cost, order="natural"):
    """(E ĝ, Var ĝ) of one pair's estimate in the logits, by enumeration of the bits."""
    num_vars, num_classes = logits.shape
    if order == "descending":
        permutation = np.argsort(-logits, axis=1, kind="stable")
    else:
        permutation = np.tile(np.arange(num_classes), (num_vars, 1))
    ordered = np.take_along_axis(logits, permutation, axis=1)
    p = np.exp(ordered) / np.exp(ordered).sum(axis=1, keepdims=True)
    reach = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]  # Σ_{j ≥ i} p_j
    s = p[:, :-1] / reach[:, :-1]
    alpha = np.log(s) - np.log1p(-s)
    # ∂α_i/∂ℓ_k (ordered classes): log p_i − log Σ_{j>i} p_j gives δ_ik − [k > i] p_k / Σ_{j>i} p_j.
    jacobians = [np.eye(num_classes)[:-1] - np.triu(p[d][None, :] / reach[d, 1:, None], k=1) for d in range(num_vars)]
    states = [(0, 0), (1, 0), (0, 1), (1, 1)]
    weights = np.stack([np.maximum(1 - 2 * s, 0), np.minimum(s, 1 - s), np.minimum(s, 1 - s), np.maximum(2 * s - 1, 0)])
    outcomes, probabilities = [], []
    for combo in itertools.product(range(4), repeat=num_vars * (num_classes - 1)):
        combo = np.reshape(combo, (num_vars, num_classes - 1))
        probability = np.prod(np.take_along_axis(weights, combo[None], axis=0)[0])
        if probability == 0:
            continue
        bits = np.array([[states[c] for c in row] for row in combo])  # (D, K − 1, 2)
        b, b_tilde = bits[..., 0], bits[..., 1]
        first = lambda row: int(np.argmax(row)) if row.any() else num_classes - 1
        z, z_tilde = [first(row) for row in b], [first(row) for row in b_tilde]
        x = np.eye(num_classes)[[permutation[d, z[d]] for d in range(num_vars)]]
        x_tilde = np.eye(num_classes)[[permutation[d, z_tilde[d]] for d in range(num_vars)]]
        weight = 0.5 * (cost(x) - cost(x_tilde))
        gradient = np.zeros((num_vars, num_classes))
        for d in range(num_vars):
            factor = np.zeros(num_classes - 1)
            for i in range(num_classes - 1):
                if i <= min(z[d], z_tilde[d]):
                    factor[i] = (-1) ** b_tilde[d, i] * (b[d, i] != b_tilde[d, i]) / (1 + np.exp(-abs(alpha[d, i])))
                elif i <= z[d]:
                    factor[i] = b[d, i] - s[d, i]
                elif i <= z_tilde[d]:
                    factor[i] = -(b_tilde[d, i] - s[d, i])
            gradient[d, permutation[d]] = weight * (jacobians[d].T @ factor)
        outcomes.append(gradient)
        probabilities.append(probability)
    probabilities, outcomes = np.array(probabilities), np.array(outcomes)
    mean = np.einsum("o,odk->dk", probabilities, outcomes)
    return mean, np.einsum("o,odk->dk", probabilities, (outcomes - mean) ** 2)


def objective(cost=coupled_cost, batch_ndims=0):
    return est.Objective(dist=est.Categorical, cost=lambda logits, x: cost(x), batch_ndims=batch_ndims)


def jax_cost(cost):
    """The NumPy costs above, traced (they use only @, ** and sums)."""
    def traced(x):
        values = jnp.asarray(VALUES[: x.shape[-1]], x.dtype)
        a, b = x[0] @ values, x[1] @ values
        if cost is coupled_cost:
            return (a - 0.3) ** 2 + 2.0 * a * b - b
        return (a - 0.45) ** 2 + (b - 0.45) ** 2
    return traced


@pytest.mark.parametrize("num_classes", [3, 4])
@pytest.mark.parametrize("order", ["natural", "descending"])
def test_the_enumerated_estimate_has_the_gradient_as_its_mean(num_classes, order):
    logits = LOGITS[num_classes]
    mean, variance = exact_moments(logits, coupled_cost, order)
    np.testing.assert_allclose(mean, exact_gradient(logits, coupled_cost), rtol=1e-10, atol=1e-13)
    assert variance.min() > 1e-3  # the coupled cost leaves a variance to measure


@pytest.mark.parametrize(("order", "num_samples"), [("natural", 1), ("descending", 1), ("natural", 3)])
def test_mean_and_variance_match_the_enumeration(key, order, num_samples):
    logits = LOGITS[4]
    mean, variance = exact_moments(logits, coupled_cost, order)
    estimator = est.CategoricalDisARM(order=order)
    run = jax.jit(jax.vmap(est.grad(objective(jax_cost(coupled_cost)), estimator, num_samples), in_axes=(None, 0)))
    estimates = np.asarray(run(jnp.asarray(logits, jnp.float32), jax.random.split(key, 100_000)))
    assert_mean_matches(estimates, mean, label=f"categorical_disarm {order} L={num_samples}")
    assert_variance_matches(estimates, variance / num_samples, label=f"categorical_disarm {order} L={num_samples}")


def test_the_problems_pair_law_reduction_matches_the_enumeration():
    from experiments.problems.discrete import categorical_disarm_separable_variance

    for num_classes in (3, 4):
        logits = LOGITS[num_classes]
        _, variance = exact_moments(logits, separable_cost)
        class_costs = (VALUES[:num_classes] - 0.45) ** 2
        np.testing.assert_allclose(categorical_disarm_separable_variance(logits, class_costs), variance, rtol=1e-10)


@pytest.mark.parametrize("name", ["categorical_toy", "categorical_toy_10"])
def test_measured_variance_on_the_categorical_toys_matches_the_exact_one(key, name):
    """Beyond enumeration of bits (K = 10: 4^27 outcomes): the toys' exact variance from the pair law."""
    from experiments import problems

    problem = problems.get(name)
    run = jax.jit(jax.vmap(est.grad(problem.objective, "categorical_disarm", 2), in_axes=(None, 0)))
    estimates = np.asarray(run(problem.params, jax.random.split(key, 100_000))["logits"])
    assert_mean_matches(estimates, problem.exact_grad["logits"], label=name)
    assert_variance_matches(estimates, problem.exact_variance("categorical_disarm", 2)["logits"], label=name)


def test_the_value_is_the_mean_of_the_pairs_costs(key):
    logits = LOGITS[3]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = sum(np.prod(p[np.arange(2), classes]) * coupled_cost(np.eye(3)[list(classes)])
                   for classes in itertools.product(range(3), repeat=2))
    run = jax.jit(jax.vmap(est.value_and_grad(objective(jax_cost(coupled_cost)), "categorical_disarm", 2),
                           in_axes=(None, 0)))
    values, _ = run(jnp.asarray(logits, jnp.float32), jax.random.split(key, 50_000))
    assert_mean_matches(np.asarray(values)[:, None], [expected], label="value")


def test_a_plate_pairs_each_example_and_weights_its_own_cost(key):
    """Two examples; example n's cost reads its own variables only, so its logits' expectation is its own
    enumerated gradient."""
    first, second = LOGITS[4], LOGITS[4][::-1]
    logits = jnp.asarray(np.stack([first, second]), jnp.float32)
    run = jax.jit(jax.vmap(est.grad(objective(jax.vmap(jax_cost(coupled_cost)), batch_ndims=1),
                                    "categorical_disarm", 2), in_axes=(None, 0)))
    expected = np.stack([exact_gradient(first, coupled_cost), exact_gradient(second, coupled_cost)])
    assert_mean_matches(run(logits, jax.random.split(key, 50_000)), expected, label="plate")


def test_a_cost_depending_on_the_parameters_adds_its_direct_term(key):
    """f(θ, x) = w · (v · x_0) + cost(x): ∂F/∂w = E[v · x_0], and the logits' gradient gains w's part."""
    logits = LOGITS[3]
    params = {"logits": jnp.asarray(logits, jnp.float32), "w": jnp.array(0.7)}
    values = VALUES[:3]
    direct = est.Objective(dist=lambda q: est.Categorical(q["logits"]),
                           cost=lambda q, x: q["w"] * (x[0] @ jnp.asarray(values, x.dtype)) + jax_cost(coupled_cost)(x))
    grads = jax.jit(jax.vmap(est.grad(direct, "categorical_disarm", 2), in_axes=(None, 0)))(
        params, jax.random.split(key, 50_000))
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    expected = exact_gradient(logits, coupled_cost)
    expected[0] += 0.7 * p * (values - p @ values)
    assert_mean_matches(grads["w"], [p @ values], label="direct term")
    assert_mean_matches(grads["logits"], expected, label="logits")


def test_two_classes_are_disarm_on_the_logit_difference():
    """At K = 2 the stick has one coordinate, α = ℓ_1 − ℓ_2, and the estimate is DisARM's on that Bernoulli:
    the same exact variance, split as (+g, −g) over the two logits."""
    from experiments.problems.discrete import categorical_disarm_pairs

    for logit_difference in (-1.3, 0.2, 2.0):
        law, gradients = categorical_disarm_pairs(np.array([logit_difference, 0.0]))
        s = 1 / (1 + np.exp(-logit_difference))
        # DisARM's pair differs with probability 2 min(s, 1 − s), and then its term is ±σ(|α|).
        assert np.isclose(law[0, 1] + law[1, 0], 2 * min(s, 1 - s))
        np.testing.assert_allclose(gradients[0, 1], [max(s, 1 - s), -max(s, 1 - s)])
        np.testing.assert_allclose(gradients[1, 0], [-max(s, 1 - s), max(s, 1 - s)])


def test_an_unknown_order_and_other_distributions_are_refused():
    with pytest.raises(ValueError, match="order must be one of"):
        est.CategoricalDisARM(order="ascending")
    bernoulli = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: jnp.sum(b))
    with pytest.raises(ValueError, match="disarm"):
        est.grad(bernoulli, "categorical_disarm", 1)(jnp.zeros(3), jax.random.key(0))
