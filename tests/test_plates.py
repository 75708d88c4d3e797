"""Independent examples (``Objective(..., batch_ndims=B)``, DESIGN §2.1): per-example learning signals.

The exact answers come from experiments/problems/plates.py (enumeration of each example's outcomes and
antithetic intervals, Gauss–Hermite quadrature); here they are checked against independent routes
(the pair enumeration of the leave-one-out U-statistic, autodiff of the enumerated objective, the closed
form), then the library's estimates against them, and the per-example signal against the batch-level one.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from experiments.problems import plate_exact, plates
from tests.stats import FALSE_ALARM, assert_mean_matches, assert_variance_matches, z_threshold

NUM_REPLICATES = 20_000
PROBLEMS = {
    "bernoulli_plate": lambda: plates.bernoulli_plate(True),
    "bernoulli_plate_summed": lambda: plates.bernoulli_plate(False),
    "gaussian_plate": lambda: plates.gaussian_plate(True),
    "gaussian_plate_summed": lambda: plates.gaussian_plate(False),
}


def replicate_grads(problem, estimator, num_samples, key, num_replicates=NUM_REPLICATES, keys=None):
    """R estimates (one per key of ``keys``, or of R keys split from ``key``), flat (R, P) in the order
    of the params' leaves, float64."""
    g = jax.jit(jax.vmap(est.grad(problem.objective, estimator, num_samples), in_axes=(None, 0)))
    grads = g(problem.params, jax.random.split(key, num_replicates) if keys is None else keys)
    leaves = jax.tree_util.tree_leaves(grads)
    return np.concatenate([np.asarray(x, np.float64).reshape(num_replicates, -1) for x in leaves], axis=1)


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)])


# --- the exact answers, checked by independent routes ----------------------------------------------


def test_leave_one_out_moments_equal_the_pair_enumeration():
    for law, _, _ in plates._bernoulli_laws(per_example=True):
        by_moments, by_pairs = plate_exact.leave_one_out_zetas(law), plate_exact.leave_one_out_zetas_by_pairs(law)
        np.testing.assert_allclose(by_moments, by_pairs, rtol=1e-10, atol=1e-14)
    law, _ = plates._gaussian_laws(per_example=True)[0]
    with_direct = law._replace(direct=np.cos(np.arange(law.score.size)).reshape(law.score.shape))
    np.testing.assert_allclose(plate_exact.leave_one_out_zetas(with_direct),
                               plate_exact.leave_one_out_zetas_by_pairs(with_direct), rtol=1e-10, atol=1e-12)


def test_bernoulli_plate_gradient_equals_autodiff_of_the_enumerated_objective():
    """F(θ) = Σ_n Σ_b q_n(b) f_n(b), enumerated here in float64 and differentiated by JAX."""
    covariates, values, targets = plates.COVARIATES, plates.BERNOULLI_VALUES, plates.BERNOULLI_TARGETS
    outcomes = np.array(list(itertools.product([0.0, 1.0], repeat=3)))

    def objective(weights, bias):
        p = jax.nn.sigmoid(covariates @ weights + bias[None, :])[None]  # (1, N, K)
        q = jnp.prod(jnp.where(outcomes[:, None, :] == 1, p, 1 - p), axis=-1)  # (outcomes, N)
        return jnp.sum(q * ((outcomes @ values)[:, None] - targets[None, :]) ** 2)

    with jax.enable_x64(True):
        grads = jax.grad(objective, argnums=(0, 1))(
            jnp.asarray(plates.BERNOULLI_WEIGHTS), jnp.asarray(plates.BERNOULLI_BIAS)
        )
    for per_example in (True, False):
        exact = plates.bernoulli_plate(per_example).exact_grad
        np.testing.assert_allclose(exact["weights"], grads[0], rtol=1e-10)
        np.testing.assert_allclose(exact["bias"], grads[1], rtol=1e-10)


