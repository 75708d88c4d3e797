"""The map over the sample axis, and the layout it gives a one-sample estimate inside a user's vmap.

``jax.vmap(est.grad(objective, name, 1))`` over N keys is how N single-sample estimates are drawn; a vmap
over the one-sample axis inside it used to lay a cost's data axis out as [data, N, 1] and transpose it,
at a third of the speed of hand-written JAX on logistic regression (``python -m experiments.throughput``
measures it).  The checks here are structural, not timed: the one-sample estimate's program has the
matrix products of the hand-written ``jax.grad`` of one sample, with no degenerate sample axis.
"""

from __future__ import annotations

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import estimators as est
from estimators.sample_axis import map_samples
from experiments import throughput


@pytest.mark.parametrize("size", [1, 3])
def test_map_samples_is_the_vmap(size):
    fn = lambda w, x, scale: {"value": scale * jnp.sum(w * x), "pair": (x, w)}
    w = jnp.arange(4.0)
    xs = jnp.arange(4.0 * size).reshape(size, 4)
    mapped = map_samples(fn, w, xs, 2.0, in_axes=(None, 0, None))
    vmapped = jax.vmap(fn, in_axes=(None, 0, None))(w, xs, 2.0)
    assert jax.tree_util.tree_structure(mapped) == jax.tree_util.tree_structure(vmapped)
    for a, b in zip(jax.tree_util.tree_leaves(mapped), jax.tree_util.tree_leaves(vmapped)):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    # A constant output gets the sample axis, as from the vmap.
    np.testing.assert_array_equal(map_samples(lambda x: 3.0, xs), jax.vmap(lambda x: 3.0)(xs))
    # Under an enclosing vmap too, and over keys (one per sample).
    outer = jax.vmap(lambda x: map_samples(lambda y: jnp.sum(y**2), x))(jnp.stack([xs, 2 * xs]))
    assert outer.shape == (2, size)
    keys = est.sample_keys(jax.random.key(0), size)
    draws = map_samples(lambda k: jax.random.normal(k, (2,)), keys)
    np.testing.assert_array_equal(draws, jax.vmap(lambda k: jax.random.normal(k, (2,)))(jax.random.clone(keys)))


def test_map_samples_names_a_bad_in_axes():
    with pytest.raises(ValueError, match="in_axes of 0 or None"):
        map_samples(lambda x: x, jnp.zeros((2, 3)), in_axes=1)


def _matrix_product_shapes(fn, *args) -> list[tuple[int, ...]]:
    """The output shapes of every dot_general in the jaxpr of ``fn(*args)``, sub-jaxprs included."""
    shapes = []

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                shapes.append(tuple(eqn.outvars[0].aval.shape))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jax.make_jaxpr(fn)(*args).jaxpr)
    return shapes


@pytest.mark.parametrize("name", throughput.ESTIMATORS)
def test_one_sample_estimates_under_a_vmap_have_the_hand_written_matrix_products(name):
    # A log-likelihood that reduces over 569 examples, N = 5 single-sample estimates.
    objective, params = throughput.workloads()["logistic_regression_569"]
    library = throughput.estimates_fn(objective, name, "per_sample", "library", 5)
    hand = throughput.estimates_fn(objective, name, "per_sample", "hand_written", 5)
    shapes = _matrix_product_shapes(library, params, jax.random.key(0))
    assert (569, 5) in shapes or (5, 569) in shapes, shapes  # the data times the N samples' weights
    assert all(1 not in shape for shape in shapes), shapes  # no degenerate (one-sample) axis
    assert sorted(shapes) == sorted(_matrix_product_shapes(hand, params, jax.random.key(0)))


def test_the_throughput_table_compares_each_form_with_hand_written_jax(tmp_path, capsys):
    out = tmp_path / "throughput.csv"
    assert throughput.main(["--num-estimates", "16", "--repeats", "1", "--workloads", "logistic_regression_569",
                            "--output", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == len(throughput.ESTIMATORS) * len(throughput.FORMS) * 2
    assert (table["samples_per_s"] > 0).all()
    assert (table.loc[table.implementation == "hand_written", "x_hand_written"] == 1).all()
    assert "| logistic_regression_569 | score_function | per_sample | library |" in capsys.readouterr().out
