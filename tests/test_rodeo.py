"""RODEO against its formula, its exact mean and variance, and the gradient of that variance, by enumeration.

The estimate is written here in NumPy from the formula of Shi et al. (2022), loop by loop (the Gibbs operator
over explicit neighbours, h averaged over explicit other samples), with the cost's gradient in b written by
hand, and summed over the (2^D)^L outcomes of L independent samples: its mean is the exact gradient for any
control parameters, and its variance, differentiated in α, is what the control gradient estimates.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from estimators.rodeo import LEAKY_SLOPE, control_network, rodeo_logit_gradient
from tests.stats import FALSE_ALARM, assert_mean_matches, assert_variance_matches
from tests.test_double_control_variates import LOGITS, cost, cost_gradient, jax_cost  # a non-separable cost

OBJECTIVE = est.Objective(dist=est.Bernoulli, cost=lambda q, b: jax_cost(b))


def control(alpha=0.7, beta=-1.3, hidden_units=8, seed=3):
    network = control_network(jax.random.key(seed), hidden_units, jnp.float32)
    network["bias"] = jnp.linspace(-0.5, 0.5, hidden_units, dtype=jnp.float32)  # not zero: every path is used
    return {"network": network, "alpha": jnp.float32(alpha), "beta": jnp.float32(beta)}


def network_outputs(network, taylor, cost_value):
    net = {k: np.asarray(v, np.float64) for k, v in network.items()}
    hidden = taylor * net["taylor"] + cost_value * net["cost"] + net["bias"]
    return np.where(hidden > 0, hidden, LEAKY_SLOPE * hidden) @ net["output"] + net["output_bias"]


def reference_estimate(samples, p, ctrl):
    """The logit gradient of one set of L samples (L, D), from the formula."""
    num_samples, num_latents = samples.shape
    costs = np.array([cost(b) for b in samples])
    gradients = np.array([cost_gradient(b) for b in samples])
    alpha, beta = float(ctrl["alpha"]), float(ctrl["beta"])

    def h(k, y):  # h^(k)(y): the mean over the other samples j of H(∇f(b_j)·(y − b_j), f(b_j))
        return np.mean([network_outputs(ctrl["network"], gradients[j] @ (y - samples[j]), costs[j])
                        for j in range(num_samples) if j != k], axis=0)

    def stein(k, fn):  # (A fn)(b_k), the Gibbs operator at sample k
        b, total = samples[k], 0.0
        for i in range(num_latents):
            neighbour = b.copy()
            neighbour[i] = 1 - b[i]
            flip_probability = p[i] if b[i] == 0 else 1 - p[i]
            total = total + flip_probability * (fn(neighbour) - fn(b))
        return total / num_latents

    stein_cost = np.array([stein(k, lambda y, k=k: h(k, y)[0]) for k in range(num_samples)])
    estimate = np.zeros(num_latents)
    for k in range(num_samples):
        others = [j for j in range(num_samples) if j != k]
        baseline = np.mean(costs[others] + alpha * stein_cost[others])
        estimate += (costs[k] - baseline) * (samples[k] - p)
        estimate += beta * stein(k, lambda y, k=k: h(k, y)[1] * (y - p))
    return estimate / num_samples


def enumerated(ctrl, num_samples, logits=LOGITS):
    """(∇F, probabilities, estimates) over every set of L samples."""
    p = 1 / (1 + np.exp(-logits))
    singles = [np.array(b, dtype=float) for b in itertools.product((0, 1), repeat=len(p))]
    weights = [np.prod(np.where(b == 1, p, 1 - p)) for b in singles]
    gradient = sum(w * cost(b) * (b - p) for w, b in zip(weights, singles))
    probabilities, estimates = [], []
    for chosen in itertools.product(range(len(singles)), repeat=num_samples):
        probabilities.append(np.prod([weights[c] for c in chosen]))
        estimates.append(reference_estimate(np.array([singles[c] for c in chosen]), p, ctrl))
    return gradient, np.array(probabilities), np.array(estimates)


@pytest.mark.parametrize("num_samples", [2, 3])
def test_the_formula_is_unbiased_for_any_control_parameters(num_samples):
    gradient, probabilities, estimates = enumerated(control(), num_samples)
    np.testing.assert_allclose(probabilities @ estimates, gradient, rtol=1e-9, atol=1e-12)


def test_the_estimator_computes_the_formula():
    """Every outcome of L = 3 samples, through :func:`rodeo_logit_gradient` (the outcomes as 512 examples of one
    call), against the loops above."""
    ctrl, p = control(), 1 / (1 + np.exp(-LOGITS))
    singles = [np.array(b, dtype=float) for b in itertools.product((0, 1), repeat=3)]
    outcomes = np.array([[singles[c] for c in chosen] for chosen in itertools.product(range(8), repeat=3)])
    samples = np.moveaxis(outcomes, 0, 1)  # (L, outcomes, D)
    costs = np.array([[cost(b) for b in row] for row in samples])
    gradients = np.array([[cost_gradient(b) for b in row] for row in samples])
    as32 = lambda a: jnp.asarray(a, jnp.float32)
    got = np.asarray(rodeo_logit_gradient(ctrl, as32(costs), as32(gradients), as32(samples),
                                          as32(np.broadcast_to(p, (len(outcomes), 3)))))
    expected = np.array([reference_estimate(outcome, p, ctrl) for outcome in outcomes])
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("num_samples", [2, 3])
def test_mean_and_variance_match_the_enumeration(num_samples, key):
    """Sampling, reshaping and the chain rule: the estimator at a fixed state against the exact moments."""
    ctrl = control()
    gradient, probabilities, estimates = enumerated(ctrl, num_samples)
    mean = probabilities @ estimates
    variance = probabilities @ (estimates - mean) ** 2
    rodeo = est.get("rodeo", hidden_units=8)
    draw = jax.jit(jax.vmap(lambda k: rodeo.estimate_with_control_gradient(OBJECTIVE, jnp.asarray(LOGITS, jnp.float32),
                                                                           k, num_samples, ctrl)[1]))
    grads = np.asarray(draw(jax.random.split(key, 100_000)), np.float64)
    assert_mean_matches(grads, gradient, label=f"rodeo L={num_samples}")
    assert_variance_matches(grads, variance, label=f"rodeo L={num_samples}")


def test_the_control_gradient_is_the_gradient_of_the_exact_variance(key):
    """E[∂α ||ĝ||²] = ∂α tr Var ĝ (the mean does not depend on α), with tr Var by enumeration at α ± h."""
    num_samples, step = 2, 1e-3
    ctrl = control()

    def total_variance(alpha):
        _, probabilities, estimates = enumerated(control(alpha=alpha), num_samples)
        mean = probabilities @ estimates
        return float(probabilities @ ((estimates - mean) ** 2).sum(axis=1))

    expected = (total_variance(0.7 + step) - total_variance(0.7 - step)) / (2 * step)
    rodeo = est.get("rodeo", hidden_units=8)
    draw = jax.jit(jax.vmap(lambda k: rodeo.estimate_with_control_gradient(
        OBJECTIVE, jnp.asarray(LOGITS, jnp.float32), k, num_samples, ctrl)[2]["alpha"]))
    alpha_grads = np.asarray(draw(jax.random.split(key, 100_000)), np.float64)
    assert_mean_matches(alpha_grads[:, None], [expected], false_alarm=FALSE_ALARM, label="∂ tr Var / ∂α")


@pytest.mark.parametrize("problem_name", ["bernoulli_toy", "bernoulli_plate"])
def test_it_starts_as_leave_one_out_reinforce(problem_name, key):
    """α = β = 0 at the start: the first estimate is score_function_loo's, key for key."""
    from experiments import problems

    problem = problems.get(problem_name)
    init, update = est.grad_with_state(problem.objective, "rodeo", 4)
    update, loo = jax.jit(update), jax.jit(est.grad(problem.objective, "score_function_loo", 4))
    state = init(problem.params)
    for k in jax.random.split(key, 3):
        grads, _ = update(problem.params, k, state)
        for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(loo(problem.params, k))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # float32 rounding of gradients ~0.07


