"""The group baselines of RL fine-tuning (GRPO and its variants) against exact expectations and variances.

An L-sample estimate with a group baseline is a symmetric function of the L samples, so on a problem with
finitely many outcomes its exact distribution is a sum over the multisets of L outcomes, each weighted
by its multinomial probability.  The NumPy enumeration below is written from the formulas (centring by
the group's mean, division by the sample standard deviation plus ε), independently of the library's
code; leave-one-out (unbiased) checks the enumeration against the exact gradient.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from tests.stats import assert_mean_matches, assert_variance_matches

LOGITS = np.array([-0.6, 0.1, 0.8])
WEIGHTS = np.array([1.0, -0.7, 0.5])
EPSILON = 1e-4


def cost(b):
    """Not separable, so every coordinate's learning signal depends on the others' samples."""
    return (b @ WEIGHTS - 0.3) ** 2


def outcomes():
    """Every b in {0, 1}³ with its probability, cost and score ∇ℓ log q(b) = b − σ(ℓ)."""
    p = 1 / (1 + np.exp(-LOGITS))
    points = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    probabilities = np.prod(np.where(points == 1, p, 1 - p), axis=1)
    return probabilities, np.array([cost(b) for b in points]), points - p


def multisets(probabilities, num_samples):
    """(counts, probability) of every multiset of L outcomes: counts[o] samples fell on outcome o."""
    for combination in itertools.combinations_with_replacement(range(len(probabilities)), num_samples):
        counts = np.bincount(combination, minlength=len(probabilities))
        multinomial = math.factorial(num_samples) / np.prod([math.factorial(int(c)) for c in counts])
        yield counts, multinomial * np.prod(probabilities**counts)


def advantages(costs, counts, baseline, num_samples):
    """Each outcome's f − b for the group the counts describe."""
    mean = counts @ costs / num_samples
    if baseline == "loo":
        return (costs - (mean * num_samples - costs) / (num_samples - 1)) * (counts > 0)
    centred = costs - mean
    if baseline == "group_mean":
        return centred
    spread = np.sqrt(counts @ centred**2 / (num_samples - 1))
    return centred / (spread + EPSILON)


def exact_moments(baseline, num_samples):
    """E[ĝ] and Var[ĝ] per coordinate, ĝ = (1/L) Σ_i A_i s_i."""
    probabilities, costs, scores = outcomes()
    mean, second = np.zeros(3), np.zeros(3)
    for counts, weight in multisets(probabilities, num_samples):
        estimate = (counts * advantages(costs, counts, baseline, num_samples)) @ scores / num_samples
        mean += weight * estimate
        second += weight * estimate**2
    return mean, second - mean**2


def exact_gradient():
    probabilities, costs, scores = outcomes()
    return (probabilities * costs) @ scores


OBJECTIVE = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: (b @ jnp.asarray(WEIGHTS) - 0.3) ** 2)


def sampled(name, num_samples, num_replicates, key):
    estimate = jax.jit(jax.vmap(est.grad(OBJECTIVE, name, num_samples), in_axes=(None, 0)))
    return np.asarray(estimate(jnp.asarray(LOGITS, jnp.float32), jax.random.split(key, num_replicates)))


def test_the_enumeration_gives_the_gradient_for_leave_one_out_and_a_shrunk_one_for_the_group_mean():
    for num_samples in (2, 4):
        np.testing.assert_allclose(exact_moments("loo", num_samples)[0], exact_gradient(), rtol=1e-12)
        np.testing.assert_allclose(exact_moments("group_mean", num_samples)[0],
                                   (num_samples - 1) / num_samples * exact_gradient(), rtol=1e-12)


@pytest.mark.parametrize("num_samples", [2, 4])
def test_the_group_mean_is_leave_one_out_shrunk_by_l_minus_one_over_l(num_samples, key):
    keys = jax.random.split(key, 64)
    loo = jax.vmap(est.grad(OBJECTIVE, "score_function_loo", num_samples), in_axes=(None, 0))
    group_mean = jax.vmap(est.grad(OBJECTIVE, "score_function_group_mean", num_samples), in_axes=(None, 0))
    logits = jnp.asarray(LOGITS, jnp.float32)
    np.testing.assert_allclose(group_mean(logits, keys), (num_samples - 1) / num_samples * loo(logits, keys),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name, baseline", [("score_function_group_mean", "group_mean"),
                                            ("score_function_grpo", "grpo"), ("score_function_grpo_batch", "grpo")])
@pytest.mark.parametrize("num_samples", [2, 4])
def test_mean_and_variance_are_the_enumerated_ones(name, baseline, num_samples, key):
    estimates = sampled(name, num_samples, 100_000, key)
    mean, variance = exact_moments(baseline, num_samples)
    assert_mean_matches(estimates, mean, label=f"{name} at L={num_samples}")
    assert_variance_matches(estimates, variance, label=f"{name} at L={num_samples}")


