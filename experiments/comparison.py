"""Rank every applicable gradient estimator on the user's own objective, within a time budget.

    import experiments
    result = experiments.compare(objective, params, jax.random.key(0), budget_seconds=60)
    print(result)                 # the recommendation per L
    result.table                  # estimator, L, parameter group: variance, bias², MSE, time, cost, ...

:func:`compare` measures the estimators the way the benchmark measures its problems (the same compiled
replicate programs, the same statistics, and the report's ranking,
:func:`experiments.engine.ranking.recommendations`), pointed at an objective the project has never seen:

- **What is measured.** Every registered estimator that applies to the objective's distribution (or the
  ones given, with their options) at every L of ``num_samples`` it can use: R independent L-sample
  estimates at ``params``, their variance (trace of the covariance) with its standard error, the time per
  estimate and the cost evaluations.  A stateful estimator (a moving-average baseline, RELAX's network)
  first makes ``warmup_steps`` updates on one chain, as in the benchmark.
- **The reference.** Bias² and MSE need the true gradient.  Given as ``reference`` (with its standard error,
  if it is itself an estimate), it is used as such.  Otherwise it is formed from the measurements: the mean
  of the unbiased estimator whose mean has the smallest standard error (at its largest L), with that
  standard error carried into every bias² and MSE.  With no reference (``reference=False``), an unbiased
  estimator's MSE is its variance and the biased ones are not ranked.  The estimator that forms the reference
  is ranked by its variance too (its mean is the reference).
- **Agreement.** Against a formed reference, every unbiased estimator's mean should agree within noise; a
  ``disagrees`` flag (family-wise false alarm at most 1% whatever the estimates' tails, by medians of block
  means; judged from 1,000 replicates on) marks those that do not: an estimator whose assumptions the
  objective breaks (the pathwise gradient of a cost with a step, for instance).  It sees large biases only.
- **The ranking.** Per L, the estimator with the lowest MSE × time per estimate, the runner-up, their margin
  and whether it is clear (more than two standard errors).
- **The budget.** Each program is compiled and run for one round of ``round_replicates`` replicates; then
  rounds go, by turns, to the program that has used the least time, until the next round (and the host
  statistics it adds, timed at the first round's R and four times it) would overrun ``budget_seconds`` or
  every program has ``replicates`` estimates.  The budget covers compiling and the statistics, so the run
  ends within about one compilation of it.  Programs not reached before the budget ran out are rows with
  that reason.
- **Failures.** An estimator that raises (an objective it cannot serve) becomes a row with the error; the
  others are measured.
"""

from __future__ import annotations

import dataclasses
import math
import time
import zlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import estimators as est
from experiments.engine.measure import CellMeasurement, compile_cells
from experiments.engine.ranking import recommendations, wide  # the benchmark's ranking, so the two agree
from experiments.engine.statistics import median_of_means, median_of_means_p_value
from experiments.engine.tidy import ALL_PARAMETERS, cell_rows
from experiments.problems import Problem

PyTree = Any

