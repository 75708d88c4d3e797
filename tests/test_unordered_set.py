"""The unordered set estimator against its exact mean and variance, by enumeration of ordered draws without
replacement.

The joint outcomes of a few independent categorical (or Bernoulli) variables are enumerated; an ordered draw
(s_1, …, s_L) of distinct outcomes has probability Π_i p(s_i) / (1 − Σ_{j<i} p(s_j)), and the estimate of
its set, written here in NumPy from the formula with every set probability a brute-force sum over
orderings, has its exact mean and variance as sums over those draws.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from tests.stats import assert_mean_matches, assert_variance_matches

VALUES = np.array([0.0, 1.0, 2.5])  # the categorical variables' class values
CATEGORICAL_LOGITS = np.array([[0.4, -0.3, 0.9], [-0.5, 0.2, 0.0]])
BERNOULLI_LOGITS = np.array([-0.8, 0.6, 1.5])


def categorical_cost(x):
    """Not separable: the product couples the two variables (x one-hot, (2, 3))."""
    a, b = x[0] @ VALUES, x[1] @ VALUES
    return (a - 0.3) ** 2 + 2.0 * a * b - b


def bernoulli_cost(b):
    return (b[0] - 0.3) ** 2 + 2.0 * b[0] * b[1] - b[1] + b[1] * b[2]


def outcomes(kind, logits=None):
    """Every joint outcome (as the distribution samples it), its probability and its score ∂ log p / ∂ℓ."""
    if kind == "categorical":
        logits = CATEGORICAL_LOGITS if logits is None else logits
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        xs = [np.eye(3)[list(c)] for c in itertools.product(range(3), repeat=2)]
        return xs, [np.prod((x * p).sum(axis=1)) for x in xs], [x - p for x in xs], categorical_cost
    p = 1 / (1 + np.exp(-BERNOULLI_LOGITS))
    xs = [np.array(b, dtype=float) for b in itertools.product((0, 1), repeat=3)]
    return xs, [np.prod(np.where(x == 1, p, 1 - p)) for x in xs], [x - p for x in xs], bernoulli_cost


def set_probability(probabilities, members, removed=()):
    """P^{D∖removed}(members): the probability that sampling without replacement from the distribution
    with ``removed`` taken out draws ``members`` first, in any order."""
    total = 0.0
    for ordering in itertools.permutations(members):
        left, product = 1 - sum(probabilities[r] for r in removed), 1.0
        for i in ordering:
            product *= probabilities[i] / left
            left -= probabilities[i]
        total += product
    return total


def estimate(probabilities, scores, costs, chosen):
    """The estimate of the set ``chosen`` (outcome indices) and its value estimate."""
    whole = set_probability(probabilities, chosen)
    singles = {s: set_probability(probabilities, [t for t in chosen if t != s], [s]) for s in chosen}
    gradient, value = 0.0, 0.0
    for s in chosen:
        baseline = probabilities[s] * costs[s] + sum(
            probabilities[t] * costs[t]
            * set_probability(probabilities, [m for m in chosen if m not in (s, t)], [s, t]) / singles[s]
            for t in chosen if t != s)
        weight = probabilities[s] * singles[s] / whole
        gradient = gradient + weight * (costs[s] - baseline) * scores[s]
        value += weight * costs[s]
    return gradient, value


def exact_moments(kind, num_samples, logits=None):
    """(∇F, F, E ĝ, Var ĝ, E value) in the logits, by enumeration of the ordered draws."""
    xs, probabilities, scores, cost = outcomes(kind, logits)
    costs = [cost(x) for x in xs]
    gradient = sum(p * c * s for p, c, s in zip(probabilities, costs, scores))
    objective = sum(p * c for p, c in zip(probabilities, costs))
    draws, weights, values = [], [], []
    for ordering in itertools.permutations(range(len(xs)), num_samples):
        left, probability = 1.0, 1.0
        for i in ordering:
            probability *= probabilities[i] / left
            left -= probabilities[i]
        g, v = estimate(probabilities, scores, costs, list(ordering))
        draws.append(g)
        values.append(v)
        weights.append(probability)
    weights, draws = np.array(weights), np.array(draws)
    mean = np.tensordot(weights, draws, axes=1)
    variance = np.tensordot(weights, (draws - mean) ** 2, axes=1)
    return gradient, objective, mean, variance, weights @ np.array(values)


def objective_of(kind, batch_ndims=0):
    if kind == "categorical":
        cost = lambda logits, x: categorical_cost(x) if batch_ndims == 0 else jax.vmap(categorical_cost)(x)
        return est.Objective(dist=est.Categorical, cost=cost, batch_ndims=batch_ndims)
    return est.Objective(dist=est.Bernoulli, cost=lambda logits, b: bernoulli_cost(b))


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
@pytest.mark.parametrize("num_samples", [2, 3])
def test_the_enumerated_estimate_and_value_are_unbiased(kind, num_samples):
    gradient, objective, mean, variance, value = exact_moments(kind, num_samples)
    np.testing.assert_allclose(mean, gradient, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(value, objective, rtol=1e-12)
    assert variance.max() > 1e-3  # the coupled cost leaves a variance to measure


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
@pytest.mark.parametrize("num_samples", [2, 3])
def test_mean_variance_and_value_match_the_enumeration(key, kind, num_samples):
    _, objective, mean, variance, _ = exact_moments(kind, num_samples)
    logits = jnp.asarray(CATEGORICAL_LOGITS if kind == "categorical" else BERNOULLI_LOGITS, jnp.float32)
    run = jax.jit(jax.vmap(est.value_and_grad(objective_of(kind), "unordered_set", num_samples), in_axes=(None, 0)))
    values, estimates = run(logits, jax.random.split(key, 100_000))
    estimates = np.asarray(estimates)
    assert_mean_matches(estimates, mean, label=f"unordered_set {kind} L={num_samples}")
    assert_variance_matches(estimates, variance, label=f"unordered_set {kind} L={num_samples}")
    assert_mean_matches(np.asarray(values)[:, None], [objective], label="value")


@pytest.mark.parametrize("name", ["unordered_set", "sum_and_sample", "sum_and_sample_baseline",
                                  "sum_and_sample_stochastic"])
def test_a_plate_draws_a_set_per_example_and_weights_its_own_logits(key, name):
    """Two examples; example n's cost reads its own variables only, so its logits' expectation is its own
    enumerated gradient (for both estimators over sets of distinct outcomes, each unbiased)."""
    logits = jnp.asarray(np.stack([CATEGORICAL_LOGITS, CATEGORICAL_LOGITS[::-1]]), jnp.float32)
    run = jax.jit(jax.vmap(est.grad(objective_of("categorical", batch_ndims=1), name, 3), in_axes=(None, 0)))
    first, second = (exact_moments("categorical", 3, example)[0] for example in (CATEGORICAL_LOGITS,
                                                                                  CATEGORICAL_LOGITS[::-1]))
    assert_mean_matches(run(logits, jax.random.split(key, 50_000)), np.stack([first, second]), label=f"{name} plate")


@pytest.mark.parametrize("name", ["unordered_set", "sum_and_sample", "sum_and_sample_baseline",
                                  "sum_and_sample_stochastic"])
def test_a_cost_depending_on_the_parameters_adds_its_direct_term(key, name):
    """f(θ, x) = w · (v · x_0) + cost(x): ∂F/∂w = E[v · x_0], from the weighted costs of the set."""
    params = {"logits": jnp.asarray(CATEGORICAL_LOGITS, jnp.float32), "w": jnp.array(0.7)}
    objective = est.Objective(dist=lambda q: est.Categorical(q["logits"]),
                              cost=lambda q, x: q["w"] * (x[0] @ VALUES) + categorical_cost(x))
    grads = jax.jit(jax.vmap(est.grad(objective, name, 2), in_axes=(None, 0)))(params, jax.random.split(key, 50_000))
    p = np.exp(CATEGORICAL_LOGITS[0]) / np.exp(CATEGORICAL_LOGITS[0]).sum()
    assert_mean_matches(grads["w"], [p @ VALUES], label=f"{name} direct term")


def random_sets(seed, num_samples, count):
    """(count, L) log-probabilities of sets drawn without replacement from random distributions, peaked to flat,
    over L + 1 to L + 30 outcomes."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(count):
        logits = rng.normal(size=num_samples + int(rng.integers(1, 31))) * rng.choice([0.5, 2.0, 5.0])
        log_p = logits - np.logaddexp.reduce(logits)
        sets.append(log_p[rng.choice(len(log_p), num_samples, replace=False, p=np.exp(log_p))])
    return np.array(sets)


