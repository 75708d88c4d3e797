r"""The variance-bound regression check: every estimator's mean and variance on the ``ci`` profile's
cells must stay inside statistically justified bands, committed in ``tests/variance_bounds.json``.

**What is checked.**  For every cell (problem, estimator, L) of ``python -m experiments.run
variance_vs_L --profile ci`` and every gradient coordinate, two statistics of the R replicate
L-sample estimates: the mean m̂ and the sample variance v̂.

**Expected values.**  Where the problem knows the answer exactly (closed form, quadrature,
enumeration) it is used: the exact gradient as the mean of an unbiased estimator, the exact
expectation of a biased one, the exact variance of the L-sample estimate.  Elsewhere the expected
value is a large reference run's measurement (``regenerate``: R_ref = 1,000,000 replicates at seed
10,000, a stream no check uses), which carries its own standard error into the band.  A problem added
to the profile later gets its bounds from a reference run of its own cells (``extend``, recorded in
the file's ``reference.extensions``; the plate toys': R_ref = 200,000, which widens their
reference-based bands by about 12%), and no existing check's expected value moves.

**Bands.**  With a per-check false-alarm probability α = α_FW / N over the N checks (Bonferroni, so
the probability that any check fails when nothing changed is at most α_FW = 1e-4, ten times below
the 1e-3 that CI can live with) and z = Φ⁻¹(1 − α/2):

- mean:      |m̂ − m*| ≤ z · sqrt(v*/R + se_ref²), v* the expected variance;
- variance:  |ln v̂ − ln v*| ≤ z · sqrt(ρ²/R + se_ref²), where ρ² = (μ₄ − σ⁴)/σ⁴ is the relative
  variance of one squared deviation (the kurtosis minus one, measured in the reference run), so that
  ρ/√R is the standard error of ln v̂ and se_ref that of the reference's ln v.

Both statistics are averages over R = 50,000 independent replicates, and the bands rest on their
normal approximations.  The mean's holds well.  The sample variance is skewed, the more so the
heavier the estimate's tails, and the normal tail at z ≈ 5 is then optimistic (a first-order
Edgeworth correction puts it about ten times too low at ρ = 8 and R = 50,000).  So coordinates with
ρ above ``MAX_RELATIVE_SPREAD`` = 8 (kurtosis above 65: the score function with the delta-method
control variate, leave-one-out at L = 2 on the ELBO's σ) get no variance check; the file lists them
(``reference.variance_unchecked``), and their means are still checked.  The family-wise rate is a
sum over checks, and only a few dozen variance checks have ρ above 3 (kurtosis above 10): the file
states the rate if each of those had a tail 100 times the normal one, still below 1e-3.
``calibrate`` checks the approximation where it can be checked: over many seeds, the pooled
z-scores should look standard normal.  A halved variance or a doubled one moves ln v by 0.69, more
than six times the widest band's half-width; ``tests/test_variance_bounds.py`` plants such
regressions and shows each is caught.

**Commands.**

    python -m experiments.bounds check [RUN_DIR]     # measure the ci profile (or read a run) and compare
    python -m experiments.bounds regenerate          # after an intended change: new reference, new file,
                                                     # and a list of what moved
    python -m experiments.bounds extend              # a problem added to the profile: its bounds only
    python -m experiments.bounds calibrate --seeds 20   # the unmodified code on 20 seeds in a row
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.statistics import bonferroni_z

BOUNDS_FILE = Path(__file__).resolve().parent.parent / "tests" / "variance_bounds.json"
PROFILE = "ci"
FAMILY_WISE_FALSE_ALARM = 1e-4
REFERENCE_REPLICATES = 1_000_000
#: Variance checks only where one squared deviation's relative spread ρ is at most this (kurtosis at
#: most 65): beyond it the sample variance's skewness makes the normal tail at z ≈ 5 meaningless.
#: Heavier-tailed coordinates keep their mean check.
MAX_RELATIVE_SPREAD = 8.0
#: Variance checks with ρ above this (kurtosis above 10) count as heavy-tailed in the stated worst case.
HEAVY_RELATIVE_SPREAD = 3.0
#: The factor by which the worst case assumes a heavy-tailed check's real tail exceeds the normal one.
HEAVY_TAIL_INFLATION = 100
#: The reference run's seed: far from the seeds checks run at (0 in CI, 0, 1, ... in ``calibrate``),
#: so that a check never compares replicates with themselves.
REFERENCE_SEED = 10_000
CELL = ["problem", "estimator", "num_samples"]
CHECK = [*CELL, "parameter", "coordinate", "statistic"]


# ---------------------------------------------------------------------------------------------------
# The profile's cells and their exact answers.


def profile_config(**settings):
    from experiments import variance_vs_L

    return variance_vs_L.Config.from_profile(PROFILE, **settings)


def profile_cells() -> list:
    """The ci profile's cells, planned exactly as ``--profile ci`` plans them (nothing is measured)."""
    from experiments import variance_vs_L

    return variance_vs_L.plan(profile_config())[0]


