"""Sum-and-sample against its exact mean and variance, by enumeration.

The joint outcomes of a few independent categorical (or Bernoulli) variables are enumerated (the toys of
tests/test_unordered_set.py); C is the L − 1 most probable of them, and the estimate of each outcome z
outside C, Σ_{c∈C} p(c) f(c) ∇log p(c) + (1 − p(C)) f(z) ∇log p(z), written here in NumPy from the formula,
has its exact mean and variance as sums over z with weights p(z) / (1 − p(C)).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from estimators.sum_and_sample import first_outside, most_probable_configurations, ranking_scores
from estimators.unordered_set import class_log_probs
from experiments import problems
from tests.stats import assert_mean_matches, assert_variance_matches
from tests.test_unordered_set import (
    BERNOULLI_LOGITS,
    CATEGORICAL_LOGITS,
    objective_of,
    outcomes,
)


def ranking(kind, logits=None):
    """The outcomes (in the enumeration's lexicographic order) from most to least probable, as the estimator
    ranks them: by their variables' log-probabilities in units of 2⁻¹⁰, rounded, summed; ties to the first."""
    if kind == "categorical":
        logits = CATEGORICAL_LOGITS if logits is None else logits
        log_probs, classes = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True)), 3
    else:
        log_probs, classes = -np.logaddexp(0, -np.stack([-BERNOULLI_LOGITS, BERNOULLI_LOGITS], axis=-1)), 2
    every = np.array(list(itertools.product(range(classes), repeat=len(log_probs))))
    scores = np.round(log_probs * 2**10).astype(int)[np.arange(len(log_probs)), every].sum(axis=1)
    return np.lexsort((np.arange(len(every)), -scores))


def exact_moments(kind, num_samples, logits=None, baseline=False):
    """(∇F, F, E ĝ, Var ĝ, E value) in the logits, by enumeration of the sampled outcome z (and, with
    ``baseline``, of the baseline's independent draw x', b = f(x'), L − 2 outcomes summed)."""
    xs, probabilities, scores, cost = outcomes(kind, logits)
    p, f, s = np.array(probabilities), np.array([cost(x) for x in xs]), np.array(scores)
    gradient = np.tensordot(p * f, s, axes=1)
    order = ranking(kind, logits)
    num_summed = num_samples - 2 if baseline else num_samples - 1
    summed, rest = order[:num_summed], order[num_summed:]
    weight = 1.0 - p[summed].sum()
    conditional = p[rest] / p[rest].sum()
    draws, values, weights = [], [], []
    for b, b_weight in zip(f, p) if baseline else [(0.0, 1.0)]:
        for z, z_weight in zip(rest, conditional):
            draws.append(np.tensordot(p[summed] * (f[summed] - b), s[summed], axes=1) + weight * (f[z] - b) * s[z])
            values.append(p[summed] @ f[summed] + weight * f[z])
            weights.append(b_weight * z_weight)
    weights, draws = np.array(weights), np.array(draws)
    mean = np.tensordot(weights, draws, axes=1)
    variance = np.tensordot(weights, (draws - mean) ** 2, axes=1)
    return gradient, p @ f, mean, variance, weights @ np.array(values)


