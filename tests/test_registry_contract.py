"""Every registered estimator through the contract of DESIGN §2, with and without a plate (§2.1).

One list drives it, ``est.names()``: a new estimator is covered without editing this file.  For each name
and ``batch_ndims`` in {0, 1}, on the first objective below whose distribution it serves (the importance-
weighted bounds of §2.2 last; parameters a nested pytree of dicts and tuples, a cost that depends on the
parameters too): the output has the structure, shapes and dtypes of the parameters and a scalar value;
eager, jit and vmap over keys agree; the same key gives the same estimate and another key another one; a
second jitted call with new values does not retrace; no key is consumed twice (the suite runs with
``jax_debug_key_reuse``); and the state threads through ``lax.scan`` as through a Python loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimators as est

COVARIATES = jnp.array([[1.0, 0.5], [-0.5, 1.0], [0.3, -1.0]])  # 3 examples


def _family_objective(family: str, batch_ndims: int, traces: list):
    """(objective, params) for one family; ``traces`` records each trace of the cost.  ``iw_<family>``: the
    importance-weighted bound whose proposal is that family's distribution and whose log joint is minus
    its cost (one particle for the Gaussian, which STL needs; two for the Bernoulli, which VIMCO needs)."""
    if family.startswith("iw_"):
        plain, params = _family_objective(family[3:], batch_ndims, traces)
        return est.ImportanceWeightedObjective(
            dist=plain.dist, log_joint=lambda p, z: -plain.cost(p, z),
            num_particles=1 if family == "iw_normal" else 2, batch_ndims=batch_ndims), params

    def regularizer(p):
        return 0.01 * jnp.sum(p["location"]["weights"] ** 2)  # the direct term: the cost reads θ

    if family == "normal":
        params = {"location": {"weights": jnp.array([[0.5, -0.4], [0.3, 0.6]])}, "spread": (jnp.array([-0.2, 0.1]),)}
        targets = jnp.array([[0.5, -1.0], [1.5, 0.0], [-0.5, 1.0]])

        def dist(p):
            loc = COVARIATES @ p["location"]["weights"]
            return est.Normal(loc, jnp.broadcast_to(jnp.exp(p["spread"][0])[None, :], loc.shape))

        def example_costs(p, z):
            # The last term makes the cost's gradient and Hessian in z depend on θ as well (the delta
            # method's expansion coefficients then all carry a gradient).
            return (jnp.sum(jnp.cos(z - targets), axis=-1) + regularizer(p)
                    + 0.1 * jnp.tanh(p["location"]["weights"][0, 0]) * jnp.sum(z**2, axis=-1))
    elif family == "bernoulli":
        params = {"location": {"weights": jnp.array([[0.4, -0.3, 0.8], [-0.6, 0.2, 0.5]])}, "spread": (jnp.zeros(()),)}

        def dist(p):
            return est.Bernoulli(COVARIATES @ p["location"]["weights"] + p["spread"][0])

        def example_costs(p, b):
            return (b @ jnp.array([1.0, 0.6, -0.8]) - jnp.array([0.3, 0.8, -0.2])) ** 2 + regularizer(p)
    else:  # categorical: 3 examples × 2 variables × 4 classes
        params = {"location": {"weights": jnp.linspace(-1.0, 1.0, 16).reshape(2, 8)}, "spread": (jnp.zeros(()),)}

        def dist(p):
            return est.Categorical((COVARIATES @ p["location"]["weights"]).reshape(3, 2, 4) + p["spread"][0])

        def example_costs(p, x):
            return jnp.sum((x @ jnp.linspace(0.0, 1.0, 4) - 0.45) ** 2, axis=-1) + regularizer(p)

    def cost(p, x):
        traces.append(None)  # runs only while tracing
        costs = example_costs(p, x)
        return costs if batch_ndims else jnp.sum(costs)

    return est.Objective(dist=dist, cost=cost, batch_ndims=batch_ndims), params


def serving_case(name: str, batch_ndims: int):
    """(estimator, objective, params, traces) on the first family the estimator serves."""
    estimator = est.get(name)
    for family in ("normal", "bernoulli", "categorical", "iw_normal", "iw_bernoulli"):
        traces: list = []
        objective, params = _family_objective(family, batch_ndims, traces)
        if estimator.supports(objective.distribution(params)) is None:
            return estimator, objective, params, traces
    raise AssertionError(f"{name} serves none of the contract's objectives: add one it serves.")


def assert_like_params(grads, params):
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    for leaf, ref in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(params)):
        assert leaf.shape == ref.shape and leaf.dtype == ref.dtype
        assert np.all(np.isfinite(leaf))


def assert_trees_close(a, b, rtol=1e-3):
    """Equal to float32 rounding, which the leave-one-out fits of a few samples amplify (a ratio of
    sums of nearly equal terms): eager, jit and vmap order their sums differently."""
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-5 if rtol else 0)


@pytest.mark.parametrize("batch_ndims", [0, 1])
@pytest.mark.parametrize("name", est.names())
def test_every_estimator_keeps_the_contract(name, batch_ndims, key):
    estimator, objective, params, traces = serving_case(name, batch_ndims)
    num_samples = max(3, estimator.min_num_samples)
    init, update = est.value_and_grad_with_state(objective, estimator, num_samples)
    state = init(params)
    first, second, third, fourth, fifth = jax.random.split(key, 5)

    value, grads, new_state = update(params, jax.random.clone(first), state)  # eager
    assert jnp.shape(value) == () and value.dtype == jnp.float32
    assert_like_params(grads, params)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)

    jitted = jax.jit(update)
    jit_value, jit_grads, jit_state = jitted(params, jax.random.clone(first), state)
    assert_trees_close((jit_value, jit_grads, jit_state), (value, grads, new_state))
    again = jitted(params, first, state)
    assert_trees_close(again, (jit_value, jit_grads, jit_state), rtol=0)  # the same key, the same estimate
    other = jitted(params, second, state)
    assert not np.allclose(jax.tree_util.tree_leaves(other[1])[0], jax.tree_util.tree_leaves(jit_grads)[0])

    count = len(traces)
    jax.block_until_ready(jitted(jax.tree_util.tree_map(lambda x: x + 0.01, params), third, state))
    assert count > 0 and len(traces) == count, "a second call with new values retraced"

    batch = list(jax.random.split(fourth, 3))
    mapped = jax.jit(jax.vmap(update, in_axes=(None, 0, None)))(params, jax.random.clone(jnp.stack(batch)), state)
    for i in range(3):
        assert_trees_close(jax.tree_util.tree_map(lambda x, i=i: x[i], mapped[:2]),
                           jitted(params, batch[i], state)[:2])

    if estimator.stateful:
        def step(carry, k):
            value, grads, carry = update(params, k, carry)
            return carry, (value, grads)

        scan_keys = list(jax.random.split(fifth, 3))
        final, scanned = jax.jit(lambda s, ks: jax.lax.scan(step, s, ks))(state, jax.random.clone(jnp.stack(scan_keys)))
        looped = state
        for i in range(3):
            value, grads, looped = jitted(params, scan_keys[i], looped)
            assert_trees_close((value, grads), jax.tree_util.tree_map(lambda x, i=i: x[i], scanned))
        assert_trees_close(final, looped)


def test_the_library_and_the_benchmark_do_not_reach_into_analysis():
    """``estimators`` imports nothing of the benchmark or the analysis, and ``experiments`` nothing of the
    analysis but its command line, which draws a finished run's figures."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def imported(path):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                yield from (alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield node.module.split(".")[0]

    offenders = [str(path.relative_to(root)) for path in (root / "estimators").rglob("*.py")
                 if {"experiments", "analysis"} & set(imported(path))]
    offenders += [str(path.relative_to(root)) for path in (root / "experiments").rglob("*.py")
                  if path.name != "run.py" and "analysis" in set(imported(path))]
    assert not offenders, f"modules that import against the layering: {offenders}"