@pytest.mark.parametrize("per_example", [True, False])
def test_gaussian_plate_quadrature_means_equal_the_closed_form(per_example):
    closed_form = plates._gaussian_exact_grad()
    laws = plates._gaussian_laws(per_example)
    score_mean, _ = plate_exact.score_function_moments([law for law, _ in laws])
    path_mean, _ = plate_exact.summed_moments(
        [plate_exact.mixture_moments(law.probability, path) for law, path in laws]
    )
    np.testing.assert_allclose(score_mean, closed_form, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(path_mean, closed_form, rtol=1e-10, atol=1e-12)


def test_per_example_signals_have_lower_exact_variance_than_the_batch_level_one():
    for family in ("bernoulli_plate", "gaussian_plate"):
        per_example, summed = PROBLEMS[family](), PROBLEMS[family + "_summed"]()
        for name in ("score_function", "score_function_loo", "arm", "disarm"):
            if per_example.exact_variance(name, 4) is None:
                continue
            assert np.all(flat(per_example.exact_variance(name, 4)) < flat(summed.exact_variance(name, 4))), name
        np.testing.assert_allclose(flat(per_example.exact_grad), flat(summed.exact_grad), rtol=1e-12)


# --- the estimators against the exact answers ------------------------------------------------------

EXACT_CASES = [(problem, name) for problem in PROBLEMS for name in
               ("score_function", "score_function_loo", "arm", "disarm", "pathwise")
               if (problem.startswith("bernoulli") and name != "pathwise")
               or (problem.startswith("gaussian") and name not in ("arm", "disarm"))]


@pytest.mark.parametrize("problem_name, estimator, num_samples",
                         [(p, e, n) for p, e in EXACT_CASES for n in ((5,) if p.endswith("_summed") else (2, 5))])
def test_mean_and_variance_equal_the_exact_ones(problem_name, estimator, num_samples, key):
    problem = PROBLEMS[problem_name]()
    grads = replicate_grads(problem, estimator, num_samples, key)
    label = f"{estimator} on {problem_name}, L = {num_samples}"
    assert_mean_matches(grads, flat(problem.exact_grad), FALSE_ALARM / 2, label)
    assert_variance_matches(grads, flat(problem.exact_variance(estimator, num_samples)), None, FALSE_ALARM / 2, label)


UNBIASED_ELSEWHERE = {
    "bernoulli_plate": ["score_function_optimal", "rebar"],
    "gaussian_plate": ["score_function_optimal", "measure_valued"],
}


@pytest.mark.parametrize("problem_name, estimator",
                         [(p, e) for p, names in UNBIASED_ELSEWHERE.items() for e in names])
def test_other_unbiased_estimators_are_unbiased_on_the_plate(problem_name, estimator, key):
    problem = PROBLEMS[problem_name]()
    grads = replicate_grads(problem, estimator, 4, key)
    assert_mean_matches(grads, flat(problem.exact_grad), FALSE_ALARM, f"{estimator} on {problem_name}")


@pytest.mark.parametrize("estimator", ["score_function_ema", "relax"])
def test_stateful_estimators_are_unbiased_on_the_plate_after_warming_up(estimator, key):
    problem = PROBLEMS["bernoulli_plate"]()
    init, update = est.grad_with_state(problem.objective, estimator, 4)
    warm_key, measure_key = jax.random.split(key)
    state = jax.lax.fori_loop(0, 20, lambda t, s: update(problem.params, jax.random.fold_in(warm_key, t), s)[1],
                              init(problem.params))
    g = jax.jit(jax.vmap(lambda k: update(problem.params, k, state)[0]))
    grads = g(jax.random.split(measure_key, NUM_REPLICATES))
    flat_grads = np.concatenate([np.asarray(x, np.float64).reshape(NUM_REPLICATES, -1)
                                 for x in jax.tree_util.tree_leaves(grads)], axis=1)
    assert_mean_matches(flat_grads, flat(problem.exact_grad), FALSE_ALARM, f"{estimator} on bernoulli_plate")


@pytest.mark.parametrize("estimator", ["pathwise_delta", "score_function_delta"])
def test_delta_method_is_exact_on_the_quadratic_plate(estimator, key):
    """The cost is quadratic in each example's latents, so each example's Taylor expansion (its own K × K
    Hessian block) is the cost itself: the estimate is the exact gradient, whatever the samples."""
    problem = PROBLEMS["gaussian_plate"]()
    grads = replicate_grads(problem, estimator, 3, key, num_replicates=50)
    exact = flat(problem.exact_grad)
    np.testing.assert_allclose(grads, np.broadcast_to(exact, grads.shape), rtol=2e-5, atol=2e-5 * np.abs(exact).max())


@pytest.mark.parametrize("estimator", ["score_function", "score_function_loo", "arm", "disarm"])
def test_the_batch_level_signal_loses(estimator, key):
    """Measured, with the same keys: the total variance with per-example signals is below the batch-level
    one's, beyond both standard errors (a one-sided test at the suite's false-alarm rate)."""
    totals = {}
    keys = jax.random.split(key, NUM_REPLICATES)
    for name, replicate_keys in (("bernoulli_plate", keys), ("bernoulli_plate_summed", jax.random.clone(keys))):
        grads = replicate_grads(PROBLEMS[name](), estimator, 4, None, keys=replicate_keys)
        squares = np.sum((grads - grads.mean(axis=0)) ** 2, axis=1)
        totals[name] = (squares.mean(), squares.std(ddof=1) / math.sqrt(len(squares)))
    (low, low_se), (high, high_se) = totals["bernoulli_plate"], totals["bernoulli_plate_summed"]
    assert high - low > z_threshold(2 * FALSE_ALARM, 1) * math.hypot(low_se, high_se), totals


@pytest.mark.parametrize("estimator", ["pathwise", "straight_through", "gumbel_softmax", "straight_through_gumbel",
                                       "gumbel_rao"])
def test_estimators_that_only_differentiate_the_cost_are_unchanged_by_the_plate(estimator, key):
    """Pathwise and the relaxations differentiate Σ_n f_n: per-example costs give the same estimates as
    their sum, key for key."""
    family = "gaussian_plate" if estimator == "pathwise" else "bernoulli_plate"
    per_example, summed = PROBLEMS[family](), PROBLEMS[family + "_summed"]()
    keys = jax.random.split(key, 8)
    a = jax.vmap(est.value_and_grad(per_example.objective, estimator, 3), in_axes=(None, 0))(per_example.params, keys)
    b = jax.vmap(est.value_and_grad(summed.objective, estimator, 3), in_axes=(None, 0))(summed.params, keys)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_optimal_baseline_is_fitted_per_example_and_coordinate(key):
    """The estimate from the library equals the formula evaluated here in NumPy from the same samples:
    b_{i,n,d} = Σ_{j≠i} f_{j,n} s²_{j,n,d} / Σ_{j≠i} s²_{j,n,d}, s_{j,n} example n's score in (W, c)."""
    problem = PROBLEMS["bernoulli_plate"]()
    num_samples = 4
    grads = est.grad(problem.objective, "score_function_optimal", num_samples)(problem.params, key)
    dist = problem.distribution()
    samples = np.asarray(jax.vmap(dist.sample)(est.sample_keys(key, num_samples)), np.float64)  # (L, N, K)
    logits = plates.COVARIATES @ plates.BERNOULLI_WEIGHTS + plates.BERNOULLI_BIAS
    p = 1 / (1 + np.exp(-logits))
    costs = (samples @ plates.BERNOULLI_VALUES - plates.BERNOULLI_TARGETS) ** 2  # (L, N)
    jacobians = np.stack([plates._location_jacobian(phi, 3) for phi in plates.COVARIATES])  # (N, K, P)
    scores = np.einsum("lnk,nkp->lnp", samples - p, jacobians)  # (L, N, P)
    weighted, squares = costs[..., None] * scores**2, scores**2
    numerator = weighted.sum(axis=0) - weighted
    denominator = squares.sum(axis=0) - squares
    baseline = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0)
    expected = np.mean(np.sum((costs[..., None] - baseline) * scores, axis=1), axis=0)  # (W, c) flat
    np.testing.assert_allclose(np.ravel(grads["weights"]), expected[:6], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["bias"], expected[6:], rtol=1e-4, atol=1e-6)


