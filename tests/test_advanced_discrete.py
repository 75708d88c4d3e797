"""ARM, DisARM, REBAR, RELAX and Gumbel-Rao: unbiasedness, exact means and variances, their orderings.

The exact answers on the Bernoulli toy come from experiments/problems/bernoulli_exact.py (NumPy
enumeration and quadrature of the published formulas); here they are checked against the library's
JAX estimates, against each other where two routes must agree, and against exact gradients.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import estimators as est
from experiments import problems
from experiments.engine.measure import measure_cell
from experiments.problems.bernoulli_exact import (
    antithetic_moments,
    gumbel_rao_separable_moments,
    rebar_separable_moments,
)
from experiments.problems.discrete import relaxed_bernoulli_moments
from tests.stats import FALSE_ALARM, assert_mean_matches, assert_variance_matches, variance_standard_error, z_threshold
from tests.test_estimator_family import estimates, flat, flat_exact

# --- the conditional relaxation -------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_conditional_noisy_logits_given_their_sample_mix_back_to_the_noise(family, key):
    """Draw b, then z̃ ~ p(z | b): z̃ must map back to b, and over b its law must be z's (logits plus
    logistic or Gumbel noise), which a Kolmogorov–Smirnov test checks coordinate by coordinate."""
    if family == "bernoulli":
        dist = est.Bernoulli(jnp.array([-2.0, -0.3, 0.0, 1.5]))
        cdf = lambda x, logit: stats.logistic.cdf(x - logit)
    else:
        dist = est.Categorical(jnp.array([[1.0, 0.0, -1.0, 0.5], [0.2, 3.0, -2.0, 0.1]]))
        cdf = lambda x, logit: stats.gumbel_r.cdf(x - logit)
    sample_key, conditional_key = jax.random.split(key)
    count = 20_000
    b = jax.vmap(dist.sample)(jax.random.split(sample_key, count))
    z = jax.vmap(dist.conditional_noisy_logits)(jax.random.split(conditional_key, count), b)
    np.testing.assert_array_equal(jax.vmap(dist.hard)(z), b)
    z, logits = np.asarray(z, np.float64).reshape(count, -1), np.ravel(np.asarray(dist.logits, np.float64))
    p_values = [stats.kstest(z[:, i], lambda x, logit=logit: cdf(x, logit)).pvalue for i, logit in enumerate(logits)]
    assert min(p_values) > FALSE_ALARM / len(p_values), p_values


def test_conditional_noisy_logits_stay_finite_for_extreme_logits(key):
    """Conditioned on every outcome, the unlikely ones included, at logits ±60: z̃ is finite, maps back
    to the outcome, and so does its gradient in the logits."""
    cases = [(est.Bernoulli, jnp.array([-60.0, 60.0]), [jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])]),
             (est.Categorical, jnp.array([[60.0, -60.0, 0.0]]), [jnp.eye(3)[k][None] for k in range(3)])]
    keys = iter(jax.random.split(key, 10))
    for family, logits, outcomes in cases:
        for b in outcomes:
            draw = lambda lg, k: family(lg).conditional_noisy_logits(k, b)
            subkeys = jax.random.split(next(keys), 1000)
            z = jax.vmap(draw, in_axes=(None, 0))(logits, subkeys)
            assert np.all(np.isfinite(z)) and np.all(np.asarray(jax.vmap(family(logits).hard)(z)) == np.asarray(b)), b
            gradient_keys = jax.random.split(next(keys), 1000)
            jacobian = jax.vmap(jax.grad(lambda lg, k: jnp.sum(draw(lg, k))), in_axes=(None, 0))(logits, gradient_keys)
            assert np.all(np.isfinite(jacobian)), (family, b)


# --- unbiasedness ---------------------------------------------------------------------------------


def direct_term_problem() -> problems.Problem:
    """Three Bernoulli coordinates with logits 2θ and a cost Σ (b − w)² that depends on w directly:
    ∂F/∂θ = 2 p(1 − p)(1 − 2w), ∂F/∂w = 2(w − p)."""
    theta, w = np.array([-0.6, 0.1, 0.8]), np.array([0.2, 0.5, 0.9])
    p = 1 / (1 + np.exp(-2 * theta))
    objective = est.Objective(
        dist=lambda q: est.Bernoulli(2 * q["theta"]), cost=lambda q, b: jnp.sum((b - q["w"]) ** 2)
    )
    return problems.Problem(
        name="bernoulli_direct", description="Σ (b − w)², b ~ Bernoulli(σ(2θ))", objective=objective,
        params={"theta": jnp.asarray(theta, jnp.float32), "w": jnp.asarray(w, jnp.float32)},
        exact_grad={"theta": 2 * p * (1 - p) * (1 - 2 * w), "w": 2 * (w - p)},
    )


UNBIASED_CASES = [
    ("arm", ["bernoulli_toy", "bernoulli_toy_499", "direct"]),
    ("disarm", ["bernoulli_toy", "bernoulli_toy_499", "direct"]),
    ("rebar", ["bernoulli_toy", "categorical_toy", "direct"]),
    ("relax", ["bernoulli_toy", "categorical_toy", "direct"]),
]


@pytest.mark.parametrize("name, problem_names", UNBIASED_CASES, ids=[c[0] for c in UNBIASED_CASES])
def test_unbiased_against_exact_gradients(name, problem_names, key):
    # RELAX is measured at the state its shared warm-up chain reached: unbiased given any state.
    estimator = est.get(name)
    for problem_name, problem_key in zip(problem_names, jax.random.split(key, len(problem_names))):
        problem = direct_term_problem() if problem_name == "direct" else problems.get(problem_name)
        grads = estimates(problem, estimator, 4, 20_000, problem_key)
        assert_mean_matches(grads, flat_exact(problem.exact_grad), label=f"{name} on {problem_name}")


@pytest.mark.parametrize("name", ["arm", "disarm", "rebar", "relax", "gumbel_rao"])
def test_the_value_returned_with_the_gradient_is_unbiased(name, key):
    # F = Σ_d p_d (1 − t)² + (1 − p_d) t² on the Bernoulli toy.
    problem = problems.get("bernoulli_toy")
    p = 1 / (1 + np.exp(-np.asarray(problem.params["logits"], np.float64)))
    exact = np.sum(p * 0.55**2 + (1 - p) * 0.45**2)
    values = measure_cell(problem, est.get(name), 4, 20_000, key).values
    assert_mean_matches(values[:, None], [exact], label=f"{name}'s value")


# --- exact means and variances on the Bernoulli toy ------------------------------------------------

EXACT_CASES = [
    ("arm", {}, 1), ("arm", {}, 4), ("disarm", {}, 1), ("disarm", {}, 4),
    ("rebar", {}, 1), ("rebar", {"temperature": 1.0, "scale": 0.5}, 4),
    ("gumbel_rao", {}, 1), ("gumbel_rao", {"temperature": 0.5, "num_conditional_samples": 3}, 4),
]


@pytest.mark.parametrize(
    "name, options, num_samples", EXACT_CASES, ids=[f"{c[0]}{c[1] or ''}-L{c[2]}" for c in EXACT_CASES]
)
@pytest.mark.parametrize("problem_name", ["bernoulli_toy", "bernoulli_toy_499"])
def test_measured_means_and_variances_match_the_exact_ones(problem_name, name, options, num_samples, key):
    problem = problems.get(problem_name)
    estimator = est.get(name, **options)
    grads = estimates(problem, estimator, num_samples, 100_000, key)
    label = f"{name}{options} on {problem_name}, L={num_samples}"
    assert_mean_matches(grads, flat_exact(problem.exact_mean(estimator)), label=label)
    assert_variance_matches(grads, flat_exact(problem.exact_variance(estimator, num_samples)), label=label)


@pytest.mark.parametrize("target", [0.45, 0.499])
def test_exact_answers_agree_with_exact_gradients_and_with_each_other(target):
    problem = problems.discrete.bernoulli_toy(target=target)
    logits = np.asarray(problem.params["logits"], np.float64)
    exact = problem.exact_grad["logits"]
    # ARM and DisARM by enumeration of u's intervals: unbiased in exact arithmetic, for this cost and another.
    for cost in (lambda b: ((b - target) ** 2).sum(axis=1), lambda b: np.prod(b + 0.5, axis=1)):
        moments = antithetic_moments(logits, cost)
        outcomes = np.array(list(itertools.product([0.0, 1.0], repeat=len(logits))))
        p = 1 / (1 + np.exp(-logits))
        probability = np.prod(np.where(outcomes == 1, p, 1 - p), axis=1)
        enumerated = probability * cost(outcomes) @ (outcomes - p)  # E[f(b)(b − p)], the score function's mean
        for name in ("arm", "disarm"):
            np.testing.assert_allclose(moments[name][0], enumerated, rtol=1e-12, atol=1e-15)
        assert np.all(moments["disarm"][1] <= moments["arm"][1] * (1 + 1e-12))  # Rao-Blackwellization
    # REBAR: unbiased for any scale and temperature, to quadrature accuracy.
    for options in ({}, {"scale": 0.3, "temperature": 2.0}):
        mean, _ = rebar_separable_moments(logits, lambda x: (x - target) ** 2, lambda x: 2 * (x - target),
                                          options.get("scale", 1.0), options.get("temperature", 0.5))
        # Exact up to quadrature error (the u and v nodes pair z with z̃ node for node at λ = 0.5, so this
        # checks the algebra more than the quadrature, whose variances agree to 1e-7 between 100 and 400 nodes).
        np.testing.assert_allclose(mean, exact, rtol=1e-7, atol=1e-8)
    # Gumbel-Rao with one conditional draw is straight-through Gumbel in law: the same mean and variance
    # as the independent quadrature of the latter; more draws keep the mean and lower the variance.
    for temperature in (0.5, 1.0):
        single = gumbel_rao_separable_moments(logits, lambda x: 2 * (x - target), temperature, 1)
        straight = np.array([relaxed_bernoulli_moments(logit, target, temperature, True) for logit in logits]).T
        np.testing.assert_allclose(single, straight, rtol=1e-6)
        many = gumbel_rao_separable_moments(logits, lambda x: 2 * (x - target), temperature, 10)
        np.testing.assert_allclose(many[0], straight[0], rtol=1e-6)
        assert np.all(many[1] < straight[1])


@pytest.mark.parametrize("problem_name", ["bernoulli_toy", "bernoulli_toy_499"])
def test_disarm_against_arm_and_leave_one_out_at_equal_cost_evaluations(problem_name):
    """DisARM and ARM evaluate the cost twice per sample: L pairs cost what 2L REINFORCE samples do.

    DisARM is below ARM in every coordinate at every L (it is ARM Rao-Blackwellized).  Against the
    leave-one-out baseline at equal cost, DisARM's total variance is lower at one pair (against 2
    samples), as Dong et al. report; from two pairs on the order reverses on this toy: leave-one-out's
    baseline improves with L, while DisARM's pairs stay independent of each other."""
    problem = problems.get(problem_name)
    for num_samples in (1, 2, 4, 16):
        disarm = problem.exact_variance("disarm", num_samples)["logits"]
        arm = problem.exact_variance("arm", num_samples)["logits"]
        loo = problem.exact_variance("score_function_loo", 2 * num_samples)["logits"]
        assert np.all(disarm < arm), (num_samples, disarm, arm)
        assert (disarm.sum() < loo.sum()) == (num_samples == 1), (num_samples, disarm, loo)