def exact_by_coordinate(problem, tree) -> dict[tuple[str, int], float]:
    """A pytree like the problem's params, flattened to {(parameter, coordinate): value}."""
    import jax

    from experiments.tidy import ALL_PARAMETERS, parameter_groups

    leaves = jax.tree_util.tree_leaves(tree)
    values = {}
    for parameter, (index,) in ((p, i) for p, i in parameter_groups(problem.params) if p != ALL_PARAMETERS):
        for coordinate, value in enumerate(np.ravel(np.asarray(leaves[index], np.float64))):
            values[(parameter, coordinate)] = float(value)
    return values


def exact_answers(cells) -> pd.DataFrame:
    """Per check of the given cells: the exact mean or variance where the problem knows it."""
    rows = []
    for cell in cells:
        key = {"problem": cell.problem.name, "estimator": cell.estimator.name, "num_samples": cell.num_samples}
        for statistic, tree in (("mean", cell.problem.exact_mean(cell.estimator)),
                                ("variance", cell.problem.exact_variance(cell.estimator, cell.num_samples))):
            if tree is None:
                continue
            for (parameter, coordinate), value in exact_by_coordinate(cell.problem, tree).items():
                rows.append({**key, "parameter": parameter, "coordinate": coordinate, "statistic": statistic,
                             "exact": value})
    frame = pd.DataFrame(rows, columns=[*CHECK, "exact"])
    return frame.astype({"num_samples": int, "coordinate": int, "exact": float})


# ---------------------------------------------------------------------------------------------------
# Measurements: a run's per-coordinate means and variances.


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


