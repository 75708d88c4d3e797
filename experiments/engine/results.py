"""Run folders: ``<output>/<experiment>/<run_id>/`` with metrics, config, environment and figures.

A run is written into ``<run_id>.partial/`` and renamed to ``<run_id>/`` only once every cell is
written, so a folder without the suffix is always complete (the command line then draws its figures
into ``figures/``).  This module owns the layout: the writer (:class:`RunFolder`) and the reader
(:func:`load_run`) are side by side.  While it runs, each finished
cell's rows go to their own files, ``cells/<index>.csv`` (and ``<index>.by_coordinate.csv``), each
written under a temporary name and renamed, so no half-written file is ever read as a result; an
interrupted run keeps every finished cell, and :meth:`RunFolder.reopen` continues it.  At the end the
cell files become ``metrics.csv`` and ``metrics_by_coordinate.csv``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd

METRICS_FILE = "metrics.csv"
COORDINATE_METRICS_FILE = "metrics_by_coordinate.csv"
CONFIG_FILE = "config.json"
ENV_FILE = "env.json"
FIGURES_DIR = "figures"
CELLS_DIR = "cells"
PARTIAL_SUFFIX = ".partial"

#: Columns of metrics.csv, in order; an experiment's label columns (such as ``temperature``) go after
#: ``estimator``, and metrics_by_coordinate.csv adds ``coordinate`` after ``parameter``.
METRIC_COLUMNS = ["problem", "estimator", "num_samples", "parameter", "metric", "value", "std_error", "replicates"]
COORDINATE_METRIC_COLUMNS = METRIC_COLUMNS[:4] + ["coordinate"] + METRIC_COLUMNS[4:]


def metric_columns(label_columns=(), by_coordinate: bool = False) -> list[str]:
    """The columns of metrics.csv (or metrics_by_coordinate.csv) with the experiment's label columns."""
    columns = COORDINATE_METRIC_COLUMNS if by_coordinate else METRIC_COLUMNS
    return columns[:2] + list(label_columns) + columns[2:]