def total_variance_and_se(grads):
    """The sum of the coordinates' variances, and its standard error (from each replicate's squared
    distance to the mean, so correlations between coordinates are accounted for)."""
    squared = ((grads - grads.mean(axis=0)) ** 2).sum(axis=1)
    return squared.mean(), squared.std(ddof=1) / np.sqrt(len(squared))


def test_measured_disarm_variance_is_below_arm_and_leave_one_out_at_equal_cost(key):
    """The same orderings on measured variances alone, each difference beyond its standard error:
    DisARM below ARM in every coordinate (4 pairs), and in total below leave-one-out with 2 samples."""
    problem = problems.get("bernoulli_toy")
    keys = jax.random.split(key, 4)
    cells = [("disarm", 4), ("arm", 4), ("disarm", 1), ("score_function_loo", 2)]
    measured = {cell: estimates(problem, est.get(cell[0]), cell[1], 50_000, k) for cell, k in zip(cells, keys)}

    def variance_and_se(grads):
        centred = grads - grads.mean(axis=0)
        variance = centred.var(axis=0, ddof=1)
        return variance, variance_standard_error(variance, (centred**4).mean(axis=0), len(grads))

    (disarm, disarm_se), (arm, arm_se) = variance_and_se(measured["disarm", 4]), variance_and_se(measured["arm", 4])
    threshold = z_threshold(FALSE_ALARM, arm.size + 1)
    assert np.all((arm - disarm) / np.hypot(arm_se, disarm_se) > threshold)
    (disarm, disarm_se), (loo, loo_se) = (total_variance_and_se(measured[cell]) for cell in cells[2:])
    assert (loo - disarm) / np.hypot(loo_se, disarm_se) > threshold


