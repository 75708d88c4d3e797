r"""The control-variate mechanism every baseline and Taylor control variate of the library shares.

An unbiased per-sample gradient :math:`g_i` is combined with a control :math:`h_i` of known mean
:math:`\bar h` as :math:`g_i - c_i \odot (h_i - \bar h)`.  The mean stays :math:`E[g]` as long as the
coefficient :math:`c_i` does not depend on sample i, so coefficients fitted from the samples are fitted
leave-one-out: :math:`c_i` uses every sample but i.  With the per-coordinate coefficient
:math:`c^* = \mathrm{Cov}(g, h) / \mathrm{Var}(h)` the variance is the smallest a linear control can
give, :math:`\mathrm{Var}(g)(1 - \rho^2_{gh})`.

A score-function baseline b is this with :math:`h_i = \nabla_\theta \log q(x_i)` (mean 0) and
:math:`c_i = b_i`.

Reference: Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*,
JMLR 2020, section 7.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from estimators.sample_axis import map_samples


def leave_one_out_mean(values: jax.Array) -> jax.Array:
    """Along the leading (sample) axis, the mean of all the other samples: (Σ_j v_j − v_i) / (L − 1)."""
    num_samples = values.shape[0]
    return (jnp.sum(values, axis=0, keepdims=True) - values) / (num_samples - 1)


def leave_one_out_coefficient(targets: jax.Array, centred_controls: jax.Array) -> jax.Array:
    r"""Per-sample, per-coordinate coefficients :math:`c_{i} = \sum_{j \ne i} g_j h_j / \sum_{j \ne i} h_j^2`.

    Args:
      targets: the per-sample estimates g, shape (L, n) (or (L, ...): every other axis is fitted apart).
      centred_controls: the controls minus their known mean, h − h̄, of the same shape.

    Returns:
      c of that shape: the regression coefficient of g on h fitted without sample i, a consistent
      estimate of Cov(g, h)/Var(h) since h − h̄ has mean zero exactly.  Coordinates whose controls are
      all zero get 0.
    """
    products = targets * centred_controls
    squares = centred_controls**2
    numerator = jnp.sum(products, axis=0, keepdims=True) - products
    denominator = jnp.sum(squares, axis=0, keepdims=True) - squares
    safe = jnp.where(denominator > 0, denominator, 1)
    return jnp.where(denominator > 0, numerator / safe, 0)


def per_sample_jacobians(fn, params, per_sample_inputs):
    """Per-sample Jacobians of ``fn(params, input_i) -> (outputs (m,), aux)`` in the parameters.

    Returns ``(jacobians, aux, unravel)``: jacobians of shape (L, m, n) over the n flattened parameter
    coordinates, aux stacked over samples, and the function that turns an (n,) vector back into a
    params pytree.  One vmapped reverse pass per output; inputs (keys or samples) are used once.
    """
    _, unravel = ravel_pytree(params)
    jacobians, aux = map_samples(jax.jacrev(fn, has_aux=True), params, per_sample_inputs, in_axes=(None, 0))
    leaves = jax.tree_util.tree_leaves(jacobians)
    num_samples, num_outputs = leaves[0].shape[:2]
    flat = jnp.concatenate([leaf.reshape(num_samples, num_outputs, -1) for leaf in leaves], axis=-1)
    return flat, aux, unravel
