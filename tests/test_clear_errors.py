"""Misuse that once ran on silently or failed with an unclear message: each gets an early error that
names the problem and the fix."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est

PARAMS = {"loc": jnp.zeros(3), "scale": jnp.ones(3)}
GAUSSIAN = est.Objective(dist=lambda p: est.Normal(p["loc"], p["scale"]), cost=lambda p, x: jnp.sum(x**2))
BERNOULLI = est.Objective(dist=lambda p: est.Bernoulli(p["logits"]), cost=lambda p, x: jnp.sum(x))


@pytest.mark.parametrize("state", [(), None, "relax", "wrong_size"], ids=["empty", "none", "other", "wrong_size"])
def test_a_stateful_update_refuses_a_state_that_is_not_its_own(state, key):
    init, update = est.value_and_grad_with_state(GAUSSIAN, "score_function_ema", 4)
    if state == "relax":
        state = est.value_and_grad_with_state(BERNOULLI, "relax", 4).init({"logits": jnp.zeros(3)})
    elif state == "wrong_size":
        state = jax.tree_util.tree_map(lambda x: jnp.zeros((*x.shape, 2), x.dtype), init(PARAMS))
    with pytest.raises(ValueError, match=r"update of 'score_function_ema' got a state that is not its own: "
                                         r"expected the state that init\(params\) returns"):
        update(PARAMS, key, state)


def test_a_stateless_update_takes_the_empty_state_and_its_own_state_passes(key):
    init, update = est.value_and_grad_with_state(GAUSSIAN, "pathwise", 4)
    with pytest.raises(ValueError, match=r"expected the empty state \(\) \(it is stateless\)"):
        update(PARAMS, key, None)
    init, update = est.value_and_grad_with_state(GAUSSIAN, "score_function_ema", 4)
    state = init(PARAMS)
    for step_key in jax.random.split(key, 2):
        _, _, state = jax.jit(update)(PARAMS, step_key, state)  # the state update returns is its own too


def test_a_cost_that_returns_loss_and_aux_is_refused(key):
    objective = est.Objective(dist=GAUSSIAN.dist, cost=lambda p, x: (jnp.sum(x**2), {"x": x}))
    for name in ("pathwise", "score_function"):
        with pytest.raises(TypeError, match=r"Objective.cost returned a tuple; it must return the cost alone"):
            est.grad(objective, name, 4)(PARAMS, key)


def test_swapped_dist_and_cost_and_a_cost_without_params_are_refused():
    cost, dist = GAUSSIAN.cost, GAUSSIAN.dist
    with pytest.raises(TypeError, match="dist and cost look swapped"):
        est.Objective(cost, dist)
    with pytest.raises(TypeError, match=r"Objective.cost must take two arguments.*cost=lambda params, x: f\(x\)"):
        est.Objective(dist=dist, cost=lambda x: jnp.sum(x**2))
    with pytest.raises(TypeError, match=r"Objective.dist must take one argument"):
        est.Objective(dist=lambda p, data: est.Normal(p["loc"], 1.0), cost=cost)
    # What the signature cannot rule out passes: defaults, *args, builtins.
    est.Objective(dist=lambda p, scale=1.0: est.Normal(p["loc"], scale), cost=lambda *args: jnp.sum(args[1]))


@pytest.mark.parametrize("distribution, arguments, names", [
    (est.Normal, (jnp.zeros(3), jnp.ones(2)), "loc of shape (3,), scale of shape (2,)"),
    (est.Gamma, (jnp.ones(3), jnp.ones(2)), "concentration of shape (3,), rate of shape (2,)"),
    (est.Beta, (jnp.ones((2, 3)), jnp.ones(2)), "a of shape (2, 3), b of shape (2,)"),
])
def test_parameters_that_do_not_broadcast_name_the_distribution_and_their_shapes(distribution, arguments, names):
    with pytest.raises(ValueError, match=re.escape(f"{distribution.__name__}: {names} do not broadcast to one shape")):
        distribution(*arguments)


@pytest.mark.parametrize("leaf, kind", [("x", "str"), (np.tanh, "ufunc"), (lambda x: x, "function"), (None, None)])
def test_params_that_hold_no_arrays_are_refused_with_how_to_partition_a_module(leaf, kind, key):
    params = {**PARAMS, "extra": leaf}
    gradient = est.grad(GAUSSIAN, "pathwise", 2)
    if kind is None:  # None is an empty subtree in JAX, not a leaf: nothing to refuse
        gradient(params, key)
        return
    with pytest.raises(TypeError, match=rf"params\['extra'\] is a {kind}; params must hold only float arrays.*"
                                        r"eqx.partition\(model, eqx.is_inexact_array\)"):
        gradient(params, key)


def test_options_of_the_wrong_kind_fail_at_construction():
    with pytest.raises(ValueError, match=r"pathwise_delta needs a finite coefficient c, or coefficient=None"):
        est.get("pathwise_delta", coefficient="auto")
    assert est.get("pathwise_delta", coefficient=None).coefficient is None
    for value in ("no", 0, None):
        with pytest.raises(TypeError, match=r"measure_valued's option coupling is on or off: pass True or False"):
            est.get("measure_valued", coupling=value)
    assert est.get("measure_valued", coupling=np.bool_(False)).coupling is False


def test_num_samples_true_is_not_one():
    with pytest.raises(TypeError, match="num_samples must be a positive Python int"):
        est.grad(GAUSSIAN, "pathwise", True)


def test_options_lists_an_estimators_options_and_names_unknown_estimators():
    assert est.options("measure_valued") == ["coupling"]
    assert "temperature" in est.options("relax")
    with pytest.raises(ValueError, match="Unknown estimator 'pathwsie'. Did you mean 'pathwise'?"):
        est.options("pathwsie")


@pytest.mark.parametrize("name", ["gumbel_softmax", "straight_through_gumbel", "rebar"])
def test_a_non_positive_temperature_is_refused_when_concrete_and_nan_when_traced(name, key):
    with pytest.raises(ValueError, match="needs a positive temperature"):
        est.get(name, temperature=-1.0)

    def estimate(temperature):
        gradient = est.grad(BERNOULLI, est.get(name, temperature=temperature), 4)
        return gradient({"logits": jnp.zeros(3)}, jax.random.clone(key))["logits"]

    swept = jax.jit(jax.vmap(estimate))(jnp.array([0.5, 0.0, -1.0]))
    assert np.isfinite(swept[0]).all() and np.isnan(swept[1:]).all()


@pytest.mark.parametrize("build, message", [
    (lambda: est.Gamma(0.0, 1.0), "Gamma: concentration must be positive, got 0.0"),
    (lambda: est.Normal(0.0, jnp.array([1.0, -2.0, 0.0])), r"Normal: scale must be positive, got -2.0 \(2 of its 3"),
    (lambda: est.Dirichlet(jnp.array([1.0, jnp.nan])), "Dirichlet: concentration must be positive, got nan"),
    (lambda: est.Beta(1.0, -1.0), "Beta: b must be positive"),
    (lambda: est.Exponential(0.0), "Exponential: rate must be positive"),
])
def test_concrete_invalid_parameters_are_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()
    # Traced parameters cannot be checked when the program is built.
    assert float(jax.jit(lambda s: est.Normal(0.0, s).scale)(-1.0)) == -1.0


LOG_COST = est.Objective(dist=lambda p: est.Normal(p["loc"], p["scale"]), cost=lambda p, x: jnp.sum(jnp.log(x)))


def test_check_finite_names_the_estimator_and_what_is_not_finite(key):
    """Opt-in: a cost returning NaN for some samples (log of a negative draw) is reported, eagerly and under jit
    (where JAX carries the message in its runtime error), naming the estimator, the cost and the leaves."""
    message = (r"score_function: the estimate is not finite: the cost's mean over the L = 8 samples is nan \(the "
               r"cost returned NaN or inf for some sample\); the gradient in params\['loc'\] has 3 of 3 entries nan")
    with pytest.raises(FloatingPointError, match=message):
        est.grad(LOG_COST, "score_function", 8, check_finite=True)(PARAMS, key)
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(jax.jit(est.grad(LOG_COST, "score_function", 8, check_finite=True))(PARAMS, key))
    init, update = est.grad_with_state(LOG_COST, "score_function_ema", 8, check_finite=True)
    with pytest.raises(FloatingPointError, match="score_function_ema: the estimate is not finite"):
        update(PARAMS, key, init(PARAMS))


def test_check_finite_passes_a_finite_estimate_unchanged(key):
    far = {"loc": jnp.full(3, 50.0), "scale": jnp.ones(3)}  # every draw positive: log is finite
    checked = jax.jit(jax.vmap(est.grad(LOG_COST, "pathwise", 4, check_finite=True), in_axes=(None, 0)))
    plain = jax.vmap(est.grad(LOG_COST, "pathwise", 4), in_axes=(None, 0))
    keys = jax.random.split(key, 5)
    np.testing.assert_array_equal(checked(far, keys)["loc"], plain(far, jax.random.clone(keys))["loc"])
    # Off (the default), the same NaN estimate comes back without a word: what the option is for.
    assert jnp.isnan(est.grad(LOG_COST, "score_function", 8)(PARAMS, jax.random.clone(key))["loc"]).all()
