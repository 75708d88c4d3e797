"""Control variates, measure-valued and straight-through/Gumbel-Softmax estimators against exact answers.

Unbiased estimators: the mean of R replicate estimates matches the exact gradient within k standard
errors on at least two problems each.  Biased estimators: the mean matches the estimator's exact
expectation (enumeration or quadrature), so the bias is measured, not assumed.  Every false-alarm
rate is the one stated in tests/stats.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import estimators as est
from experiments import problems
from experiments.engine.measure import measure_cell
from experiments.problems import checkpoints, families
from tests.stats import FALSE_ALARM, assert_mean_matches, assert_variance_matches, z_threshold


def flat(tree_of_replicates):
    leaves = jax.tree_util.tree_leaves(tree_of_replicates)
    return np.concatenate([np.asarray(x, np.float64).reshape(x.shape[0], -1) for x in leaves], axis=1)


def flat_exact(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)])


def estimates(problem, estimator, num_samples, num_replicates, key):
    return flat(measure_cell(problem, estimator, num_samples, num_replicates, key).grads)


UNBIASED_CASES = [
    # (estimator, its options, problems, L)
    ("score_function_ema", {}, ["gaussian_cosine", "bernoulli_toy", "categorical_toy"], 4),
    ("score_function_loo", {}, ["gaussian_cosine", "bernoulli_toy", "categorical_toy"], 4),
    ("score_function_optimal", {}, ["gaussian_exp", "bernoulli_toy", "categorical_toy"], 4),
    ("pathwise_delta", {}, ["gaussian_cosine", "gaussian_exp"], 4),
    ("pathwise_delta", {"coefficient": None}, ["gaussian_cosine", "gaussian_quadratic_20d"], 4),
    ("score_function_delta", {}, ["gaussian_cosine", "gaussian_exp"], 4),
    ("score_function_delta", {"coefficient": None}, ["gaussian_cosine", "gaussian_exp"], 4),
    ("measure_valued", {}, ["gaussian_cosine", "gaussian_quadratic_20d"], 2),
    ("measure_valued", {"coupling": False}, ["gaussian_exp", "gaussian_quadratic"], 2),
]


@pytest.mark.parametrize("name, options, problem_names, num_samples", UNBIASED_CASES,
                         ids=[f"{c[0]}{c[1] or ''}" for c in UNBIASED_CASES])
def test_unbiased_on_several_problems(name, options, problem_names, num_samples, key):
    estimator = est.get(name, **options)
    for problem_name, problem_key in zip(problem_names, jax.random.split(key, len(problem_names))):
        problem = problems.get(problem_name)
        grads = estimates(problem, estimator, num_samples, 20_000, problem_key)
        assert_mean_matches(grads, flat_exact(problem.exact_grad), label=f"{estimator.name}{options} on {problem_name}")


def test_delta_method_with_unit_coefficient_is_exact_on_a_quadratic(key):
    # A quadratic cost equals its second-order Taylor expansion, so f − h = 0 and the estimate is
    # ∇E[h] = ∇F for every sample: zero variance, up to float32 rounding.
    problem = problems.get("gaussian_quadratic_20d")
    exact = flat_exact(problem.exact_grad)
    for name, estimator_key in zip(["pathwise_delta", "score_function_delta"], jax.random.split(key)):
        grads = estimates(problem, est.get(name), 3, 50, estimator_key)
        np.testing.assert_allclose(grads, np.broadcast_to(exact, grads.shape), rtol=1e-4, atol=1e-4)  # float32 rounding


EXACT_VARIANCE_CASES = [
    (problem, name, num_samples)
    for problem in ("bernoulli_toy", "categorical_toy")
    for name, num_samples in (("score_function", 1), ("score_function_loo", 8), ("straight_through", 1))
] + [
    ("bernoulli_toy", "gumbel_softmax", 1),
    ("bernoulli_toy", "straight_through_gumbel", 1),
    ("gaussian_quadratic", "score_function_loo", 8),
    ("gaussian_cosine", "score_function_loo", 8),
]


@pytest.mark.parametrize("problem_name, name, num_samples", EXACT_VARIANCE_CASES)
def test_means_and_variances_match_their_exact_values(problem_name, name, num_samples, key):
    problem = problems.get(problem_name)
    estimator = est.get(name)
    grads = estimates(problem, estimator, num_samples, 100_000, key)
    label = f"{name} on {problem_name}, L={num_samples}"
    assert_mean_matches(grads, flat_exact(problem.exact_mean(estimator)), label=label)
    assert_variance_matches(grads, flat_exact(problem.exact_variance(estimator, num_samples)), label=label)


def test_leave_one_out_variance_quoted_value():
    # x ~ N(1, 1), f = x²: the leave-one-out baseline at L = 8 has variance 2.43 (w.r.t. the mean),
    # against 30/8 = 3.75 without it; Hoeffding's U-statistic variance, ζ₁ = 7, ζ₂ = 17 (hand-derived
    # from the normal moments), gives 2/(8·7)·(2·6·7 + 17) = 101/28.
    variance = problems.get("gaussian_quadratic").exact_variance("score_function_loo", 8)["loc"]
    assert variance == pytest.approx(2.428571428571, rel=1e-9)
    assert 101 / 28 == pytest.approx(3.607142857, rel=1e-9) and variance < 30 / 8


@pytest.mark.parametrize("problem_name", ["bernoulli_toy", "categorical_toy", "gaussian_quadratic_20d"])
def test_baselines_reduce_variance_where_theory_says_they_must(problem_name, key):
    # Costs far from zero relative to their spread make f·∇log q noisy; subtracting a baseline near
    # E[f] removes most of it.  One-sided test on the difference of measured variances.
    problem = problems.get(problem_name)
    keys = jax.random.split(key, 3)
    plain = estimates(problem, est.get("score_function"), 8, 20_000, keys[0])
    for name, baseline_key in zip(["score_function_loo", "score_function_optimal"], keys[1:]):
        reduced = estimates(problem, est.get(name), 8, 20_000, baseline_key)
        squared_norms = lambda g: ((g - g.mean(0)) ** 2).sum(1)
        a, b = squared_norms(plain), squared_norms(reduced)
        difference_se = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert a.mean() - b.mean() > z_threshold(FALSE_ALARM, 1) * difference_se, (name, a.mean(), b.mean())


def relaxed_objective(logit, target, temperature):
    """E[(σ((logit + u)/τ) − t)²] over logistic u, by adaptive quadrature over the uniform variable."""
    def integrand(v):
        z = 1 / (1 + np.exp(-(logit + np.log(v) - np.log1p(-v)) / temperature))
        return (z - target) ** 2

    return integrate.quad(integrand, 0, 1, epsabs=1e-13, epsrel=1e-12, limit=200)[0]


@pytest.mark.parametrize("temperature", [0.2, 0.5, 1.0, 2.0])
def test_gumbel_softmax_is_unbiased_for_the_relaxed_objective(temperature, key):
    problem = problems.get("bernoulli_toy")
    logits = np.asarray(problem.params["logits"], np.float64)
    step = 1e-4
    relaxed_grad = [(relaxed_objective(logit + step, 0.45, temperature)
                     - relaxed_objective(logit - step, 0.45, temperature)) / (2 * step) for logit in logits]
    estimator = est.get("gumbel_softmax", temperature=temperature)
    # The problem's own quadrature of E[∇f(z)] agrees with this independent derivative of E[f(z)] ...
    np.testing.assert_allclose(problem.exact_mean(estimator)["logits"], relaxed_grad, rtol=1e-5, atol=1e-8)
    # ... and so does the estimator.
    grads = estimates(problem, estimator, 1, 100_000, key)
    assert_mean_matches(grads, relaxed_grad, label=f"gumbel_softmax τ={temperature}")
    # ... and biased for the true objective: the relaxed gradient differs from it.
    assert np.max(np.abs(np.array(relaxed_grad) - flat_exact(problem.exact_grad))) > 1e-3


def test_straight_through_bias_is_the_closed_form():
    # E[2(b − t) p(1 − p)] = 2(p − t)p(1 − p): the bias is 2p(1 − p)(p − ½), zero only at p = ½.
    problem = problems.get("bernoulli_toy")
    p = 1 / (1 + np.exp(-np.asarray(problem.params["logits"], np.float64)))
    np.testing.assert_allclose(
        problem.exact_mean("straight_through")["logits"], 2 * (p - 0.45) * p * (1 - p), rtol=1e-10
    )


def test_relaxed_samples_round_to_the_hard_sample_of_the_same_key(key):
    for dist in (est.Bernoulli(jnp.linspace(-2, 2, 7)), est.Categorical(jnp.linspace(-1, 1, 12).reshape(3, 4))):
        keys, key = jax.random.split(key)
        keys = jax.random.split(keys, 200)
        same_keys = jax.random.clone(keys)
        hard = jax.vmap(dist.sample)(keys)
        relaxed = jax.vmap(lambda k: dist.relaxed_sample(k, 0.3))(same_keys)
        rounded = (relaxed > 0.5) if isinstance(dist, est.Bernoulli) else jax.nn.one_hot(relaxed.argmax(-1), 4)
        np.testing.assert_array_equal(hard, rounded.astype(hard.dtype))


def test_moving_average_baseline_state_and_bias_correction(key):
    problem = problems.get("bernoulli_toy")
    baseline = est.baselines.MovingAverage(decay=0.5)
    state = baseline.init(jnp.float32)
    costs = jnp.array([1.0, 3.0])
    first, state = baseline.values(costs, state)
    np.testing.assert_array_equal(first, 0.0)  # no history yet
    second, state = baseline.values(jnp.array([5.0, 5.0]), state)
    np.testing.assert_allclose(second, 2.0)  # bias-corrected average of the first batch's mean
    third, _ = baseline.values(costs, state)
    np.testing.assert_allclose(third, (0.5 * 0.5 * 2.0 + 0.5 * 5.0) / (1 - 0.25))
    init, update = est.grad_with_state(problem.objective, "score_function_ema", 4)
    grads, new_state = jax.jit(update)(problem.params, key, init(problem.params))
    assert int(new_state.steps) == 1 and grads["logits"].shape == (5,)


# --- the registry and applicability ----------------------------------------------------------------

DESIGN_NAMES = ["pathwise", "score_function", "score_function_ema", "score_function_loo", "score_function_optimal",
                "pathwise_delta", "score_function_delta", "measure_valued", "straight_through", "gumbel_softmax",
                "straight_through_gumbel", "vimco", "dreg", "stl"]


def test_names_lists_every_estimator_of_the_design_table():
    assert set(est.names()) >= set(DESIGN_NAMES)


# Every estimator on each problem whose objective no other test runs every estimator on: the distribution
# families and the real-data models (the toys go through test_registry_contract.py's objectives of the same
# kinds and through the statistical tests).  The real-data ``_init`` problems run the same code as their
# trained ones, at other parameters, and the ``_summed`` variants the code without a plate.  The VAEs'
# importance-weighted bounds (``_iw<K>``) are objectives of the kinds test_registry_contract.py runs every
# estimator on (its ``iw_`` families); tests/test_real_problems.py runs VIMCO and pathwise on them.
# The real-data models are those with a training recipe, found without building every problem (the binary
# VAE's exact variances take seconds), since every pytest-xdist worker collects every test file.
REAL_DATA_PROBLEMS = tuple(checkpoints.RECIPES)
SMOKE_PROBLEMS = [name for name in problems.names() if name in families.PROBLEMS or name in REAL_DATA_PROBLEMS]


@pytest.mark.parametrize("problem_name", SMOKE_PROBLEMS)
def test_every_estimator_runs_on_every_problem_it_applies_to(problem_name, key):
    problem = problems.get(problem_name)
    dist = problem.distribution()
    applicable = [name for name in est.names() if est.get(name).supports(dist) is None]
    assert "score_function" in applicable
    for name, estimator_key in zip(applicable, jax.random.split(key, len(applicable))):
        init, update = est.value_and_grad_with_state(problem.objective, name, 2)
        # Jitted, as a model's training step is (one compilation, where running eagerly compiles each of
        # the real models' many operations apart, at twice the time); tests/test_registry_contract.py
        # runs every estimator eagerly too.
        value, grads, _ = jax.jit(update)(problem.params, estimator_key, init(problem.params))
        assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(problem.params)
        assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)) and np.isfinite(value), name


# --- errors ----------------------------------------------------------------------------------------

GAUSSIAN = est.Objective(dist=lambda p: est.Normal(p["mu"], 1.0), cost=lambda p, x: jnp.sum(x**2))
BINARY = est.Objective(dist=lambda p: est.Bernoulli(p["mu"]), cost=lambda p, x: jnp.sum(x))
CATEGORICAL = est.Objective(dist=lambda p: est.Categorical(jnp.stack([p["mu"], -p["mu"]], axis=-1)),
                            cost=lambda p, x: jnp.sum(x[..., 0]))
PARAMS = {"mu": jnp.zeros(3)}


@pytest.mark.parametrize(
    "name, objective, message",
    [
        (
            "straight_through",
            GAUSSIAN,
            r"'straight_through' cannot serve a Normal.*Bernoulli or Categorical.*Estimators that can: pathwise",
        ),
        ("gumbel_softmax", GAUSSIAN, r"'gumbel_softmax' cannot serve a Normal"),
        ("straight_through_gumbel", GAUSSIAN, r"'straight_through_gumbel' cannot serve a Normal"),
        (
            "pathwise_delta",
            BINARY,
            r"'pathwise_delta' cannot serve a Bernoulli.*only under a Gaussian.*Estimators that can: score_function",
        ),
        ("score_function_delta", BINARY, r"'score_function_delta' cannot serve a Bernoulli"),
        ("measure_valued", CATEGORICAL, r"'measure_valued' cannot serve a Categorical.*Gaussian.*Bernoulli"),
        ("indecater", GAUSSIAN, r"'indecater' cannot serve a Normal.*categorical or Bernoulli"),
        ("reinmax", GAUSSIAN, r"'reinmax' cannot serve a Normal.*Bernoulli or Categorical"),
        ("decoupled_straight_through", GAUSSIAN, r"'decoupled_straight_through' cannot serve a Normal.*Bernoulli"),
        ("unordered_set", GAUSSIAN, r"'unordered_set' cannot serve a Normal.*categorical or Bernoulli"),
        ("sum_and_sample", GAUSSIAN, r"'sum_and_sample' cannot serve a Normal.*categorical or Bernoulli"),
        ("sum_and_sample_baseline", GAUSSIAN, r"'sum_and_sample_baseline' cannot serve a Normal.*categorical"),
        ("sum_and_sample_stochastic", GAUSSIAN, r"'sum_and_sample_stochastic' cannot serve a Normal.*categorical"),
        ("categorical_disarm", BINARY, r"'categorical_disarm' cannot serve a Bernoulli.*categorical.*disarm"),
    ],
)
def test_wrong_distribution_kind(name, objective, message, key):
    with pytest.raises(ValueError, match=message):
        est.grad(objective, name, 2)(PARAMS, key)


@pytest.mark.parametrize("name, options", [("score_function_loo", {}), ("score_function_optimal", {}),
                                           ("pathwise_delta", {"coefficient": None}),
                                           ("score_function_group_mean", {}), ("score_function_grpo", {}),
                                           ("score_function_grpo_batch", {})])
def test_leave_one_out_estimators_need_two_samples(name, options):
    with pytest.raises(ValueError, match=rf"'{name}' needs num_samples >= 2, got 1.*num_samples=2"):
        est.grad(GAUSSIAN, est.get(name, **options), 1)


@pytest.mark.parametrize("name", ["gumbel_softmax", "straight_through_gumbel", "reinmax", "decoupled_straight_through"])
@pytest.mark.parametrize("temperature", [0.0, -1.0, "hot"])
def test_non_positive_temperature(name, temperature):
    with pytest.raises(ValueError, match=rf"{name} needs a positive temperature"):
        est.get(name, temperature=temperature)


def test_moving_average_decay_out_of_range_and_grad_refuses_it():
    with pytest.raises(ValueError, match=r"decay in \[0, 1\), got 1.0"):
        est.get("score_function_ema", decay=1.0)
    with pytest.raises(ValueError, match=r"'score_function_ema' is stateful.*grad_with_state"):
        est.grad(GAUSSIAN, "score_function_ema", 4)


def test_relaxation_of_a_continuous_distribution(key):
    with pytest.raises(ValueError, match=r"Normal has no continuous relaxation"):
        est.Normal(0.0, 1.0).relaxed_sample(key, 0.5)


def test_score_function_refuses_a_support_that_moves_with_the_parameter(key):
    # Pareto's support [scale, ∞) moves with its scale: the score function would miss the boundary
    # term, so differentiating the log density in the scale raises instead of returning a wrong number.
    objective = est.Objective(dist=lambda p: est.Pareto(p["scale"], 5.0), cost=lambda p, x: jnp.sum(x))
    params = {"scale": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"Pareto's support \[scale, ∞\) moves with its scale.*pathwise"):
        est.grad(objective, "score_function", 2)(params, key)
    np.testing.assert_allclose(est.grad(objective, "pathwise", 2)(params, jax.random.clone(key))["scale"] > 1, True)


def test_leave_one_out_exact_variance_with_a_zero_cost_outcome():
    # target 0: the all-zeros outcome costs 0, where recovering scores as (f·s)/f would be 0/0.
    problem = problems.discrete.bernoulli_toy("bernoulli_toy_0", target=0.0, dim=3)
    assert np.all(np.isfinite(problem.exact_variance("score_function_loo", 4)["logits"]))


def test_temperature_accepts_any_positive_real_number():
    assert est.get("gumbel_softmax", temperature=np.float32(0.5)).temperature == 0.5
    with pytest.raises(ValueError, match="positive temperature"):
        est.get("gumbel_softmax", temperature=True)


def test_per_replicate_warm_up_runs_one_chain_per_replicate(key):
    # Replicate r: warm up from fold_in(key_r, WARMUP_STREAM) for `steps` updates, then estimate with key_r.
    from experiments.engine.measure import WARMUP_STREAM

    problem, steps = problems.get("bernoulli_toy"), 3
    estimator = est.get("score_function_ema")
    measured = measure_cell(problem, estimator, 4, 5, key, warmup_steps=steps, warmup="per_replicate")
    init, update = est.value_and_grad_with_state(problem.objective, estimator, 4)
    for r, replicate_key in enumerate(est.sample_keys(key, 5)):
        state = init(problem.params)
        for warm_key in est.sample_keys(jax.random.fold_in(replicate_key, WARMUP_STREAM), steps):
            state = update(problem.params, warm_key, state)[2]
        expected = update(problem.params, replicate_key, state)[1]["logits"]
        np.testing.assert_allclose(measured.grads["logits"][r], expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="warmup must be 'shared' or 'per_replicate'"):
        measure_cell(problem, estimator, 4, 5, key, warmup="each")
