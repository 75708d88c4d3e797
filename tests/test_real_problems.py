"""The real-data problems: data, checkpoints, exact and reference gradients, and the quick plan.

Statistical checks compare a Monte Carlo mean with an exact or reference answer coordinate by
coordinate; each uses a Bonferroni-corrected two-sided normal threshold for a family-wise false-alarm
rate of FALSE_ALARM (the count of coordinates is stated where it is computed).
"""

import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import t

import estimators as est
from experiments import problems
from experiments.catalog import variance_vs_L
from experiments.engine.statistics import bonferroni_z, group_summary
from experiments.engine.tidy import MAX_COORDINATE_ROWS, parameter_groups
from experiments.problems import checkpoints, data, reference, vae
from experiments.problems.logistic_regression import LogisticRegression
from experiments.problems.vae import BinaryVAE, GaussianVAE
from tests.stats import MANY_SAMPLES_COMPILER_OPTIONS

FALSE_ALARM = 1e-3


def _threshold(num_comparisons: int, degrees_of_freedom: int | None = None) -> float:
    """Bonferroni two-sided threshold; Student's t where the standard error comes from few chunk means."""
    if degrees_of_freedom is None:
        return bonferroni_z(FALSE_ALARM, num_comparisons)
    return float(t.isf(FALSE_ALARM / (2 * num_comparisons), degrees_of_freedom))


def _in_float64(params, images):
    """``params`` and ``images`` as float64 arrays (inside ``jax.enable_x64(True)``)."""
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params), jnp.asarray(images, jnp.float64)


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)])


