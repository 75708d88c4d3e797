"""The variance-bound regression check (experiments/regression/, its variance_bounds.json).

CI measures the ci profile and compares every coordinate's mean and variance with its committed band
(family-wise false alarm 1e-4, stated in the file).  The planted regressions below show that the check
bites: each is an estimator with one realistic bug, measured on one cell of the profile under the
name of the estimator it impersonates, and each must leave its band.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import estimators as est
from estimators.base import estimator_dataclass
from estimators.baselines import Baseline, BaselineInfo
from experiments import bounds, problems
from experiments import run as cli
from experiments.engine.measure import measure_cell
from experiments.engine.statistics import bonferroni_z
from experiments.engine.tidy import cell_rows


@pytest.fixture(scope="module")
def committed():
    return bounds.load_bounds()


def test_bounds_file_covers_exactly_the_ci_profile(committed):
    missing, extra = bounds.uncovered_cells(committed, bounds.profile_cells())
    assert not missing and not extra, (
        f"The ci profile and the bounds file disagree: cells without bounds {missing}, bounds of cells "
        f"no longer measured {extra}.  After an intended change run `python -m experiments.bounds regenerate`."
    )


#: Estimators the ci profile leaves out, and where they are checked instead.
CHECKED_ELSEWHERE = {
    "rodeo": "its per-replicate warm-up chains would take some 18 minutes; exact mean, variance and control "
             "gradient by enumeration in tests/test_rodeo.py",
}


def test_every_registered_estimator_has_a_cell(committed):
    covered = set(committed.checks["estimator"])
    uncovered = [name for name in est.names() if name not in covered and name not in CHECKED_ELSEWHERE]
    assert not covered & set(CHECKED_ELSEWHERE), "an estimator checked elsewhere has cells: drop it from the list"
    assert not uncovered, (
        f"{uncovered} have no cell in the variance-bound check.  Add a problem they apply to in the ci profile "
        "(experiments/catalog/variance_vs_L.py, PROFILES) and run `python -m experiments.bounds regenerate`."
    )


def test_every_cell_has_mean_and_variance_checks(committed):
    statistics = committed.checks.groupby(bounds.CELL)["statistic"].agg(set)
    lacking = statistics[statistics.map(lambda s: s != {"mean", "variance"})]
    assert lacking.empty, f"cells without both a mean and a variance band:\n{lacking}"


def test_stated_false_alarm_rates_are_the_ones_applied(committed):
    payload = json.loads(bounds.BOUNDS_FILE.read_text())
    num_checks = len(committed.checks)
    assert payload["checks_count"] == num_checks
    assert committed.family_wise_false_alarm <= 1e-3
    assert payload["per_check_false_alarm"] * num_checks == pytest.approx(committed.family_wise_false_alarm)
    assert committed.z_threshold == pytest.approx(bonferroni_z(committed.family_wise_false_alarm, num_checks))
    # Every band is expected ± z · (joint standard error), on the log scale for variances.
    checks = committed.checks
    half_width = committed.z_threshold * np.hypot(checks["expected_se"], checks["measurement_se"])
    is_mean = checks["statistic"] == "mean"
    np.testing.assert_allclose(checks["lower"], np.where(is_mean, checks["expected"] - half_width,
                                                         checks["expected"] * np.exp(-half_width)), rtol=1e-12)
    np.testing.assert_allclose(checks["upper"], np.where(is_mean, checks["expected"] + half_width,
                                                         checks["expected"] * np.exp(half_width)), rtol=1e-12)


def test_heavy_tails_cannot_push_the_family_wise_rate_above_the_stated_limit(committed):
    # Even if every variance check on a coordinate with kurtosis above 10 had a tail 100 times the
    # normal one at its z, the sum over checks would stay below 1e-3.
    assert committed.reference["family_wise_false_alarm_if_their_tails_are_100x_normal"] < 1e-3
    unchecked = pd.DataFrame(committed.reference["variance_unchecked"])
    assert (unchecked["rho"] > bounds.MAX_RELATIVE_SPREAD).all()


def test_reference_run_is_independent_of_the_checked_runs(committed):
    assert committed.reference["seed"] not in range(0, 100)  # CI checks seed 0, calibration 0, 1, ...
    assert committed.reference["replicates"] >= 10 * committed.replicates
    assert committed.replicates == bounds.profile_config().replicates
    for extension in committed.reference.get("extensions", []):  # problems added to the profile later
        assert extension["seed"] not in range(0, 100) and extension["replicates"] >= 4 * committed.replicates


def test_exact_answers_are_used_wherever_the_problems_know_them(committed):
    exact = bounds.exact_answers(bounds.profile_cells())
    merged = committed.checks.merge(exact, on=bounds.CHECK, how="inner")
    assert (merged["source"] == "exact").all() and len(merged) > 0
    np.testing.assert_allclose(merged["expected"], merged["exact"], rtol=1e-12)
    # Every exact answer the problems know has its check, but for the variances left unchecked (heavy tails).
    unused = exact.merge(committed.checks[bounds.CHECK], on=bounds.CHECK, how="left", indicator=True)
    unused = unused.loc[unused["_merge"] == "left_only", bounds.CHECK]
    unchecked = pd.DataFrame(committed.reference["variance_unchecked"]).assign(statistic="variance")[bounds.CHECK]
    assert len(unused.merge(unchecked, on=bounds.CHECK)) == len(unused), unused


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    """The CI run: the ci profile at seed 0, as `python -m experiments.run variance_vs_L --profile ci`."""
    output = tmp_path_factory.mktemp("results")
    assert cli.main(["variance_vs_L", "--profile", "ci", "--output-dir", str(output), "--quiet", "--no-figures"]) == 0
    (run_dir,) = (output / "variance_vs_L").iterdir()
    return run_dir


def test_ci_profile_stays_inside_its_bounds(committed, ci_run):
    assert json.loads((ci_run / "config.json").read_text())["profile"] == "ci"
    result = bounds.check_run(ci_run, committed)
    assert len(result) == len(committed.checks)
    assert result["passed"].all(), bounds.report(result)


def test_check_command_reads_a_run(ci_run, capsys):
    assert bounds.main(["check", str(ci_run)]) == 0
    assert "checks inside their bands" in capsys.readouterr().out


def test_check_refuses_a_run_at_the_reference_seed(committed, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "variance_vs_L", "profile": "ci",
                                                      "seed": committed.reference["seed"]}))
    (tmp_path / "env.json").write_text("{}")
    (tmp_path / "metrics.csv").write_text("problem,estimator\n")
    with pytest.raises(bounds.BoundsMismatch, match="the reference run's: it would be compared with its own"):
        bounds.check_run(tmp_path, committed)


def test_what_moved_lists_moved_added_and_dropped_checks(committed):
    assert bounds.moved_checks(committed, committed).empty
    checks = committed.checks.copy()
    from_reference = checks.index[checks["source"] == "reference"][0]
    exact = checks.index[checks["source"] == "exact"][0]
    checks.loc[from_reference, "expected"] += 10 * committed.z_threshold * checks.loc[from_reference, "expected_se"]
    checks.loc[exact, "expected"] *= 1 + 1e-6  # exact answers have no noise: any change moves
    nudged = from_reference + 1  # within its noise: not a move
    checks.loc[nudged, "expected"] += 0.1 * checks.loc[nudged, "expected_se"]
    changed = dataclasses.replace(committed, checks=checks.drop(index=checks.index[-1]))
    moved = bounds.moved_checks(committed, changed)
    assert sorted(moved["change"]) == ["dropped", "moved", "moved"]


def test_heavy_tailed_coordinates_keep_only_their_mean_check():
    keys = {"problem": "p", "estimator": "e", "num_samples": 2, "parameter": "x"}
    reference = pd.DataFrame([
        {**keys, "coordinate": c, "statistic": s, "measured": m, "se": se, "replicates": 10**6, "rho": rho}
        for c, rho in ((0, 1.5), (1, 20.0))
        for s, m, se in (("mean", 0.1, 1e-3), ("variance", 1.0, rho / 1e3))
    ]).assign(rho=lambda f: np.where(f["statistic"] == "variance", f["rho"], np.nan))
    built = bounds.build_bounds(reference, bounds.exact_answers([]), 50_000, {})
    assert sorted(zip(built.checks["coordinate"], built.checks["statistic"])) == [
        (0, "mean"), (0, "variance"), (1, "mean")]
    assert built.reference["variance_unchecked"] == [{**keys, "coordinate": 1, "rho": 20.0}]
    with pytest.raises(ValueError, match="needs a positive variance"):
        bounds.build_bounds(reference.assign(measured=0.0), bounds.exact_answers([]), 50_000, {})


def test_profile_fixes_its_cells():
    with pytest.raises(SystemExit):
        cli.main(["variance_vs_L", "--profile", "ci", "--replicates", "100"])
    with pytest.raises(ValueError, match="The ci profile fixes problems"):
        bounds.profile_config(problems=("gaussian_exp",))


def test_check_refuses_a_run_that_measured_something_else(committed):
    measured = pd.DataFrame(committed.checks[bounds.CHECK]).assign(measured=committed.checks["expected"])
    with pytest.raises(
        bounds.BoundsMismatch, match=f"R = {committed.replicates} replicates per cell; the run used R = \\[500\\]"
    ):
        bounds.check(measured.assign(replicates=500), committed)
    with pytest.raises(bounds.BoundsMismatch, match="The run lacks 1 checks"):
        bounds.check(measured.iloc[1:].assign(replicates=committed.replicates), committed)


# ---------------------------------------------------------------------------------------------------
# Planted regressions.


@estimator_dataclass
class OwnCostMean(Baseline):
    """A baseline that averages all L costs, the sample's own included: b_i depends on x_i, so
    E[(f_i − b_i) ∇ log q(x_i)] = (1 − 1/L) ∇F, biased."""

    info = BaselineInfo("loo", min_num_samples=2)  # it impersonates the leave-one-out baseline

    def values(self, costs, state, scores=None):
        return jnp.full_like(costs, jnp.mean(costs)), state


@estimator_dataclass
class Impersonator(est.GradientEstimator):
    """A buggy variant of ``inner`` that goes by its name, so the check compares it with inner's bands."""

    inner: est.GradientEstimator

    @property
    def info(self):
        return self.inner.info

    def supports(self, dist):
        return self.inner.supports(dist)