def test_gumbel_rao_variance_is_below_straight_through_gumbel_at_the_same_temperature(key):
    """Exact on the Bernoulli toy; measured on the categorical toy, where the two means must also agree."""
    for name in ("bernoulli_toy", "bernoulli_toy_499"):
        problem = problems.get(name)
        for temperature in (0.5, 1.0):
            rao = problem.exact_variance(est.get("gumbel_rao", temperature=temperature), 1)["logits"]
            straight = problem.exact_variance(est.get("straight_through_gumbel", temperature=temperature), 1)["logits"]
            assert np.all(rao < straight)
    problem = problems.get("categorical_toy")
    rao_key, straight_key = jax.random.split(key)
    rao = estimates(problem, est.get("gumbel_rao"), 1, 100_000, rao_key)
    straight = estimates(problem, est.get("straight_through_gumbel"), 1, 100_000, straight_key)
    threshold = z_threshold(FALSE_ALARM, 2 * rao.shape[1] + 1)
    mean_z = (
        (rao.mean(0) - straight.mean(0)) / np.hypot(rao.std(0, ddof=1), straight.std(0, ddof=1)) * np.sqrt(len(rao))
    )
    assert np.all(np.abs(mean_z) < threshold), mean_z
    moments = [(g.var(0, ddof=1), ((g - g.mean(0)) ** 4).mean(0)) for g in (rao, straight)]
    ses = [variance_standard_error(v, m4, len(rao)) for v, m4 in moments]
    # No coordinate significantly higher, and the total lower beyond its standard error.
    assert np.all((moments[0][0] - moments[1][0]) / np.hypot(*ses) < threshold)
    (rao_total, rao_se), (straight_total, straight_se) = total_variance_and_se(rao), total_variance_and_se(straight)
    assert (straight_total - rao_total) / np.hypot(rao_se, straight_se) > threshold