def test_data_ship_with_scikit_learn_and_split_deterministically():
    cancer, digits = data.breast_cancer(), data.binarized_digits()
    assert cancer.train_x.shape == (455, 31) and cancer.held_out_x.shape == (114, 31)
    np.testing.assert_allclose(cancer.train_x[:, :-1].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(cancer.train_x[:, :-1].std(axis=0), 1.0, atol=1e-12)
    assert set(np.unique(cancer.train_y)) == {-1.0, 1.0}
    assert digits.train_x.shape == (1438, 64) and digits.held_out_x.shape == (359, 64)
    assert set(np.unique(digits.train_x)) == {0.0, 1.0}
    train, held_out = data._split_indices(100)
    assert not set(train) & set(held_out) and len(train) + len(held_out) == 100
    np.testing.assert_array_equal(train, data._split_indices(100)[0])


@pytest.mark.parametrize("checkpoint", ["init", "trained"])
def test_logistic_regression_quadrature_gradient_is_the_derivative_of_its_objective(checkpoint):
    """Central differences of the quadrature objective against the quadrature gradient (both deterministic)."""
    model = LogisticRegression()
    params = checkpoints.init_params(model.name) if checkpoint == "init" else checkpoints.load(model.name)
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), params)
    grad = model.exact_grad(params)
    step = 1e-5
    for name in ("loc", "log_scale"):
        for index in (0, 7, 30):
            up, down = (jax.tree_util.tree_map(np.copy, params) for _ in range(2))
            up[name][index] += step
            down[name][index] -= step
            numeric = (model.exact_objective(up) - model.exact_objective(down)) / (2 * step)
            assert numeric == pytest.approx(grad[name][index], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", ["logistic_regression", "logistic_regression_init", "binary_vae", "binary_vae_init"])
def test_exact_gradients_agree_with_a_large_sample(name):
    """A large sample of an unbiased estimator (pathwise for the Gaussian posterior, the score function with
    a leave-one-out baseline for the binary latents) agrees with the exact gradient in every coordinate."""
    problem = problems.get(name)
    estimator = "pathwise" if problem.distribution().reparameterizable else "score_function_loo"
    num_chunks, chunk_size = 256, 128
    mean, se = reference.sample_reference(problem.objective, problem.params, estimator, num_chunks, chunk_size)
    degrees_of_freedom = num_chunks - 1
    exact_variance = problem.exact_variance(estimator, chunk_size)
    if exact_variance is not None:
        # With per-example signals some encoder weights see only rare latent states of the one image that
        # uses their pixel: the chunks' own spread misses them, so the standard error is the exact one.
        se = np.sqrt(_flat(exact_variance) / num_chunks)
        degrees_of_freedom = None
    exact, mean, se = _flat(problem.exact_grad), _flat(mean), _flat(se)
    varies = se > 0  # weights of pixels that are 0 in every image of the batch have gradient exactly 0
    np.testing.assert_array_equal(mean[~varies], 0.0)
    np.testing.assert_allclose(exact[~varies], 0.0, atol=1e-12)
    z = (mean - exact)[varies] / se[varies]
    threshold = _threshold(len(z), degrees_of_freedom=degrees_of_freedom)
    assert np.abs(z).max() < threshold, f"max |z| {np.abs(z).max():.2f} over {len(z)} coordinates"


def test_gaussian_vae_reference_agrees_with_an_independent_sample():
    problem = problems.get("gaussian_vae")
    gradient = est.grad(problem.objective, "pathwise", 256)
    keys = est.sample_keys(jax.random.key(12345), 64)
    chunks = jax.jit(jax.vmap(lambda k: jax.flatten_util.ravel_pytree(gradient(problem.params, k))[0]),
                     compiler_options=MANY_SAMPLES_COMPILER_OPTIONS)(keys)
    chunks = np.asarray(chunks, np.float64)
    fresh, fresh_se = chunks.mean(axis=0), chunks.std(axis=0, ddof=1) / np.sqrt(len(chunks))
    stored, stored_se = _flat(problem.exact_grad), _flat(problem.exact_grad_se)
    varies = stored_se > 0  # weights of pixels that are 0 in every image of the batch have gradient exactly 0
    assert varies.mean() > 0.8
    np.testing.assert_array_equal(stored[~varies], 0.0)
    np.testing.assert_array_equal(fresh[~varies], 0.0)
    z = (fresh - stored)[varies] / np.sqrt(fresh_se**2 + stored_se**2)[varies]
    threshold = _threshold(len(z), degrees_of_freedom=len(chunks) - 1)  # the fresh SE is from 64 chunk means
    assert np.abs(z).max() < threshold, f"max |z| {np.abs(z).max():.2f} over {len(z)} coordinates"


def test_checkpoints_load_and_are_better_than_the_initial_parameters():
    for name, recipe in checkpoints.RECIPES.items():
        model, trained, initial = recipe.model, checkpoints.load(name), checkpoints.init_params(name)
        assert jax.tree_util.tree_structure(trained) == jax.tree_util.tree_structure(initial)
        key = jax.random.key(0)
        held_out = len(model.split.train_x)
        assert model.evaluate(trained, model.held_out_batch(), key, held_out)[0] < \
            model.evaluate(initial, model.held_out_batch(), jax.random.key(1), held_out)[0] - 1e-3


def test_a_missing_checkpoint_is_trained_deterministically_and_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "FOLDERS", (tmp_path / "package", tmp_path / "cache"))
    short = dataclasses.replace(checkpoints.RECIPES["gaussian_vae"], steps=500)
    monkeypatch.setitem(checkpoints.RECIPES, "gaussian_vae", short)
    first = checkpoints.load("gaussian_vae")
    assert (tmp_path / "package" / "gaussian_vae.npz").exists()
    again = checkpoints.train("gaussian_vae")
    for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_checkpoint_that_does_not_fit_the_model_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "FOLDERS", (tmp_path,))
    np.savez(tmp_path / "binary_vae.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="does not match the model's parameters.*--force"):
        checkpoints.load("binary_vae")


def test_the_reference_cache_is_remade_when_the_parameters_change(tmp_path):
    model = GaussianVAE()
    objective = model.objective(model.training_batch()[:4])
    params = checkpoints.init_params("gaussian_vae")
    file, cache = tmp_path / "ref.npz", dict(folders=(tmp_path,), num_chunks=4, chunk_size=8)
    first = reference.cached_reference("ref", objective, params, **cache)
    again = reference.cached_reference("ref", objective, params, **cache)
    np.testing.assert_array_equal(_flat(first[0]), _flat(again[0]))
    # Parameters a float32 rounding away (as another CPU or XLA optimization level computes an
    # initialization) are the same parameters: the file is read, not remade.
    rounded = jax.tree_util.tree_map(lambda x: np.nextafter(np.asarray(x), np.float32(np.inf)), params)
    written = file.stat().st_mtime_ns
    np.testing.assert_array_equal(_flat(reference.cached_reference("ref", objective, rounded, **cache)[0]),
                                  _flat(first[0]))
    assert file.stat().st_mtime_ns == written
    moved = jax.tree_util.tree_map(lambda x: x + 0.01, params)
    changed = reference.cached_reference("ref", objective, moved, **cache)
    assert not np.array_equal(_flat(changed[0]), _flat(first[0]))
    np.testing.assert_array_equal(np.load(file)["params_projections"], reference.params_projections(moved))
    # One parameter of thousands moved by twice the tolerance (in units of Σ|θ|) is a change.
    nudged = jax.tree_util.tree_map(lambda x: x, moved)
    step = 2 * reference.PARAMS_MATCH_TOLERANCE * reference.params_projections(moved)[0]
    nudged["decoder"]["out"]["b"] = nudged["decoder"]["out"]["b"].at[0].add(step)
    assert not reference.same_params(np.load(file)["params_projections"], nudged)


def test_bias_against_a_noisy_reference_is_corrected_for_its_noise():
    """An unbiased estimator judged against a reference with standard error s: without the correction
    its squared bias would average Σ s² > 0; with it, the average over many references is zero within
    the standard error of that average."""
    rng = np.random.default_rng(0)
    num_coordinates, num_replicates, trials = 20, 400, 400
    truth, s = np.zeros(num_coordinates), np.full(num_coordinates, 0.05)
    values, ses = [], []
    for _ in range(trials):
        estimates = truth + rng.standard_normal((num_replicates, num_coordinates))
        noisy_reference = truth + s * rng.standard_normal(num_coordinates)
        summary = group_summary(estimates, noisy_reference, s)
        values.append(summary["bias_squared"][0])
        ses.append(summary["bias_squared"][1])
    values = np.asarray(values)
    standard_error_of_average = values.std(ddof=1) / np.sqrt(trials)
    assert abs(values.mean()) < 4 * standard_error_of_average
    # the reported standard error matches the spread of the estimates (within 20%)
    assert np.mean(ses) == pytest.approx(values.std(ddof=1), rel=0.2)


def test_vae_parameters_are_grouped_into_encoder_and_decoder():
    params = checkpoints.init_params("gaussian_vae")
    names = [name for name, _ in parameter_groups(params)]
    assert names == ["decoder", "encoder", "all"]
    assert sum(np.size(x) for x in jax.tree_util.tree_leaves(params["encoder"])) > MAX_COORDINATE_ROWS


def test_the_quick_plan_measures_real_data_cheaply_and_the_full_plan_does_not():
    config = variance_vs_L.Config(problems=("gaussian_vae", "logistic_regression"), num_samples=(1, 16, 128, 1024))
    cells, skipped = variance_vs_L.plan(config)
    assert cells and all(c.replicates == variance_vs_L.QUICK_REAL_DATA["replicates"] for c in cells)
    assert max(c.num_samples for c in cells) == variance_vs_L.QUICK_REAL_DATA["max_num_samples"]
    on_vae = {(c.estimator.name, c.num_samples) for c in cells if c.problem.name == "gaussian_vae"}
    # Per-example costs make the per-coordinate estimators affordable up to L = 16 (an image's 4 latents).
    assert {"pathwise", "score_function", "score_function_loo", "measure_valued", "pathwise_delta",
            "score_function_delta"} <= {name for name, _ in on_vae}
    assert ("measure_valued", 16) in on_vae and ("measure_valued", 128) not in on_vae
    assert any("quick run" in s["reason"] and s["estimator"] == "measure_valued" and s["num_samples"] == 128
               for s in skipped)
    assert any("backward passes" in s["reason"] and s["estimator"] == "score_function_optimal" for s in skipped)
    full_cells, _ = variance_vs_L.plan(dataclasses.replace(config, quick=False))
    assert all(c.replicates is None for c in full_cells)
    assert {c.estimator.name for c in full_cells if c.problem.name == "gaussian_vae"} >= {"measure_valued"}


def test_models_build_their_objective_on_any_batch():
    for model in (GaussianVAE(), BinaryVAE()):
        params = model.init_params(jax.random.key(0))
        objective = model.objective(model.training_batch()[:3])
        x = objective.distribution(params).sample(jax.random.key(1))
        costs = objective.cost(params, x)  # one per image
        assert x.shape == (3, model.num_latents) and costs.shape == (3,) and jnp.all(jnp.isfinite(costs))
        summed = model.objective(model.training_batch()[:3], per_example=False)
        np.testing.assert_allclose(summed.cost(params, x), jnp.sum(costs), rtol=1e-6)


@pytest.mark.parametrize("estimator", ["score_function", "score_function_loo", "arm", "disarm"])
def test_binary_vae_exact_variances_match_measured_ones(estimator, key):
    """The variances enumerated image by image (experiments/problems/vae_exact.py) against the library's
    estimates, per parameter array: the trace of each array's covariance, with the standard error of the
    replicates' squared deviations (per coordinate, weights that only rare latent states reach make the
    sample's own standard error unreliable at this R; their share of a trace is small)."""
    problem = problems.get("binary_vae")
    num_replicates, num_samples = 2000, 4
    g = jax.jit(jax.vmap(est.grad(problem.objective, estimator, num_samples), in_axes=(None, 0)))
    grads = jax.tree_util.tree_leaves(g(problem.params, jax.random.split(key, num_replicates)))
    exact = jax.tree_util.tree_leaves(problem.exact_variance(estimator, num_samples))
    z = []
    for leaf, exact_leaf in zip(grads, exact):
        flat = np.asarray(leaf, np.float64).reshape(num_replicates, -1)
        squares = np.sum((flat - flat.mean(axis=0)) ** 2, axis=1)
        measured, se = squares.sum() / (num_replicates - 1), squares.std(ddof=1) / np.sqrt(num_replicates)
        z.append((measured - np.sum(exact_leaf)) / se)
    assert np.abs(z).max() < _threshold(len(z)), f"{estimator}: z = {np.round(z, 2)}"


def test_binary_vae_bound_enumeration_is_the_elbo_at_one_particle_and_the_sampled_bound_at_two():
    """K = 1: the enumerated bound is the ELBO summed over the images, which the model enumerates apart; K = 2:
    the mean of 2¹⁵ two-particle estimates of the bound agrees with the enumerated value."""
    model = BinaryVAE()
    params = checkpoints.load(model.name)
    images = model.training_batch()[:8]
    with jax.enable_x64(True):
        params64, images64 = _in_float64(params, images)
        elbo = -len(images) * float(model.exact_objective(params64, images64))
        assert float(model.exact_bound(params64, images64, 1)) == pytest.approx(elbo, rel=1e-12)
        exact = float(model.exact_bound(params64, images64, 2))
    assert exact > elbo  # two particles tighten the bound
    objective = model.bound_objective(images, 2)
    values = jax.jit(jax.vmap(lambda k: est.value_and_grad(objective, "vimco", 128)(params, k)[0]))(
        est.sample_keys(jax.random.key(7), 256))
    values = np.asarray(values, np.float64)
    z = (values.mean() - exact) / (values.std(ddof=1) / np.sqrt(len(values)))
    assert abs(z) < _threshold(1, degrees_of_freedom=len(values) - 1), z
    with pytest.raises(ValueError, match="K = 1 or 2"):
        model.exact_bound(params, images, 3)


def test_binary_vae_bound_gradient_agrees_with_vimco():
    """The enumerated K = 2 bound gradient of ``binary_vae_iw2`` against the mean of 2¹⁵ VIMCO estimates, per
    coordinate that varies (Student's t over 256 chunk means)."""
    problem = problems.get("binary_vae_iw2")
    num_chunks, chunk_size = 256, 128
    mean, se = reference.sample_reference(problem.objective, problem.params, "vimco", num_chunks, chunk_size)
    exact, mean, se = _flat(problem.exact_grad), _flat(mean), _flat(se)
    varies = se > 0
    np.testing.assert_allclose(exact[~varies], 0.0, atol=1e-12)
    z = (mean - exact)[varies] / se[varies]
    threshold = _threshold(len(z), degrees_of_freedom=num_chunks - 1)
    assert np.abs(z).max() < threshold, f"max |z| {np.abs(z).max():.2f} over {len(z)} coordinates"


def test_gaussian_vae_bound_reference_agrees_with_pathwise():
    """The stored DReG reference of ``gaussian_vae_iw8`` against a fresh sample of the other unbiased
    estimator, pathwise (IWAE), of 32 chunks of 128 eight-particle estimates."""
    problem = problems.get("gaussian_vae_iw8")
    gradient = est.grad(problem.objective, "pathwise", 128)
    keys = est.sample_keys(jax.random.key(54321), 32)
    chunks = jax.jit(lambda keys: jax.lax.map(lambda k: jax.flatten_util.ravel_pytree(gradient(problem.params, k))[0],
                                              keys), compiler_options=MANY_SAMPLES_COMPILER_OPTIONS)(keys)
    chunks = np.asarray(chunks, np.float64)
    fresh, fresh_se = chunks.mean(axis=0), chunks.std(axis=0, ddof=1) / np.sqrt(len(chunks))
    stored, stored_se = _flat(problem.exact_grad), _flat(problem.exact_grad_se)
    varies = stored_se > 0
    assert varies.mean() > 0.8
    np.testing.assert_array_equal(fresh[~varies], 0.0)
    z = (fresh - stored)[varies] / np.sqrt(fresh_se**2 + stored_se**2)[varies]
    threshold = _threshold(len(z), degrees_of_freedom=len(chunks) - 1)
    assert np.abs(z).max() < threshold, f"max |z| {np.abs(z).max():.2f} over {len(z)} coordinates"


def test_binary_vae_log_likelihood_is_the_enumerated_marginal_and_below_its_bounds():
    """−log p(x) by the model's matrix form against log Σ_b exp(log_joint(b)) from the model's own log
    joint, state by state; and −log p(x) ≤ −(K = 2 bound) ≤ −ELBO, all exact."""
    model = BinaryVAE()
    images = model.held_out_batch()[:8]
    with jax.enable_x64(True):
        params64, images64 = _in_float64(checkpoints.load(model.name), images)
        nll, se = model.negative_log_likelihood(params64, images64)
        states = model.latent_states()
        log_joints = jax.vmap(lambda b: model.log_joint(params64, jnp.broadcast_to(b, (len(images), b.shape[0])),
                                                        images64))(states)  # (S, N)
        direct = -float(jnp.mean(jax.nn.logsumexp(log_joints, axis=0)))
        bounds = [-float(model.exact_bound(params64, images64, k)) / len(images) for k in (1, 2)]
    assert se == 0.0
    assert nll == pytest.approx(direct, rel=1e-12)
    assert nll < bounds[1] < bounds[0]


def test_gaussian_vae_log_likelihood_agrees_with_quadrature():
    """The importance-sampled −log p(x) of held-out images at the trained checkpoint against tensor
    Gauss–Hermite quadrature of p(x) = E_ε[p(x, μ + 1.5σε) / N(ε; 0, I)] · Π 1.5σ over the 4 latents (24 nodes
    each, q widened so that the integrand is bounded; 32 nodes move it by under 1e-3), image by image.  The
    tolerance is the delta method's standard error, √(Var(w)/(K w̄²)), at a 1e-4 family-wise false alarm, plus
    the estimate's bias, Var(w)/(2K w̄²), both from the same particles.  The delta method holds where the
    weights' effective sample size is large: images whose ESS is under 1,000 of the 2¹⁴ particles (the
    encoder's q far from the posterior: image 0's is about 20) are left out of the comparison, by that rule."""
    model = GaussianVAE()
    images = model.held_out_batch()[:8]
    particles = 2**14
    with jax.enable_x64(True):
        params64, images64 = _in_float64(checkpoints.load(model.name), images)
        estimate, se = model.negative_log_likelihood(params64, images64, jax.random.key(3), particles)
        log_weights = np.asarray(vae._likelihood_log_weights(model, params64, images64, jax.random.key(3), particles),
                                 np.float64)  # (K, N): the particles of the estimate above
        loc, log_variance = model._loc_and_log_variance(params64, images64)
        scale = 1.5 * jnp.exp(0.5 * log_variance)  # (N, D)
        nodes, weights = np.polynomial.hermite_e.hermegauss(24)
        grid = np.stack(np.meshgrid(*[nodes] * 4, indexing="ij"), -1).reshape(-1, 4)
        grid_weights = np.prod(np.stack(np.meshgrid(*[weights / np.sqrt(2 * np.pi)] * 4, indexing="ij"), -1),
                               -1).reshape(-1)
        latents = loc[None] + scale[None] * jnp.asarray(grid)[:, None]  # (G, N, D)
        log_joints = jax.lax.map(lambda z: model.log_joint(params64, z, images64), latents, batch_size=4096)
        log_integrand = log_joints - jax.scipy.stats.norm.logpdf(jnp.asarray(grid)).sum(-1)[:, None]
        log_marginal = (jax.nn.logsumexp(log_integrand, axis=0, b=jnp.asarray(grid_weights)[:, None])
                        + jnp.sum(jnp.log(scale), axis=-1))
        quadrature = -np.asarray(log_marginal, np.float64)
    peak = log_weights.max(axis=0)
    w = np.exp(log_weights - peak)
    per_image = -(peak + np.log(w.mean(axis=0)))
    relative_variance = w.var(axis=0, ddof=1) / w.mean(axis=0) ** 2
    # The function is the mean of the per-image estimates, with the delta method's standard error.
    assert estimate == pytest.approx(per_image.mean(), rel=1e-12)
    assert se == pytest.approx(np.sqrt(np.sum(relative_variance / particles)) / len(images), rel=1e-9)
    ess = w.sum(axis=0) ** 2 / (w**2).sum(axis=0)
    kept = ess >= 1000
    assert kept.sum() >= 4, ess
    tolerance = bonferroni_z(1e-4, int(kept.sum())) * np.sqrt(relative_variance / particles) + \
        relative_variance / (2 * particles)
    error = np.abs(per_image - quadrature)
    assert (error[kept] < tolerance[kept]).all(), (per_image, quadrature, tolerance, ess)