@estimator_dataclass
class HalfTheSamples(Impersonator):
    """Averages only the first L/2 of its L samples: unbiased, with twice the variance of an
    estimator of i.i.d. terms."""

    def estimate(self, objective, params, key, num_samples, state):
        return self.inner.estimate(objective, params, key, num_samples // 2, state)


@estimator_dataclass
class DroppedDirectTerm(Impersonator):
    """Differentiates the cost only through the sample: drops E[∇θ f(θ, x)]."""

    def estimate(self, objective, params, key, num_samples, state):
        blind = est.Objective(dist=objective.dist, cost=lambda p, x: objective.cost(jax.lax.stop_gradient(p), x))
        return self.inner.estimate(blind, params, key, num_samples, state)


PLANTED = {
    # name: (planted estimator, problem, L, the statistic that must leave its band)
    "own_cost_baseline_bernoulli": (est.ScoreFunction(baseline=OwnCostMean()), "bernoulli_toy", 2, "mean"),
    "own_cost_baseline_cosine": (est.ScoreFunction(baseline=OwnCostMean()), "gaussian_cosine", 16, "mean"),
    "doubled_variance_pathwise": (HalfTheSamples(est.get("pathwise")), "gaussian_cosine", 16, "variance"),
    "doubled_variance_straight_through": (HalfTheSamples(est.get("straight_through")), "categorical_toy", 2,
                                          "variance"),
    "dropped_direct_term_score_function": (DroppedDirectTerm(est.get("score_function")), "gaussian_elbo", 16, "mean"),
    "dropped_direct_term_pathwise": (DroppedDirectTerm(est.get("pathwise")), "gaussian_elbo", 2, "mean"),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_planted_regression_is_caught(case, committed, key):
    planted, problem_name, num_samples, statistic = PLANTED[case]
    problem = problems.get(problem_name)
    measurement = measure_cell(problem, planted, num_samples, committed.replicates, key)
    _, coordinate_rows = cell_rows(problem, planted, num_samples, measurement)
    result = bounds.check(bounds.measured_statistics(pd.DataFrame(coordinate_rows)), committed, require_all=False)
    assert set(result[bounds.CELL].itertuples(index=False, name=None)) == {(problem_name, planted.name, num_samples)}
    failed = result[~result["passed"]]
    assert statistic in set(failed["statistic"]), f"{case} was not caught:\n{bounds.report(result)}"
