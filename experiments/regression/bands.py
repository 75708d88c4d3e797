"""The statistics of the bands: per-check measurements of a run, bands built from a reference and the
exact answers, a measurement checked against them, and what moved between two files.  See
:mod:`experiments.regression` for the derivation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.engine.statistics import bonferroni_z
from experiments.regression.bounds_file import Bounds

__all__ = ["CELL", "CHECK", "FAMILY_WISE_FALSE_ALARM", "HEAVY_RELATIVE_SPREAD", "HEAVY_TAIL_INFLATION",
           "MAX_RELATIVE_SPREAD", "BoundsMismatch", "build_bounds", "check", "check_order", "measured_statistics",
           "moved_checks", "reference_against_exact", "report", "uncovered_cells"]

FAMILY_WISE_FALSE_ALARM = 1e-4
#: Variance checks only where one squared deviation's relative spread ρ is at most this (kurtosis at
#: most 65): beyond it the sample variance's skewness makes the normal tail at z ≈ 5 meaningless.
#: Heavier-tailed coordinates keep their mean check.
MAX_RELATIVE_SPREAD = 8.0
#: Variance checks with ρ above this (kurtosis above 10) count as heavy-tailed in the stated worst case.
HEAVY_RELATIVE_SPREAD = 3.0
#: The factor by which the worst case assumes a heavy-tailed check's real tail exceeds the normal one.
HEAVY_TAIL_INFLATION = 100
CELL = ["problem", "estimator", "num_samples"]
CHECK = [*CELL, "parameter", "coordinate", "statistic"]


def measured_statistics(coordinate_metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per check: the measured value, its standard error and the replicates R.

    For the variance, ``rho`` is the relative spread of one squared deviation, sqrt(μ₄/σ⁴ − 1), from
    the variance's standard error: se = ρ σ² / √R.
    """
    rows = coordinate_metrics[coordinate_metrics["metric"].isin(["mean", "variance"])]
    frame = rows.rename(columns={"metric": "statistic", "value": "measured", "std_error": "se"})
    frame = frame[[*CHECK, "measured", "se", "replicates"]].reset_index(drop=True)
    frame["num_samples"] = frame["num_samples"].astype(int)
    frame["coordinate"] = frame["coordinate"].astype(int)
    is_variance = frame["statistic"] == "variance"
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["rho"] = np.where(is_variance, frame["se"] * np.sqrt(frame["replicates"]) / frame["measured"], np.nan)
    return frame


def build_bounds(reference: pd.DataFrame, exact: pd.DataFrame, replicates: int, reference_info: dict,
                 family_wise_false_alarm: float = FAMILY_WISE_FALSE_ALARM) -> Bounds:
    """The bounds of every check in ``reference`` (see :func:`measured_statistics`) for runs of R =
    ``replicates``; the expected value is exact where ``exact`` has it, else the reference's."""
    frame = reference.merge(exact, on=CHECK, how="left")
    variances = frame[frame["statistic"] == "variance"].set_index(CHECK[:-1])
    bad = variances[~(variances["measured"] > 0) | ~np.isfinite(variances["rho"])]
    if len(bad):
        raise ValueError("A log-variance band needs a positive variance; these coordinates have none (drop them "
                         f"from the profile):\n{bad.reset_index()[CHECK[:-1]].to_string(index=False)}")
    # Per coordinate: the expected variance v* (exact or reference) and ρ, for both statistics' bands.
    expected_variance = variances["exact"].fillna(variances["measured"])
    per_coordinate = pd.DataFrame({"expected_variance": expected_variance, "coordinate_rho": variances["rho"]})
    frame = frame.join(per_coordinate, on=CHECK[:-1])

    heavy = (frame["statistic"] == "variance") & (frame["coordinate_rho"] > MAX_RELATIVE_SPREAD)
    unchecked = frame[heavy][[*CHECK[:-1], "coordinate_rho"]].rename(columns={"coordinate_rho": "rho"})
    frame = frame[~heavy].reset_index(drop=True)
    is_mean = frame["statistic"] == "mean"
    has_exact = frame["exact"].notna()
    r_ref = frame["replicates"]
    checks = frame[CHECK].copy()
    checks["source"] = np.where(has_exact, "exact", "reference")
    checks["expected"] = frame["exact"].fillna(frame["measured"])
    # On the statistic's scale: the mean's own, the variance's log.
    variance, rho = frame["expected_variance"], frame["coordinate_rho"]
    checks["expected_se"] = np.where(has_exact, 0.0, np.where(is_mean, np.sqrt(variance / r_ref), rho / np.sqrt(r_ref)))
    checks["measurement_se"] = np.where(is_mean, np.sqrt(variance / replicates), rho / np.sqrt(replicates))
    z = bonferroni_z(family_wise_false_alarm, len(checks))
    half_width = z * np.hypot(checks["expected_se"], checks["measurement_se"])
    checks["lower"] = np.where(is_mean, checks["expected"] - half_width, checks["expected"] * np.exp(-half_width))
    checks["upper"] = np.where(is_mean, checks["expected"] + half_width, checks["expected"] * np.exp(half_width))
    checks = checks.sort_values(CHECK, key=check_order).reset_index(drop=True)
    heavy_checks = int(((frame["statistic"] == "variance") & (frame["coordinate_rho"] > HEAVY_RELATIVE_SPREAD)).sum())
    per_check = family_wise_false_alarm / len(checks)
    reference_info = {
        **reference_info,
        "variance_unchecked": unchecked.round({"rho": 2}).to_dict(orient="records"),
        "heavy_tailed_variance_checks": heavy_checks,
        "family_wise_false_alarm_if_their_tails_are_100x_normal":
            per_check * (len(checks) - heavy_checks + HEAVY_TAIL_INFLATION * heavy_checks),
    }
    return Bounds(replicates, family_wise_false_alarm, z, reference_info, checks)