#: Replicates a program computes per round; every measured L has at least this many.
ROUND_REPLICATES = 64
#: The most gradient elements (replicates × parameters × L values) kept on the host per program, so the
#: statistics of a large model's gradients stay within a few hundred megabytes.
MAX_HOST_ELEMENTS = 2**25
#: Family-wise false-alarm rate of the ``disagrees`` flags.
DISAGREEMENT_FALSE_ALARM = 0.01
#: Fewer replicates than this leave an estimator's agreement unjudged: the test takes the variances it
#: estimates from the replicates as exact, which a few dozen heavy-tailed estimates do not warrant.
MIN_AGREEMENT_REPLICATES = 1000
#: XLA's backend optimization level of the programs (LLVM -O1 on CPU), as the benchmark's default run: it
#: compiles in about 70% of the time of XLA's default for the same run time.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What :func:`compare` measured.

    Attributes:
      table: one row per estimator, L and parameter group (``all``: the whole gradient), with the variance,
        bias², MSE and their standard errors (``_se``), time per estimate, cost evaluations, replicates,
        whether the estimator is unbiased, whether its mean disagrees with the reference (<NA> where not judged:
        a biased estimator, or fewer than :data:`MIN_AGREEMENT_REPLICATES` replicates), and ``error``
        (why it was not measured, empty where it was).
      recommendations: one row per L: the ``best`` estimator by MSE × time, the ``runner_up``, ``margin``
        (the runner-up's MSE × time over the best's), ``margin_z`` (that difference in standard errors) and
        ``clear`` (margin_z > 2).
      metrics: the tidy rows a run folder's metrics.csv holds (problem, estimator, num_samples, parameter,
        metric, value, std_error, replicates); ``coordinate_metrics`` those of metrics_by_coordinate.csv.
      skipped: the (estimator, L) not measured, each with its ``error``.
      reference: the reference gradient (a pytree like the parameters) or None.
      reference_se: its standard error per coordinate (None where it is exact).
      reference_source: where it came from ("given", "<estimator> at L = ..., R = ..." or "none").
      wall_time_s: the whole call's wall time.
    """

    table: pd.DataFrame
    recommendations: pd.DataFrame
    metrics: pd.DataFrame
    coordinate_metrics: pd.DataFrame
    skipped: list[dict]
    reference: PyTree | None
    reference_se: PyTree | None
    reference_source: str
    wall_time_s: float

    def __str__(self) -> str:
        lines = [f"Estimators compared in {self.wall_time_s:.1f} s; reference gradient: {self.reference_source}."]
        if self.recommendations.empty:
            lines.append("No estimator could be ranked.")
        else:
            columns = ["num_samples", "best", "runner_up", "margin", "clear", "mse", "time_per_estimate_s"]
            lines.append(self.recommendations[[c for c in columns if c in self.recommendations]].to_string(index=False))
        failed = self.table.loc[self.table["error"] != "", ["estimator", "num_samples", "error"]].drop_duplicates()
        if not failed.empty:
            lines.append("Not measured:")
            lines.extend(f"  {r.estimator} (L = {r.num_samples}): {r.error}" for r in failed.itertuples())
        flagged = self.table.loc[self.table["disagrees"].fillna(False) & (self.table["parameter"] == ALL_PARAMETERS)]
        if not flagged.empty:
            lines.append("Unbiased estimators whose mean disagrees with the reference (is an assumption broken?): "
                         + ", ".join(f"{r.estimator} (L = {r.num_samples})" for r in flagged.itertuples()))
        return "\n".join(lines)


def compare(
    objective: est.Objective,
    params: PyTree,
    key: jax.Array,
    *,
    estimators: str | Sequence[str | est.GradientEstimator] = "applicable",
    num_samples: Sequence[int] = (1, 4, 16, 64),
    budget_seconds: float = 60.0,
    replicates: int = 10_000,
    reference: PyTree | bool | None = None,
    reference_se: PyTree | None = None,
    warmup_steps: int = 50,
    round_replicates: int = ROUND_REPLICATES,
    name: str = "objective",
    progress: bool = True,
) -> Comparison:
    """Measure and rank gradient estimators on ``objective`` at ``params`` within ``budget_seconds``.

    Args:
      objective: the :class:`estimators.Objective` (plates and importance-weighted objectives included).
      params: the parameters at which the gradient is estimated.
      key: a JAX key; the same key gives the same samples.  Each estimator draws from its own stream, so the
        estimators' errors are independent.
      estimators: ``"applicable"`` (every registered estimator that serves the distribution), or a list of
        registry names and estimator objects (with options).
      num_samples: the sample counts L to compare at.
      budget_seconds: the wall time to spend, compilation and statistics included (see the module's
        description).
      replicates: the most replicates per estimator and L.
      reference: the true gradient (a pytree like ``params``) where known; None forms one from the unbiased
        estimators' measurements; False ranks without one (unbiased estimators only).
      reference_se: the standard error of a given reference, per coordinate (a pytree like ``params``).
      warmup_steps: updates a stateful estimator makes before it is measured.
      round_replicates: replicates per round of a program.
      name: the objective's name in the tables.
      progress: show a progress bar of the budget spent.

    Returns:
      a :class:`Comparison`; ``print`` it for the recommendation.
    """
    start = time.perf_counter()
    _check_arguments(num_samples, budget_seconds, replicates, round_replicates, warmup_steps, reference,
                     reference_se, params)
    given = reference is not None and reference is not False
    problem = Problem(
        name=name, description="a user's objective", objective=objective, params=params,
        exact_grad=_host_tree(reference) if given else None,
        exact_grad_se=_host_tree(reference_se) if given and reference_se is not None else None)
    candidates = _candidates(estimators)
    programs, skipped = _plan(problem, candidates, sorted(set(int(n) for n in num_samples)),
                              every_registered=isinstance(estimators, str))

    bar = tqdm(total=round(budget_seconds, 1), unit="s", desc=f"compare on {name}", disable=not progress,
               dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s{postfix}")
    deadline = start + budget_seconds
    measured = _measure_within_budget(problem, programs, key, deadline, replicates, round_replicates,
                                      warmup_steps, skipped, bar, start)
    bar.close()

    measurements = {cell: _concatenate(rounds) for cell, rounds in measured.items()}
    source, reference_estimator = ("given" if given else "none"), None
    reference_cell = None
    if reference is None:
        problem, source, reference_cell = _formed_reference(problem, measurements)
        reference_estimator = reference_cell[0].name if reference_cell else None

    rows, coordinate_rows = [], []
    for (estimator, num_samples_), measurement in measurements.items():
        cell, by_coordinate = cell_rows(problem, estimator, num_samples_, measurement)
        rows.extend(cell)
        coordinate_rows.extend(by_coordinate)
    metrics = pd.DataFrame(rows)
    if not metrics.empty and problem.exact_grad is None:
        metrics = _variance_as_mse(metrics, {e.name for e, _ in measurements if e.unbiased})
    elif not metrics.empty and reference_estimator is not None:
        # Its estimates are the reference's: measured against their own mean, their MSE would come out low
        # (by 2/R of the variance at the reference's L).  Unbiased by assumption, its MSE is its variance.
        metrics = _variance_as_mse(metrics, {reference_estimator})
    disagreeing = _disagreeing(problem, measurements, reference_cell)
    table = _table(metrics, skipped, {e.name: e.unbiased for e in candidates}, disagreeing)
    ranking = recommendations(metrics) if not metrics.empty else pd.DataFrame()
    ranking = ranking.drop(columns=["problem"], errors="ignore")
    return Comparison(table=table, recommendations=ranking, metrics=metrics,
                      coordinate_metrics=pd.DataFrame(coordinate_rows), skipped=skipped,
                      reference=problem.exact_grad, reference_se=problem.exact_grad_se, reference_source=source,
                      wall_time_s=time.perf_counter() - start)


def _check_arguments(num_samples, budget_seconds, replicates, round_replicates, warmup_steps, reference,
                     reference_se, params) -> None:
    if not num_samples or any(int(n) != n or n < 1 for n in num_samples):
        raise ValueError(f"num_samples must be positive integers, got {list(num_samples)}.")
    if not budget_seconds > 0:
        raise ValueError(f"budget_seconds must be positive, got {budget_seconds}.")
    if round_replicates < 3:
        raise ValueError(f"round_replicates must be at least 3 (a variance needs a standard error), got "
                         f"{round_replicates}.")
    if replicates < round_replicates:
        raise ValueError(f"replicates ({replicates}) must be at least round_replicates ({round_replicates}).")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be non-negative, got {warmup_steps}.")
    if reference is True:
        raise ValueError("reference is the true gradient (a pytree like params), None to form one from the unbiased "
                         "estimators, or False for none; got True.")
    if reference_se is not None and (reference is None or reference is False):
        raise ValueError("reference_se is the standard error of a given reference: pass reference as well.")
    shape = lambda tree: jax.tree_util.tree_map(np.shape, tree)
    for label, tree in (("reference", reference), ("reference_se", reference_se)):
        if tree is not None and tree is not False and (
                jax.tree_util.tree_structure(tree) != jax.tree_util.tree_structure(params)
                or shape(tree) != shape(params)):
            raise ValueError(f"{label} must be a pytree like params (the same structure and shapes): params is "
                             f"{shape(params)}, {label} {shape(tree)}.")


def _candidates(estimators) -> list[est.GradientEstimator]:
    if isinstance(estimators, str):
        if estimators != "applicable":
            raise ValueError(f"estimators must be 'applicable' or a list of names and estimators, got "
                             f"{estimators!r}.")
        return [est.get(name) for name in est.names()]
    chosen = [est.get(e) if isinstance(e, str) else e for e in estimators]
    if not chosen:
        raise ValueError("estimators is empty: give at least one, or 'applicable'.")
    return chosen


def _plan(problem: Problem, candidates, grid, every_registered: bool
          ) -> tuple[list[tuple[est.GradientEstimator, tuple[int, ...]]], list[dict]]:
    """The programs to compile, (estimator, its L values): one for the whole grid where the estimator has
    per-sample statistics, one per L otherwise; and the (estimator, L) it cannot serve, with the reason
    (of every registered estimator, only those that serve the distribution but not at some L)."""
    try:
        dist = problem.distribution()
    except Exception as error:
        raise ValueError(f"objective.distribution(params) failed: {type(error).__name__}: {error}") from error
    programs, skipped = [], []
    for estimator in candidates:
        if every_registered and estimator.supports(dist) is not None:
            continue
        usable = []
        for n in grid:
            reason = estimator.applicability(dist, n, problem.objective.batch_ndims)
            if reason is None:
                usable.append(n)
            else:
                skipped.append({"estimator": estimator.name, "num_samples": n, "error": f"not applicable: {reason}"})
        if not usable:
            continue
        try:
            shared = len(usable) > 1 and estimator.has_sample_statistics(problem.objective)
        except Exception:
            shared = False
        programs.extend([(estimator, tuple(usable))] if shared else [(estimator, (n,)) for n in usable])
    return programs, skipped


def _measure_within_budget(problem, programs, key, deadline, replicates, round_replicates, warmup_steps, skipped,
                           bar, start):
    """Compile each program and run its first round; then give rounds, by turns, to the program that has
    used the least time, until the budget or every program's replicates are spent.  Returns
    {(estimator, L): [CellMeasurement of each round]}."""
    measured: dict[tuple, list[CellMeasurement]] = {}
    compiled, spent, round_time, limit, statistics_time = [], [], [], [], []
    parameter_size = sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(problem.params))
    # The statistics of a cell (its tidy rows) are computed at the end; the budget keeps time for them.  They
    # cost a + c·R·min(R, P) (rows, then a Gram matrix of the centred estimates), a and c timed at the first
    # round's R and four times it (the round repeated), against a stand-in reference so that every
    # statistic is computed.
    timing_problem = dataclasses.replace(problem, exact_grad=_host_tree(jax.tree_util.tree_map(
        np.zeros_like, problem.params)), exact_grad_se=None)
    growth = lambda num_replicates: num_replicates * min(num_replicates, parameter_size)

    def time_statistics(estimator, measurements):
        seconds = []
        for copies in (1, 4):
            began = time.perf_counter()
            for n, m in measurements.items():
                cell_rows(timing_problem, estimator, n, _concatenate([m] * copies))
            seconds.append(time.perf_counter() - began)
        slope = max(0.0, (seconds[1] - seconds[0]) / (growth(4 * round_replicates) - growth(round_replicates)))
        return max(0.0, seconds[0] - slope * growth(round_replicates)), slope

    def reserved(changed=None):  # predicted statistics time of every program, one more round for ``changed``
        return sum(fixed + slope * growth((rounds[j] + (j == changed)) * round_replicates)
                   for j, (fixed, slope) in enumerate(statistics_time))

    def tick():  # tqdm redraws at most every 0.1 s
        bar.update(round(min(time.perf_counter() - start, bar.total), 1) - bar.n)

    for estimator, grid in programs:
        label = f"{estimator.name} L={','.join(map(str, grid))}"
        if time.perf_counter() >= deadline:
            skipped.extend({"estimator": estimator.name, "num_samples": n,
                            "error": "the time budget ran out before it was reached; raise budget_seconds or "
                                     "compare fewer estimators"} for n in grid)
            continue
        bar.set_postfix_str(label)
        try:
            program_key = _estimator_key(key, estimator)
            program = compile_cells(problem, estimator, grid, round_replicates, program_key,
                                    warmup_steps=warmup_steps, compiler_options=COMPILER_OPTIONS)
            first = program.measurements(jax.random.fold_in(program_key, 0))
            _check_finite(first)
        except Exception as error:  # one estimator's failure is a row, not the end of the comparison
            skipped.extend({"estimator": estimator.name, "num_samples": n, "error": _reason(error)} for n in grid)
            tick()
            continue
        for n, m in first.items():
            measured[(estimator, n)] = [m]
        statistics_time.append(time_statistics(estimator, first))
        compiled.append((program, program_key))
        # Compiling and warming up do not count against a program's turns: every program starts at its
        # first round's run time.
        round_time.append(max(m.run_time_s for m in first.values()) if len(first) == 1 else
                          sum(m.run_time_s for m in first.values()))
        spent.append(round_time[-1])
        host_cap = MAX_HOST_ELEMENTS // max(1, parameter_size * len(grid))
        limit.append(max(1, min(replicates, host_cap) // round_replicates))
        tick()

    rounds = [1] * len(compiled)
    deadline -= reserved()  # the first rounds' statistics
    while compiled:
        open_programs = [i for i in range(len(compiled)) if rounds[i] < limit[i]]
        if not open_programs:
            break
        i = min(open_programs, key=lambda j: spent[j])
        more_statistics = reserved(changed=i) - reserved()
        if time.perf_counter() + round_time[i] + more_statistics > deadline:
            limit[i] = rounds[i]  # its next round, and the statistics it adds, would overrun the budget
            continue
        program, program_key = compiled[i]
        began = time.perf_counter()
        try:
            more = program.measurements(jax.random.fold_in(program_key, rounds[i]))
            _check_finite(more)
        except Exception as error:  # a later round's failure (a non-finite estimate) voids the earlier ones too
            limit[i] = rounds[i]
            for n in program.layout.grid or (program.layout.num_samples,):
                measured.pop((program.estimator, n), None)
                skipped.append({"estimator": program.estimator.name, "num_samples": n,
                                "error": f"{_reason(error)} (in round {rounds[i] + 1})"})
            continue
        elapsed = time.perf_counter() - began
        round_time[i] = 0.5 * (round_time[i] + elapsed)
        spent[i] += elapsed
        rounds[i] += 1
        deadline -= more_statistics
        for n, m in more.items():
            measured[(program.estimator, n)].append(m)
        tick()
    return measured


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")


def _estimator_key(key: jax.Array, estimator: est.GradientEstimator) -> jax.Array:
    """Each estimator's own stream, so that the estimators' errors are independent (the margins between them
    and their bias against a formed reference assume it); the same for its every L, as in the benchmark."""
    return jax.random.fold_in(key, zlib.crc32(repr(estimator).encode()) & 0x7FFFFFFF)


def _check_finite(measurements: dict[int, CellMeasurement]) -> None:
    for n, m in measurements.items():
        leaves = jax.tree_util.tree_leaves(m.grads)
        if not all(np.isfinite(leaf).all() for leaf in leaves):
            raise FloatingPointError(f"non-finite gradient estimates at L = {n}")


def _concatenate(rounds: list[CellMeasurement]) -> CellMeasurement:
    """One measurement of all rounds' replicates: their estimates, the sum of their run times."""
    return dataclasses.replace(
        rounds[0],
        grads=jax.tree_util.tree_map(lambda *leaves: np.concatenate(leaves), *[m.grads for m in rounds]),
        values=np.concatenate([m.values for m in rounds]),
        run_time_s=sum(m.run_time_s for m in rounds),
    )