# --- cost evaluations and state ---------------------------------------------------------------------


def test_per_coordinate_estimators_count_one_examples_coordinates():
    dist = est.Normal(jnp.zeros((64, 4)), 1.0)
    assert est.get("measure_valued").cost_evaluations(16, dist, batch_ndims=1) == 16 * (4 * 4 + 1)
    assert est.get("measure_valued").cost_evaluations(16, dist) == 16 * (4 * 256 + 1)
    assert est.get("pathwise_delta").cost_evaluations(16, dist, batch_ndims=1) == 16 + 2 + 4
    assert est.get("pathwise_delta").cost_evaluations(16, dist) == 16 + 2 + 256


def test_relax_network_sees_one_example_and_is_shared():
    objective = PROBLEMS["bernoulli_plate"]().objective
    params = PROBLEMS["bernoulli_plate"]().params
    init, _ = est.grad_with_state(objective, "relax", 2)
    assert init(params).control["network"]["hidden"].shape == (3, 16)  # K = 3 latents of one example


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_batch_ndims_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="batch_ndims must be a non-negative integer"):
        est.Objective(dist=lambda p: est.Normal(p, 1.0), cost=lambda p, x: jnp.sum(x), batch_ndims=bad)


def test_numpy_integer_batch_ndims_is_accepted():
    objective = est.Objective(dist=lambda p: est.Normal(p, 1.0), cost=lambda p, x: x, batch_ndims=np.int64(1))
    assert objective.batch_ndims == 1 and type(objective.batch_ndims) is int