def logits_of(kind):
    return jnp.asarray(CATEGORICAL_LOGITS if kind == "categorical" else BERNOULLI_LOGITS, jnp.float32)


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_the_enumerated_estimate_is_unbiased_and_its_variance_falls_with_the_summed_mass(kind):
    variances = []
    for num_samples in (1, 2, 3, 5):
        gradient, objective, mean, variance, value = exact_moments(kind, num_samples)
        np.testing.assert_allclose(mean, gradient, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(value, objective, rtol=1e-12)
        variances.append(variance.sum())
    assert all(later < earlier for earlier, later in zip(variances, variances[1:]))


def test_the_baseline_is_unbiased_and_cancels_a_constant_offset_of_the_cost():
    for kind in ("categorical", "bernoulli"):
        for num_samples in (2, 3, 5):
            gradient, objective, mean, variance, value = exact_moments(kind, num_samples, baseline=True)
            np.testing.assert_allclose(mean, gradient, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(value, objective, rtol=1e-12)
    # The Bernoulli toy's cost, Σ (b − 0.45)², sits far from zero: the plain estimator's sampled term carries
    # it, and the baseline removes it (the toy's own exact variances, at L = 4).
    toy = problems.get("bernoulli_toy")
    plain, with_baseline = (toy.exact_variance(name, 4)["logits"].sum() for name in ("sum_and_sample",
                                                                                    "sum_and_sample_baseline"))
    assert with_baseline < plain / 10


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
@pytest.mark.parametrize(("name", "num_samples"), [("sum_and_sample", 1), ("sum_and_sample", 3),
                                                    ("sum_and_sample_baseline", 2),
                                                    ("sum_and_sample_baseline", 4)])
def test_mean_variance_and_value_match_the_enumeration(key, kind, name, num_samples):
    _, objective, mean, variance, _ = exact_moments(kind, num_samples, baseline=name.endswith("baseline"))
    run = jax.jit(jax.vmap(est.value_and_grad(objective_of(kind), name, num_samples), in_axes=(None, 0)))
    values, estimates = run(logits_of(kind), jax.random.split(key, 100_000))
    estimates = np.asarray(estimates)
    assert_mean_matches(estimates, mean, label=f"{name} {kind} L={num_samples}")
    assert_variance_matches(estimates, variance, label=f"{name} {kind} L={num_samples}")
    assert_mean_matches(np.asarray(values)[:, None], [objective], label="value")


def stochastic_exact_moments(kind, num_samples):
    """(∇F, E ĝ, Var ĝ) of the stochastic variant, by enumeration of the ordered draws without replacement
    (s_1, …, s_L): C = the first L − 1, z = s_L."""
    xs, probabilities, scores, cost = outcomes(kind)
    p, f, s = np.array(probabilities), np.array([cost(x) for x in xs]), np.array(scores)
    gradient = np.tensordot(p * f, s, axes=1)
    draws, weights = [], []
    for ordering in itertools.permutations(range(len(p)), num_samples):
        left, probability = 1.0, 1.0
        for i in ordering:
            probability *= p[i] / left
            left -= p[i]
        summed, z = list(ordering[:-1]), ordering[-1]
        draws.append(np.tensordot(p[summed] * f[summed], s[summed], axes=1) + (1 - p[summed].sum()) * f[z] * s[z])
        weights.append(probability)
    weights, draws = np.array(weights), np.array(draws)
    mean = np.tensordot(weights, draws, axes=1)
    return gradient, mean, np.tensordot(weights, (draws - mean) ** 2, axes=1)


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_the_stochastic_set_is_unbiased_and_matches_its_enumeration(key, kind):
    for num_samples in (1, 2, 3, 4):
        gradient, mean, _ = stochastic_exact_moments(kind, num_samples)
        np.testing.assert_allclose(mean, gradient, rtol=1e-10, atol=1e-12)
    _, mean, variance = stochastic_exact_moments(kind, 3)
    run = jax.jit(jax.vmap(est.grad(objective_of(kind), "sum_and_sample_stochastic", 3), in_axes=(None, 0)))
    estimates = np.asarray(run(logits_of(kind), jax.random.split(key, 100_000)))
    assert_mean_matches(estimates, mean, label=f"sum_and_sample_stochastic {kind}")
    assert_variance_matches(estimates, variance, label=f"sum_and_sample_stochastic {kind}")
    # Summing the most probable outcomes beats summing a sample of them on these toys, at the same L.
    assert variance.sum() > exact_moments(kind, 3)[3].sum()


def test_the_stochastic_set_takes_no_baseline():
    with pytest.raises(ValueError, match="not both"):
        est.SumAndSample(sample_baseline=True, stochastic_set=True)


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_summing_all_but_one_outcome_is_exact(key, kind):
    """With L the number of outcomes, C holds all but one, which is sampled: every estimate is ∇F."""
    num_outcomes = len(outcomes(kind)[0])
    gradient = exact_moments(kind, num_outcomes)[0]
    run = jax.jit(jax.vmap(est.grad(objective_of(kind), "sum_and_sample", num_outcomes), in_axes=(None, 0)))
    estimates = np.asarray(run(logits_of(kind), jax.random.split(key, 20)))
    np.testing.assert_allclose(estimates, np.broadcast_to(gradient, estimates.shape), rtol=2e-5, atol=2e-6)


# A plate and a cost depending on the parameters: tests/test_unordered_set.py checks both estimators over sets of
# distinct outcomes.


@pytest.mark.parametrize("num_configurations", [1, 7, 30, 81])
def test_beam_search_finds_the_most_probable_configurations(num_configurations):
    """Against every configuration ranked by its integer score, ties to the lexicographically first."""
    log_probs = jax.nn.log_softmax(jax.random.normal(jax.random.key(3), (4, 3)), axis=-1)
    classes, log_p = most_probable_configurations(log_probs, num_configurations)
    every = np.array(list(itertools.product(range(3), repeat=4)))
    every_log_p = np.asarray(log_probs)[np.arange(4), every].sum(axis=1)
    scores = np.round(np.asarray(log_probs, np.float64) * 2**10).astype(int)[np.arange(4), every].sum(axis=1)
    expected = every[np.lexsort((np.arange(len(every)), -scores))[:num_configurations]]
    np.testing.assert_array_equal(classes, expected)
    np.testing.assert_allclose(log_p, np.asarray(log_probs)[np.arange(4), expected].sum(axis=1), rtol=1e-6)
    # The integer scores rank as the probabilities do, up to ties within 2⁻¹¹ per variable.
    assert np.all(np.diff(log_p) <= 4 * 2.0**-11)
    np.testing.assert_allclose(np.sort(every_log_p)[::-1][:num_configurations], log_p, atol=4 * 2.0**-11)


@pytest.mark.parametrize("estimator", ["sum_and_sample", "sum_and_sample_baseline"])
@pytest.mark.parametrize("name", ["bernoulli_toy", "categorical_toy"])
def test_on_the_toys_equally_probable_outcomes_tie_and_the_exact_variance_holds(key, name, estimator):
    """The toys' spread logits make many outcomes equally probable: a float32 ranking would order them by
    rounding, and move the variance by up to 40% at L = 16; the integer scores tie them exactly, so the
    problem's enumerated variance (its own C, from float64 log-probabilities) is the estimator's."""
    problem = problems.get(name)
    log_probs = class_log_probs(problem.distribution())
    np.testing.assert_array_equal(ranking_scores(log_probs), np.round(np.asarray(log_probs, np.float64) * 2**10))
    run = jax.jit(jax.vmap(est.grad(problem.objective, estimator, 16), in_axes=(None, 0)))
    estimates = np.asarray(run(problem.params, jax.random.split(key, 50_000))["logits"]).reshape(50_000, -1)
    exact = problem.exact_variance(estimator, 16)["logits"].reshape(-1)
    assert_mean_matches(estimates, np.reshape(problem.exact_grad["logits"], -1), label=f"{estimator} {name} mean")
    assert_variance_matches(estimates, exact, label=f"{estimator} {name} L=16")


def test_the_sample_is_the_first_candidate_outside_the_sum_and_too_large_samples_are_refused():
    candidates = jnp.array([[0, 1], [1, 1], [1, 0]])
    assert first_outside(candidates, jnp.array([[0, 1], [1, 1]])).tolist() == [1, 0]
    assert first_outside(candidates, jnp.array([[1, 0], [0, 0]])).tolist() == [0, 1]
    objective, logits = objective_of("bernoulli"), logits_of("bernoulli")
    with pytest.raises(ValueError, match="only 8"):
        est.grad(objective, "sum_and_sample", 9)(logits, jax.random.key(0))
    estimator = est.get("sum_and_sample")
    assert estimator.applicability(est.Bernoulli(logits), 8) is None
    assert "needs L <= 8" in estimator.applicability(est.Bernoulli(logits), 9)
    assert "needs L <= 9" in estimator.applicability(est.Categorical(logits_of("categorical")), 10)
    with_baseline = est.get("sum_and_sample_baseline")  # its baseline's draw need not be distinct
    assert with_baseline.applicability(est.Bernoulli(logits), 9) is None
    assert "needs L <= 9" in with_baseline.applicability(est.Bernoulli(logits), 10)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        est.grad(objective, "sum_and_sample_baseline", 1)
    plate = est.Bernoulli(jnp.zeros((4, 3)))  # 4 examples of 3 variables: 8 outcomes each, 2¹² in all
    assert estimator.applicability(plate, 9) is None
    assert "needs L <= 8" in estimator.applicability(plate, 9, batch_ndims=1)
    assert estimator.supports(est.Normal(jnp.zeros(2), jnp.ones(2))) is not None