#: The project's root: experiments/engine/results.py is two folders below it.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def git_state(directory: Path = _SOURCE_ROOT) -> dict:
    """The commit of the source tree and whether it has uncommitted changes (None outside git)."""

    def git(*args):
        result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
        return result.stdout.strip() if result.returncode == 0 else None

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, status = None, None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def environment(seed: int) -> dict:
    """What env.json records: code version, library versions, backend, devices, precision, seed."""
    import jaxlib

    devices = jax.devices()
    return {
        **git_state(),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "x64": bool(jax.config.jax_enable_x64),
        #: Where compiled programs were cached (a run that found its programs there compiled none).
        "compilation_cache": jax.config.jax_compilation_cache_dir,
        "seed": seed,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def estimator_properties(estimators) -> dict:
    """What config.json records of each measured estimator, in the run's order, so that analysis needs
    nothing but the run folder: whether it is unbiased by design and whether it keeps state."""
    properties = {}
    for estimator in estimators:
        properties.setdefault(
            estimator.name, {"unbiased": bool(estimator.unbiased), "stateful": bool(estimator.stateful)}
        )
    return properties


class ResumeError(ValueError):
    """An interrupted run cannot be continued as asked (not a partial run, other settings, other code)."""


def _write_json(path: Path, payload: dict) -> None:
    _write_atomically(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see all or nothing."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _cell_file(index: int, by_coordinate: bool = False) -> str:
    return f"{index:05d}.by_coordinate.csv" if by_coordinate else f"{index:05d}.csv"


def read_cells(path: Path, by_coordinate: bool = False) -> pd.DataFrame | None:
    """The rows of the finished cells of a partial run folder, in cell order (None without cells)."""
    folder = Path(path) / CELLS_DIR
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("[0-9]" * 5 + (".by_coordinate.csv" if by_coordinate else ".csv")))
    frames = [pd.read_csv(f) for f in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class RunFolder:
    """The folder of one run while it is written; :meth:`finish` makes it a complete run."""

    def __init__(self, output_dir: Path | str, experiment: str, config: dict, env: dict, label_columns=()):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        commit = env.get("git_commit")
        base_id = f"{stamp}-{commit[:7]}" if commit else stamp
        parent = Path(output_dir) / experiment
        parent.mkdir(parents=True, exist_ok=True)
        run_id, attempt = base_id, 1
        while (parent / run_id).exists() or (parent / (run_id + PARTIAL_SUFFIX)).exists():
            attempt += 1
            run_id = f"{base_id}-{attempt}"
        self.run_id = run_id
        self.final_path = parent / run_id
        self.path = parent / (run_id + PARTIAL_SUFFIX)
        self.path.mkdir()
        (self.path / FIGURES_DIR).mkdir()
        (self.path / CELLS_DIR).mkdir()
        self.columns = metric_columns(label_columns), metric_columns(label_columns, by_coordinate=True)
        self.config = {**config, "run_id": run_id, "experiment": experiment}
        self.env = env
        self.next_index = 0
        _write_json(self.path / CONFIG_FILE, self.config)
        _write_json(self.path / ENV_FILE, env)

    @classmethod
    def reopen(cls, path: Path | str, label_columns=()) -> RunFolder:
        """The interrupted run at ``path`` (a ``.partial`` folder), to be continued."""
        path = Path(path)
        if not path.name.endswith(PARTIAL_SUFFIX) or not (path / CONFIG_FILE).is_file():
            raise ResumeError(f"{path} is not an interrupted run: --resume takes a results/<experiment>/<run_id>"
                             f"{PARTIAL_SUFFIX} folder.")
        folder = cls.__new__(cls)
        folder.path = path
        folder.final_path = path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
        folder.config = json.loads((path / CONFIG_FILE).read_text())
        folder.env = json.loads((path / ENV_FILE).read_text())
        folder.run_id = folder.config["run_id"]
        folder.columns = metric_columns(label_columns), metric_columns(label_columns, by_coordinate=True)
        (path / CELLS_DIR).mkdir(exist_ok=True)
        (path / FIGURES_DIR).mkdir(exist_ok=True)
        done = folder.completed()
        folder.next_index = max(done, default=-1) + 1
        return folder

    def completed(self) -> dict[int, dict]:
        """The finished cells: index → the identifying columns of the cell's first row."""
        done = {}
        for file in sorted((self.path / CELLS_DIR).glob("[0-9]" * 5 + ".csv")):
            first = pd.read_csv(file, nrows=1)
            identity = {c: first[c].iloc[0] for c in self.columns[0] if c in first and c not in (
                "parameter", "metric", "value", "std_error", "replicates")}
            done[int(file.name[:5])] = identity
        return done

    def append(self, rows: list[dict], coordinate_rows: list[dict], index: int | None = None) -> None:
        """Write one finished cell's rows (cell ``index``, or the next): the per-coordinate file first,
        then the cell's file, each atomically, so a cell file on disk means a finished cell."""
        index = self.next_index if index is None else index
        for by_coordinate, columns, records in ((True, self.columns[1], coordinate_rows),
                                                 (False, self.columns[0], rows)):
            frame = pd.DataFrame.from_records(records, columns=columns)
            _write_atomically(self.path / CELLS_DIR / _cell_file(index, by_coordinate), frame.to_csv(index=False))
        self.next_index = max(self.next_index, index + 1)

    def update_config(self, **entries) -> None:
        self.config.update(entries)
        _write_json(self.path / CONFIG_FILE, self.config)

    def consolidate(self) -> None:
        """Gather the cell files into metrics.csv and metrics_by_coordinate.csv (each atomically)."""
        for file, columns, by_coordinate in ((METRICS_FILE, self.columns[0], False),
                                              (COORDINATE_METRICS_FILE, self.columns[1], True)):
            frame = read_cells(self.path, by_coordinate)
            frame = pd.DataFrame(columns=columns) if frame is None or frame.empty else frame
            _write_atomically(self.path / file, frame.to_csv(index=False))

    def finish(self) -> Path:
        """Mark the run complete: gather the cells, then rename ``<run_id>.partial`` to ``<run_id>``."""
        self.consolidate()
        shutil.rmtree(self.path / CELLS_DIR)
        os.replace(self.path, self.final_path)
        self.path = self.final_path
        return self.final_path


# ---------------------------------------------------------------------------------------------------
# The reader.


@dataclasses.dataclass(frozen=True)
class Run:
    """One run folder, loaded."""

    path: Path
    metrics: pd.DataFrame  #: metrics.csv, with a ``run_id`` column
    coordinate_metrics: pd.DataFrame  #: metrics_by_coordinate.csv, with a ``run_id`` column
    config: dict
    env: dict

    @property
    def run_id(self) -> str:
        return self.config.get("run_id", self.path.name)


def load_run(path: str | Path, allow_partial: bool = False) -> Run:
    """Load a run folder ``results/<experiment>/<run_id>/``.

    A ``.partial`` folder (a run that was interrupted or is still running) is refused unless
    ``allow_partial`` is set, so incomplete results are never mistaken for complete ones.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"No run folder at {path}.")
    if path.name.endswith(PARTIAL_SUFFIX) and not allow_partial:
        raise ValueError(
            f"{path} is an incomplete run (it ends in {PARTIAL_SUFFIX}: interrupted or still running). "
            "To read the cells it finished, pass allow_partial=True (analysis.load_run) or --allow-partial "
            "(python -m analysis.report)."
        )
    in_progress = not (path / METRICS_FILE).is_file() and (path / CELLS_DIR).is_dir()
    missing = [f for f in (METRICS_FILE, CONFIG_FILE, ENV_FILE) if not (path / f).is_file()
               and not (f == METRICS_FILE and in_progress)]
    if missing:
        raise FileNotFoundError(f"{path} is not a run folder: it lacks {', '.join(missing)}.")
    config = json.loads((path / CONFIG_FILE).read_text())
    env = json.loads((path / ENV_FILE).read_text())
    run_id = config.get("run_id", path.name)
    if in_progress:  # the finished cells so far, one file each
        metrics, coordinates = (
            _read_cells(path / CELLS_DIR, ".csv"),
            _read_cells(path / CELLS_DIR, ".by_coordinate.csv"),
        )
    else:
        metrics = pd.read_csv(path / METRICS_FILE)
        coordinate_path = path / COORDINATE_METRICS_FILE
        coordinates = pd.read_csv(coordinate_path) if coordinate_path.is_file() else pd.DataFrame()
    return Run(path, metrics.assign(run_id=run_id), coordinates.assign(run_id=run_id), config, env)


def _read_cells(folder: Path, suffix: str) -> pd.DataFrame:
    files = sorted(folder.glob("[0-9]" * 5 + suffix))
    frames = [pd.read_csv(f) for f in files if os.path.getsize(f) > 0]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
