"""What every measuring experiment shares: the (problem, estimator, L) cells, which of them apply, and
the loop that measures them into a run folder."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
from tqdm.auto import tqdm

import estimators as est
from experiments import problems as problem_registry
from experiments.engine.distributed import is_writer
from experiments.engine.measure import CellMeasurement, count_compilations, measure_cell, measure_grid, replicate_mesh
from experiments.engine.results import ResumeError, RunFolder, environment, estimator_properties, git_state
from experiments.engine.settings import MeasurementSettings
from experiments.engine.tidy import cell_rows
from experiments.problems import Problem


def check_names(problems: Sequence[str], estimators: Sequence[str], num_samples: Sequence[int]) -> None:
    """Unknown names and bad sample counts raise ValueError, naming the known ones."""
    for name in problems:
        if name not in problem_registry.names():
            problem_registry.get(name)  # raises, naming the known problems (or builds a sized one)
    if not problems:
        raise ValueError("--problems needs at least one value.")
    check_estimators(estimators, num_samples)


def check_estimators(estimators: Sequence[str], num_samples: Sequence[int]) -> None:
    """Unknown estimator names and bad sample counts raise ValueError, naming the known ones."""
    for name in estimators:
        if name not in est.names():
            est.get(name)  # raises, naming the known estimators
    if not estimators or not num_samples:
        raise ValueError("--estimators and --num-samples each need at least one value.")
    bad = [n for n in num_samples if int(n) != n or n < 1]
    if bad:
        raise ValueError(f"--num-samples must be positive integers, got {bad}.")


class PlanningError(ValueError):
    """The selected problems, estimators and options leave nothing to measure."""


class Cell(NamedTuple):
    problem: Problem
    estimator: est.GradientEstimator
    num_samples: int
    labels: dict  #: extra columns of the cell's rows, such as {"temperature": 0.5}
    replicates: int | None = None  #: this cell's R where it differs from the run's ``replicates``


def applicable_pairs(
    problem_names, estimators, built: dict[str, Problem] | None = None
) -> tuple[list[tuple[Problem, est.GradientEstimator]], list[dict]]:
    """The (problem, estimator) pairs that apply, and those skipped with the reason.  Problems are taken
    from ``built`` where given (the same objects, so the same compiled programs, across calls)."""
    pairs, skipped = [], []
    for problem_name in problem_names:
        problem = built[problem_name] if built is not None else problem_registry.get(problem_name)
        for estimator in estimators:
            reason = estimator.supports(problem.distribution())
            if reason is None:
                pairs.append((problem, estimator))
            else:
                skipped.append({"problem": problem_name, "estimator": estimator.name, "reason": reason})
    if not pairs:
        raise PlanningError(
            "No selected estimator applies to any selected problem: "
            + "; ".join(f"{s['estimator']} on {s['problem']}: {s['reason']}" for s in skipped)
        )
    return pairs, skipped


def sweep_cells(labelled_problems: Sequence[tuple[dict, Problem]], estimators: Sequence[est.GradientEstimator],
                num_samples: Sequence[int]) -> tuple[list[Cell], list[dict]]:
    """The cells of a sweep over problems built at several settings: every (labels, problem) pair with
    every estimator that applies and every L it can use; the labels (``{"mu": 0.5}``) become columns."""
    cells, skipped = [], []
    for labels, problem in labelled_problems:
        dist = problem.distribution()
        for estimator in estimators:
            for n in sorted(set(num_samples)):
                reason = estimator.applicability(dist, n, problem.objective.batch_ndims)
                if reason is None:
                    cells.append(Cell(problem, estimator, n, dict(labels)))
                    continue
                entry = {"problem": problem.name, "estimator": estimator.name, "num_samples": n, "reason": reason}
                if entry not in skipped:  # the same problem name at every setting of the sweep
                    skipped.append(entry)
    if not cells:
        raise PlanningError(
            "No selected estimator applies to any selected problem: "
            + "; ".join(f"{s['estimator']} on {s['problem']}: {s['reason']}" for s in skipped)
        )
    return cells, skipped


def run_sweep(experiment: str, config: MeasurementSettings, build_problems, label_column: str,
              device: jax.Device | None, progress: bool = True, resume=None) -> Path:
    """Run a sweep: ``build_problems()`` gives the (labels, problem) pairs, measured with every estimator
    of ``config.estimators`` that applies at every L of ``config.num_samples``; the labels' column is
    ``label_column``.  Returns the finished run folder."""
    config.validate()
    device = device or jax.devices()[0]
    with jax.default_device(device):
        estimators = [est.get(name) for name in config.estimators]
        cells, skipped = sweep_cells(build_problems(), estimators, config.num_samples)
        return run_cells(experiment, config, as_json(config), cells, skipped, device, progress,
                         label_columns=[label_column], resume=resume)


def cell_replicates(settings: MeasurementSettings, cell: Cell) -> int:
    """R for this cell: the requested replicates, fewer where they would exceed the evaluation budget."""
    per_estimate = cell.problem.cost_evaluations(cell.estimator, cell.num_samples)
    if cell.estimator.stateful and settings.warmup == "per_replicate":
        per_estimate *= settings.warmup_steps + 1
    affordable = max(settings.min_replicates, settings.max_cost_evaluations // per_estimate)
    return int(min(cell.replicates or settings.replicates, affordable))


def program_groups(settings: MeasurementSettings, cells: Sequence[Cell]) -> dict[int, tuple[list[int], int]]:
    """The cells measured together, by their first cell's index: ``{index: (cell indices, R)}``.

    With ``settings.share_programs``, the cells of an estimator with per-sample statistics
    (:meth:`~estimators.GradientEstimator.has_sample_statistics`; a stateful one where it warms up on a
    shared chain) that differ only in L form one group, measured by one program from
    shared per-sample statistics (:func:`measure_grid`) at one R, the smallest of their
    :func:`cell_replicates` (the largest L's, where the evaluation budget binds); every other cell is a
    group of its own.  The groups depend on the planned cells alone, so a resumed run measures the same
    estimates."""
    members: dict[tuple, list[int]] = {}
    for index, cell in enumerate(cells):
        shared = (settings.share_programs and cell.estimator.has_sample_statistics(cell.problem.objective)
                  and not (cell.estimator.stateful and settings.warmup == "per_replicate"))
        identity = ((id(cell.problem), id(cell.estimator), tuple(cell.labels.items()), cell.replicates) if shared
                    else index)
        members.setdefault(identity, []).append(index)
    return {group[0]: (group, min(cell_replicates(settings, cells[i]) for i in group)) for group in members.values()}


def measure_cells(settings: MeasurementSettings, cell: Cell, grid: Sequence[int], replicates: int, key: jax.Array,
                  mesh) -> dict[int, CellMeasurement]:
    """The measurements of ``cell``'s problem and estimator at every L of ``grid``: one program over the grid
    (:func:`measure_grid`) for several L, :func:`measure_cell` for one; within ``settings``' time budget."""
    budget = {"max_seconds": settings.max_seconds_per_cell, "min_replicates": settings.min_replicates}
    if len(grid) > 1:
        return measure_grid(cell.problem, cell.estimator, grid, replicates, key, settings.chunk_elements,
                            settings.warmup_steps, mesh, settings.compiler_options, **budget)
    return {grid[0]: measure_cell(cell.problem, cell.estimator, grid[0], replicates, key, settings.chunk_elements,
                                  settings.warmup_steps, settings.warmup, mesh, settings.compiler_options, **budget)}


def devices_for(settings: MeasurementSettings, device: jax.Device) -> list:
    """The devices a run splits its replicates across: all of ``device``'s platform (on every host),
    or the first ``settings.num_devices``; a clear error if there are fewer."""
    available = jax.devices(device.platform)
    wanted = settings.num_devices or len(available)
    if wanted > len(available):
        raise ValueError(f"--num-devices {wanted}: JAX sees {len(available)} {device.platform.upper()} device(s). "
                         "On CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N host devices.")
    return available[:wanted]


#: Settings that change how a run is executed, not what it measures: a resumed run may change them.
EXECUTION_SETTINGS = ("device", "num_devices", "figures")
#: Entries a run adds to its config.json as it goes.
RUN_RECORDS = ("run_id", "experiment", "skipped", "device_used", "devices_used", "estimator_properties",
               "wall_time_s", "cells", "compilations", "resumed")


def run_cells(experiment: str, settings: MeasurementSettings, config: dict, cells: list[Cell], skipped: list[dict],
              device: jax.Device, progress: bool = True, label_columns: Sequence[str] = (),
              resume: str | Path | None = None, snr: bool = False) -> Path:
    """Measure every cell into a new run folder (or, with ``resume``, the cells an interrupted run at
    that ``.partial`` folder did not finish); return the finished folder (the CLI draws its figures).
    ``snr``: add each parameter group's signal-to-noise ratio to the rows (:func:`cell_rows`)."""
    mesh = replicate_mesh(devices_for(settings, device))
    devices = [str(d) for d in mesh.devices.flat]
    if resume is None:
        # On several hosts every process computes its devices' share; process 0 alone keeps the results.
        output_dir = settings.output_dir if is_writer() else tempfile.mkdtemp(prefix="worker-results-")
        folder = RunFolder(output_dir, experiment, config, environment(settings.seed), label_columns)
        folder.update_config(skipped=skipped, device_used=str(device), devices_used=devices,
                             estimator_properties=estimator_properties(cell.estimator for cell in cells))
        done = {}
    else:
        folder = RunFolder.reopen(resume, label_columns)
        done = check_resumable(folder, config, cells)
        started = environment(settings.seed)["started_utc"]
        folder.update_config(resumed=[*folder.config.get("resumed", []), {
            "started_utc": started, "cells_already_done": len(done), "devices_used": devices}])
    key = jax.random.key(settings.seed)
    start = time.perf_counter()
    try:
        bar = tqdm(list(enumerate(cells)), desc=experiment, unit="cell", disable=not progress, dynamic_ncols=True)
        groups = program_groups(settings, cells)
        with count_compilations() as compilations:
            for index, cell in bar:
                if index not in groups:  # measured with the first cell of its group
                    continue
                members, replicates = groups[index]
                members = [i for i in members if i not in done]
                if not members:
                    continue
                grid = [cells[i].num_samples for i in members]
                labels = "".join(f" {k}={v}" for k, v in cell.labels.items())
                bar.set_postfix_str(f"{cell.problem.name} {cell.estimator.name}{labels} "
                                    f"L={','.join(map(str, grid))}")
                measurements = measure_cells(settings, cell, grid, replicates, key, mesh)
                for i in members:
                    member = cells[i]
                    folder.append(*cell_rows(member.problem, member.estimator, member.num_samples,
                                             measurements[member.num_samples], member.labels, snr), index=i)
            bar.close()
            total_compilations = compilations()
        folder.update_config(wall_time_s=round(time.perf_counter() - start, 3), cells=len(cells),
                             compilations=total_compilations)
        folder.consolidate()
    except BaseException:
        print(f"\n{experiment}: stopped before the end; the finished cells are in {folder.path} "
              f"(python -m experiments.run {experiment} --resume {folder.path} continues it)", flush=True)
        raise
    return folder.finish()


def check_resumable(folder: RunFolder, config: dict, cells: list[Cell]) -> dict[int, dict]:
    """The finished cells of an interrupted run, after checking that continuing it with this code and
    ``config`` measures the same cells in the same way; a ValueError naming the difference otherwise."""
    stored = {k: v for k, v in folder.config.items() if k not in RUN_RECORDS and k not in EXECUTION_SETTINGS}
    wanted = {k: v for k, v in json.loads(json.dumps(config, default=str)).items() if k not in EXECUTION_SETTINGS}
    if stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise ResumeError(f"{folder.path} was started with other settings ({', '.join(changed)}); --resume continues a "
                         "run with the settings in its config.json.")
    started_at, now = folder.env.get("git_commit"), git_state()["git_commit"]
    if started_at != now:
        raise ResumeError(f"{folder.path} was started at commit {started_at}, and this code is {now}: its cells "
                         "would mix two versions. Resume with the same code, or start a new run.")
    done = folder.completed()
    for index, identity in done.items():
        if index >= len(cells):
            raise ResumeError(f"{folder.path} has a cell {index} that this run does not plan; start a new run.")
        cell = cells[index]
        planned = {"problem": cell.problem.name, "estimator": cell.estimator.name, **cell.labels,
                   "num_samples": cell.num_samples}
        if any(str(planned.get(k)) != str(v) and not _same_number(planned.get(k), v) for k, v in identity.items()):
            raise ResumeError(f"{folder.path}: finished cell {index} is {identity}, but this run plans {planned} "
                             "there; start a new run.")
    return done


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def as_json(config) -> dict:
    payload = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in payload.items()}