# ---------------------------------------------------------------------------------------------------
# Bounds: built from a reference measurement and the exact answers.


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The committed bounds: what every check of the profile must satisfy, and how that was derived."""

    replicates: int  #: R of the run each check is for
    family_wise_false_alarm: float
    z_threshold: float
    reference: dict  #: how the reference run was made: replicates, seed, commit, versions, date
    checks: pd.DataFrame  #: one row per check (columns: CHECK + expected, source, ...)

    def to_json(self) -> str:
        header = {
            "description": "Variance-bound regression check of the ci profile; see experiments/bounds.py. "
            "Each check: the measured statistic (mean, or variance of the L-sample estimate) of one gradient "
            "coordinate over `replicates` replicates must lie in [lower, upper] = expected ± z·se on the "
            "statistic's scale (log for the variance); se combines the measurement's standard error at R "
            "(measurement_se) and the expected value's own (expected_se: 0 where exact).",
            "profile": PROFILE,
            "replicates": self.replicates,
            "checks_count": len(self.checks),
            "family_wise_false_alarm": self.family_wise_false_alarm,
            "per_check_false_alarm": self.family_wise_false_alarm / len(self.checks),
            "z_threshold": self.z_threshold,
            "reference": self.reference,
        }
        lines = json.dumps(header, indent=2)[:-2] + ',\n  "checks": [\n'
        records = self.checks.to_dict(orient="records")
        lines += ",\n".join("    " + json.dumps(_plain(record)) for record in records)
        return lines + "\n  ]\n}\n"

    @classmethod
    def from_json(cls, text: str) -> Bounds:
        payload = json.loads(text)
        return cls(
            replicates=payload["replicates"],
            family_wise_false_alarm=payload["family_wise_false_alarm"],
            z_threshold=payload["z_threshold"],
            reference=payload["reference"],
            checks=pd.DataFrame(payload["checks"]),
        )


def _plain(record: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}


def load_bounds(path: Path | str = BOUNDS_FILE) -> Bounds:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No bounds file at {path}; create it with `python -m experiments.bounds regenerate`.")
    return Bounds.from_json(path.read_text())


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
    checks = checks.sort_values(CHECK, key=_sort_key).reset_index(drop=True)
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


def _sort_key(column: pd.Series) -> pd.Series:
    return column.map(lambda value: (0, value) if isinstance(value, (int, np.integer)) else (1, str(value)))


# ---------------------------------------------------------------------------------------------------
# Checking a measurement against the bounds.


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


# ---------------------------------------------------------------------------------------------------
# Running the profile.


def measure_profile(seed: int, output_dir: str, replicates: int | None = None, progress: bool = False) -> Path:
    """Run ``variance_vs_L --profile ci`` (other R for a reference run) and return the run folder."""
    from experiments import variance_vs_L

    config = profile_config(seed=seed, output_dir=str(output_dir), figures=False)
    if replicates is not None:
        config = dataclasses.replace(config, replicates=replicates)
    return variance_vs_L.run(config, progress=progress)


def measured_from_run(run_dir: Path | str) -> pd.DataFrame:
    from experiments.results import COORDINATE_METRICS_FILE

    return measured_statistics(pd.read_csv(Path(run_dir) / COORDINATE_METRICS_FILE))


def check_run(run_dir: Path | str, bounds: Bounds) -> pd.DataFrame:
    """Compare a finished ci-profile run with the bounds; refuse a run at the reference's seed."""
    config = json.loads((Path(run_dir) / "config.json").read_text())
    if config.get("seed") == bounds.reference.get("seed"):
        raise BoundsMismatch(f"The run used seed {config['seed']}, the reference run's: it would be compared with "
                             "its own replicates.  Use another --seed.")
    return check(measured_from_run(run_dir), bounds)


# ---------------------------------------------------------------------------------------------------
# Regenerating the file, and what moved.


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


