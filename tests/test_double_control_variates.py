"""Double control variates against their exact mean and variance, and the moving averages that set α, by enumeration.

The estimate is written here in NumPy from the formula of Titsias & Shi (2022), with the cost's gradient in
b written by hand, and summed over the (2^D)^L outcomes of L independent samples: its mean is the exact
gradient for every α, its variance a quadratic in α, whose coefficients the estimator's moving averages
estimate.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from tests.stats import assert_mean_matches, assert_variance_matches

LOGITS = np.array([-0.8, 0.6, 1.5])


def cost(b):
    """Not separable, and not linear in b: the Taylor control variate is partial."""
    return (b[0] - 0.3) ** 2 + 2.0 * b[0] * b[1] - b[1] + np.exp(0.5 * b[1] * b[2])


def cost_gradient(b):
    e = np.exp(0.5 * b[1] * b[2])
    return np.array([2 * (b[0] - 0.3) + 2 * b[1], 2 * b[0] - 1 + 0.5 * b[2] * e, 0.5 * b[1] * e])


def jax_cost(b):
    return (b[0] - 0.3) ** 2 + 2.0 * b[0] * b[1] - b[1] + jnp.exp(0.5 * b[1] * b[2])


def terms(samples, p):
    """(A, B) of one set of L samples (L, D), from the formula."""
    num_samples = len(samples)
    costs = np.array([cost(b) for b in samples])
    gradients = np.array([cost_gradient(b) for b in samples])
    a, b = np.zeros(len(p)), -p * (1 - p) * gradients.mean(axis=0)
    taylor = np.array([(samples[k] - p) @ (gradients.sum(axis=0) - gradients[k]) / (num_samples - 1)
                       for k in range(num_samples)])
    for k in range(num_samples):
        others = [j for j in range(num_samples) if j != k]
        a += (costs[k] - costs[others].mean()) * (samples[k] - p) / num_samples
        b += (taylor[k] - taylor[others].mean()) * (samples[k] - p) / num_samples
    return a, b


def enumerated(logits=LOGITS, num_samples=2):
    """(∇F, probabilities, A outcomes, B outcomes) over every set of L samples."""
    p = 1 / (1 + np.exp(-logits))
    singles = [np.array(b, dtype=float) for b in itertools.product((0, 1), repeat=len(p))]
    weights = [np.prod(np.where(b == 1, p, 1 - p)) for b in singles]
    gradient = sum(w * cost(b) * (b - p) for w, b in zip(weights, singles))
    probabilities, a_outcomes, b_outcomes = [], [], []
    for chosen in itertools.product(range(len(singles)), repeat=num_samples):
        a, b = terms(np.array([singles[i] for i in chosen]), p)
        probabilities.append(np.prod([weights[i] for i in chosen]))
        a_outcomes.append(a)
        b_outcomes.append(b)
    return gradient, np.array(probabilities), np.array(a_outcomes), np.array(b_outcomes)


def moments(alpha, num_samples=2, logits=LOGITS):
    gradient, probabilities, a, b = enumerated(logits, num_samples)
    outcomes = a + alpha * b
    mean = probabilities @ outcomes
    return gradient, mean, probabilities @ (outcomes - mean) ** 2


def with_alpha(objective, num_samples, alpha, params):
    """The estimate at a fixed α over a batch of keys: every key starts from the initial state, whose α is
    the option's."""
    init, update = est.grad_with_state(objective, est.get("double_cv", alpha=alpha), num_samples)
    state = init(params)
    return jax.jit(jax.vmap(lambda k: update(params, k, state)[0]))


@pytest.mark.parametrize("num_samples", [2, 3])
def test_the_enumerated_estimate_is_unbiased_for_every_alpha(num_samples):
    gradient, probabilities, a, b = enumerated(num_samples=num_samples)
    np.testing.assert_allclose(probabilities @ a, gradient, rtol=1e-10)
    np.testing.assert_allclose(probabilities @ b, 0.0, atol=1e-12)  # B is a control variate: mean zero
    assert np.all(probabilities @ b**2 > 1e-3)  # and not the zero one


@pytest.mark.parametrize("num_samples, alpha", [(2, 0.7), (3, -0.4)])
def test_mean_and_variance_match_the_enumeration(key, num_samples, alpha):
    _, mean, variance = moments(alpha, num_samples)
    objective = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: jax_cost(b))
    params = jnp.asarray(LOGITS, jnp.float32)
    estimates = np.asarray(with_alpha(objective, num_samples, alpha, params)(jax.random.split(key, 100_000)))
    assert_mean_matches(estimates, mean, label=f"double_cv L={num_samples}")
    assert_variance_matches(estimates, variance, label=f"double_cv L={num_samples}")