@pytest.mark.parametrize("num_samples", [3, 6, 8])
def test_the_integrals_agree_with_the_sums_over_orderings(num_samples):
    """To float64 rounding, and within float32's rounding of 1 − p(S) (the integrals' a_s = p_s / (1 − p(S));
    the sets holding all but 1e-4 of their mass are the worst, 2e-3 in the log-ratios)."""
    from estimators.unordered_set import log_set_probability_ratios, log_set_probability_ratios_by_quadrature

    log_p = random_sets(num_samples, num_samples, 12)
    by_orderings = jax.jit(jax.vmap(log_set_probability_ratios))
    by_integrals = jax.jit(jax.vmap(log_set_probability_ratios_by_quadrature))
    with jax.enable_x64(True):
        exact = by_orderings(jnp.asarray(log_p, jnp.float64))
        for integral, ordering in zip(by_integrals(jnp.asarray(log_p, jnp.float64)), exact):
            np.testing.assert_allclose(integral, ordering, rtol=0, atol=1e-9)
        float32_inputs = jnp.asarray(log_p, jnp.float32).astype(jnp.float64)  # the same sets, rounded
        exact = by_orderings(float32_inputs)
    for integral, ordering in zip(by_integrals(jnp.asarray(log_p, jnp.float32)), exact):
        np.testing.assert_allclose(integral, ordering, rtol=0, atol=3e-3)