def regenerate(path: Path | str = BOUNDS_FILE, replicates: int = REFERENCE_REPLICATES, seed: int = REFERENCE_SEED,
               output_dir: str = "results", write: bool = True, progress: bool = True) -> tuple[Bounds, pd.DataFrame]:
    """Measure the reference run, build new bounds, print what moved against ``path``, write them."""
    import jax
    import jaxlib

    from experiments.results import git_state

    start = time.perf_counter()
    run_dir = measure_profile(seed, output_dir, replicates=replicates, progress=progress)
    reference = measured_from_run(run_dir)
    exact = exact_answers(profile_cells())
    sanity = reference_against_exact(reference, exact)
    if not sanity["passed"].all():
        bad = sanity[~sanity["passed"]][[*CHECK, "exact", "measured", "z"]]
        raise RuntimeError("The reference run disagrees with exact answers, so the estimators or the problems are "
                           f"wrong; not writing bounds.\n{bad.to_string(index=False)}\nReference run: {run_dir}")
    info = {
        "replicates": replicates,
        "seed": seed,
        **git_state(),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "backend": jax.default_backend(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "max_abs_z_against_exact": round(float(sanity["z"].abs().max()), 3),
        "run_id": Path(run_dir).name,
    }
    new = build_bounds(reference, exact, profile_config().replicates, info)
    path = Path(path)
    moved = moved_checks(load_bounds(path), new) if path.exists() else None
    print(f"reference run {run_dir}: {len(reference)} checks, {len(sanity)} with exact answers, "
          f"max |z| against them {info['max_abs_z_against_exact']}")
    if moved is None:
        print(f"no bounds at {path} before: {len(new.checks)} checks are new")
    elif moved.empty:
        print("nothing moved: every expected value agrees with the old one within its band")
    else:
        print(f"{len(moved)} checks changed:\n" + moved.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    if write:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(new.to_json())
        os.replace(temporary, path)
        print(f"wrote {path}")
    return new, moved


def extend(path: Path | str = BOUNDS_FILE, replicates: int = REFERENCE_REPLICATES, seed: int = REFERENCE_SEED,
           output_dir: str = "results", write: bool = True, progress: bool = True) -> Bounds:
    """Add bounds for the profile's problems that the file does not cover yet, from a reference run of
    those problems alone, leaving every existing check's expected value and standard errors as they are
    (their bands widen slightly: the threshold z grows with the number of checks)."""
    from experiments.results import git_state

    path = Path(path)
    old = load_bounds(path)
    covered = set(old.checks["problem"])
    new_problems = [name for name in dict.fromkeys(c.problem.name for c in profile_cells()) if name not in covered]
    if not new_problems:
        print("every problem of the profile has bounds already: nothing to extend")
        return old
    start = time.perf_counter()
    config = dataclasses.replace(profile_config(seed=seed, output_dir=str(output_dir), figures=False),
                                 problems=tuple(new_problems), replicates=replicates)
    from experiments import variance_vs_L

    run_dir = variance_vs_L.run(config, progress=progress)
    reference = measured_from_run(run_dir)
    exact = exact_answers([c for c in profile_cells() if c.problem.name in new_problems])
    sanity = reference_against_exact(reference, exact)
    if not sanity["passed"].all():
        bad = sanity[~sanity["passed"]][[*CHECK, "exact", "measured", "z"]]
        raise RuntimeError("The reference run disagrees with exact answers, so the estimators or the problems are "
                           f"wrong; not writing bounds.\n{bad.to_string(index=False)}\nReference run: {run_dir}")
    added = build_bounds(reference, exact, old.replicates, {}, old.family_wise_false_alarm)
    checks = pd.concat([old.checks, added.checks], ignore_index=True).sort_values(CHECK, key=_sort_key)
    checks = checks.reset_index(drop=True)
    z = bonferroni_z(old.family_wise_false_alarm, len(checks))
    half_width = z * np.hypot(checks["expected_se"], checks["measurement_se"])
    is_mean = checks["statistic"] == "mean"
    checks["lower"] = np.where(is_mean, checks["expected"] - half_width, checks["expected"] * np.exp(-half_width))
    checks["upper"] = np.where(is_mean, checks["expected"] + half_width, checks["expected"] * np.exp(half_width))
    heavy = old.reference["heavy_tailed_variance_checks"] + added.reference["heavy_tailed_variance_checks"]
    per_check = old.family_wise_false_alarm / len(checks)
    reference = {
        **old.reference,
        "variance_unchecked": old.reference["variance_unchecked"] + added.reference["variance_unchecked"],
        "heavy_tailed_variance_checks": heavy,
        "family_wise_false_alarm_if_their_tails_are_100x_normal":
            per_check * (len(checks) - heavy + HEAVY_TAIL_INFLATION * heavy),
        "extensions": [*old.reference.get("extensions", []), {
            "problems": new_problems, "replicates": replicates, "seed": seed, **git_state(),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - start, 1),
            "max_abs_z_against_exact": round(float(sanity["z"].abs().max()), 3), "run_id": Path(run_dir).name}],
    }
    new = Bounds(old.replicates, old.family_wise_false_alarm, z, reference, checks)
    print(f"reference run {run_dir} of {', '.join(new_problems)}: {len(added.checks)} new checks, {len(sanity)} with "
          f"exact answers (max |z| against them {sanity['z'].abs().max():.2f}); {len(checks)} checks in all, "
          f"z = {z:.3f} (was {old.z_threshold:.3f}); no existing expected value moved")
    if write:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(new.to_json())
        os.replace(temporary, path)
        print(f"wrote {path}")
    return new


# ---------------------------------------------------------------------------------------------------
# Calibration: the unmodified code on many seeds.


def calibrate(seeds, bounds: Bounds) -> pd.DataFrame:
    """Run and check the profile at each seed; one row per seed, and the pooled z-scores printed."""
    rows, pooled = [], []
    for seed in seeds:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bounds-") as output_dir:
            result = check_run(measure_profile(seed, output_dir), bounds)
        pooled.append(result["z"].to_numpy())
        worst = result.loc[result["z"].abs().idxmax()]
        rows.append(
            {
                "seed": seed,
                "passed": bool(result["passed"].all()),
                "failed_checks": int((~result["passed"]).sum()),
                "max_abs_z": float(abs(worst["z"])),
                "worst_check": f"{worst['problem']} {worst['estimator']} L={worst['num_samples']} "
                f"{worst['parameter']}[{worst['coordinate']}] {worst['statistic']}",
                "wall_time_s": round(time.perf_counter() - start, 1),
            }
        )
        print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    z = np.concatenate(pooled)
    print(f"pooled over {len(rows)} seeds: {z.size} z-scores, mean {z.mean():.3f}, sd {z.std():.3f}; "
          f"|z| > 2: {np.mean(np.abs(z) > 2):.4f} (normal 0.0455), |z| > 3: {np.mean(np.abs(z) > 3):.5f} "
          f"(normal 0.0027), |z| > 4: {np.mean(np.abs(z) > 4):.6f} (normal 0.000063)")
    return pd.DataFrame(rows)


def _enable_compilation_cache() -> None:
    """Reuse compiled programs across runs in this process (they differ only in the seed)."""
    import jax

    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="jax-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bounds",
                                     description=__doc__.split("\n\n")[0].replace("\n", " "))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = commands.add_parser("check", help="measure the ci profile (or read RUN_DIR) and compare with the bounds")
    sub.add_argument("run_dir", nargs="?", help="a finished `variance_vs_L --profile ci` run (default: measure one)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the run measured here (default: %(default)s)")
    sub.add_argument("--bounds", default=str(BOUNDS_FILE), help="the bounds file (default: %(default)s)")
    sub = commands.add_parser("regenerate", help="new reference run and bounds file; prints what moved")
    sub.add_argument("--replicates", type=int, default=REFERENCE_REPLICATES, help="reference R (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=REFERENCE_SEED, help="reference seed (default: %(default)s)")
    sub.add_argument("--bounds", default=str(BOUNDS_FILE), help="the file to write (default: %(default)s)")
    sub.add_argument("--output-dir", default="results", help="where the reference run folder goes")
    sub.add_argument("--dry-run", action="store_true", help="print what moved without writing the file")
    sub = commands.add_parser("extend", help="add bounds for the profile's problems the file lacks, from a reference "
                              "run of those alone; existing checks keep their expected values")
    sub.add_argument("--replicates", type=int, default=REFERENCE_REPLICATES, help="reference R (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=REFERENCE_SEED, help="reference seed (default: %(default)s)")
    sub.add_argument("--bounds", default=str(BOUNDS_FILE), help="the file to extend (default: %(default)s)")
    sub.add_argument("--output-dir", default="results", help="where the reference run folder goes")
    sub.add_argument("--dry-run", action="store_true", help="print what would be added without writing the file")
    sub = commands.add_parser("calibrate", help="check the unmodified code at many seeds")
    sub.add_argument("--seeds", type=int, default=20, help="how many seeds, 0, 1, ... (default: %(default)s)")
    sub.add_argument("--first-seed", type=int, default=0)
    sub.add_argument("--bounds", default=str(BOUNDS_FILE), help="the bounds file (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.command == "regenerate":
        regenerate(args.bounds, args.replicates, args.seed, args.output_dir, write=not args.dry_run)
        return 0
    if args.command == "extend":
        extend(args.bounds, args.replicates, args.seed, args.output_dir, write=not args.dry_run)
        return 0
    bounds = load_bounds(args.bounds)
    if args.command == "calibrate":
        if args.first_seed <= bounds.reference["seed"] < args.first_seed + args.seeds:
            parser.error(f"the seeds include the reference run's, {bounds.reference['seed']}")
        _enable_compilation_cache()
        table = calibrate(range(args.first_seed, args.first_seed + args.seeds), bounds)
        print(f"{int(table['passed'].sum())} of {len(table)} seeds passed; max |z| over all runs: "
              f"{table['max_abs_z'].max():.2f} (threshold {bounds.z_threshold:.2f})")
        return 0 if table["passed"].all() else 1
    if args.run_dir:
        result = check_run(args.run_dir, bounds)
    else:
        with tempfile.TemporaryDirectory(prefix="bounds-") as output_dir:
            result = check_run(measure_profile(args.seed, output_dir, progress=True), bounds)
    print(report(result))
    return 0 if result["passed"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
