"""Measuring the ``ci`` profile for the variance-bound check: its cells and their exact answers, a run of
it checked against the bounds file, and the commands that regenerate, extend and calibrate that file."""

from __future__ import annotations

import dataclasses
import datetime
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.engine.statistics import bonferroni_z
from experiments.regression.bands import (
    CHECK,
    HEAVY_TAIL_INFLATION,
    BoundsMismatch,
    build_bounds,
    check,
    check_order,
    measured_statistics,
    moved_checks,
    reference_against_exact,
)
from experiments.regression.bounds_file import BOUNDS_FILE, PROFILE, Bounds, load_bounds

__all__ = ["REFERENCE_REPLICATES", "REFERENCE_SEED", "calibrate", "check_run", "exact_answers", "exact_by_coordinate",
           "extend", "measure_profile", "measured_from_run", "profile_cells", "profile_config", "regenerate"]

REFERENCE_REPLICATES = 1_000_000
#: The reference run's seed: far from the seeds checks run at (0 in CI, 0, 1, ... in ``calibrate``),
#: so that a check never compares replicates with themselves.
REFERENCE_SEED = 10_000


def profile_config(**settings):
    from experiments.catalog import variance_vs_L

    return variance_vs_L.Config.from_profile(PROFILE, **settings)


def profile_cells() -> list:
    """The ci profile's cells, planned exactly as ``--profile ci`` plans them (nothing is measured)."""
    from experiments.catalog import variance_vs_L

    return variance_vs_L.plan(profile_config())[0]


def exact_by_coordinate(problem, tree) -> dict[tuple[str, int], float]:
    """A pytree like the problem's params, flattened to {(parameter, coordinate): value}."""
    import jax

    from experiments.engine.tidy import ALL_PARAMETERS, parameter_groups

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


def measure_profile(seed: int, output_dir: str, replicates: int | None = None, progress: bool = False) -> Path:
    """Run ``variance_vs_L --profile ci`` (other R for a reference run) and return the run folder."""
    from experiments.catalog import variance_vs_L

    config = profile_config(seed=seed, output_dir=str(output_dir), figures=False)
    if replicates is not None:
        config = dataclasses.replace(config, replicates=replicates)
    return variance_vs_L.run(config, progress=progress)


def measured_from_run(run_dir: Path | str) -> pd.DataFrame:
    from experiments.engine.results import COORDINATE_METRICS_FILE

    return measured_statistics(pd.read_csv(Path(run_dir) / COORDINATE_METRICS_FILE))


def check_run(run_dir: Path | str, bounds: Bounds) -> pd.DataFrame:
    """Compare a finished ci-profile run with the bounds; refuse another kind of folder, and a run at the
    reference's seed."""
    from experiments.engine.results import load_run

    config = load_run(run_dir).config  # a missing, partial or non-run folder is refused by name
    if config.get("experiment") != "variance_vs_L" or config.get("profile") != "ci":
        profile = f" of the {config['profile']} profile" if config.get("profile") else ""
        raise BoundsMismatch(f"{run_dir} is a {config.get('experiment')} run{profile}; the bounds check reads a "
                             "`python -m experiments.run variance_vs_L --profile ci` run (or give no folder, and it "
                             "measures one).")
    if config.get("seed") == bounds.reference.get("seed"):
        raise BoundsMismatch(f"The run used seed {config['seed']}, the reference run's: it would be compared with "
                             "its own replicates.  Use another --seed.")
    return check(measured_from_run(run_dir), bounds)


def regenerate(path: Path | str = BOUNDS_FILE, replicates: int = REFERENCE_REPLICATES, seed: int = REFERENCE_SEED,
               output_dir: str = "results", write: bool = True, progress: bool = True) -> tuple[Bounds, pd.DataFrame]:
    """Measure the reference run, build new bounds, print what moved against ``path``, write them."""
    import jax
    import jaxlib

    from experiments.engine.results import git_state

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
    """Add bounds for the profile's cells that the file does not cover yet (a problem added to the profile,
    an estimator added to the registry, an L an estimator newly accepts), from a reference run of those
    (problem, estimator) pairs alone, leaving every existing check's expected value and standard errors as
    they are (their bands widen slightly: the threshold z grows with the number of checks)."""
    from experiments.engine.results import git_state

    path = Path(path)
    old = load_bounds(path)
    covered = set(zip(old.checks["problem"], old.checks["estimator"], old.checks["num_samples"]))
    cells = [c for c in profile_cells() if (c.problem.name, c.estimator.name, c.num_samples) not in covered]
    new_cells = {(c.problem.name, c.estimator.name, c.num_samples) for c in cells}
    new_pairs = sorted({(problem, estimator) for problem, estimator, _ in new_cells})
    if not new_pairs:
        print("every cell of the profile has bounds already: nothing to extend")
        return old
    new_problems = list(dict.fromkeys(problem for problem, _ in new_pairs))
    new_estimators = list(dict.fromkeys(estimator for _, estimator in new_pairs))
    start = time.perf_counter()
    # The run measures the new problems × the new estimators; pairs among them that the file covers already
    # (an old estimator on a new problem beside a new estimator on an old one) are measured but not added.
    config = dataclasses.replace(profile_config(seed=seed, output_dir=str(output_dir), figures=False),
                                 problems=tuple(new_problems), estimators=tuple(new_estimators),
                                 replicates=replicates)
    from experiments.catalog import variance_vs_L

    run_dir = variance_vs_L.run(config, progress=progress)
    reference = measured_from_run(run_dir)
    keys = zip(reference["problem"], reference["estimator"], reference["num_samples"])
    is_new = pd.Series([key in new_cells for key in keys], index=reference.index, dtype=bool)
    reference = reference[is_new]
    exact = exact_answers(cells)
    sanity = reference_against_exact(reference, exact)
    if not sanity["passed"].all():
        bad = sanity[~sanity["passed"]][[*CHECK, "exact", "measured", "z"]]
        raise RuntimeError("The reference run disagrees with exact answers, so the estimators or the problems are "
                           f"wrong; not writing bounds.\n{bad.to_string(index=False)}\nReference run: {run_dir}")
    added = build_bounds(reference, exact, old.replicates, {}, old.family_wise_false_alarm)
    checks = pd.concat([old.checks, added.checks], ignore_index=True).sort_values(CHECK, key=check_order)
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
            "problems": new_problems, "estimators": new_estimators,
            "cells": [f"{problem}/{estimator}/L={size}" for problem, estimator, size in sorted(new_cells)],
            "replicates": replicates, "seed": seed, **git_state(),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - start, 1),
            "max_abs_z_against_exact": round(float(sanity["z"].abs().max()), 3), "run_id": Path(run_dir).name}],
    }
    new = Bounds(old.replicates, old.family_wise_false_alarm, z, reference, checks)
    print(f"reference run {run_dir} of {len(new_cells)} new cells: {len(added.checks)} new checks, {len(sanity)} with "
          f"exact answers (max |z| against them {sanity['z'].abs().max():.2f}); {len(checks)} checks in all, "
          f"z = {z:.3f} (was {old.z_threshold:.3f}); no existing expected value moved")
    if write:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(new.to_json())
        os.replace(temporary, path)
        print(f"wrote {path}")
    return new


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
    from experiments.engine import compilation_cache

    compilation_cache.enable(tempfile.mkdtemp(prefix="jax-cache-"))