@pytest.mark.parametrize("name", est.names())
def test_every_estimator_is_a_pytree_of_its_continuous_options(name):
    """Rebuilt from its leaves it is the same estimator; its leaves are its numeric options (what a jitted
    program takes as arguments), and rebuilding it from traced leaves (placeholders here) skips the checks."""
    estimator = est.get(name)
    leaves, treedef = jax.tree_util.tree_flatten(estimator)
    assert jax.tree_util.tree_unflatten(treedef, leaves) == estimator
    assert all(isinstance(leaf, float) for leaf in leaves), leaves
    rebuilt = jax.tree_util.tree_unflatten(treedef, [object()] * len(leaves))
    assert type(rebuilt) is type(estimator)


def test_estimators_of_different_classes_have_different_structures():
    """A jitted program is cached by the structure of its arguments; two estimator classes with the same
    fields (gumbel_softmax, straight_through_gumbel) must not share one, nor an objective its subclass."""
    structures = {}
    for name in est.names():
        estimator = est.get(name)
        structures.setdefault(type(estimator), jax.tree_util.tree_structure(estimator))
    classes = list(structures)
    for i, first in enumerate(classes):
        for second in classes[i + 1:]:
            assert structures[first] != structures[second], (first.__name__, second.__name__)

    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Subclass(est.Objective):
        pass

    est.pytrees.register_frozen_dataclass(Subclass, [], ["dist", "cost", "batch_ndims"])
    parts = dict(dist=lambda p: est.Normal(p, 1.0), cost=lambda p, x: jnp.sum(jnp.square(x)))
    assert jax.tree_util.tree_structure(est.Objective(**parts)) != jax.tree_util.tree_structure(Subclass(**parts))