def test_grpo_is_biased_and_not_a_multiple_of_the_gradient():
    """The standard-deviation scaling reweights the coordinates: E[ĝ] is no multiple of ∇F, at any L."""
    gradient = exact_gradient()
    for num_samples in (2, 4, 8):
        mean, _ = exact_moments("grpo", num_samples)
        best_multiple = (mean @ gradient) / (gradient @ gradient)
        residual = mean - best_multiple * gradient
        assert np.linalg.norm(residual) > 0.02 * np.linalg.norm(mean), (num_samples, mean, gradient)


def grpo_on_one_bernoulli(logit, a, c, num_samples):
    """E[ĝ] for one variable, f(0) = a, f(1) = c: with m ones among L the advantages depend on m alone, so
    E[ĝ] = Σ_m Binomial(m; L, p) · (1/L) Σ_i A_i (b_i − p)."""
    p = 1 / (1 + np.exp(-logit))
    expectation = 0.0
    for m in range(1, num_samples):  # m = 0 or L: every cost equal, A = 0
        mean = a + (c - a) * m / num_samples
        spread = abs(c - a) * np.sqrt(m * (num_samples - m) / (num_samples * (num_samples - 1)))
        one, zero = (c - mean) / (spread + EPSILON), (a - mean) / (spread + EPSILON)
        estimate = (m * one * (1 - p) + (num_samples - m) * zero * (-p)) / num_samples
        expectation += math.comb(num_samples, m) * p**m * (1 - p) ** (num_samples - m) * estimate
    return expectation


def test_grpo_on_one_bernoulli_is_a_binomial_sum_blind_to_the_costs_scale(key):
    logit, (a, c), num_samples = 0.4, (0.2, 1.5), 6
    expectation = grpo_on_one_bernoulli(logit, a, c, num_samples)
    objective = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: jnp.sum(a + (c - a) * b))
    estimate = jax.jit(jax.vmap(est.grad(objective, "score_function_grpo", num_samples), in_axes=(None, 0)))
    estimates = np.asarray(estimate(jnp.array([logit]), jax.random.split(key, 50_000)))
    assert_mean_matches(estimates, [expectation], label="GRPO on one Bernoulli")
    # The gradient (c − a) p (1 − p) grows tenfold with c − a; GRPO's expectation does not move (but for ε).
    scaled = grpo_on_one_bernoulli(logit, a, a + 10 * (c - a), num_samples)
    np.testing.assert_allclose(scaled, expectation, rtol=1e-3)


def test_with_a_plate_the_groups_are_the_examples_and_the_batch_variant_pools_the_spread(key):
    """Two examples, a Bernoulli each: GRPO's groups are per example (each example's expectation is its own
    one-variable sum), and the batch variant divides every example by the standard deviation of all costs."""
    logits, targets, num_samples = np.array([-0.5, 0.7]), np.array([0.2, 0.9]), 4
    objective = est.Objective(dist=est.Bernoulli, cost=lambda q, b: (b - jnp.asarray(targets)) ** 2, batch_ndims=1)
    p = 1 / (1 + np.exp(-logits))
    points = np.array(list(itertools.product([0.0, 1.0], repeat=2)))
    probabilities = np.prod(np.where(points == 1, p, 1 - p), axis=1)
    costs, scores = (points - targets) ** 2, points - p  # (4 outcomes, 2 examples)
    exact = {"score_function_grpo": np.zeros(2), "score_function_grpo_batch": np.zeros(2)}
    for counts, weight in multisets(probabilities, num_samples):
        draws = np.repeat(np.arange(4), counts)  # the L outcomes of this multiset
        f, s = costs[draws], scores[draws]  # (L, 2)
        centred = f - f.mean(axis=0)
        group = centred / (f.std(axis=0, ddof=1) + EPSILON)
        batch = centred / (f.std(ddof=1) + EPSILON)
        exact["score_function_grpo"] += weight * np.mean(group * s, axis=0)
        exact["score_function_grpo_batch"] += weight * np.mean(batch * s, axis=0)
    assert not np.allclose(exact["score_function_grpo"], exact["score_function_grpo_batch"], rtol=0.05)
    for (name, expectation), name_key in zip(exact.items(), jax.random.split(key)):
        estimate = jax.jit(jax.vmap(est.grad(objective, name, num_samples), in_axes=(None, 0)))
        estimates = np.asarray(estimate(jnp.asarray(logits, jnp.float32), jax.random.split(name_key, 50_000)))
        assert_mean_matches(estimates, expectation, label=name)
