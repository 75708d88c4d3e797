"""The headline experiment: bias, variance, MSE and cost of each estimator against the sample count L.

For every applicable (problem, estimator) pair and every L of the grid, R replicate L-sample estimates
are drawn (replicate r with key ``fold_in(seed_key, r)``, sample i with ``fold_in(replicate_key, i)``,
so all cells share common random numbers), summarized on the host in float64, and written as tidy rows.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

import estimators as est
from experiments import problems as problem_registry
from experiments.measure import DEFAULT_CHUNK_ELEMENTS, DEFAULT_WARMUP_STEPS, CellMeasurement, measure_cell
from experiments.problems import Problem
from experiments.results import RunFolder, environment
from experiments.statistics import coordinate_summary, group_summary

NAME = "variance_vs_L"
DEFAULT_PROBLEMS = tuple(problem_registry.names())
DEFAULT_NUM_SAMPLES = (1, 4, 16, 64, 256, 1024)
DEFAULT_REPLICATES = 10_000
#: The ``parameter`` of rows that describe the whole gradient (all parameter groups together) and the
#: cell's cost metrics.
ALL_PARAMETERS = "all"


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a run; written to config.json."""

    problems: Sequence[str] = DEFAULT_PROBLEMS
    estimators: Sequence[str] = tuple(est.names())
    num_samples: Sequence[int] = DEFAULT_NUM_SAMPLES
    replicates: int = DEFAULT_REPLICATES
    seed: int = 0
    output_dir: str = "results"
    device: str = "auto"
    precision: str = "float32"
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    figures: bool = True

    def validate(self) -> None:
        """Raise ValueError, naming the option and a fix, for any value the run cannot use."""
        for name in self.problems:
            if name not in problem_registry.names():
                problem_registry.get(name)  # raises, naming the known problems
        for name in self.estimators:
            if name not in est.names():
                est.get(name)  # raises, naming the known estimators
        if not self.problems or not self.estimators or not self.num_samples:
            raise ValueError("--problems, --estimators and --num-samples each need at least one value.")
        bad = [n for n in self.num_samples if int(n) != n or n < 1]
        if bad:
            raise ValueError(f"--num-samples must be positive integers, got {bad}.")
        if self.replicates < 2:
            raise ValueError(f"--replicates must be at least 2 to measure a variance, got {self.replicates}.")
        if self.chunk_elements < 1:
            raise ValueError(f"chunk_elements must be positive, got {self.chunk_elements}.")
        if self.precision not in ("float32", "float64"):
            raise ValueError(f"--precision must be float32 or float64, got {self.precision!r}.")


def parameter_groups(params) -> list[tuple[str, list[int]]]:
    """(name, leaf indices) for each parameter leaf, named by its path, and ``all`` for all of them."""
    paths = [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in
             jax.tree_util.tree_leaves_with_path(params)]
    return [(path, [i]) for i, path in enumerate(paths)] + [(ALL_PARAMETERS, list(range(len(paths))))]


