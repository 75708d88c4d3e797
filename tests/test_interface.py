"""The public API of DESIGN §2: pytrees, vmap over parameters, common random numbers, keys and every error.

Purity, jit, vmap over keys, retracing and key reuse are checked for every registered estimator, with and without
a plate, in test_registry_contract.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est
from estimators.base import estimator_dataclass

ESTIMATORS = ["pathwise", "score_function"]


def normal_objective(cost=lambda p, x: jnp.sum(x**2)):
    return est.Objective(dist=lambda p: est.Normal(p["mu"], jnp.exp(p["log_sigma"])), cost=cost)


PARAMS = {"mu": jnp.array([0.5, -1.0], jnp.float32), "log_sigma": jnp.zeros(2, jnp.float32)}


def assert_same_structure(tree, like):
    assert jax.tree_util.tree_structure(tree) == jax.tree_util.tree_structure(like)
    for leaf, ref in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(like)):
        assert leaf.shape == ref.shape and leaf.dtype == ref.dtype


# --- pytrees ---------------------------------------------------------------------------------------

PYTREE_CASES = {
    "dict": (
        {"mu": jnp.array([0.5, -1.0]), "log_sigma": jnp.zeros(2)},
        lambda p: (p["mu"], p["log_sigma"]),
    ),
    "tuple": ((jnp.array([0.5, -1.0]), jnp.zeros(2)), lambda p: (p[0], p[1])),
    "nested": (
        {"location": {"mu": jnp.array([0.5, -1.0])}, "spread": (jnp.zeros(2),)},
        lambda p: (p["location"]["mu"], p["spread"][0]),
    ),
}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("case", list(PYTREE_CASES))
def test_pytree_params_give_the_same_estimate_in_their_own_structure(estimator, case, key):
    params, unpack = PYTREE_CASES[case]
    objective = est.Objective(
        dist=lambda p: est.Normal(unpack(p)[0], jnp.exp(unpack(p)[1])), cost=lambda p, x: jnp.sum(x**2)
    )
    grads = est.grad(objective, estimator, 3)(params, key)
    assert_same_structure(grads, params)
    reference = est.grad(normal_objective(), estimator, 3)(
        {"mu": unpack(params)[0], "log_sigma": unpack(params)[1]}, key
    )
    np.testing.assert_array_equal(unpack(grads)[0], reference["mu"])
    np.testing.assert_array_equal(unpack(grads)[1], reference["log_sigma"])


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_grads_keep_the_dtypes_of_mixed_precision_params(estimator, key):
    params = {"mu": jnp.zeros(2, jnp.bfloat16), "log_sigma": jnp.zeros((), jnp.float32)}
    objective = est.Objective(
        dist=lambda p: est.Normal(p["mu"].astype(jnp.float32), jnp.exp(p["log_sigma"])),
        cost=lambda p, x: jnp.sum(x**2),
    )
    assert_same_structure(est.grad(objective, estimator, 2)(params, key), params)


# --- purity, jit, vmap -----------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_vmap_over_params(estimator, key):
    g = est.grad(normal_objective(), estimator, 4)
    batch = {"mu": jnp.stack([PARAMS["mu"], PARAMS["mu"] + 1]), "log_sigma": jnp.stack([PARAMS["log_sigma"]] * 2)}
    batched = jax.vmap(g, in_axes=(0, None))(batch, key)
    second = g({"mu": PARAMS["mu"] + 1, "log_sigma": PARAMS["log_sigma"]}, key)
    np.testing.assert_allclose(batched["mu"][1], second["mu"], rtol=1e-6)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_sample_i_is_the_same_for_every_num_samples(estimator, key):
    # Common random numbers across the L grid: the L-sample estimate uses the first L of the samples
    # drawn with fold_in(key, i), so its value is the mean of their first L costs.
    dist = est.Normal(PARAMS["mu"], jnp.exp(PARAMS["log_sigma"]))
    costs = jnp.sum(jax.vmap(dist.sample)(est.sample_keys(key, 5)) ** 2, axis=1)
    for num_samples in (1, 2, 5):
        value, _ = est.value_and_grad(normal_objective(), estimator, num_samples)(PARAMS, key)
        assert float(value) == pytest.approx(float(jnp.mean(costs[:num_samples])), rel=1e-6)


def test_key_reuse_checking_is_active():
    # The suite runs with jax_debug_key_reuse on; this guards that the flag is really in force.
    key = jax.random.key(0)
    jax.random.normal(key)
    with pytest.raises(Exception, match="consumed"):
        jax.random.normal(key)


def test_raw_uint32_keys_are_accepted():
    g = est.grad(normal_objective(), "pathwise", 2)
    typed = g(PARAMS, jax.random.wrap_key_data(jnp.array([0, 7], jnp.uint32)))
    raw = g(PARAMS, jnp.array([0, 7], jnp.uint32))
    np.testing.assert_array_equal(typed["mu"], raw["mu"])


# --- stateful estimators ---------------------------------------------------------------------------


@estimator_dataclass
class CountingScoreFunction(est.GradientEstimator):
    """A stateful estimator for the interface tests: the score function, with a state that counts the calls."""

    info = est.EstimatorInfo("counting_score_function", stateful=True)

    def init(self, objective, params, key):
        return jnp.zeros((), jnp.int32)

    def estimate(self, objective, params, key, num_samples, state):
        result = est.ScoreFunction().estimate(objective, params, key, num_samples, ())
        return result._replace(state=state + 1)


def test_grad_refuses_a_stateful_estimator_and_names_grad_with_state():
    for fn in (est.grad, est.value_and_grad):
        with pytest.raises(ValueError, match=r"stateful.*grad_with_state"):
            fn(normal_objective(), CountingScoreFunction(), 4)


def test_grad_with_state_threads_the_state(key):
    init, update = est.grad_with_state(normal_objective(), CountingScoreFunction(), 4)
    state = init(PARAMS)
    keys = jax.random.split(key, 2)
    grads, state = jax.jit(update)(PARAMS, keys[0], state)
    grads, state = jax.jit(update)(PARAMS, keys[1], state)
    assert int(state) == 2
    assert_same_structure(grads, PARAMS)


def test_grad_with_state_serves_stateless_estimators_with_empty_state(key):
    init, update = est.grad_with_state(normal_objective(), "pathwise", 4)
    state = init(PARAMS)
    grads, new_state = update(PARAMS, key, state)
    assert state == () and new_state == ()
    np.testing.assert_array_equal(grads["mu"], est.grad(normal_objective(), "pathwise", 4)(PARAMS, key)["mu"])


# --- the registry ----------------------------------------------------------------------------------


def test_every_registered_name_builds_an_estimator_of_that_name():
    assert est.names()[:2] == ["pathwise", "score_function"]
    for name in est.names():
        assert est.get(name).name == name


def test_get_returns_estimator_objects_equal_to_the_classes():
    assert est.get("pathwise") == est.Pathwise()
    assert est.get("score_function") == est.ScoreFunction()


# --- errors ----------------------------------------------------------------------------------------


def test_unknown_estimator_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"Unknown estimator 'score_fuction'.*'score_function'.*Known estimators"):
        est.get("score_fuction")


def test_unknown_estimator_option_lists_the_options():
    with pytest.raises(ValueError, match=r"'pathwise' has no option 'temperature'; its options are: none"):
        est.get("pathwise", temperature=0.5)


@pytest.mark.parametrize("dist", [lambda p: est.Bernoulli(p["mu"]), lambda p: est.Categorical(p["mu"])])
def test_pathwise_on_a_discrete_distribution_names_what_works(dist, key):
    objective = est.Objective(dist=dist, cost=lambda p, x: jnp.sum(x))
    g = est.grad(objective, "pathwise", 4)
    with pytest.raises(
        ValueError, match=r"'pathwise' cannot serve a (Bernoulli|Categorical).*Estimators that can: score_function"
    ):
        g({"mu": jnp.zeros(3)}, key)


@pytest.mark.parametrize("bad, error, message", [
    (0, ValueError, r"needs num_samples >= 1, got 0"),
    (-3, ValueError, r"needs num_samples >= 1, got -3"),
    (2.5, TypeError, r"num_samples must be a Python int"),
    (jnp.float32(4.0), TypeError, r"num_samples must be a Python int"),
])
def test_bad_num_samples(bad, error, message):
    with pytest.raises(error, match=message):
        est.grad(normal_objective(), "pathwise", bad)


def test_numpy_integer_num_samples_is_accepted(key):
    est.grad(normal_objective(), "pathwise", np.int64(3))(PARAMS, key)


def test_estimator_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"estimator must be a registry name.*got int"):
        est.grad(normal_objective(), 3, 4)


def test_objective_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"objective must be an estimators.Objective"):
        est.grad(lambda p: p, "pathwise", 4)


def test_objective_fields_must_be_functions():
    with pytest.raises(TypeError, match=r"Objective.cost must be a function, got float"):
        est.Objective(dist=lambda p: est.Normal(0.0, 1.0), cost=1.0)


def test_dist_must_return_a_distribution(key):
    objective = est.Objective(dist=lambda p: p["mu"], cost=lambda p, x: x)
    with pytest.raises(TypeError, match=r"Objective.dist must return an estimators distribution.*got ArrayImpl"):
        est.grad(objective, "score_function", 2)(PARAMS, key)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_cost_must_return_a_scalar(estimator, key):
    g = est.grad(normal_objective(cost=lambda p, x: x**2), estimator, 2)
    with pytest.raises(ValueError, match=r"cost must return a scalar for one sample, but returned shape \(2,\)"):
        g(PARAMS, key)


def test_integer_seed_instead_of_a_key():
    with pytest.raises(TypeError, match=r"key must be a JAX random key, for example jax.random.key\(0\), got int"):
        est.grad(normal_objective(), "pathwise", 2)(PARAMS, 0)


def test_a_batch_of_keys_points_to_vmap(key):
    with pytest.raises(ValueError, match=r"single key, got a batch of shape \(4,\).*jax.vmap"):
        est.grad(normal_objective(), "pathwise", 2)(PARAMS, jax.random.split(key, 4))


def test_integer_params_are_named_with_their_path(key):
    params = {"mu": jnp.array([1, 2]), "log_sigma": jnp.zeros(2)}
    with pytest.raises(TypeError, match=r"params\['mu'\] has dtype int32; gradients need floating-point"):
        est.grad(normal_objective(), "pathwise", 2)(params, key)


def test_empty_params(key):
    objective = est.Objective(dist=lambda p: est.Normal(0.0, 1.0), cost=lambda p, x: x)
    with pytest.raises(ValueError, match=r"params is an empty pytree"):
        est.grad(objective, "pathwise", 2)({}, key)


# --- estimators and distributions are pytrees ------------------------------------------------------


def bernoulli_objective():
    return est.Objective(dist=lambda p: est.Bernoulli(p["logits"]), cost=lambda p, x: jnp.sum((x - 0.45) ** 2))


LOGITS = {"logits": jnp.array([0.3, -1.2, 2.0], jnp.float32)}


def test_a_traced_temperature_can_be_annealed_inside_scan(key):
    """An annealing schedule τ_t inside ``jit`` and ``lax.scan``: each step's estimate is the one made
    with that temperature as a Python float, and the whole schedule is one compilation."""
    temperatures = jnp.asarray([2.0, 1.0, 0.5, 0.25, 0.1], jnp.float32)
    keys = jax.random.split(key, temperatures.shape[0])

    def step(params, inputs):
        temperature, step_key = inputs
        estimator = est.GumbelSoftmax(temperature=temperature)
        return params, est.grad(bernoulli_objective(), estimator, 4)(params, step_key)

    _, annealed = jax.jit(lambda p: jax.lax.scan(step, p, (temperatures, keys)))(LOGITS)
    for t, (temperature, step_key) in enumerate(zip(temperatures, keys)):
        fixed = est.grad(bernoulli_objective(), est.GumbelSoftmax(temperature=float(temperature)), 4)(LOGITS, step_key)
        np.testing.assert_allclose(annealed["logits"][t], fixed["logits"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(annealed["logits"][0], annealed["logits"][-1])


def test_an_estimator_passed_to_jit_compiles_once_for_every_value_of_its_options(key):
    from experiments.engine.measure import count_compilations

    objective = bernoulli_objective()

    @jax.jit
    def estimate(estimator, params, key):
        return est.grad(objective, estimator, 4)(params, key)

    with count_compilations() as compilations:
        results = [estimate(est.get(name, temperature=t), LOGITS, key)
                   for name in ("gumbel_softmax", "rebar") for t in (0.3, 0.7, 1.5)]
    assert compilations() == 2  # one program per estimator, none per temperature
    assert not np.array_equal(results[0]["logits"], results[1]["logits"])
    with pytest.raises(ValueError, match="gumbel_softmax needs a positive temperature"):
        est.GumbelSoftmax(temperature=-1.0)  # concrete options are still checked at construction


def _squared_distance(target, params, x):
    del params
    return jnp.sum((x - target) ** 2)


def _normal_of(params):
    return est.Normal(params["mu"], jnp.exp(params["log_sigma"]))


def test_an_objective_whose_cost_is_a_partial_shares_one_program_across_its_constants(key):
    """A cost given as ``jax.tree_util.Partial(fn, array)`` makes the array a leaf of the objective: every
    target reuses one program, and each estimate is that of the closure over the same target."""
    from experiments.engine.measure import count_compilations

    @jax.jit
    def estimate(objective, params, key):
        return est.grad(objective, "score_function", 8)(params, key)

    targets = (0.0, 0.5, -2.0)
    objectives = [est.Objective(dist=_normal_of, cost=jax.tree_util.Partial(_squared_distance, jnp.float32(t)))
                  for t in targets]
    assert jax.tree_util.tree_leaves(objectives[0]) == [jnp.float32(0.0)]
    with count_compilations() as compilations:
        shared = [estimate(objective, PARAMS, key) for objective in objectives]
    assert compilations() == 1
    for target, grads in zip(targets, shared):
        closure = est.Objective(dist=_normal_of, cost=lambda p, x, t=target: jnp.sum((x - t) ** 2))
        expected = est.grad(closure, "score_function", 8)(PARAMS, key)
        for leaf, ref in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(expected)):
            np.testing.assert_allclose(leaf, ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(shared[0]["mu"], shared[2]["mu"])


def test_an_objective_with_data_leaves_is_differentiated_in_params_only(key):
    """The objective's leaves are constants: the gradient has the params' structure, and the pathwise
    gradient of E(x - t)², x ~ N(μ, σ²), is 2(μ - t) in μ for the target the objective carries."""
    objective = est.Objective(dist=_normal_of, cost=jax.tree_util.Partial(_squared_distance, jnp.float32(3.0)))
    grads = jax.jit(est.grad(objective, "pathwise", 4096))(PARAMS, key)
    assert_same_structure(grads, PARAMS)
    np.testing.assert_allclose(grads["mu"], 2 * (PARAMS["mu"] - 3.0), atol=0.2)  # 6 standard errors (2σ/√4096 = 0.031)


def _cost_with_terms(p, x):
    recon, prior = jnp.sum((x - 1.0) ** 2), jnp.sum(jnp.exp(p["log_sigma"]) ** 2)
    return recon + prior, {"recon": recon, "prior": prior}


@pytest.mark.parametrize("name", ["pathwise", "score_function", "score_function_loo", "measure_valued"])
def test_a_cost_with_aux_gives_the_same_gradient_and_the_mean_of_aux_over_the_samples(name, key):
    """``has_aux``: estimators use the cost alone (the gradient is the plain objective's, key for key), and
    aux is the mean over the L samples of the cost's second output, as a hand-written loop over the samples
    ``sample(fold_in(key, i))`` gives it."""
    with_aux = est.Objective(dist=_normal_of, cost=_cost_with_terms, has_aux=True)
    plain = est.Objective(dist=_normal_of, cost=lambda p, x: _cost_with_terms(p, x)[0])
    (value, aux), grads = jax.jit(est.value_and_grad(with_aux, name, 6))(PARAMS, key)
    expected_value, expected_grads = est.value_and_grad(plain, name, 6)(PARAMS, jax.random.clone(key))
    for leaf, ref in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(expected_grads)):
        np.testing.assert_allclose(leaf, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    samples = [_normal_of(PARAMS).sample(k) for k in est.sample_keys(jax.random.clone(key), 6)]
    hand = [_cost_with_terms(PARAMS, x)[1] for x in samples]
    np.testing.assert_allclose(aux["recon"], np.mean([h["recon"] for h in hand]), rtol=1e-5)
    np.testing.assert_allclose(aux["prior"], hand[0]["prior"], rtol=1e-6)
    _, aux_again = est.grad(with_aux, name, 6)(PARAMS, jax.random.clone(key))
    np.testing.assert_allclose(aux_again["recon"], aux["recon"], rtol=1e-6)


def test_a_cost_with_aux_serves_stateful_estimators_and_plates(key):
    plate = est.Objective(dist=lambda p: est.Bernoulli(p["logits"]),
                          cost=lambda p, b: ((b - 0.3) ** 2, {"ones": jnp.sum(b)}), batch_ndims=1, has_aux=True)
    logits = {"logits": jnp.linspace(-1.0, 1.0, 4)}
    init, update = est.grad_with_state(plate, "relax", 5)
    (grads, aux), state = jax.jit(update)(logits, key, init(logits))
    assert_same_structure(grads, logits)
    assert set(aux) == {"ones"} and 0 <= float(aux["ones"]) <= 4
    (_, _), _ = update(logits, jax.random.fold_in(key, 1), state)  # the state it returned is its own


def test_has_aux_errors_say_what_to_return():
    with pytest.raises(TypeError, match=r"has_aux=True\): cost must return a pair \(cost, aux\)"):
        est.grad(est.Objective(dist=_normal_of, cost=lambda p, x: jnp.sum(x), has_aux=True), "pathwise", 2)(
            PARAMS, jax.random.key(0))
    with pytest.raises(TypeError, match=r"declare Objective\(\.\.\., has_aux=True\)"):
        est.grad(est.Objective(dist=_normal_of, cost=_cost_with_terms), "pathwise", 2)(PARAMS, jax.random.key(0))
    with pytest.raises(TypeError, match="has_aux is on or off"):
        est.Objective(dist=_normal_of, cost=_cost_with_terms, has_aux="yes")


def test_distributions_are_pytrees_of_their_parameters(key):
    dist = est.Normal(jnp.zeros(3), jnp.ones(3))
    assert len(jax.tree_util.tree_leaves(dist)) == 2
    doubled = jax.tree_util.tree_map(lambda x: 2 * x + 1, dist)
    assert isinstance(doubled, est.Normal)
    np.testing.assert_array_equal(doubled.scale, 3 * np.ones(3))
    samples = jax.jit(lambda d, k: d.sample(k))(dist, jax.random.clone(key))
    np.testing.assert_array_equal(samples, dist.sample(key))
    batched = jax.vmap(lambda logits: est.Categorical(logits))(jnp.zeros((4, 2, 3)))
    assert batched.logits.shape == (4, 2, 3)
