"""Replicated gradient estimates of one (problem, estimator, L) cell: compiled once, vmapped, sharded
over the devices, timed.

The replicate axis is split across every device of a :class:`jax.sharding.Mesh` (by default all
devices of the backend in use: one GPU, several GPUs, or CPU devices) with :func:`jax.shard_map`; each
device evaluates its share in chunks of ``chunk_size`` replicates (vmapped within a chunk,
``lax.map``-ped over chunks), so memory is bounded however many replicates are asked for.  Replicate r
always draws from ``fold_in(key, r)``, so which device computes it does not change its random numbers;
where every device runs chunks of the same size as one device would, the estimates are identical
replicate for replicate (otherwise XLA's kernels for another batch size may round differently, in the
last bits).  The programs are jitted functions of the objective, the estimator, the parameters and
the key: the objective's functions and the estimator's structural options are static, the parameters'
values and the estimator's continuous options (a temperature) are arguments, so JAX's own cache gives
one compilation to every cell that differs only in those values (the means of ``variance_vs_mean``, the
temperatures of ``bias_vs_temperature``).  :func:`measure_grid` measures every L of a grid with one
program, for the estimators whose estimate is a function of its samples' own statistics.
:func:`count_compilations` counts the compilations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import estimators as est
from experiments.problems import Problem

#: Updates a stateful estimator makes, on one shared chain, before its replicates are measured.
DEFAULT_WARMUP_STEPS = 50
#: The key stream of that warm-up chain, ``fold_in(key, WARMUP_STREAM)``, apart from the replicates'.
WARMUP_STREAM = 2**31 - 1

#: Memory budget for one chunk of replicates, in array elements of one sample or gradient (~32 MB
#: of float32 per buffer); replicates beyond it run in sequence through ``jax.lax.map``.
DEFAULT_CHUNK_ELEMENTS = 2**23


REPLICATE_AXIS = "replicates"
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def replicate_mesh(devices=None) -> Mesh:
    """A one-axis mesh over ``devices`` (default: every device of JAX's default backend, on every
    host) along which the replicates are split."""
    devices = list(devices) if devices is not None else jax.devices()
    return Mesh(np.asarray(devices), (REPLICATE_AXIS,))


@contextlib.contextmanager
def count_compilations():
    """Count the XLA compilations made inside the block: ``with count_compilations() as count: ...``,
    then ``count()``.  A program loaded from the persistent compilation cache is not a compilation
    (JAX reports its loading as a backend compilation and a cache hit)."""
    events, hits = [], []

    def on_duration(name, seconds, **kwargs):
        if name == _COMPILE_EVENT:
            events.append(seconds)

    def on_event(name, **kwargs):
        if name == _CACHE_HIT_EVENT:
            hits.append(name)

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    try:
        yield lambda: len(events) - len(hits)
    finally:
        jax.monitoring.unregister_event_duration_listener(on_duration)
        jax.monitoring.unregister_event_listener(on_event)




@dataclasses.dataclass(frozen=True)
class CellMeasurement:
    """The replicate estimates of one cell, on the host in float64, and what they cost."""

    grads: Any  #: pytree like the params, each leaf of shape (R, *leaf_shape), float64
    values: np.ndarray  #: (R,) the objective estimates from the same samples
    compile_time_s: float  #: 0 where the cell reused a program compiled for an earlier cell
    run_time_s: float  #: wall time of all R estimates, once compiled
    chunk_size: int  #: replicates evaluated at once on each device
    devices: int = 1  #: devices the replicates were split across
    compilations: int = 1  #: XLA compilations the cell made (its program, and a shared warm-up's)
    #: The L of the program that computed and timed the estimates: this cell's L, or the largest L of a
    #: grid measured from shared per-sample terms (:func:`measure_grid`), whose run time is then shared out
    #: in proportion to each L's cost evaluations.
    program_num_samples: int | None = None


#: The replicates of a cell are cut into at least this many chunks (when there are that many), so
#: that up to this many devices share the work, with chunks of a size that does not depend on the
#: number of devices: each replicate is then computed by the same program, with the same vectorization
#: and rounding, on one device or sixteen.
MIN_CHUNKS = 16


def score_rows_per_sample(problem: Problem, estimator: est.GradientEstimator) -> int:
    """Parameter-sized gradients an estimate holds per sample: one, or one per example for a baseline
    fitted per coordinate (the optimal constant needs each example's score in every parameter)."""
    return objective_score_rows_per_sample(problem.objective, problem.distribution(), estimator)


def objective_score_rows_per_sample(objective: est.Objective, dist, estimator: est.GradientEstimator) -> int:
    """:func:`score_rows_per_sample` of an objective and its distribution at some parameters."""
    baseline = getattr(estimator, "baseline", None)
    if baseline is not None and baseline.info.needs_scores:
        return math.prod(objective.batch_shape(dist))
    return 1


def chunk_size(problem: Problem, estimator: est.GradientEstimator, num_samples: int, num_replicates: int,
               chunk_elements: int, estimates_per_replicate: int = 1, elements_per_sample: int = 0) -> int:
    """Replicates per chunk: the largest divisor of R that fits in ``chunk_elements`` elements and
    leaves at least ``MIN_CHUNKS`` chunks (``elements_per_sample``: what a replicate holds per sample
    besides, such as a shared program's per-sample statistics).

    A divisor, so that no chunk is padding, unless R has no divisor within a factor of two of the limit.
    It depends on the cell and R only, never on the devices.
    """
    dist = problem.distribution()
    sample_size = math.prod(dist.event_shape)
    param_size = sum(math.prod(jnp.shape(leaf)) for leaf in jax.tree_util.tree_leaves(problem.params))
    # Each cost evaluation reads one sample-sized input; each sample carries a parameter-sized gradient
    # (a per-coordinate baseline: one per example).
    evaluations = problem.cost_evaluations(estimator, num_samples)
    gradients = num_samples * (score_rows_per_sample(problem, estimator))
    per_replicate = max(evaluations * sample_size, gradients * param_size, num_samples * elements_per_sample, 1)
    per_replicate *= estimates_per_replicate
    limit = max(1, min(-(-num_replicates // MIN_CHUNKS), chunk_elements // per_replicate))
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
    mesh: Mesh | None = None,
    compiler_options: dict | None = None,
    max_seconds: float | None = None,
    min_replicates: int = 1,
) -> CellMeasurement:
    """R independent L-sample estimates of the gradient at the problem's parameters.

    One jit-compiled program evaluates all replicates: split across the devices of ``mesh`` (default
    :func:`replicate_mesh`), vmapped within chunks and ``lax.map``-ped over them on each device;
    compile time and run time are measured separately.  Replicates are padded up to the same whole
    number of chunks on every device and the padding discarded.  A stateful estimator first makes ``warmup_steps``
    updates from its initial state.  With ``warmup="shared"`` that is one chain, compiled and run apart
    and not timed, and every replicate starts from its final state: the replicates are independent
    given that state and measure the estimator at it (its variance is then one draw from the spread
    that the warm state's own noise causes, a few percent for a moving-average baseline at small L).
    With ``warmup="per_replicate"`` each replicate runs its own chain first (from
    ``fold_in(replicate_key, WARMUP_STREAM)``): the replicates are i.i.d. and measure the estimator
    averaged over its warm states, at ``warmup_steps + 1`` times the cost.  A program compiled for an
    earlier cell that differs only in values (parameters, continuous options) is reused.  The timed program
    is compiled with XLA's ``compiler_options`` (None: its defaults).

    With ``max_seconds``, the program computes rounds of about ``min_replicates`` replicates (whole chunks
    on every device) and runs them in turn, replicates 0, 1, ... as one program of R would, until R or until
    the next round would take the run past ``max_seconds`` (:meth:`CompiledCell.run_within`): R is then
    between ``min(R, min_replicates)`` and R, the first replicates of the cell that a run without a budget
    measures.
    """
    if warmup not in ("shared", "per_replicate"):
        raise ValueError(f"warmup must be 'shared' or 'per_replicate', got {warmup!r}.")
    mesh = mesh if mesh is not None else replicate_mesh()
    per_replicate = estimator.stateful and warmup == "per_replicate"
    batch = chunk_size(problem, estimator, num_samples, num_replicates, chunk_elements,
                       warmup_steps + 1 if per_replicate else 1)
    layout = _layout(num_samples, (), warmup_steps, per_replicate, num_replicates, batch, mesh)
    if max_seconds is None:
        return _measure(problem, estimator, layout, num_replicates, key, compiler_options)
    rounds = _round_layout(layout, num_replicates, min_replicates)
    program = _compile(problem, estimator, rounds, rounds.padded, key, compiler_options)
    return program.run_within(key, num_replicates, max_seconds)


def measure_grid(
    problem: Problem,
    estimator: est.GradientEstimator,
    grid: Sequence[int],
    num_replicates: int,
    key: jax.Array,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    warmup_steps: int = DEFAULT_WARMUP_STEPS,
    mesh: Mesh | None = None,
    compiler_options: dict | None = None,
    max_seconds: float | None = None,
    min_replicates: int = 1,
) -> dict[int, CellMeasurement]:
    """R replicate estimates at every L of ``grid`` from one program, for an estimator with per-sample
    statistics (:meth:`~estimators.GradientEstimator.has_sample_statistics`: every separable one, the
    score function with a baseline fitted from the costs, the delta method with a fixed coefficient):
    replicate r computes the statistics of the
    sample keys ``fold_in(fold_in(key, r), i)``, i < max(grid), and its L-sample estimate from the first L
    of them, so every estimate is the one :func:`measure_cell` gives at that L (to float rounding), from
    one compilation instead of one per L.  A stateful estimator's replicates at L start from the state
    of a shared warm-up chain at L (``warmup="shared"`` of :func:`measure_cell`; the chains of every L run
    as one more program).  Each L's
    run time is the program's, shared out in proportion to its cost evaluations
    (``program_num_samples`` records the L that was timed); the compilations are counted at the smallest L.
    ``max_seconds`` and ``min_replicates``: rounds within a time budget, as for :func:`measure_cell`."""
    grid = tuple(sorted(set(grid)))
    cell = _compile_grid(problem, estimator, grid, num_replicates, key, chunk_elements, warmup_steps, mesh,
                         compiler_options, None if max_seconds is None else min_replicates)
    return cell.measurements(key, num_replicates, max_seconds)


def compile_cells(
    problem: Problem,
    estimator: est.GradientEstimator,
    grid: Sequence[int],
    num_replicates: int,
    key: jax.Array,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    warmup_steps: int = DEFAULT_WARMUP_STEPS,
    mesh: Mesh | None = None,
    compiler_options: dict | None = None,
) -> CompiledCell:
    """The compiled program of :func:`measure_grid` (several L, an estimator with per-sample statistics)
    or of :func:`measure_cell` (one L, a shared warm-up), for rounds of ``num_replicates`` fresh replicates:
    ``compile_cells(...).measurements(fold_in(key, round))``.  Its stateful estimator starts every round
    from the state of one warm-up chain, drawn from ``key``."""
    grid = tuple(sorted(set(grid)))
    if len(grid) > 1:
        return _compile_grid(problem, estimator, grid, num_replicates, key, chunk_elements, warmup_steps, mesh,
                             compiler_options)
    (num_samples,) = grid
    reason = estimator.applicability(problem.distribution(), num_samples, problem.objective.batch_ndims)
    if reason is not None:
        raise ValueError(f"{estimator.name} cannot be measured on {problem.name} at L = {num_samples}: {reason}.")
    mesh = mesh if mesh is not None else replicate_mesh()
    batch = chunk_size(problem, estimator, num_samples, num_replicates, chunk_elements)
    layout = _layout(num_samples, (), warmup_steps, False, num_replicates, batch, mesh)
    return _compile(problem, estimator, layout, num_replicates, key, compiler_options)


def _compile_grid(problem, estimator, grid, num_replicates, key, chunk_elements, warmup_steps, mesh,
                  compiler_options, round_replicates: int | None = None) -> CompiledCell:
    if not estimator.has_sample_statistics(problem.objective):
        raise ValueError(f"{estimator.name} has no per-sample statistics on {problem.name}: measure each L with "
                         "measure_cell.")
    for num_samples in grid:
        reason = estimator.applicability(problem.distribution(), num_samples, problem.objective.batch_ndims)
        if reason is not None:
            raise ValueError(f"{estimator.name} cannot be measured on {problem.name} at L = {num_samples}: {reason}.")
    mesh = mesh if mesh is not None else replicate_mesh()
    largest = grid[-1]
    one_sample = jax.eval_shape(  # abstract: nothing runs, no key is used
        lambda k: estimator.sample_statistics(problem.objective, problem.params, est.sample_keys(k, 1)), key)
    statistics_size = sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(one_sample))
    batch = chunk_size(problem, estimator, largest, num_replicates, chunk_elements, elements_per_sample=statistics_size)
    layout = _layout(largest, grid, warmup_steps, False, num_replicates, batch, mesh)
    if round_replicates is not None:  # a program for rounds (its chunks those of the program for all R)
        layout = _round_layout(layout, num_replicates, round_replicates)
        num_replicates = layout.padded
    return _compile(problem, estimator, layout, num_replicates, key, compiler_options)


def _split_grid(problem: Problem, estimator: est.GradientEstimator, grid: tuple[int, ...],
                shared: CellMeasurement) -> dict[int, CellMeasurement]:
    """Each L's measurement from a grid program's: its estimates, and the run time shared out in proportion
    to each L's cost evaluations (the compilations counted at the smallest L)."""
    largest = grid[-1]
    total_cost = problem.cost_evaluations(estimator, largest)
    measurements = {}
    for index, num_samples in enumerate(grid):
        share = problem.cost_evaluations(estimator, num_samples) / total_cost
        measurements[num_samples] = dataclasses.replace(
            shared,
            grads=jax.tree_util.tree_map(lambda leaf: leaf[:, index], shared.grads),
            values=shared.values[:, index],
            compile_time_s=shared.compile_time_s if index == 0 else 0.0,
            run_time_s=shared.run_time_s * share,
            compilations=shared.compilations if index == 0 else 0,
            program_num_samples=largest,
        )
    return measurements


def _layout(num_samples, grid, warmup_steps, per_replicate, num_replicates, batch, mesh) -> _Layout:
    chunks_per_device = -(-num_replicates // (batch * mesh.size))  # the last chunks may be padding
    return _Layout(num_samples, grid, warmup_steps, per_replicate, chunks_per_device * mesh.size * batch, batch, mesh)


def _round_layout(layout: _Layout, num_replicates: int, min_replicates: int) -> _Layout:
    """The layout of a program that computes rounds of at least ``min(num_replicates, min_replicates)``
    replicates: ``layout``'s chunks, as few per device as hold them."""
    return _layout(layout.num_samples, layout.grid, layout.warmup_steps, layout.per_replicate,
                   min(num_replicates, min_replicates), layout.batch, layout.mesh)


def _measure(problem: Problem, estimator: est.GradientEstimator, layout: _Layout, num_replicates: int,
             key: jax.Array, compiler_options: dict | None = None) -> CellMeasurement:
    """Compile and run the program of ``layout``; the first ``num_replicates`` estimates on the host."""
    return _compile(problem, estimator, layout, num_replicates, key, compiler_options).run(key)


def _compile(problem: Problem, estimator: est.GradientEstimator, layout: _Layout, num_replicates: int,
             key: jax.Array, compiler_options: dict | None = None) -> CompiledCell:
    """The program of ``layout``, compiled (a stateful estimator's starting state prepared from ``key``)."""
    objective, params = problem.objective, problem.params
    num_samples, warmup_steps, per_replicate = layout.num_samples, layout.warmup_steps, layout.per_replicate

    with count_compilations() as compilations:
        if layout.grid:  # the states the replicates at each L start from, stacked
            state = _grid_states(objective, estimator, layout, params, key)
        elif estimator.stateful:  # the initial state and its shared warm-up chain (run apart: not timed)
            state = _untimed(_warmed_state, objective, estimator, params, key, num_samples=num_samples,
                             warmup_steps=0 if per_replicate else warmup_steps)
        else:
            state = est.value_and_grad_with_state(objective, estimator, num_samples).init(params)
        # Dispatch is asynchronous: without this wait, the warm-up chain would still be running when the
        # timed program starts, and its time would count as the estimates'.
        state = jax.block_until_ready(state)

        start = time.perf_counter()
        lowered = _all_replicates.lower(objective, estimator, layout, params, key, state, np.uint32(0))
        compiled = lowered.compile(compiler_options=compiler_options)
        compile_time = time.perf_counter() - start if compilations() else 0.0
    return CompiledCell(problem, estimator, layout, num_replicates, state, compiled, compile_time, compilations())


@dataclasses.dataclass(frozen=True)
class CompiledCell:
    """A cell's compiled replicate program and the state its replicates start from: :meth:`run` computes
    ``num_replicates`` fresh estimates for each key it is given, with no further compilation (rounds of
    replicates within a time budget)."""

    problem: Problem
    estimator: est.GradientEstimator
    layout: Any  #: the program's :class:`_Layout`
    num_replicates: int
    state: Any
    compiled: Any
    compile_time_s: float
    compilations: int

    def run(self, key: jax.Array, first_replicate: int = 0) -> CellMeasurement:
        """The ``num_replicates`` estimates of replicate keys ``fold_in(key, r)``, r from ``first_replicate``
        on, on the host, timed."""
        start = time.perf_counter()
        values, grads = jax.block_until_ready(self.compiled(self.problem.objective, self.estimator, self.problem.params,
                                                            key, self.state, np.uint32(first_replicate)))
        run_time = time.perf_counter() - start

        def to_host(x):
            if jax.process_count() > 1:  # every host holds its own devices' share
                from jax.experimental import multihost_utils

                x = multihost_utils.process_allgather(x, tiled=True)
            return np.asarray(x, dtype=np.float64)[:self.num_replicates]

        return CellMeasurement(
            grads=jax.tree_util.tree_map(to_host, grads),
            values=to_host(values),
            compile_time_s=self.compile_time_s,
            run_time_s=run_time,
            chunk_size=self.layout.batch,
            devices=self.layout.mesh.size,
            compilations=self.compilations,
        )

    def run_within(self, key: jax.Array, max_replicates: int, seconds: float) -> CellMeasurement:
        """Rounds of :meth:`run`, each of this program's n replicates (replicates 0 to n - 1, then n to 2n - 1,
        ...: the estimates one program of ``max_replicates`` would give) until ``max_replicates`` estimates,
        or until one more round, at the rounds' mean time, would take their run time past ``seconds``; at
        least one round.  The run time is that of the estimates kept."""
        rounds: list[CellMeasurement] = []
        elapsed = 0.0
        while len(rounds) * self.num_replicates < max_replicates:
            if rounds and elapsed * (len(rounds) + 1) / len(rounds) > seconds:
                break
            rounds.append(self.run(key, first_replicate=len(rounds) * self.num_replicates))
            elapsed += rounds[-1].run_time_s
        computed = len(rounds) * self.num_replicates
        kept = min(computed, max_replicates)
        join = lambda *leaves: np.concatenate(leaves)[:kept]
        return dataclasses.replace(
            rounds[0], grads=jax.tree_util.tree_map(join, *[r.grads for r in rounds]),
            values=join(*[r.values for r in rounds]), run_time_s=elapsed * kept / computed)

    def measurements(self, key: jax.Array, max_replicates: int | None = None,
                     seconds: float | None = None) -> dict[int, CellMeasurement]:
        """:meth:`run`'s estimates by L: the program's one L, or each L of its grid; with ``seconds``, those
        of :meth:`run_within` up to ``max_replicates``."""
        measured = self.run(key) if seconds is None else self.run_within(key, max_replicates, seconds)
        if not self.layout.grid:
            return {self.layout.num_samples: measured}
        return _split_grid(self.problem, self.estimator, self.layout.grid, measured)


class _Layout(NamedTuple):
    """The static shape of a cell's program: L, the warm-up, and how the replicates are laid out."""

    num_samples: int  #: L, or the largest L of ``grid``
    grid: tuple[int, ...]  #: the L values formed from one replicate's per-sample statistics; () for one L
    warmup_steps: int
    per_replicate: bool  #: each replicate warms up its own chain
    padded: int  #: replicates computed, a whole number of chunks on every device
    batch: int  #: replicates per chunk
    mesh: Mesh


#: XLA options of the programs that prepare a measurement and are not timed (a stateful estimator's initial
#: state and warm-up chain): LLVM at -O1 and the MLIR fusion emitters off, which compiles them in about half
#: the time of XLA's defaults (RELAX's 50-step chain on the binary VAE: 2.1 -> 1.2 s; RODEO's: 1.3 -> 0.7 s)
#: and runs them about as fast (0.6 s and 4.2 s); LLVM at -O0 would compile no faster and run RODEO's chain
#: in 37 s.  The timed programs keep XLA's emitters: their time per estimate is a result, and without the
#: emitters some run 3 times slower (logistic regression's score function).
UNTIMED_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


def _untimed(program, *args, **static):
    """``program(*args, **static)``, compiled with :data:`UNTIMED_COMPILER_OPTIONS` (once per structure, as
    ``jax.jit`` would: JAX caches the executable)."""
    return program.lower(*args, **static).compile(compiler_options=UNTIMED_COMPILER_OPTIONS)(*args)


@functools.partial(jax.jit, static_argnames=("num_samples", "warmup_steps"))
def _warmed_state(objective, estimator, params, key, num_samples, warmup_steps):
    """The estimator's initial state after ``warmup_steps`` updates of :func:`_chain` (none: the initial
    state), as one program: neither an eager compilation per operation of the init nor a program for it."""
    state = est.value_and_grad_with_state(objective, estimator, num_samples).init(params)
    return _chain(objective, estimator, num_samples, warmup_steps, params, key, state) if warmup_steps else state


def _grid_states(objective, estimator, layout, params, key):
    """The state of a shared warm-up chain at each L of the grid, stacked along a leading axis; () for a
    stateless estimator."""
    if not estimator.stateful:
        return ()
    return _untimed(_grid_warm_up, objective, estimator, params, key, grid=layout.grid,
                    warmup_steps=layout.warmup_steps)


@functools.partial(jax.jit, static_argnames=("grid", "warmup_steps"))
def _grid_warm_up(objective, estimator, params, key, grid, warmup_steps):
    """The warm-up chain of :func:`_chain` at every L of the grid from the initial state (which has no L),
    as one program with that state: the statistics of each step's samples do not depend on the state, so
    they are computed once for the largest L and each chain at L folds its first L of them into the state,
    step by step; the states are those of ``_chain`` at each L (the same samples), stacked along a
    leading axis."""
    initial = est.value_and_grad_with_state(objective, estimator, grid[0]).init(params)
    step_keys = est.sample_keys(jax.random.fold_in(key, WARMUP_STREAM), warmup_steps)
    statistics = _batch_statistics(objective, estimator, params, step_keys, grid[-1])
    states = []
    for n in grid:
        def step(state, step_statistics, n=n):
            first = jax.tree_util.tree_map(lambda t: t[:n], step_statistics)
            return estimator.estimate_from_statistics(objective, params, first, state).state, None

        states.append(jax.lax.scan(step, initial, statistics)[0])
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *states)


def _batch_statistics(objective, estimator, params, keys, num_samples):
    """The per-sample statistics of the ``num_samples`` sample keys of each of the B ``keys``, leaves of
    shape (B, L, ...), computed as one flat batch of B·L sample keys (typed, or raw uint32 keys, which
    keep their last axis)."""
    sample_keys = jax.vmap(lambda k: est.sample_keys(k, num_samples))(keys)  # (B, L)
    statistics = estimator.sample_statistics(objective, params, sample_keys.reshape(-1, *sample_keys.shape[2:]))
    return jax.tree_util.tree_map(lambda t: t.reshape(*sample_keys.shape[:2], *t.shape[1:]), statistics)


def _chain(objective, estimator, num_samples, warmup_steps, params, key, state):
    """``warmup_steps`` updates of the state, with keys from ``fold_in(key, WARMUP_STREAM)``."""
    update = est.value_and_grad_with_state(objective, estimator, num_samples).update
    warmup_keys = est.sample_keys(jax.random.fold_in(key, WARMUP_STREAM), warmup_steps)
    return jax.lax.scan(lambda s, k: (update(params, k, s)[2], None), state, warmup_keys)[0]


@functools.partial(jax.jit, static_argnames=("layout",))
def _all_replicates(objective, estimator, layout, params, key, state, first_replicate):
    """``layout.padded`` replicate estimates ``(values, grads)``: replicate r from ``fold_in(key, r)``, for r
    from ``first_replicate`` on (an argument, so that one program computes any round of replicates), split
    over the mesh's devices, vmapped in chunks of ``layout.batch`` and ``lax.map``-ped over them."""
    update = est.value_and_grad_with_state(objective, estimator, layout.num_samples).update

    def one_replicate(params, key, state):
        if layout.per_replicate:
            state = _chain(objective, estimator, layout.num_samples, layout.warmup_steps, params, key, state)
        return update(params, key, state)[:2]

    def grid_estimates(params, statistics, state):
        """One replicate's estimate of the first L samples' statistics, for each L of the grid."""
        estimates = [
            estimator.estimate_from_statistics(
                objective, params, jax.tree_util.tree_map(lambda t, n=n: t[:n], statistics),
                jax.tree_util.tree_map(lambda s, g=g: s[g], state))
            for g, n in enumerate(layout.grid)]
        stack = lambda *leaves: jnp.stack(leaves)
        return jnp.stack([e.value for e in estimates]), jax.tree_util.tree_map(stack, *[e.grads for e in estimates])

    def grid_chunk(params, keys, state):
        # The statistics of the chunk's replicates × L samples as one flat batch of sample keys: a vmap
        # over samples nested in one over replicates would lay a cost's data axis out as [data, B, L] and
        # transpose it (XLA on CPU), where one vmap over B·L keys gives the [B·L, data] of a single sample.
        statistics = _batch_statistics(objective, estimator, params, keys, layout.num_samples)
        return jax.vmap(grid_estimates, in_axes=(None, 0, None))(params, statistics, state)

    def device_share(params, state, keys):
        # Each device's copy of the parameters is its own: gradients with respect to them must not be
        # summed over the devices, as they would be for values shared (invariant) across the mesh.
        params, state = jax.tree_util.tree_map(
            lambda x: jax.lax.pcast(x, REPLICATE_AXIS, to="varying"), (params, state)
        )
        if layout.grid:
            chunks = keys.reshape(-1, layout.batch, *keys.shape[1:])  # raw uint32 keys keep their last axis
            values, grads = jax.lax.map(lambda k: grid_chunk(params, k, state), chunks)
            return jax.tree_util.tree_map(lambda t: t.reshape(-1, *t.shape[2:]), (values, grads))
        return jax.lax.map(lambda k: one_replicate(params, k, state), keys, batch_size=layout.batch)

    split = PartitionSpec(REPLICATE_AXIS)
    sharded_share = jax.shard_map(device_share, mesh=layout.mesh, in_specs=(PartitionSpec(), PartitionSpec(), split),
                                  out_specs=split)
    replicates = first_replicate + jnp.arange(layout.padded, dtype=jnp.uint32)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, replicates)  # fold_in(key, r), on any device
    keys = jax.lax.with_sharding_constraint(keys, NamedSharding(layout.mesh, split))
    return sharded_share(params, state, keys)