def test_a_plate_gives_each_example_its_own_estimate():
    """Two examples through one call equal each example alone: its own costs, gradients and operator."""
    rng = np.random.default_rng(4)
    samples = (rng.random((4, 2, 3)) < 0.5).astype(np.float32)
    costs, gradients = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=(4, 2, 3)).astype(np.float32)
    p = rng.uniform(0.2, 0.8, size=(2, 3)).astype(np.float32)
    both = np.asarray(rodeo_logit_gradient(control(), costs, gradients, samples, p))
    for n in range(2):
        alone = rodeo_logit_gradient(control(), costs[:, n:n + 1], gradients[:, n:n + 1], samples[:, n:n + 1],
                                     p[n:n + 1])
        np.testing.assert_allclose(both[n], np.asarray(alone)[0], rtol=1e-6)


def test_its_state_is_updated_and_grad_refuses_it(key):
    init, update = est.grad_with_state(OBJECTIVE, "rodeo", 4)
    params = jnp.asarray(LOGITS, jnp.float32)
    state = init(params)
    _, new_state = jax.jit(update)(params, key, state)
    assert float(new_state.control["alpha"]) != 0 and float(new_state.control["beta"]) != 0
    with pytest.raises(ValueError, match=r"'rodeo' is stateful.*grad_with_state"):
        est.grad(OBJECTIVE, "rodeo", 4)


@pytest.mark.parametrize("num_samples, message", [(1, r"needs num_samples >= 2"), (33, r"needs num_samples <= 32")])
def test_sample_counts_out_of_range_are_refused(num_samples, message, key):
    params = jnp.asarray(LOGITS, jnp.float32)
    with pytest.raises(ValueError, match=message):
        init, update = est.grad_with_state(OBJECTIVE, "rodeo", num_samples)
        update(params, key, init(params))


def test_bad_options_and_distributions_are_refused(key):
    with pytest.raises(ValueError, match=r"rodeo needs a positive integer number of hidden_units, got 0"):
        est.get("rodeo", hidden_units=0)
    with pytest.raises(ValueError, match=r"rodeo needs a positive learning_rate"):
        est.get("rodeo", learning_rate=0.0)
    categorical = est.Objective(dist=est.Categorical, cost=lambda q, x: jnp.sum(x))
    with pytest.raises(ValueError, match=r"'rodeo' cannot serve a Categorical.*Bernoulli"):
        init, update = est.grad_with_state(categorical, "rodeo", 4)
        update(jnp.zeros((2, 3)), key, init(jnp.zeros((2, 3))))