def check_order(column: pd.Series) -> pd.Series:
    """The sort key of a check column: numbers in order, then names."""
    return column.map(lambda value: (0, value) if isinstance(value, (int, np.integer)) else (1, str(value)))


class BoundsMismatch(ValueError):
    """The measurement does not measure what the bounds are for (other cells, other R)."""


def check(measured: pd.DataFrame, bounds: Bounds, require_all: bool = True) -> pd.DataFrame:
    """Each check of ``bounds`` that ``measured`` (see :func:`measured_statistics`) covers, with its
    z-score and whether it passed.  With ``require_all``, every check must be covered."""
    frame = bounds.checks.merge(measured[[*CHECK, "measured", "replicates"]], on=CHECK, how="left")
    missing = frame[frame["measured"].isna()]
    if require_all and len(missing):
        cells = missing[CELL].drop_duplicates().to_string(index=False)
        raise BoundsMismatch(f"The run lacks {len(missing)} checks of the bounds file, in the cells\n{cells}\n"
                             "Run `python -m experiments.run variance_vs_L --profile ci`, or, if the profile "
                             "changed on purpose, `python -m experiments.bounds regenerate`.")
    frame = frame[frame["measured"].notna()].copy()
    wrong_r = frame[frame["replicates"] != bounds.replicates]
    if len(wrong_r):
        raise BoundsMismatch(f"The bounds are for R = {bounds.replicates} replicates per cell; the run used "
                             f"R = {sorted(set(wrong_r['replicates'].astype(int)))}.  Use --profile ci.")
    is_mean = frame["statistic"] == "mean"
    se = np.hypot(frame["expected_se"], frame["measurement_se"])
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation = np.where(is_mean, frame["measured"] - frame["expected"],
                             np.log(frame["measured"] / frame["expected"]))
    frame["z"] = deviation / se
    frame["passed"] = (frame["measured"] >= frame["lower"]) & (frame["measured"] <= frame["upper"])
    return frame.reset_index(drop=True)


def uncovered_cells(bounds: Bounds, cells) -> tuple[list, list]:
    """(cells of the profile without checks, cells with checks but no longer in the profile)."""
    planned = {(c.problem.name, c.estimator.name, c.num_samples) for c in cells}
    bounded = set(bounds.checks[CELL].itertuples(index=False, name=None))
    return sorted(planned - bounded), sorted(bounded - planned)


def report(result: pd.DataFrame, worst: int = 8) -> str:
    """A few lines for people: how many checks passed, the failures, and the largest |z|."""
    failed = result[~result["passed"]]
    ordered = result.reindex(result["z"].abs().sort_values(ascending=False).index)
    lines = [f"{len(result) - len(failed)} of {len(result)} checks inside their bands; "
             f"max |z| = {ordered['z'].abs().iloc[0]:.2f}"]
    shown = failed if len(failed) else ordered.head(worst)
    lines.append("failed checks:" if len(failed) else f"the {len(shown)} largest |z|:")
    columns = [*CHECK, "source", "expected", "measured", "lower", "upper", "z"]
    lines.append(shown[columns].to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return "\n".join(lines)


def moved_checks(old: Bounds, new: Bounds) -> pd.DataFrame:
    """Checks whose expected value changed by more than z joint standard errors, and checks added or
    dropped (``change`` column)."""
    merged = old.checks.merge(new.checks, on=CHECK, how="outer", suffixes=("_old", "_new"), indicator=True)
    merged["change"] = merged["_merge"].astype(str).map({"left_only": "dropped", "right_only": "added", "both": ""})
    both = merged["_merge"].astype(str) == "both"
    is_mean = merged["statistic"] == "mean"
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(is_mean, merged["expected_new"] - merged["expected_old"],
                         np.log(merged["expected_new"] / merged["expected_old"]))
    joint = np.hypot(merged["expected_se_old"], merged["expected_se_new"])
    # Exact answers have no noise: any change beyond float64 rounding is a move.
    tolerance = np.where(joint > 0, new.z_threshold * joint, 1e-9 * np.maximum(1, np.abs(merged["expected_old"])))
    merged["shift"] = shift
    moved = both & (np.abs(shift) > tolerance)
    merged.loc[moved, "change"] = "moved"
    changed = merged[merged["change"] != ""]
    return changed[[*CHECK, "change", "expected_old", "expected_new", "shift"]].reset_index(drop=True)


def reference_against_exact(reference: pd.DataFrame, exact: pd.DataFrame,
                            family_wise_false_alarm: float = FAMILY_WISE_FALSE_ALARM) -> pd.DataFrame:
    """The reference run's z-scores against every exact answer, and whether each is within bounds."""
    frame = reference.merge(exact, on=CHECK, how="inner")
    is_mean = frame["statistic"] == "mean"
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(frame["measured"] / frame["exact"])
    frame["z"] = np.where(is_mean, (frame["measured"] - frame["exact"]) / frame["se"],
                          log_ratio / (frame["rho"] / np.sqrt(frame["replicates"])))
    frame["passed"] = np.abs(frame["z"]) <= bonferroni_z(family_wise_false_alarm, len(frame))
    return frame
