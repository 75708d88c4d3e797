"""Tables of a run: measured against exact values with z-scores, the recommendation per problem and
sample budget, and the end of each training curve.

Every function takes the tidy metrics of :mod:`analysis.load` and returns a DataFrame.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, stats

from analysis.load import wide

# The benchmark's ranking (shared with experiments.compare), re-exported beside the report's other tables.
from experiments.engine.ranking import RESOLUTION, label_columns
from experiments.engine.ranking import recommendations as recommendations
from experiments.engine.statistics import (
    bonferroni_z,
    median_of_means_blocks,
    median_of_means_p_value,
)

#: An estimate within this fraction of the gradient's largest coordinate is exact up to float32
#: rounding (accumulated over a few thousand operations); its z-score against the exact value is
#: meaningless (its standard error is rounding too).
ROUNDING = 1e-5
#: The family-wise false-alarm rate of the "differs" flags of :func:`measured_vs_exact`.
FALSE_ALARM_RATE = 0.01


def bonferroni_threshold(comparisons: int, false_alarm_rate: float = FALSE_ALARM_RATE) -> float:
    """:func:`experiments.engine.statistics.bonferroni_z` at the report's family-wise rate."""
    return bonferroni_z(false_alarm_rate, comparisons)


def measured_vs_exact(metrics: pd.DataFrame, coordinate_metrics: pd.DataFrame, unbiased: dict | None = None,
                      false_alarm_rate: float = FALSE_ALARM_RATE) -> pd.DataFrame:
    """One row per cell and parameter group where something exact is known: the measured mean gradient
    against what the estimator's expectation is exactly, the variance against the exact variance and the
    squared bias against the exact squared bias, with z-scores (measured − exact) / standard error.

    ``verdict`` judges the mean alone, with a test that holds at any R whatever the estimates' tails:
    per coordinate, the median of the means of k = min(R, 20) blocks of replicates
    (:func:`~experiments.engine.statistics.median_of_means`) against the estimator's exact expectation E ĝ
    (the exact gradient for an unbiased estimator; a biased one's where the problem knows it), given the
    exact variance σ² of the L-sample estimate.  A block of b replicates misses E ĝ by c or more with
    probability q ≤ σ²/(b c²) (Chebyshev), and the median only if ⌈k/2⌉ blocks do, so the p-value
    P(Binomial(k, min(q, 1)) ≥ ⌈k/2⌉) is valid for any distribution of that variance.  A comparison is
    flagged where it is below ``false_alarm_rate`` / m, m the comparisons made (Bonferroni, each
    coordinate counted), so the table raises a false alarm with probability at most ``false_alarm_rate``.
    The price of holding for any tails is power: at R = 1000 and 1,000 comparisons the test sees a bias
    of about 0.44σ (14σ/√R), where a normal test would see 0.14σ (4.4σ/√R)
    (:func:`median_of_means_detectable_bias`).  An exact variance of 0 is taken as float rounding's,
    (``ROUNDING`` × the group's largest exact gradient)².  A mean that is not finite is flagged,
    ``differs: not finite``, outside the count.  Coordinates whose exact variance is unknown (a
    stateful estimator, a Monte Carlo reference gradient) are not judged: their sample standard error
    can be far too small for skewed or heavy-tailed estimates (a rare category never drawn, a score
    function's fourth powers), and so can the normal tail at a Bonferroni threshold.

    Shown beside it, not judged:

    - ``mean_z``: the mean's z-score, σ/√R its standard error where σ² is known (the sample's
      otherwise); for a group of several coordinates the one of the coordinate the verdict rests on.
      ``mean`` and ``exact_mean`` are given for groups of one coordinate.
    - ``variance_z``: (log variance − log exact variance) / (ρ̂/√R), with ρ̂ = se·√R / variance the
      relative spread of one squared deviation, where the exact variance is known.  Its distribution
      rests on the estimates' fourth moment, which a sample of heavy-tailed estimates underestimates
      (their sample variance is then usually well below σ², with a standard error too small as well), so
      no threshold on it has a stated false-alarm rate; the variance bands of
      :mod:`experiments.regression` (fourth moments from a 50,000-replicate reference) are the
      variance's check.
    - ``bias_squared_z``: a biased estimator's squared bias against its exact value, and an unbiased
      estimator's against zero on a group without per-coordinate rows (a VAE's encoder).

    ``unbiased`` maps estimator names to whether they are unbiased by design (a run's config.json
    records it as ``estimator_properties``); estimators it does not name count as unbiased unless the
    run knows their exact bias to be positive.  ``verdict`` is ``agrees``, ``differs: mean``,
    ``biased, as its exact expectation says``, ``exact (to float rounding)``, or ``not judged (...)``
    with the reason.  ``attrs`` records m, the rate and ``threshold``, the normal |z| of the level.
    """
    table = wide(metrics)
    table = table[table["parameter"] != "all"]
    keys = ["problem", "estimator", *label_columns(metrics), "num_samples", "parameter"]
    keys = [k for k in keys if k in table]
    out = table[[*keys, "replicates"]].copy()
    for column in ("variance", "variance_se", "exact_variance", "bias_squared", "bias_squared_se",
                   "exact_bias_squared"):
        out[column] = table[column] if column in table else np.nan
    unbiased = unbiased or {}
    by_design = out["estimator"].map(lambda name: bool(unbiased.get(name, True)))
    out["biased"] = (out["exact_bias_squared"] > 0) | ~by_design

    coordinates = _mean_against_exact(coordinate_metrics, keys)
    if coordinates.empty:
        coordinates = pd.DataFrame({**{k: pd.Series(dtype=out[k].dtype) for k in keys},
                                    **{c: pd.Series(dtype=float) for c in _MEAN_COLUMNS},
                                    "untested_reason": pd.Series(dtype=object)})
    out = out.merge(coordinates, on=keys, how="left")
    for flag in ("expectation_known", "within_rounding", "not_finite"):
        out[flag] = out[flag].astype("boolean").fillna(False).astype(bool)
    # A biased estimator's mean says nothing where its expectation is not known.
    out.loc[out["biased"] & ~out["expectation_known"], ["mean_z", "mean_p", "tested_coordinates"]] = np.nan

    # An estimate whose spread is float rounding of the gradient is exact (the delta method on a quadratic).
    out["exact_estimate"] = out["variance"] <= out["coordinates"] * (ROUNDING * out["gradient_scale"]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        relative_spread = out["variance_se"] * np.sqrt(out["replicates"]) / out["variance"]
        log_ratio = np.log(out["variance"] / out["exact_variance"])
    out["variance_z"] = np.where(~out["exact_estimate"], log_ratio * np.sqrt(out["replicates"]) / relative_spread,
                                 np.nan)
    expected_bias_squared = np.where(out["biased"], out["exact_bias_squared"],
                                     np.where(out["coordinates"].isna(), 0.0, np.nan))
    out["bias_squared_z"] = (out["bias_squared"] - expected_bias_squared) / out["bias_squared_se"]
    out = out[out["coordinates"].notna() | out["variance_z"].notna() | out["bias_squared_z"].notna()].copy()

    comparisons = int(out["tested_coordinates"].fillna(0).sum())
    level = false_alarm_rate / max(comparisons, 1)
    out["verdict"] = [_verdict(row, level) for row in out.itertuples()]
    out.attrs.update(comparisons=comparisons, threshold=bonferroni_threshold(comparisons, false_alarm_rate),
                     false_alarm_rate=false_alarm_rate)
    return out.reset_index(drop=True)


_MEAN_COLUMNS = ("coordinates", "tested_coordinates", "untested_reason", "gradient_scale", "expectation_known",
                 "within_rounding", "not_finite", "mean_z", "mean_p", "mean", "mean_se", "exact_mean")


def _mean_against_exact(coordinate_metrics: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per cell and group: the number of coordinates, how many the median-of-means test judged, and the
    p-value of the coordinate furthest from the estimator's exact expectation by that test, with its
    z-score (see :func:`measured_vs_exact`)."""
    if coordinate_metrics.empty or "bias" not in set(coordinate_metrics["metric"]):
        return pd.DataFrame()
    frame = wide(coordinate_metrics)
    frame = frame.dropna(subset=["exact_grad"])
    for column in ("exact_variance", "exact_expectation", "exact_grad_se", "median_of_means"):
        if column not in frame:
            frame[column] = np.nan
    # A NaN or infinite mean is wrong whatever its spread; it is flagged, not tested.
    frame["not_finite"] = ~np.isfinite(frame["mean"])
    scale = frame.groupby(keys, sort=False)["exact_grad"].transform(lambda g: g.abs().max())
    expectation_known = frame["exact_expectation"].notna()
    expectation = frame["exact_expectation"].fillna(frame["exact_grad"])
    distance = frame["bias"] - (expectation - frame["exact_grad"])  # mean − E ĝ
    rounding = (distance.abs() <= ROUNDING * scale).to_numpy()
    replicates = frame["replicates"].to_numpy()
    known = (frame["exact_variance"] >= 0).to_numpy()
    # The mean's z-score, for reading: with σ where it is known.
    se = np.where(known, np.sqrt(frame["exact_variance"] / replicates), frame["bias_se"])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(rounding, 0.0, np.where(se > 0, distance / se, np.nan))
    # The verdict's p-value: the median of means against E ĝ, needing σ and no reference noise.  An exact
    # variance of 0 is taken as float rounding's, (ROUNDING · scale)², so that rounding is not a bias.
    judged = (known & np.isfinite(frame["median_of_means"]).to_numpy() & ~(frame["exact_grad_se"] > 0).to_numpy()
              & ~frame["not_finite"].to_numpy())
    variance = np.maximum(frame["exact_variance"], (ROUNDING * scale) ** 2)
    p = median_of_means_p_value((frame["median_of_means"] - expectation).to_numpy(), variance.to_numpy(), replicates)
    p = np.where(judged, np.where(rounding, 1.0, p), np.nan)
    reason = np.where(judged, "", np.where(~known, "no exact variance", np.where(
        frame["median_of_means"].isna(), "no median of means (an older run folder)", "reference gradient")))
    frame = frame.assign(z=z, p=p, scale=scale, expectation_known=expectation_known, reason=reason,
                         rounding=rounding, order=np.where(np.isnan(p), 2.0, p),
                         abs_z=np.abs(np.nan_to_num(z, nan=0.0)))
    # The coordinate the verdict rests on: the smallest p-value, then (none tested) the largest |z|.
    worst = frame.sort_values(["order", "abs_z"], ascending=[False, True], kind="stable")
    worst = worst.groupby(keys, sort=False).tail(1).set_index(keys)
    grouped = frame.groupby(keys, sort=False)
    single = grouped["coordinate"].transform("size") == 1
    result = pd.DataFrame({"coordinates": grouped.size(), "tested_coordinates": grouped["p"].count(),
                           "untested_reason": grouped["reason"].max(),
                           "gradient_scale": grouped["scale"].first(),
                           "expectation_known": grouped["expectation_known"].all(),
                           "within_rounding": grouped["rounding"].all(),
                           "not_finite": grouped["not_finite"].any()})
    result["mean_z"] = worst["z"]
    result["mean_p"] = worst["p"]
    ones = frame[single].set_index(keys)
    result["mean"] = ones["mean"]
    result["mean_se"] = ones["mean_se"]
    result["exact_mean"] = ones["exact_expectation"].fillna(ones["exact_grad"])
    return result.reset_index()


def median_of_means_detectable_bias(num_replicates: int, level: float) -> float:
    """The smallest distance, in standard deviations σ of one estimate, at which
    :func:`median_of_means_p_value` falls below ``level`` at R = ``num_replicates`` (the median of means
    taken as the expectation plus that distance)."""
    blocks = median_of_means_blocks(num_replicates)
    k = len(blocks)
    # The largest q whose binomial tail is at most the level: the tail increases with q.
    q = optimize.brentq(lambda q: stats.binom.sf(math.ceil(k / 2) - 1, k, q) - level, 1e-300, 1.0)
    return 1 / math.sqrt(min(blocks) * q)


def _verdict(row, level: float) -> str:
    if row.not_finite:
        return "differs: not finite"
    if row.exact_estimate and not row.biased and row.within_rounding:
        return "exact (to float rounding)"
    if not row.tested_coordinates > 0:
        if row.biased and not row.expectation_known:
            return "biased (exact expectation unknown)"
        reason = row.untested_reason if isinstance(row.untested_reason, str) and row.untested_reason else None
        return f"not judged ({reason or 'no per-coordinate rows'})"
    if row.mean_p < level:
        return "differs: mean"
    return "biased, as its exact expectation says" if row.biased else "agrees"


def agreement_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`measured_vs_exact` per (problem, estimator): how many rows, the largest |z| of each kind,
    and how many rows differ."""
    summary = table.groupby(["problem", "estimator"], sort=False).agg(
        rows=("verdict", "size"),
        max_abs_mean_z=("mean_z", lambda z: z.abs().max()),
        max_abs_variance_z=("variance_z", lambda z: z.abs().max()),
        max_abs_bias_squared_z=("bias_squared_z", lambda z: z.abs().max()),
        differ=("verdict", lambda v: int(v.str.startswith("differs").sum())),
        not_judged=("verdict", lambda v: int(v.str.startswith("not judged").sum())),
    )
    return summary.reset_index()


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


def equal_cost(metrics: pd.DataFrame, budgets, skipped=()) -> pd.DataFrame:
    """Each estimator at each budget of cost evaluations per estimate: the row of its largest measured
    estimate within the budget (the whole gradient), with MSE, bias², variance and time per estimate, and
    ``exact`` where its MSE is float rounding beside the others' there.  An
    estimator none of whose estimates fits a budget has no row there, nor has one the run skipped at that
    budget (``skipped``: the run's skipped combinations, those with a ``cost_budget``), so a smaller estimate
    never stands in for it."""
    table = wide(metrics)
    table = table[table["parameter"] == "all"].dropna(subset=["mse", "cost_evaluations"])
    columns = ["problem", "estimator", "num_samples", "cost_evaluations", "mse", "mse_se", "bias_squared",
               "variance", "time_per_estimate_s"]
    rows = []
    for budget in sorted(set(int(b) for b in budgets)):
        within = table[table["cost_evaluations"] <= budget]
        if within.empty:
            continue
        largest = within.loc[within.groupby(["problem", "estimator"], sort=False)["cost_evaluations"].idxmax()]
        passed_over = {(s["problem"], s["estimator"]) for s in skipped if s.get("cost_budget") == budget}
        largest = largest[[pair not in passed_over for pair in zip(largest["problem"], largest["estimator"])]]
        rows.append(largest[[c for c in columns if c in largest]].assign(cost_budget=budget))
    if not rows:
        return pd.DataFrame()
    result = pd.concat(rows, ignore_index=True)
    # Exact to float rounding: an MSE below RESOLUTION × the largest at the same problem and budget.
    largest = result.groupby(["problem", "cost_budget"])["mse"].transform("max")
    result = result.assign(exact=result["mse"] <= RESOLUTION * largest)
    order = ["problem", "cost_budget", *[c for c in result.columns if c not in ("problem", "cost_budget")]]
    return result[order].sort_values(["problem", "cost_budget", "mse"], kind="stable", ignore_index=True)


def equal_cost_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """Per problem and budget of :func:`equal_cost`: the estimators exact to float rounding there (``exact``:
    their names, comma-separated; IndeCateR and the measure-valued estimator on a separable cost), and among
    the others the one of lowest MSE (``best``), the runner-up, the margin (the runner-up's MSE over the best
    one's) and whether it is clear (difference over two standard errors, taken as independent: conservative
    under common random numbers)."""
    rows = []
    for (problem, budget), group in table.groupby(["problem", "cost_budget"], sort=False):
        group = group.sort_values("mse")
        inexact = group[~group["exact"]]
        row = {"problem": problem, "cost_budget": budget, "exact": ", ".join(group.loc[group["exact"], "estimator"]),
               "best": None, "num_samples": np.nan, "mse": np.nan, "mse_se": np.nan, "runner_up": None,
               "margin": np.nan, "clear": False, "candidates": len(group)}
        if len(inexact):
            best = inexact.iloc[0]
            row.update(best=best["estimator"], num_samples=best["num_samples"], mse=best["mse"], mse_se=best["mse_se"])
        if len(inexact) > 1:
            best, second = inexact.iloc[0], inexact.iloc[1]
            spread = math.hypot(best["mse_se"], second["mse_se"])
            row.update(runner_up=second["estimator"], margin=second["mse"] / best["mse"],
                       clear=bool(spread > 0 and (second["mse"] - best["mse"]) / spread > 2))
        rows.append(row)
    return pd.DataFrame(rows)
