"""Run folders: ``<output>/<experiment>/<run_id>/`` with metrics, config, environment and figures.

A run is written into ``<run_id>.partial/`` and renamed to ``<run_id>/`` only once every cell and
figure is written, so a folder without the suffix is always complete.  Rows are appended cell by cell,
so an interrupted run keeps what it finished in its ``.partial`` folder.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
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
PARTIAL_SUFFIX = ".partial"

#: Columns of metrics.csv, in order; an experiment's label columns (such as ``temperature``) go after
#: ``estimator``, and metrics_by_coordinate.csv adds ``coordinate`` after ``parameter``.
METRIC_COLUMNS = ["problem", "estimator", "num_samples", "parameter", "metric", "value", "std_error", "replicates"]
COORDINATE_METRIC_COLUMNS = METRIC_COLUMNS[:4] + ["coordinate"] + METRIC_COLUMNS[4:]


def metric_columns(label_columns=(), by_coordinate: bool = False) -> list[str]:
    """The columns of metrics.csv (or metrics_by_coordinate.csv) with the experiment's label columns."""
    columns = COORDINATE_METRIC_COLUMNS if by_coordinate else METRIC_COLUMNS
    return columns[:2] + list(label_columns) + columns[2:]

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


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
        "seed": seed,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def estimator_properties(estimators) -> dict:
    """What config.json records of each measured estimator, in the run's order, so that analysis needs
    nothing but the run folder: whether it is unbiased by design and whether it keeps state."""
    properties = {}
    for estimator in estimators:
        properties.setdefault(estimator.name, {"unbiased": bool(estimator.unbiased), "stateful": bool(estimator.stateful)})
    return properties


def _write_json(path: Path, payload: dict) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(temporary, path)


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
        self.columns = metric_columns(label_columns), metric_columns(label_columns, by_coordinate=True)
        self.config = {**config, "run_id": run_id, "experiment": experiment}
        _write_json(self.path / CONFIG_FILE, self.config)
        _write_json(self.path / ENV_FILE, env)

    def append(self, rows: list[dict], coordinate_rows: list[dict]) -> None:
        """Append one cell's rows (written together, after the cell is complete)."""
        for file, columns, records in (
            (METRICS_FILE, self.columns[0], rows),
            (COORDINATE_METRICS_FILE, self.columns[1], coordinate_rows),
        ):
            path = self.path / file
            frame = pd.DataFrame.from_records(records, columns=columns)
            frame.to_csv(path, mode="a", header=not path.exists(), index=False)

    def update_config(self, **entries) -> None:
        self.config.update(entries)
        _write_json(self.path / CONFIG_FILE, self.config)

    def finish(self) -> Path:
        """Mark the run complete: rename ``<run_id>.partial`` to ``<run_id>``."""
        os.replace(self.path, self.final_path)
        self.path = self.final_path
        return self.final_path