@pytest.mark.parametrize(("num_outcomes", "num_samples"), [(12, 10), (34, 32)])
def test_the_integrals_sum_to_one_over_every_set_beyond_the_orderings(num_outcomes, num_samples):
    """Σ_S P(S) = 1 over the sets of size L, and for each outcome s (pair s, s') the sets containing it give
    Σ P^{D∖s}(S∖s) = 1 (Σ P^{D∖{s,s'}}(S∖{s,s'}) = 1): the draws without replacement of the rest, exhaustively."""
    from estimators.unordered_set import log_set_probabilities_by_quadrature

    rng = np.random.default_rng(num_samples)
    logits = rng.normal(size=num_outcomes) * 1.5
    log_p = logits - np.logaddexp.reduce(logits)
    sets = np.array(list(itertools.combinations(range(num_outcomes), num_samples)))
    with jax.enable_x64(True):
        integrals = jax.jit(jax.vmap(log_set_probabilities_by_quadrature))
        log_set, log_singles, log_pairs = integrals(jnp.asarray(log_p[sets]))
    singles, pairs = np.zeros(num_outcomes), np.zeros((num_outcomes, num_outcomes))
    np.add.at(singles, sets, np.exp(np.asarray(log_singles)))
    rows, columns = sets[:, :, None], sets[:, None, :]
    off_diagonal = rows != columns
    np.add.at(pairs, (np.broadcast_to(rows, log_pairs.shape)[off_diagonal],
                      np.broadcast_to(columns, log_pairs.shape)[off_diagonal]),
              np.exp(np.asarray(log_pairs))[off_diagonal])
    assert abs(np.exp(np.asarray(log_set)).sum() - 1) < 1e-12
    np.testing.assert_allclose(singles, 1, atol=1e-12)
    np.testing.assert_allclose(pairs[~np.eye(num_outcomes, dtype=bool)], 1, atol=1e-12)


@pytest.mark.parametrize("name", ["bernoulli_toy", "categorical_toy"])
def test_the_estimate_beyond_the_orderings_is_unbiased(key, name):
    """L = 16 (set probabilities from the integrals) on the toys of 32 and 64 outcomes, against their exact
    gradients and objectives."""
    from experiments import problems

    problem = problems.get(name)
    run = jax.jit(jax.vmap(est.value_and_grad(problem.objective, "unordered_set", 16), in_axes=(None, 0)))
    values, grads = run(problem.params, jax.random.split(key, 10_000))
    assert_mean_matches(np.asarray(grads["logits"]), problem.exact_grad["logits"], label=f"{name} L=16")
    dist = problem.distribution()
    num_classes, num_variables = est.unordered_set.outcome_space(dist)
    log_probs = np.asarray(est.unordered_set.class_log_probs(dist), np.float64).reshape(num_variables, num_classes)
    every = np.array(list(itertools.product(range(num_classes), repeat=num_variables)))  # (outcomes, D)
    probabilities = np.exp(log_probs[np.arange(num_variables), every].sum(axis=1))
    costs = problem.objective.costs(problem.params, est.unordered_set.as_samples(dist, jnp.asarray(every)))
    assert_mean_matches(np.asarray(values)[:, None], [probabilities @ np.asarray(costs, np.float64)], label="value")


def test_the_sampled_sets_are_distinct_and_too_small_spaces_and_samples_are_refused():
    from estimators.unordered_set import MAX_NUM_SAMPLES, stochastic_beam_search

    gumbels = jax.random.gumbel(jax.random.key(0), (100, 3, 8, 2))
    classes, _ = jax.vmap(stochastic_beam_search, in_axes=(0, None))(gumbels, jnp.log(jnp.full((3, 2), 0.5)))
    assert all(len({tuple(c) for c in np.asarray(draw)}) == 8 for draw in classes)  # all 2³ outcomes, once each
    objective = objective_of("bernoulli")
    logits = jnp.asarray(BERNOULLI_LOGITS, jnp.float32)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        est.grad(objective, "unordered_set", 1)
    wide = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: jnp.sum(b))
    with pytest.raises(ValueError, match=f"num_samples <= {MAX_NUM_SAMPLES}"):
        est.grad(wide, "unordered_set", MAX_NUM_SAMPLES + 1)(jnp.zeros(6), jax.random.key(0))
    one_bit = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: jnp.sum(b))
    with pytest.raises(ValueError, match="only 2"):
        est.grad(one_bit, "unordered_set", 3)(jnp.zeros(1), jax.random.key(0))
    applicability = est.get("unordered_set").applicability
    assert "needs L <= 8, the number of joint outcomes" in applicability(est.Bernoulli(logits), 9)
    assert "needs L <= 32" in applicability(est.Bernoulli(jnp.zeros(6)), 33)