def _formed_reference(problem: Problem, measurements) -> tuple[Problem, str, tuple | None]:
    """The problem with a reference gradient formed from the unbiased estimator whose mean has the smallest
    standard error (its largest L), where it came from, and that cell, (estimator, L); the problem unchanged
    where nothing unbiased was measured."""
    best = None
    for (estimator, n), m in measurements.items():
        if not estimator.unbiased:
            continue
        leaves = jax.tree_util.tree_leaves(m.grads)
        num_replicates = leaves[0].shape[0]
        mean_variance = sum(leaf.var(axis=0, ddof=1).sum() for leaf in leaves) / num_replicates
        if best is None or mean_variance < best[0] or (mean_variance == best[0] and n > best[2]):
            best = (mean_variance, estimator, n, m, num_replicates)
    if best is None:
        return problem, "none (no unbiased estimator was measured)", None
    _, estimator, n, m, num_replicates = best
    mean = jax.tree_util.tree_map(lambda leaf: leaf.mean(axis=0), m.grads)
    se = jax.tree_util.tree_map(lambda leaf: leaf.std(axis=0, ddof=1) / np.sqrt(num_replicates), m.grads)
    source = f"the mean of {estimator.name} at L = {n} over R = {num_replicates} replicates"
    return dataclasses.replace(problem, exact_grad=mean, exact_grad_se=se), source, (estimator, n)


