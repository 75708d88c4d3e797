"""ARMS against its exact mean and variance, by enumeration of the Dirichlet copula's joint law.

Per coordinate, the L samples are coupled through uniforms u_i = (1 − d_i)^(L−1), d ~ Dirichlet(1, …, 1),
so P(u_i ≤ q for every i in T) = P(d_i ≥ 1 − q^(1/(L−1)) for every i in T) = (1 − |T|(1 − q^(1/(L−1))))_+^(L−1)
(uniform spacings), and inclusion–exclusion gives the law of which samples fall at or below q.  The rarer
outcome of each coordinate is drawn there (b = 1 where p < ½, b = 0 otherwise).  Coordinates are
independent, so the law of the L × D binary samples is a product, and the estimate (written here in NumPy
from the formula) has its exact mean and variance as sums over its (2^L)^D outcomes.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from tests.stats import assert_mean_matches, assert_variance_matches

LOGITS = np.array([-0.8, 0.6])  # one coordinate below ½, one above: both branches of the copula


def cost(b):
    """Not separable: the product couples the two coordinates."""
    return (b[0] - 0.3) ** 2 + 2.0 * b[0] * b[1] - b[1]


def coordinate_law(p: float, num_samples: int) -> dict[tuple[int, ...], float]:
    """P(b_1, …, b_L) of one coordinate's coupled samples."""
    q = min(p, 1 - p)
    gap = 1 - q ** (1 / (num_samples - 1))
    at_or_below = lambda size: max(1 - size * gap, 0.0) ** (num_samples - 1) if size else 1.0
    law = {}
    for rare in itertools.product((0, 1), repeat=num_samples):
        chosen = [i for i in range(num_samples) if rare[i]]
        others = [i for i in range(num_samples) if not rare[i]]
        probability = sum((-1) ** extra * len(list(itertools.combinations(others, extra)))
                          * at_or_below(len(chosen) + extra) for extra in range(len(others) + 1))
        b = rare if p < 0.5 else tuple(1 - r for r in rare)
        law[b] = probability
    return law


def decorrelation(p: float, num_samples: int) -> float:
    """1 / (1 − ρ), ρ the correlation of two samples' b, from the joint law."""
    law = coordinate_law(p, num_samples)
    both = sum(w for b, w in law.items() if b[0] == 1 and b[1] == 1)
    return p * (1 - p) / (p - both)


def exact_moments(logits=LOGITS, num_samples=3):
    """(∇F, E ĝ, Var ĝ) in the logits of the L-sample ARMS estimate, by enumeration."""
    p = 1 / (1 + np.exp(-logits))
    singles = list(itertools.product((0, 1), repeat=len(p)))
    gradient = sum(np.prod(np.where(np.array(b), p, 1 - p)) * cost(np.array(b)) * (np.array(b) - p) for b in singles)
    laws = [coordinate_law(pd, num_samples) for pd in p]
    factors = np.array([decorrelation(pd, num_samples) for pd in p]) / (num_samples - 1)
    outcomes, probabilities = [], []
    for columns in itertools.product(*(law.items() for law in laws)):
        samples = np.array([column[0] for column in columns], dtype=float).T  # (L, D)
        probabilities.append(np.prod([column[1] for column in columns]))
        costs = np.array([cost(sample) for sample in samples])
        outcomes.append(factors * ((costs - costs.mean())[:, None] * (samples - p)).sum(axis=0))
    probabilities, outcomes = np.array(probabilities), np.array(outcomes)
    mean = probabilities @ outcomes
    return gradient, mean, probabilities @ (outcomes - mean) ** 2


def test_the_copula_law_has_bernoulli_marginals_and_negative_correlation():
    for p, num_samples in [(0.3, 2), (0.3, 4), (0.8, 3), (0.49, 10)]:
        law = coordinate_law(p, num_samples)
        assert abs(sum(law.values()) - 1) < 1e-12 and min(law.values()) > -1e-12
        for i in range(num_samples):
            assert abs(sum(w for b, w in law.items() if b[i]) - p) < 1e-12
        assert 1 / decorrelation(p, num_samples) > 1  # ρ < 0: the samples are antithetic
    assert coordinate_law(0.3, 2)[(1, 1)] == 0  # two samples: u and 1 − u, never both below 0.3


def test_the_decorrelation_factor_matches_the_enumerated_correlation():
    from estimators.arms import decorrelation as library_decorrelation

    for p, num_samples in [(0.3, 2), (0.3, 4), (0.8, 3), (0.49, 10), (0.9, 1024), (0.02, 64)]:
        if num_samples <= 10:
            expected = decorrelation(p, num_samples)
        else:  # ρ from the copula's diagonal directly (2^L outcomes are too many to enumerate)
            q = min(p, 1 - p)
            expected = p * (1 - p) / (q - max(2 * q ** (1 / (num_samples - 1)) - 1, 0) ** (num_samples - 1))
        np.testing.assert_allclose(float(library_decorrelation(jnp.float32(p), num_samples)), expected, rtol=1e-5)


@pytest.mark.parametrize("num_samples", [2, 3])
def test_the_enumerated_estimate_has_the_gradient_as_its_mean(num_samples):
    gradient, mean, variance = exact_moments(num_samples=num_samples)
    np.testing.assert_allclose(mean, gradient, rtol=1e-10)
    assert variance.min() > 1e-3  # the coupled cost leaves a variance to measure


@pytest.mark.parametrize("num_samples", [2, 3])
def test_mean_and_variance_match_the_enumeration(key, num_samples):
    _, mean, variance = exact_moments(num_samples=num_samples)
    objective = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: cost(b))
    estimate = jax.jit(jax.vmap(est.grad(objective, "arms", num_samples), in_axes=(None, 0)))
    estimates = np.asarray(estimate(jnp.asarray(LOGITS, jnp.float32), jax.random.split(key, 100_000)))
    assert_mean_matches(estimates, mean, label=f"arms L={num_samples}")
    assert_variance_matches(estimates, variance, label=f"arms L={num_samples}")


