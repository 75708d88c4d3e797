"""The tidy metrics in wide form, and the recommendation they give: per problem and L, the estimator of
lowest MSE × time per estimate.  The report's tables and :func:`experiments.compare` rank with this one
function, so a user's objective is ranked as the benchmark's problems are."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Columns that are neither labels of a row nor metrics.
BOOKKEEPING = ("run_id", "replicates", "metric", "value", "std_error")
#: Below this fraction of the largest value in its comparison, an MSE or variance is float rounding
#: of an exact estimate (the delta method on a quadratic).
RESOLUTION = 1e-12


def wide(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and parameter group, one column per metric, and ``<metric>_se`` for its standard
    error.  Every other column (problem, estimator, labels such as temperature, L, parameter, ...)
    identifies the row."""
    index = [c for c in metrics.columns if c not in ("metric", "value", "std_error")]
    table = metrics.set_index([*index, "metric"])
    values = table["value"].unstack("metric")
    errors = table["std_error"].unstack("metric").add_suffix("_se")
    return values.join(errors).reset_index().rename_axis(columns=None)


def label_columns(metrics: pd.DataFrame) -> list[str]:
    """The columns that identify a row besides problem, estimator, L and parameter (such as
    ``temperature``, ``mu`` or ``dimension``), in the file's order."""
    fixed = {"problem", "estimator", "num_samples", "parameter", "coordinate", *BOOKKEEPING}
    return [c for c in metrics.columns if c not in fixed]


def recommendations(metrics: pd.DataFrame) -> pd.DataFrame:
    """For each problem (and label) and sample budget L: the estimator with the lowest MSE × wall time
    per estimate, the runner-up, and the margin.

    MSE × time is the error of the whole gradient per unit of time spent: averaging n independent
    estimates divides an unbiased estimator's MSE by n and multiplies its time by n.  ``margin`` is the
    runner-up's product over the best one's (inf where the best is exact to float rounding);
    ``margin_z`` is the difference in units of its standard error (MSE standard errors only, taken as
    independent: conservative under the runs' common random numbers; timings are single measurements,
    noisy below a millisecond).  ``clear`` is margin_z > 2.
    """
    table = wide(metrics)
    table = table[table["parameter"] == "all"].dropna(subset=["mse", "time_per_estimate_s"])
    if table.empty:
        return pd.DataFrame()
    keys = ["problem", *label_columns(metrics), "num_samples"]
    keys = [k for k in keys if k in table]
    table = table.assign(work=table["mse"] * table["time_per_estimate_s"],
                         work_se=table["mse_se"] * table["time_per_estimate_s"])
    rows = []
    for key, group in table.groupby(keys, sort=False):
        group = group.sort_values("work")
        best = group.iloc[0]
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row.update(best=best["estimator"], mse=best["mse"], time_per_estimate_s=best["time_per_estimate_s"],
                   mse_x_time=best["work"], candidates=len(group))
        exact = best["mse"] <= RESOLUTION * group["mse"].max()
        if len(group) > 1:
            second = group.iloc[1]
            spread = math.hypot(best["work_se"], second["work_se"])
            row.update(runner_up=second["estimator"],
                       margin=math.inf if exact else second["work"] / best["work"],
                       margin_z=math.inf if exact or spread == 0 else (second["work"] - best["work"]) / spread)
        else:
            row.update(runner_up=None, margin=np.nan, margin_z=np.nan)
        row["clear"] = bool(row["margin_z"] > 2)
        row["exact"] = bool(exact)
        rows.append(row)
    return pd.DataFrame(rows)
