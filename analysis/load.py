"""Run folders into pandas DataFrames: the reader of :mod:`experiments.engine.results` (which owns the
run-folder layout, writer and reader side by side), and the wide view the tables and figures use."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.engine.ranking import wide
from experiments.engine.results import Run, load_run

__all__ = ["Run", "load_metrics", "load_run", "wide"]


def load_metrics(*paths: str | Path) -> pd.DataFrame:
    """The metrics of one or more run folders, concatenated, with a ``run_id`` column."""
    if not paths:
        raise ValueError("load_metrics needs at least one run folder.")
    return pd.concat([load_run(p).metrics for p in paths], ignore_index=True)