def _variance_as_mse(metrics: pd.DataFrame, estimators: set[str]) -> pd.DataFrame:
    """The rows of ``estimators`` (unbiased ones) with their variance as their MSE and no bias²: without a
    reference, or for the estimator whose mean is the reference."""
    selected = metrics["estimator"].isin(estimators)
    kept = metrics[~(selected & metrics["metric"].isin(["mse", "bias_squared"]))]
    variance = metrics[selected & (metrics["metric"] == "variance")]
    return pd.concat([kept, variance.assign(metric="mse")], ignore_index=True)


def _disagreeing(problem: Problem, measurements, reference_cell=None) -> dict[tuple[str, int], bool]:
    """For each (estimator, L) of an unbiased estimator with at least :data:`MIN_AGREEMENT_REPLICATES`
    replicates, whether its mean differs from the reference, by a test that holds whatever the estimates'
    tails (given their variances, estimated from the replicates): per coordinate, the median of 20 block means
    (:func:`~experiments.engine.statistics.median_of_means`) misses the estimator's expectation by d or more
    with probability at most p(d) (Chebyshev per block, a binomial tail over the blocks).  Against a reference
    formed from another estimator's replicates (``reference_cell``), both medians are bounded at d/2, so
    P(|difference| ≥ d) ≤ p₁(d/2) + p₂(d/2); against a given reference with a standard error s, Chebyshev
    bounds its miss at d/2 by 4s²/d².  A cell is flagged where some coordinate's bound falls below the
    family-wise :data:`DISAGREEMENT_FALSE_ALARM` over every coordinate of every judged cell (Bonferroni).
    The test has little power (it sees a bias of about one standard deviation of a single estimate at
    R = 1,000): it is for assumptions that fail, which make large biases."""
    if problem.exact_grad is None:
        return {}
    flat = lambda tree: np.concatenate([np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(tree)])
    as_matrix = lambda m: np.concatenate([leaf.reshape(leaf.shape[0], -1)
                                          for leaf in jax.tree_util.tree_leaves(m.grads)], axis=1)
    cells = {cell: m for cell, m in measurements.items()
             if cell[0].unbiased and len(m.values) >= MIN_AGREEMENT_REPLICATES}
    if not cells:
        return {}
    level = DISAGREEMENT_FALSE_ALARM / (len(cells) * flat(problem.exact_grad).size)
    if reference_cell is not None:  # the median of means of the estimates the reference averages
        estimates = as_matrix(measurements[reference_cell])
        reference = median_of_means(estimates)
        reference_variance, reference_replicates = estimates.var(axis=0, ddof=1), len(estimates)
    else:
        reference = flat(problem.exact_grad)
        reference_s2 = None if problem.exact_grad_se is None else flat(problem.exact_grad_se) ** 2
    scale = np.max(np.abs(flat(problem.exact_grad)), initial=1e-30)
    judged = {}
    for (estimator, n), m in cells.items():
        estimates = as_matrix(m)
        distance = np.abs(median_of_means(estimates) - reference)
        distance = np.where(distance <= 1e-5 * scale, 0.0, distance)  # float32 rounding of an exact estimate
        own = lambda d, estimates=estimates: median_of_means_p_value(d, estimates.var(axis=0, ddof=1), len(estimates))
        if reference_cell is not None:
            bound = own(distance / 2) + median_of_means_p_value(distance / 2, reference_variance, reference_replicates)
        elif reference_s2 is not None:
            with np.errstate(divide="ignore"):
                bound = own(distance / 2) + np.where(distance > 0, 4 * reference_s2 / distance**2, 1.0)
        else:
            bound = own(distance)
        judged[(estimator.name, n)] = bool((bound < level).any())
    return judged