@pytest.mark.parametrize("num_samples", [2, 3, 4])
def test_the_closed_form_variance_for_a_separable_cost_matches_the_enumeration(num_samples):
    """The Bernoulli toy's ARMS variance at any L (moments of the copula's count, in exact arithmetic)
    against the brute-force sum over (2^L)^D outcomes, on a separable cost."""
    from experiments.problems.bernoulli_exact import arms_separable_variance

    logits, target = np.array([-0.8, 0.6, 0.1]), 0.45
    p = 1 / (1 + np.exp(-logits))
    laws = [coordinate_law(pd, num_samples) for pd in p]
    factors = np.array([decorrelation(pd, num_samples) for pd in p]) / (num_samples - 1)
    outcomes, probabilities = [], []
    for columns in itertools.product(*(law.items() for law in laws)):
        samples = np.array([column[0] for column in columns], dtype=float).T
        probabilities.append(np.prod([column[1] for column in columns]))
        costs = ((samples - target) ** 2).sum(axis=1)
        outcomes.append(factors * ((costs - costs.mean())[:, None] * (samples - p)).sum(axis=0))
    probabilities, outcomes = np.array(probabilities), np.array(outcomes)
    variance = probabilities @ (outcomes - probabilities @ outcomes) ** 2
    closed_form = arms_separable_variance(logits, (1 - target) ** 2 - target**2, num_samples)
    np.testing.assert_allclose(closed_form, variance, rtol=1e-9)


@pytest.mark.parametrize("num_samples", [8, 64])
def test_measured_variance_on_the_bernoulli_toy_matches_the_closed_form(key, num_samples):
    """Beyond enumeration: the toy's exact variance at L = 8 and 64 against 100,000 measured estimates."""
    from experiments import problems

    problem = problems.get("bernoulli_toy")
    estimate = jax.jit(jax.vmap(est.grad(problem.objective, "arms", num_samples), in_axes=(None, 0)))
    estimates = np.asarray(estimate(problem.params, jax.random.split(key, 100_000))["logits"])
    assert_mean_matches(estimates, problem.exact_grad["logits"], label=f"arms L={num_samples}")
    assert_variance_matches(estimates, problem.exact_variance("arms", num_samples)["logits"],
                            label=f"arms L={num_samples}")


def test_it_has_less_variance_than_leave_one_out_at_the_same_samples():
    """The point of the coupling: on this cost, at L = 3, below leave-one-out REINFORCE's exact variance
    (independent samples, the same estimate with ρ = 0)."""
    _, _, variance = exact_moments(num_samples=3)
    p = 1 / (1 + np.exp(-LOGITS))
    singles = [np.array(b) for b in itertools.product((0, 1), repeat=2)]
    weights = [np.prod(np.where(b, p, 1 - p)) for b in singles]
    outcomes, probabilities = [], []
    for triple in itertools.product(range(4), repeat=3):
        samples = np.array([singles[i] for i in triple], dtype=float)
        costs = np.array([cost(s) for s in samples])
        outcomes.append(((costs - costs.mean())[:, None] * (samples - p)).sum(axis=0) / 2)
        probabilities.append(np.prod([weights[i] for i in triple]))
    probabilities, outcomes = np.array(probabilities), np.array(outcomes)
    loo_variance = probabilities @ (outcomes - probabilities @ outcomes) ** 2
    assert np.all(variance < loo_variance), (variance, loo_variance)


def test_a_cost_depending_on_the_parameters_adds_its_direct_term(key):
    """f(θ, b) = w · b_0 + cost(b): ∂F/∂w = p_0, and the logits' gradient is unchanged in expectation."""
    params = {"logits": jnp.asarray(LOGITS, jnp.float32), "w": jnp.array(0.7)}
    objective = est.Objective(dist=lambda q: est.Bernoulli(q["logits"]), cost=lambda q, b: q["w"] * b[0] + cost(b))
    grads = jax.jit(jax.vmap(est.grad(objective, "arms", 4), in_axes=(None, 0)))(params, jax.random.split(key, 50_000))
    p = 1 / (1 + np.exp(-LOGITS))
    extra = np.array([0.7 * p[0] * (1 - p[0]), 0.0])  # ∂/∂ℓ of E[w b_0]
    exact = exact_moments(num_samples=3)[0] + extra
    assert_mean_matches(grads["logits"], exact, label="logits")
    assert_mean_matches(grads["w"], [p[0]], label="direct term")


def test_a_plate_couples_each_examples_samples_and_weights_its_own_cost(key):
    """Two examples; example n's cost reads its own latents only, so its logits' expectation is its own
    enumerated gradient."""
    logits = jnp.asarray(np.stack([LOGITS, -LOGITS[::-1]]), jnp.float32)
    objective = est.Objective(dist=est.Bernoulli, cost=lambda q, b: jax.vmap(cost)(b), batch_ndims=1)
    estimate = jax.jit(jax.vmap(est.grad(objective, "arms", 3), in_axes=(None, 0)))
    first, second = exact_moments(LOGITS)[0], exact_moments(-LOGITS[::-1])[0]
    assert_mean_matches(estimate(logits, jax.random.split(key, 50_000)), np.stack([first, second]), label="plate")


def test_one_sample_is_refused():
    objective = est.Objective(dist=est.Bernoulli, cost=lambda logits, b: cost(b))
    with pytest.raises(ValueError, match="num_samples >= 2"):
        est.grad(objective, "arms", 1)(jnp.asarray(LOGITS, jnp.float32), jax.random.key(0))