def cell_rows(problem: Problem, estimator: est.GradientEstimator, num_samples: int, m: CellMeasurement):
    """The tidy rows of one cell: per parameter group, and per coordinate."""
    grads = jax.tree_util.tree_leaves(m.grads)
    num_replicates = grads[0].shape[0]
    flat = lambda leaves: np.concatenate([x.reshape(num_replicates, -1) for x in leaves], axis=1)  # noqa: E731
    flat_exact = lambda leaves: np.concatenate([np.ravel(x) for x in leaves])  # noqa: E731
    leaves_or_none = lambda tree: None if tree is None else jax.tree_util.tree_leaves(tree)  # noqa: E731
    exact = leaves_or_none(problem.exact_grad)
    exact_variance = leaves_or_none(problem.exact_variance(estimator, num_samples))
    exact_mean = leaves_or_none(problem.exact_mean(estimator))

    key = {"problem": problem.name, "estimator": estimator.name, "num_samples": num_samples}
    rows, coordinate_rows = [], []

    def row(parameter, metric, value, std_error, **extra):
        return {**key, "parameter": parameter, **extra, "metric": metric, "value": value,
                "std_error": std_error, "replicates": num_replicates}

    for parameter, leaves in parameter_groups(problem.params):
        group = flat([grads[i] for i in leaves])
        group_exact = None if exact is None else flat_exact([exact[i] for i in leaves])
        for metric, (value, se) in group_summary(group, group_exact).items():
            rows.append(row(parameter, metric, value, se))
        if exact_variance is not None:
            trace = flat_exact([exact_variance[i] for i in leaves]).sum()
            rows.append(row(parameter, "exact_variance", float(trace), 0.0))
        if exact_mean is not None and exact is not None:
            bias = flat_exact([exact_mean[i] for i in leaves]) - group_exact
            rows.append(row(parameter, "exact_bias_squared", float(bias @ bias), 0.0))
        if parameter == ALL_PARAMETERS:
            continue
        coordinates = coordinate_summary(group, group_exact)
        if group_exact is not None:
            coordinates["exact_grad"] = (group_exact, np.zeros_like(group_exact))
        if exact_variance is not None:
            values = flat_exact([exact_variance[i] for i in leaves])
            coordinates["exact_variance"] = (values, np.zeros_like(values))
        for metric, (values, ses) in coordinates.items():
            for coordinate, (value, se) in enumerate(zip(values, ses)):
                coordinate_rows.append(row(parameter, metric, float(value), float(se), coordinate=coordinate))

    cost = {
        "objective": (float(m.values.mean()), float(m.values.std(ddof=1) / np.sqrt(num_replicates))),
        "time_per_estimate_s": (m.run_time_s / num_replicates, 0.0),
        "compile_time_s": (m.compile_time_s, 0.0),
        "cost_evaluations": (float(estimator.cost_evaluations(num_samples, problem.distribution())), 0.0),
    }
    rows.extend(row(ALL_PARAMETERS, metric, value, se) for metric, (value, se) in cost.items())
    return rows, coordinate_rows


def plan(config: Config) -> tuple[list[tuple[Problem, est.GradientEstimator]], list[dict]]:
    """The (problem, estimator) pairs to measure, and those skipped with the reason."""
    pairs, skipped = [], []
    for problem_name in config.problems:
        problem = problem_registry.get(problem_name)
        for estimator_name in config.estimators:
            estimator = est.get(estimator_name)
            reason = estimator.incompatibility(problem.distribution())
            if reason is None:
                pairs.append((problem, estimator))
            else:
                skipped.append({"problem": problem_name, "estimator": estimator_name, "reason": reason})
    if not pairs:
        raise ValueError(
            "No selected estimator applies to any selected problem: "
            + "; ".join(f"{s['estimator']} on {s['problem']}: {s['reason']}" for s in skipped)
        )
    return pairs, skipped


def run(config: Config, device: jax.Device | None = None, progress: bool = True) -> Path:
    """Measure every cell of ``config`` and write the run folder; return its path."""
    config.validate()
    device = device or jax.devices()[0]
    with jax.default_device(device):
        pairs, skipped = plan(config)
        cells = [(p, e, n) for p, e in pairs for n in sorted(set(config.num_samples)) if n >= e.min_num_samples]
        folder = RunFolder(config.output_dir, NAME, _as_json(config), environment(config.seed))
        folder.update_config(skipped=skipped, device_used=str(device))
        key = jax.random.key(config.seed)
        start = time.perf_counter()
        try:
            bar = tqdm(cells, desc=NAME, unit="cell", disable=not progress, dynamic_ncols=True)
            for problem, estimator, num_samples in bar:
                bar.set_postfix_str(f"{problem.name} {estimator.name} L={num_samples}")
                measurement = measure_cell(
                    problem, estimator, num_samples, config.replicates, key, config.chunk_elements,
                    config.warmup_steps,
                )
                folder.append(*cell_rows(problem, estimator, num_samples, measurement))
            bar.close()
            folder.update_config(wall_time_s=round(time.perf_counter() - start, 3), cells=len(cells))
            if config.figures:
                from analysis.figures import save_run_figures

                save_run_figures(folder.path)
        except BaseException:
            print(f"\n{NAME}: stopped before the end; the finished cells are in {folder.path}", flush=True)
            raise
        return folder.finish()


def _as_json(config: Config) -> dict:
    payload = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in payload.items()}
