"""Replicated gradient estimates of one (problem, estimator, L) cell: compiled once, vmapped, timed."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import estimators as est
from experiments.problems import Problem

#: Updates a stateful estimator makes, on one shared chain, before its replicates are measured.
DEFAULT_WARMUP_STEPS = 50
#: The key stream of that warm-up chain, ``fold_in(key, WARMUP_STREAM)``, apart from the replicates'.
WARMUP_STREAM = 2**31 - 1

#: Memory budget for one chunk of replicates, in array elements of one sample or gradient (~32 MB
#: of float32 per buffer); replicates beyond it run in sequence through ``jax.lax.map``.
DEFAULT_CHUNK_ELEMENTS = 2**23


@dataclasses.dataclass(frozen=True)
class CellMeasurement:
    """The replicate estimates of one cell, on the host in float64, and what they cost."""

    grads: Any  #: pytree like the params, each leaf of shape (R, *leaf_shape), float64
    values: np.ndarray  #: (R,) the objective estimates from the same samples
    compile_time_s: float
    run_time_s: float  #: wall time of all R estimates, once compiled
    chunk_size: int  #: replicates evaluated at once


def chunk_size(problem: Problem, estimator: est.GradientEstimator, num_samples: int, num_replicates: int,
               chunk_elements: int, estimates_per_replicate: int = 1) -> int:
    """The largest divisor of R whose replicates fit in ``chunk_elements`` elements.

    A divisor, so that ``lax.map`` needs no separately compiled remainder (which doubles compile time),
    unless R has no divisor within a factor of two of the budget.
    """
    dist = problem.distribution()
    sample_size = math.prod(dist.event_shape)
    param_size = sum(math.prod(jnp.shape(leaf)) for leaf in jax.tree_util.tree_leaves(problem.params))
    # Each cost evaluation reads one sample-sized input; each sample carries a parameter-sized gradient.
    evaluations = estimator.cost_evaluations(num_samples, dist)
    per_replicate = max(evaluations * sample_size, num_samples * param_size, 1) * estimates_per_replicate
    limit = max(1, min(num_replicates, chunk_elements // per_replicate))
    divisor = max(d for d in range(1, limit + 1) if num_replicates % d == 0)
    return divisor if 2 * divisor >= limit else limit


def measure_cell(
    problem: Problem,
    estimator: est.GradientEstimator,
    num_samples: int,
    num_replicates: int,
    key: jax.Array,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    warmup_steps: int = DEFAULT_WARMUP_STEPS,
    warmup: str = "shared",
) -> CellMeasurement:
    """R independent L-sample estimates of the gradient at the problem's parameters.

    One jit-compiled program evaluates all replicates, vmapped within chunks and ``lax.map``-ped over
    them; compile time and run time are measured separately.  A stateful estimator first makes
    ``warmup_steps`` updates from its initial state.  With ``warmup="shared"`` that is one chain,
    compiled and run apart and not timed, and every replicate starts from its final state: the
    replicates are independent given that state and measure the estimator at it (its variance is
    then one draw from the spread that the warm state's own noise causes, a few percent for a
    moving-average baseline at small L).  With ``warmup="per_replicate"`` each replicate runs its own
    chain first (from ``fold_in(replicate_key, WARMUP_STREAM)``): the replicates are i.i.d. and
    measure the estimator averaged over its warm states, at ``warmup_steps + 1`` times the cost.
    """
    if warmup not in ("shared", "per_replicate"):
        raise ValueError(f"warmup must be 'shared' or 'per_replicate', got {warmup!r}.")
    init, update = est.value_and_grad_with_state(problem.objective, estimator, num_samples)
    per_replicate = estimator.stateful and warmup == "per_replicate"
    batch = chunk_size(problem, estimator, num_samples, num_replicates, chunk_elements,
                       warmup_steps + 1 if per_replicate else 1)

    def warm_up(params, key, state):
        warmup_keys = est.sample_keys(jax.random.fold_in(key, WARMUP_STREAM), warmup_steps)
        return jax.lax.scan(lambda s, k: (update(params, k, s)[2], None), state, warmup_keys)[0]

    state = init(problem.params)
    if estimator.stateful and not per_replicate:  # one chain, compiled and run apart: not in the timing
        state = jax.jit(warm_up)(problem.params, key, state)

    def one_replicate(params, key, state):
        if per_replicate:
            state = warm_up(params, key, state)
        return update(params, key, state)[:2]

    def all_replicates(params, key, state):
        keys = est.sample_keys(key, num_replicates)  # replicate r: fold_in(key, r)
        return jax.lax.map(lambda k: one_replicate(params, k, state), keys, batch_size=batch)

    start = time.perf_counter()
    compiled = jax.jit(all_replicates).lower(problem.params, key, state).compile()
    compile_time = time.perf_counter() - start

    start = time.perf_counter()
    values, grads = jax.block_until_ready(compiled(problem.params, key, state))
    run_time = time.perf_counter() - start

    to_host = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    return CellMeasurement(
        grads=jax.tree_util.tree_map(to_host, grads),
        values=to_host(values),
        compile_time_s=compile_time,
        run_time_s=run_time,
        chunk_size=batch,
    )