@pytest.mark.parametrize("dist, batch_ndims, most", [
    (lambda p: est.Normal(p, 1.0), 2, 1),
    (lambda p: est.Categorical(jnp.stack([p, -p], axis=-1)), 2, 1),
    (lambda p: est.Dirichlet(jnp.exp(jnp.stack([p, -p], axis=-1))), 2, 1),
])
def test_batch_ndims_larger_than_a_samples_rank_is_refused(dist, batch_ndims, most, key):
    objective = est.Objective(dist=dist, cost=lambda p, x: jnp.sum(x), batch_ndims=batch_ndims)
    with pytest.raises(ValueError, match=f"at most {most} leading axes can index examples"):
        est.grad(objective, "score_function", 2)(jnp.ones(3), key)


@pytest.mark.parametrize(
    "estimator", ["score_function", "pathwise", "arm", "rebar", "measure_valued", "pathwise_delta"]
)
def test_a_cost_of_the_wrong_shape_names_the_batch_shape(estimator, key):
    family = "gaussian_plate" if estimator in ("pathwise", "measure_valued", "pathwise_delta") else "bernoulli_plate"
    problem = PROBLEMS[family]()
    wrong = est.Objective(dist=problem.objective.dist, cost=lambda p, x: jnp.sum(x), batch_ndims=1)
    with pytest.raises(ValueError, match=r"one cost per example, an array of the batch shape \(3,\)"):
        est.grad(wrong, estimator, 2)(problem.params, key)


def test_a_per_example_cost_without_batch_ndims_points_to_it(key):
    problem = PROBLEMS["bernoulli_plate"]()
    wrong = est.Objective(dist=problem.objective.dist, cost=lambda p, b: jnp.sum(b, axis=-1))
    with pytest.raises(ValueError, match="pass batch_ndims=1"):
        est.grad(wrong, "score_function", 2)(problem.params, key)


# --- distributions ----------------------------------------------------------------------------------