def _table(metrics: pd.DataFrame, skipped: list[dict], unbiased: dict[str, bool],
           disagreeing: dict[tuple[str, int], bool]):
    columns = ["estimator", "num_samples", "parameter", "unbiased", "variance", "variance_se", "bias_squared",
               "bias_squared_se", "mse", "mse_se", "time_per_estimate_s", "cost_evaluations", "replicates",
               "compile_time_s", "disagrees", "error"]
    if metrics.empty:
        table = pd.DataFrame(columns=["estimator", "num_samples", "parameter"])
    else:
        table = wide(metrics.drop(columns=["problem"]))
        costs = table[table["parameter"] == ALL_PARAMETERS][
            ["estimator", "num_samples", "time_per_estimate_s", "cost_evaluations", "compile_time_s"]].dropna()
        metric_columns = [c for c in ("variance", "variance_se", "bias_squared", "bias_squared_se", "mse", "mse_se")
                          if c in table]
        table = table.dropna(subset=["variance"])[["estimator", "num_samples", "parameter", "replicates",
                                                    *metric_columns]]
        table = table.merge(costs, on=["estimator", "num_samples"], how="left")
    failed = pd.DataFrame(skipped, columns=["estimator", "num_samples", "error"]).assign(parameter=ALL_PARAMETERS)
    table = pd.concat([table.assign(error=""), failed], ignore_index=True)
    table["unbiased"] = table["estimator"].map(unbiased).astype(bool)
    table["disagrees"] = pd.array([disagreeing.get((e, n)) for e, n in zip(table["estimator"], table["num_samples"])],
                                  dtype="boolean")  # <NA>: not judged
    for column in columns:
        if column not in table:
            table[column] = np.nan
    order = {name: i for i, name in enumerate(dict.fromkeys(table["estimator"]))}
    table = table.sort_values(["num_samples", "parameter", "estimator"], key=lambda s: s.map(order)
                              if s.name == "estimator" else s, kind="stable")
    return table[columns].reset_index(drop=True)


def _host_tree(tree: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf, dtype=np.float64), tree)
