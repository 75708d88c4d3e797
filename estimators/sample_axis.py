"""Mapping a function over the sample axis.

Every estimator evaluates the cost (or its gradient, or a density) once per sample: a ``jax.vmap`` over
the leading axis of the samples.  Where that axis has one element, a vmap only adds a degenerate batch
axis, and under an enclosing vmap (``jax.vmap(est.grad(objective, name, 1))`` over N keys, the common way
to draw N single-sample estimates) it costs real time: a cost that reduces over a data axis, like a
log-likelihood ``mean(log_sigmoid(y * (X @ w)))``, is then laid out as [data, N, 1] and transposed before
the reduction, which XLA on CPU runs at a third of the speed of the [N, data] layout it gets without the
inner vmap.  :func:`map_samples` evaluates a one-element axis directly, so a one-sample estimate is the
hand-written ``jax.grad`` of one sample, whatever encloses it; the values are those of the vmap.

N estimates of L > 1 samples each, vmapped over N keys, are two nested maps whatever is written, and
XLA lays them out as a hand-written nested vmap would ([data, N, L]); where their statistics allow it,
the benchmark's runner draws them as one flat batch of N·L sample keys instead
(``experiments.engine.measure``), and ``python -m experiments.throughput`` times both forms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["map_samples"]


def map_samples(fn: Callable[..., Any], *args: Any, in_axes: int | None | tuple[int | None, ...] = 0) -> Any:
    """``jax.vmap(fn, in_axes)(*args)`` with the mapped axis first in every output; ``in_axes`` is 0 (map
    over the leading axis of an argument's every leaf) or None (pass it whole), one per argument or one
    for all.  A mapped axis of one element is evaluated without a vmap (see the module docstring)."""
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    if len(axes) != len(args) or any(axis not in (0, None) for axis in axes):
        raise ValueError(f"map_samples takes in_axes of 0 or None, one per argument; got {in_axes!r} for "
                         f"{len(args)} arguments.")
    sizes = {jnp.shape(leaf)[0] for arg, axis in zip(args, axes) if axis == 0
             for leaf in jax.tree_util.tree_leaves(arg)}
    if sizes != {1}:
        return jax.vmap(fn, in_axes=axes)(*args)
    # The element as the vmap's body would see it: a JAX array (not a NumPy one) without the axis.
    first = lambda leaf: (leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf))[0]
    element = [arg if axis is None else jax.tree_util.tree_map(first, arg) for arg, axis in zip(args, axes)]
    # As vmap does, a Python number among the outputs becomes an array with the sample axis.
    return jax.tree_util.tree_map(lambda leaf: (leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf))[None],
                                  fn(*element))