DISTRIBUTIONS = {
    "normal": lambda: est.Normal(jnp.linspace(-1, 1, 6).reshape(3, 2), 0.5),
    "gamma": lambda: est.Gamma(jnp.linspace(0.5, 2, 6).reshape(3, 2), 1.5),
    "bernoulli": lambda: est.Bernoulli(jnp.linspace(-1, 1, 6).reshape(3, 2)),
    "categorical": lambda: est.Categorical(jnp.linspace(-1, 1, 24).reshape(3, 2, 4)),
    "dirichlet": lambda: est.Dirichlet(jnp.linspace(0.5, 3, 24).reshape(3, 2, 4)),
}


@pytest.mark.parametrize("family", list(DISTRIBUTIONS))
@pytest.mark.parametrize("batch_ndims", [0, 1, 2])
def test_example_log_prob_has_the_batch_shape_and_sums_to_log_prob(family, batch_ndims, key):
    dist = DISTRIBUTIONS[family]()
    x = dist.sample(key)
    per_example = dist.example_log_prob(x, batch_ndims)
    assert per_example.shape == dist.event_shape[:batch_ndims]
    np.testing.assert_allclose(jnp.sum(per_example), dist.log_prob(x), rtol=1e-5)
    if batch_ndims == 1:  # example n's density is that of a distribution over x[n] alone
        row = type(dist)(*[getattr(dist, name)[1] for name in _parameters(dist)])
        np.testing.assert_allclose(per_example[1], row.log_prob(x[1]), rtol=1e-5)


def _parameters(dist):
    return {"Normal": ("loc", "scale"), "Gamma": ("concentration", "rate"), "Bernoulli": ("logits",),
            "Categorical": ("logits",), "Dirichlet": ("concentration",)}[type(dist).__name__]


def test_linear_law_moments_equal_the_per_atom_ones():
    """The binary VAE's route (K × K moments mapped by the Jacobian) against the explicit per-atom one, on
    the Bernoulli plate, with a direct term."""
    logits = plates.COVARIATES @ plates.BERNOULLI_WEIGHTS + plates.BERNOULLI_BIAS
    outcomes = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    for n, (law, atoms, jacobian) in enumerate(plates._bernoulli_laws(per_example=True)):
        direct = np.cos(np.arange(jacobian.shape[1]))
        linear = plate_exact.LinearLaw(
            law.probability, law.cost, outcomes - 1 / (1 + np.exp(-logits[n])), jacobian, direct
        )
        explicit = law._replace(direct=np.broadcast_to(direct, law.score.shape))
        np.testing.assert_allclose(linear.score_function_moments(), plate_exact.score_function_moments([explicit]),
                                   rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(linear.leave_one_out_zetas(), plate_exact.leave_one_out_zetas_by_pairs(explicit),
                                   rtol=1e-10, atol=1e-14)
        for name in ("arm", "disarm"):
            mixture = atoms[name]
            np.testing.assert_allclose(
                plate_exact.mapped_mixture_moments(mixture.probability, mixture.mean, mixture.variance, jacobian),
                plate_exact.mixture_moments(
                    mixture.probability, mixture.mean @ jacobian, mixture.variance @ jacobian**2
                ),
                rtol=1e-10,
                atol=1e-14,
            )


def test_the_optimal_baselines_value_is_the_mean_cost_with_two_plate_axes(key):
    """With two axes of examples the optimal baseline's value is the mean over samples of the summed
    costs, as every estimator's is (the samples are the score function's own: the same key)."""
    objective = est.Objective(dist=lambda p: est.Normal(p["loc"], jnp.ones_like(p["loc"])),
                              cost=lambda p, x: jnp.sum(x**2, axis=-1), batch_ndims=2)
    params = {"loc": jnp.linspace(-1.0, 1.0, 12).reshape(2, 3, 2)}
    optimal, _ = est.value_and_grad(objective, "score_function_optimal", 4)(params, jax.random.clone(key))
    plain, _ = est.value_and_grad(objective, "score_function", 4)(params, key)
    np.testing.assert_allclose(optimal, plain, rtol=1e-6)
