"""Run folders into pandas DataFrames."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd

METRICS_FILE = "metrics.csv"
COORDINATE_METRICS_FILE = "metrics_by_coordinate.csv"
PARTIAL_SUFFIX = ".partial"
#: Where a run still in progress (or interrupted) keeps each finished cell's rows.
CELLS_DIR = "cells"


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
            "Pass allow_partial=True to read the cells it finished."
        )
    in_progress = not (path / METRICS_FILE).is_file() and (path / CELLS_DIR).is_dir()
    missing = [f for f in (METRICS_FILE, "config.json", "env.json") if not (path / f).is_file()
               and not (f == METRICS_FILE and in_progress)]
    if missing:
        raise FileNotFoundError(f"{path} is not a run folder: it lacks {', '.join(missing)}.")
    config = json.loads((path / "config.json").read_text())
    env = json.loads((path / "env.json").read_text())
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


def load_metrics(*paths: str | Path) -> pd.DataFrame:
    """The metrics of one or more run folders, concatenated, with a ``run_id`` column."""
    if not paths:
        raise ValueError("load_metrics needs at least one run folder.")
    return pd.concat([load_run(p).metrics for p in paths], ignore_index=True)


def wide(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and parameter group, one column per metric, and ``<metric>_se`` for its standard
    error.  Every other column (problem, estimator, labels such as temperature, L, parameter, ...)
    identifies the row."""
    index = [c for c in metrics.columns if c not in ("metric", "value", "std_error")]
    table = metrics.set_index([*index, "metric"])
    values = table["value"].unstack("metric")
    errors = table["std_error"].unstack("metric").add_suffix("_se")
    return values.join(errors).reset_index().rename_axis(columns=None)