def test_alpha_zero_is_leave_one_out_and_the_optimal_alpha_improves_on_it():
    _, probabilities, a, b = enumerated(num_samples=3)
    optimal = -(probabilities @ (a * b).sum(axis=1)) / (probabilities @ (b * b).sum(axis=1))
    loo = moments(0.0, 3)[2].sum()
    # Leave-one-out REINFORCE written directly: (1/(L−1)) Σ_k (f_k − f̄)(b_k − p).
    p = 1 / (1 + np.exp(-LOGITS))
    singles = [np.array(s, dtype=float) for s in itertools.product((0, 1), repeat=3)]
    weights = [np.prod(np.where(s == 1, p, 1 - p)) for s in singles]
    outcomes, probs = [], []
    for chosen in itertools.product(range(8), repeat=3):
        samples = np.array([singles[i] for i in chosen])
        costs = np.array([cost(s) for s in samples])
        outcomes.append(((costs - costs.mean())[:, None] * (samples - p)).sum(axis=0) / 2)
        probs.append(np.prod([weights[i] for i in chosen]))
    probs, outcomes = np.array(probs), np.array(outcomes)
    np.testing.assert_allclose(loo, (probs @ (outcomes - probs @ outcomes) ** 2).sum(), rtol=1e-10)
    assert moments(optimal, 3)[2].sum() < 0.9 * loo  # the Taylor term removes over a tenth of the variance


def test_the_moving_averages_are_unbiased_for_the_variances_coefficients(key):
    """One update from the initial state: the averages are (1 − decay) times draws of AᵀB and BᵀB, whose means
    are the enumerated coefficients of the variance's quadratic in α."""
    decay, num_samples = 0.9, 2
    _, probabilities, a, b = enumerated(num_samples=num_samples)
    exact = [probabilities @ (a * b).sum(axis=1), probabilities @ (b * b).sum(axis=1)]
    objective = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: jax_cost(b))
    params = jnp.asarray(LOGITS, jnp.float32)
    init, update = est.grad_with_state(objective, est.get("double_cv", alpha=0.5, decay=decay), num_samples)
    state = init(params)
    moments_of = jax.jit(jax.vmap(lambda k: jnp.stack(update(params, k, state)[1][1:])))
    draws = np.asarray(moments_of(jax.random.split(key, 100_000))) / (1 - decay)
    assert_mean_matches(draws, exact, label="moving averages")


def test_a_chain_finds_the_variance_minimizing_alpha(key):
    """200 updates at fixed parameters from α = 0 (leave-one-out): α ends near the enumerated optimum
    (negative on this cost), and its exact variance below leave-one-out's."""
    _, probabilities, a, b = enumerated(num_samples=2)
    optimal = -(probabilities @ (a * b).sum(axis=1)) / (probabilities @ (b * b).sum(axis=1))
    objective = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: jax_cost(b))
    params = jnp.asarray(LOGITS, jnp.float32)
    init, update = est.grad_with_state(objective, "double_cv", 2)
    step = lambda state, k: (update(params, k, state)[1], None)
    state, _ = jax.lax.scan(step, init(params), jax.random.split(key, 200))
    reached = float(state.alpha)
    assert abs(reached - optimal) < abs(optimal) / 2, (reached, optimal)
    assert moments(reached)[2].sum() < moments(0.0)[2].sum()


def test_a_cost_depending_on_the_parameters_adds_its_direct_term(key):
    """f(θ, b) = w · b_0 + cost(b): ∂F/∂w = p_0, and the logits' expectation gains ∂ℓ E[w b_0]."""
    params = {"logits": jnp.asarray(LOGITS, jnp.float32), "w": jnp.array(0.7)}
    objective = est.Objective(dist=lambda q: est.Bernoulli(q["logits"]),
                              cost=lambda q, b: q["w"] * b[0] + jax_cost(b))
    grads = with_alpha(objective, 3, 0.8, params)(jax.random.split(key, 50_000))
    p = 1 / (1 + np.exp(-LOGITS))
    extra = np.array([0.7 * p[0] * (1 - p[0]), 0.0, 0.0])
    assert_mean_matches(grads["logits"], moments(0.0, 3)[0] + extra, label="logits")
    assert_mean_matches(grads["w"], [p[0]], label="direct term")


def test_a_plate_weights_each_examples_logits_by_its_own_signals(key):
    """Two examples; example n's cost reads its own latents only, so its logits' expectation is its own
    enumerated gradient, with one α for both."""
    logits = jnp.asarray(np.stack([LOGITS, -LOGITS[::-1]]), jnp.float32)
    objective = est.Objective(dist=est.Bernoulli, cost=lambda q, b: jax.vmap(jax_cost)(b), batch_ndims=1)
    estimates = with_alpha(objective, 2, 0.6, logits)(jax.random.split(key, 50_000))
    first, second = moments(0.6, 2)[0], moments(0.6, 2, -LOGITS[::-1])[0]
    assert_mean_matches(estimates, np.stack([first, second]), label="plate")


def test_one_sample_and_a_categorical_are_refused():
    objective = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: jax_cost(b))
    with pytest.raises(ValueError, match="num_samples >= 2"):
        est.grad_with_state(objective, "double_cv", 1)
    categorical = est.Objective(dist=est.Categorical, cost=lambda logits, x: jnp.sum(x[..., 0]))
    with pytest.raises(ValueError, match="double_cv"):
        est.grad_with_state(categorical, "double_cv", 2).update(jnp.zeros((2, 3)), jax.random.key(0), ())