SEPARABLE = [name for name in est.names() if est.get(name).info.separable]


@pytest.mark.parametrize("batch_ndims", [0, 1])
@pytest.mark.parametrize("name", est.names())
def test_an_estimate_is_a_function_of_its_samples_own_statistics(name, batch_ndims, key):
    """``sample_statistics`` and ``estimate_from_statistics`` (what the benchmark forms every L of a grid
    from, in one program): the estimate from the first L statistics of ``sample_keys(key, n)`` is the
    L-sample estimate from ``key``, value, gradient and next state, to float32 rounding, at a warm state
    for a stateful estimator; a statistic depends on its own sample alone.  For a separable estimator
    the statistics are the per-sample terms, and the estimate their mean."""
    estimator, objective, params, _ = serving_case(name, batch_ndims)
    if not estimator.has_sample_statistics(objective):
        assert not estimator.info.separable
        pytest.skip(f"{name} has no per-sample statistics with batch_ndims={batch_ndims}")
    state = estimator.init(objective, params, jax.random.key(1))
    if estimator.stateful:  # a state that has seen one estimate
        state = estimator.estimate(objective, params, jax.random.key(2), 3, state).state
    sizes = sorted({estimator.min_num_samples, 5})

    def statistics_and_estimates(objective, params, key, state):
        # The same samples, on purpose, several times: each use gets its own clone of the key.
        keys = est.sample_keys(jax.random.clone(key), 5)
        estimates = [estimator.estimate(objective, params, jax.random.clone(key), n, state) for n in sizes]
        statistics = estimator.sample_statistics(objective, params, keys)
        later = estimator.sample_statistics(objective, params, jax.random.clone(keys)[1:])
        from_statistics = [estimator.estimate_from_statistics(
            objective, params, jax.tree_util.tree_map(lambda t, n=n: t[:n], statistics), state) for n in sizes]
        return statistics, later, estimates, from_statistics

    statistics, later, estimates, from_statistics = jax.jit(statistics_and_estimates)(objective, params, key, state)
    for estimate, formed in zip(estimates, from_statistics):
        assert_trees_close(formed.grads, estimate.grads, rtol=1e-5)
        assert_trees_close(formed.state, estimate.state, rtol=1e-5)
        np.testing.assert_allclose(formed.value, estimate.value, rtol=1e-5)
    # The statistics of keys 1..4 do not depend on key 0: a statistic is its own sample's alone.
    assert_trees_close(jax.tree_util.tree_map(lambda t: t[1:], statistics), later, rtol=1e-5)
    if estimator.info.separable:
        assert statistics.value.shape == (5,)


@pytest.mark.parametrize("name", sorted(set(est.names()) - set(SEPARABLE)))
def test_an_estimator_whose_samples_interact_has_no_per_sample_terms(name, key):
    estimator, objective, params, _ = serving_case(name, 0)
    with pytest.raises(ValueError, match="not separable"):
        estimator.sample_terms(objective, params, est.sample_keys(key, 4), estimator.init(objective, params, key))
