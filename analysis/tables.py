"""Tables of a run: measured against exact values with z-scores, the recommendation per problem and
sample budget, and the end of each training curve.

Every function takes the tidy metrics of :mod:`analysis.load` and returns a DataFrame.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.load import wide
from experiments.engine.statistics import bonferroni_z

#: Columns that are neither labels of a row nor metrics.
_BOOKKEEPING = ("run_id", "replicates", "metric", "value", "std_error")
#: Below this fraction of the largest value in its comparison, an MSE or variance is float rounding
#: of an exact estimate (the delta method on a quadratic), as in :mod:`analysis.figures`.
RESOLUTION = 1e-12
#: An estimate within this fraction of the gradient's largest coordinate is exact up to float32
#: rounding (accumulated over a few thousand operations); its z-score against the exact value is
#: meaningless (its standard error is rounding too).
ROUNDING = 1e-5
#: The family-wise false-alarm rate of the "differs" flags of :func:`measured_vs_exact`.
FALSE_ALARM_RATE = 0.01


def label_columns(metrics: pd.DataFrame) -> list[str]:
    """The columns that identify a row besides problem, estimator, L and parameter (such as
    ``temperature``, ``mu`` or ``dimension``), in the file's order."""
    fixed = {"problem", "estimator", "num_samples", "parameter", "coordinate", *_BOOKKEEPING}
    return [c for c in metrics.columns if c not in fixed]


def bonferroni_threshold(comparisons: int, false_alarm_rate: float = FALSE_ALARM_RATE) -> float:
    """:func:`experiments.engine.statistics.bonferroni_z` at the report's family-wise rate."""
    return bonferroni_z(false_alarm_rate, comparisons)


def measured_vs_exact(metrics: pd.DataFrame, coordinate_metrics: pd.DataFrame, unbiased: dict | None = None,
                      false_alarm_rate: float = FALSE_ALARM_RATE) -> pd.DataFrame:
    """One row per cell and parameter group where something exact is known: the measured mean gradient
    against the exact one, the variance against the exact variance, and the squared bias against the
    exact squared bias, each with its z-score (measured − exact) / standard error.

    - ``mean_z``: the per-coordinate z of the mean estimate against the exact gradient (the standard
      error includes a reference gradient's own); for a group of several coordinates, the one of
      largest magnitude, with ``coordinates`` saying how many there are.  ``mean`` and ``exact_mean``
      are given for groups of one coordinate.  Groups without per-coordinate rows (more than 256
      coordinates) have none.
    - ``variance_z``: where the exact variance of the L-sample estimate is known.
    - ``bias_squared_z``: where the estimator's exact expectation is known and it is biased
      (straight-through, Gumbel-Softmax): its squared bias against the exact one; and for an unbiased
      estimator on a group without per-coordinate rows (a VAE's encoder), its squared bias against
      zero (a sum of many squared errors, so near normal).  Otherwise the per-coordinate ``mean_z``
      is the test of an unbiased estimator.

    ``unbiased`` maps estimator names to whether they are unbiased by design (a run's config.json
    records it as ``estimator_properties``); estimators it does not name count as unbiased unless the
    run knows their exact bias to be positive.

    ``verdict`` is ``agrees`` or names what ``differs``: |z| beyond the Bonferroni threshold for a
    family-wise false-alarm rate ``false_alarm_rate`` over every comparison in the table (each
    coordinate counted), or ``biased`` for a biased estimator whose mean differs from the gradient as
    its exact bias says it should.
    """
    table = wide(metrics)
    table = table[table["parameter"] != "all"]
    keys = ["problem", "estimator", *label_columns(metrics), "num_samples", "parameter"]
    keys = [k for k in keys if k in table]
    out = table[keys].copy()
    for column in ("variance", "variance_se", "exact_variance", "bias_squared", "bias_squared_se",
                   "exact_bias_squared"):
        out[column] = table[column] if column in table else np.nan

    coordinates = _mean_against_exact(coordinate_metrics, keys)
    out = out.merge(coordinates, on=keys, how="left") if not coordinates.empty else out.assign(
        coordinates=np.nan, gradient_scale=np.nan, mean=np.nan, mean_se=np.nan, exact_mean=np.nan, mean_z=np.nan)

    # An estimate whose spread is float rounding of the gradient is exact (the delta method on a quadratic).
    out["exact_estimate"] = out["variance"] <= out["coordinates"] * (ROUNDING * out["gradient_scale"]) ** 2
    exact_variance = out["exact_variance"].notna() & (out["variance_se"] > 0) & ~out["exact_estimate"]
    out["variance_z"] = np.where(exact_variance, (out["variance"] - out["exact_variance"]) / out["variance_se"], np.nan)
    unbiased = unbiased or {}
    by_design = out["estimator"].map(lambda name: bool(unbiased.get(name, True)))
    out["biased"] = biased = (out["exact_bias_squared"] > 0) | ~by_design
    # A biased estimator's squared bias against its exact value; an unbiased one's against zero where the
    # group has no per-coordinate rows (over 256 coordinates: the sum of many squared errors, near normal).
    expected_bias_squared = np.where(
        biased, out["exact_bias_squared"], np.where(out["coordinates"].isna(), 0.0, np.nan)
    )
    out["bias_squared_z"] = (out["bias_squared"] - expected_bias_squared) / out["bias_squared_se"]
    out = out[out["mean_z"].notna() | out["variance_z"].notna() | out["bias_squared_z"].notna()].copy()

    mean_tests = np.where(out["biased"], 0, out["coordinates"].fillna(0))
    comparisons = int(mean_tests.sum() + out["variance_z"].notna().sum() + out["bias_squared_z"].notna().sum())
    threshold = bonferroni_threshold(comparisons, false_alarm_rate)
    out["verdict"] = [_verdict(row, threshold) for row in out.itertuples()]
    out.attrs.update(comparisons=comparisons, threshold=threshold, false_alarm_rate=false_alarm_rate)
    return out.reset_index(drop=True)


