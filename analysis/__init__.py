"""Load run folders into pandas and draw the figures; reads result files only."""

from analysis.load import Run, load_metrics, load_run

__all__ = ["Run", "load_metrics", "load_run"]