def test_relax_learns_a_control_variate_with_less_variance_than_the_rebar_it_starts_from(key):
    problem = problems.get("bernoulli_toy")
    rebar_key, relax_key = jax.random.split(key)
    rebar = estimates(problem, est.get("rebar"), 16, 20_000, rebar_key)
    relaxed = flat(measure_cell(problem, est.get("relax"), 16, 20_000, relax_key, warmup_steps=100).grads)
    (relax_total, relax_se), (rebar_total, rebar_se) = total_variance_and_se(relaxed), total_variance_and_se(rebar)
    assert (rebar_total - relax_total) / np.hypot(relax_se, rebar_se) > z_threshold(FALSE_ALARM, 1)


def test_relax_starts_as_rebar(key):
    """Its network's output starts at zero, and η, λ at REBAR's defaults: the same estimate, key for key."""
    problem = problems.get("categorical_toy")
    init, update = est.grad_with_state(problem.objective, "relax", 4)
    update, rebar = jax.jit(update), jax.jit(est.grad(problem.objective, "rebar", 4))  # one program each
    for k in jax.random.split(key, 3):
        np.testing.assert_allclose(update(problem.params, k, init(problem.params))[0]["logits"],
                                   rebar(problem.params, k)["logits"], rtol=1e-5, atol=1e-7)  # float32 rounding