def _mean_against_exact(coordinate_metrics: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per cell and group: the number of coordinates and the largest-magnitude z of mean against exact,
    with the mean and the exact value for one-coordinate groups."""
    if coordinate_metrics.empty or "bias" not in set(coordinate_metrics["metric"]):
        return pd.DataFrame()
    frame = wide(coordinate_metrics)
    frame = frame.dropna(subset=["bias"])
    scale = frame.groupby(keys, sort=False)["exact_grad"].transform(lambda g: g.abs().max())
    rounding = frame["bias"].abs() <= ROUNDING * scale
    z = np.where(frame["bias_se"] > 0, frame["bias"] / frame["bias_se"], np.nan)
    frame = frame.assign(z=np.where(rounding, 0.0, z), scale=scale)
    frame = frame.assign(abs_z=frame["z"].abs().fillna(-1.0))
    worst = frame.sort_values("abs_z").groupby(keys, sort=False).tail(1).set_index(keys)
    grouped = frame.groupby(keys, sort=False)
    single = grouped["coordinate"].transform("size") == 1
    result = pd.DataFrame({"coordinates": grouped.size(), "gradient_scale": grouped["scale"].first()})
    result["mean_z"] = worst["z"]
    ones = frame[single].set_index(keys)
    result["mean"] = ones["mean"]
    result["mean_se"] = ones["mean_se"]
    result["exact_mean"] = ones["exact_grad"]
    return result.reset_index()


def _verdict(row, threshold: float) -> str:
    if row.exact_estimate and not row.biased and not abs(row.mean_z) > 0:
        return "exact (to float rounding)"
    differs = []
    if not row.biased and abs(row.mean_z) > threshold:
        differs.append("mean")
    if abs(row.variance_z) > threshold:
        differs.append("variance")
    if abs(row.bias_squared_z) > threshold:
        differs.append("bias²")
    if differs:
        return "differs: " + ", ".join(differs)
    if row.biased:
        return "biased, as its exact bias says" if row.exact_bias_squared > 0 else "biased (exact bias unknown)"
    return "agrees"


def agreement_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`measured_vs_exact` per (problem, estimator): how many rows, the largest |z| of each kind,
    and how many rows differ."""
    summary = table.groupby(["problem", "estimator"], sort=False).agg(
        rows=("verdict", "size"),
        max_abs_mean_z=("mean_z", lambda z: z.abs().max()),
        max_abs_variance_z=("variance_z", lambda z: z.abs().max()),
        max_abs_bias_squared_z=("bias_squared_z", lambda z: z.abs().max()),
        differ=("verdict", lambda v: int(v.str.startswith("differs").sum())),
    )
    return summary.reset_index()


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


def best_temperatures(metrics: pd.DataFrame) -> pd.DataFrame:
    """For each problem, estimator and L of a temperature sweep: the temperature of lowest MSE, with its
    squared bias and variance."""
    table = wide(metrics)
    table = table[table["parameter"] == "all"]
    rows = table.loc[table.groupby(["problem", "estimator", "num_samples"], sort=False)["mse"].idxmin()]
    return rows[["problem", "estimator", "num_samples", "temperature", "mse", "mse_se", "bias_squared",
                 "variance"]].reset_index(drop=True)


def training_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """A training run's metrics, one row per (problem, objective, estimator, seed, step), one column per
    metric; runs from before seeds or objectives were recorded get seed 0 and objective ``elbo``."""
    table = wide(metrics.drop(columns=["num_samples", "replicates", "parameter"], errors="ignore"))
    if "seed" not in table:  # one training per pair
        table = table.assign(seed=0)
    if "objective" not in table:  # every model trained by its ELBO
        table = table.assign(objective="elbo")
    return table


def final_objectives(metrics: pd.DataFrame) -> pd.DataFrame:
    """The last point of each training curve, over the seeds of each (problem, training objective,
    estimator): the held-out objective's mean, its standard error across seeds (the spread of the training
    runs, not of an evaluation), its smallest and largest value, the training objective's mean, the
    held-out negative log-likelihood's mean and standard error across seeds (where the model has one),
    steps, cost evaluations and mean wall time; best mean held-out first within each problem (by the
    log-likelihood where there is one, the common measure of models trained by different objectives)."""
    table = training_table(metrics)
    if "held_out_nll" not in table:
        table = table.assign(held_out_nll=np.nan)
    keys = ["problem", "objective", "estimator"]
    last = table.loc[table.groupby([*keys, "seed"], sort=False)["step"].idxmax()]
    grouped = last.groupby(keys, sort=False)
    summary = grouped.agg(seeds=("seed", "size"), step=("step", "max"), cost_evaluations=("cost_evaluations", "max"),
                          wall_time_s=("wall_time_s", "mean"), train_objective=("train_objective", "mean"),
                          held_out_objective=("held_out_objective", "mean"),
                          held_out_min=("held_out_objective", "min"), held_out_max=("held_out_objective", "max"),
                          held_out_nll=("held_out_nll", "mean"))
    for column in ("held_out_objective", "held_out_nll"):
        spread = grouped[column].std(ddof=1) / np.sqrt(summary["seeds"])
        summary[f"{column}_se"] = spread.where(summary["seeds"] > 1)
    summary = summary.reset_index()
    summary["rank_by"] = summary["held_out_nll"].fillna(summary["held_out_objective"])
    order = {name: i for i, name in enumerate(dict.fromkeys(metrics["problem"]))}
    columns = ["problem", "objective", "estimator", "seeds", "step", "cost_evaluations", "wall_time_s",
               "train_objective", "held_out_objective", "held_out_objective_se", "held_out_min", "held_out_max",
               "held_out_nll", "held_out_nll_se"]
    ranked = summary.sort_values(["problem", "rank_by"], key=lambda c: c.map(order) if c.name == "problem" else c)
    return ranked[columns].reset_index(drop=True)