def test_relax_control_gradient_is_the_gradient_of_the_exact_variance(key):
    """E[∂φ ||ĝ_L||²] = ∂φ tr Var ĝ_L: at RELAX's initial state (REBAR with η = 1, λ = 0.5), the mean of
    the η and log λ components over many draws matches central differences of REBAR's exact variance."""
    problem, num_samples = problems.get("bernoulli_toy"), 4
    relax = est.get("relax")
    control = relax.init(problem.objective, problem.params, jax.random.key(0)).control
    draw = jax.jit(jax.vmap(lambda k: relax.estimate_with_control_gradient(
        problem.objective, problem.params, k, num_samples, control)[2], in_axes=0))
    grads = draw(jax.random.split(key, 100_000))
    logits = np.asarray(problem.params["logits"], np.float64)

    def total_variance(scale, temperature):
        _, variance = rebar_separable_moments(logits, lambda x: (x - 0.45) ** 2, lambda x: 2 * (x - 0.45),
                                              scale, temperature)
        return variance.sum() / num_samples

    step = 1e-4
    expected = {"scale": (total_variance(1 + step, 0.5) - total_variance(1 - step, 0.5)) / (2 * step),
                "log_temperature": (total_variance(1, 0.5 * np.exp(step)) - total_variance(1, 0.5 * np.exp(-step)))
                / (2 * step)}
    for name, value in expected.items():
        assert_mean_matches(np.asarray(grads[name], np.float64)[:, None], [value], false_alarm=FALSE_ALARM / 2,
                            label=f"∂ tr Var / ∂{name}")


def test_relax_state_is_updated_and_grad_refuses_it(key):
    problem = problems.get("bernoulli_toy")
    init, update = est.grad_with_state(problem.objective, "relax", 4)
    state = init(problem.params)
    _, new_state = jax.jit(update)(problem.params, key, state)  # one program, not one per operation
    assert not np.array_equal(new_state.control["scale"], state.control["scale"])
    with pytest.raises(ValueError, match=r"'relax' is stateful.*grad_with_state"):
        est.grad(problem.objective, "relax", 4)
    assert jax.tree.all(jax.tree.map(np.array_equal, init(problem.params, jax.random.key(0)), state))
    other = init(problem.params, jax.random.key(1)).control["network"]["hidden"]
    assert not np.array_equal(other, state.control["network"]["hidden"])


# --- errors ----------------------------------------------------------------------------------------

CATEGORICAL = est.Objective(dist=lambda p: est.Categorical(p["mu"]), cost=lambda p, x: jnp.sum(x))
GAUSSIAN = est.Objective(dist=lambda p: est.Normal(p["mu"], 1.0), cost=lambda p, x: jnp.sum(x**2))


@pytest.mark.parametrize("name, objective, message", [
    ("arm", CATEGORICAL, r"'arm' cannot serve a Categorical.*defined for Bernoulli.*rebar, relax"),
    ("disarm", GAUSSIAN, r"'disarm' cannot serve a Normal.*defined for Bernoulli"),
    ("rebar", GAUSSIAN, r"'rebar' cannot serve a Normal.*continuous relaxation"),
    ("relax", GAUSSIAN, r"'relax' cannot serve a Normal.*continuous relaxation"),
    ("gumbel_rao", GAUSSIAN, r"'gumbel_rao' cannot serve a Normal"),
])
def test_wrong_distribution_names_what_works(name, objective, message, key):
    with pytest.raises(ValueError, match=message):
        # Through grad_with_state, which serves the stateful relax too; the check comes before the state is read.
        est.grad_with_state(objective, name, 2).update({"mu": jnp.zeros((2, 3))}, key, ())


@pytest.mark.parametrize("name, options, message", [
    ("rebar", {"temperature": 0.0}, r"rebar needs a positive temperature"),
    ("rebar", {"scale": float("nan")}, r"rebar needs a finite scale"),
    ("relax", {"temperature": -1.0}, r"relax needs a positive temperature"),
    ("relax", {"hidden_units": 0}, r"relax needs a positive integer number of hidden_units"),
    ("relax", {"learning_rate": 0.0}, r"relax needs a positive learning_rate"),
    ("gumbel_rao", {"num_conditional_samples": 0}, r"gumbel_rao needs a positive integer num_conditional_samples"),
    ("gumbel_rao", {"temperature": "hot"}, r"gumbel_rao needs a positive temperature"),
])
def test_bad_options_are_refused_with_the_reason(name, options, message):
    with pytest.raises(ValueError, match=message):
        est.get(name, **options)
