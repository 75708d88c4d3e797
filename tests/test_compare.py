"""experiments.compare: the estimators ranked on an objective given as a user would give it.

The statistical checks state their false-alarm rates: variances against exact ones at z from a
family-wise 1e-3 over the checks of a test; the formed reference against the exact gradient per coordinate,
family-wise 1e-3.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import estimators as est
import experiments
from estimators.base import estimator_dataclass
from experiments import problems
from experiments.engine.statistics import bonferroni_z

FALSE_ALARM = 1e-3


@pytest.fixture(scope="module")
def quadratic():
    """‖x − k‖² under a 20-D Gaussian: exact gradient and exact variances of pathwise and score function."""
    return problems.get("gaussian_quadratic_20d")


@pytest.fixture(scope="module")
def ranked(quadratic):
    return experiments.compare(quadratic.objective, quadratic.params, jax.random.key(1),
                               estimators=["pathwise", "score_function", "gumbel_softmax"], num_samples=(1, 16),
                               budget_seconds=10, reference=quadratic.exact_grad, progress=False)


def test_variances_match_the_exact_ones_and_the_ranking_the_benchmarks(quadratic, ranked):
    rows = ranked.table[(ranked.table["parameter"] == "all") & (ranked.table["error"] == "")]
    assert sorted(zip(rows["estimator"], rows["num_samples"])) == [
        ("pathwise", 1), ("pathwise", 16), ("score_function", 1), ("score_function", 16)]
    z = bonferroni_z(FALSE_ALARM, len(rows))
    for row in rows.itertuples():
        exact = sum(np.sum(v) for v in jax.tree_util.tree_leaves(quadratic.exact_variance(row.estimator,
                                                                                          row.num_samples)))
        assert abs(row.variance - exact) < z * row.variance_se, (row.estimator, row.num_samples, row.variance, exact)
        assert row.replicates >= experiments.comparison.ROUND_REPLICATES
    # The exact variances differ 40-fold (pathwise ahead) and the times per estimate are alike: the benchmark
    # ranks pathwise first at every L, with a clear margin.
    ratio = {n: sum(np.sum(v) for v in jax.tree_util.tree_leaves(quadratic.exact_variance("score_function", n)))
             / sum(np.sum(v) for v in jax.tree_util.tree_leaves(quadratic.exact_variance("pathwise", n)))
             for n in (1, 16)}
    assert min(ratio.values()) > 10
    assert list(ranked.recommendations["best"]) == ["pathwise", "pathwise"]
    assert ranked.recommendations["clear"].all()
    assert ranked.reference_source == "given"


def test_an_estimator_that_does_not_apply_is_a_row_with_the_reason(ranked):
    rows = ranked.table[ranked.table["estimator"] == "gumbel_softmax"]
    assert len(rows) == 2 and rows["error"].str.contains("not applicable").all()
    assert "gumbel_softmax" not in set(ranked.recommendations["best"]) | set(ranked.recommendations["runner_up"])
    assert "Not measured:" in str(ranked)


@estimator_dataclass
class Broken(est.GradientEstimator):
    """An estimator that fails when traced."""

    @property
    def info(self):
        return est.EstimatorInfo("broken")

    def estimate(self, objective, params, key, num_samples, state):
        raise RuntimeError("this estimator is broken on purpose")


def test_a_failing_estimator_is_reported_not_raised(quadratic):
    result = experiments.compare(quadratic.objective, quadratic.params, jax.random.key(2),
                                 estimators=[Broken(), "pathwise"], num_samples=(4,), budget_seconds=3,
                                 reference=False, progress=False)
    broken = result.table[result.table["estimator"] == "broken"]
    assert list(broken["error"]) == ["RuntimeError: this estimator is broken on purpose"]
    assert list(result.recommendations["best"]) == ["pathwise"]
    assert result.reference_source == "none"


def test_the_budget_is_honoured(quadratic):
    # The run ends within one compilation and one round of its budget: after the last program's first
    # round, no round starts that its predicted time would carry past the budget.
    budget = 4.0
    result = experiments.compare(quadratic.objective, quadratic.params, jax.random.key(3),
                                 estimators=["pathwise", "score_function_loo"], num_samples=(2, 8),
                                 budget_seconds=budget, replicates=10**6, reference=False, progress=False)
    longest_compile = result.table["compile_time_s"].max()
    assert result.wall_time_s < budget + longest_compile + 1.0, (result.wall_time_s, longest_compile)
    # Rounds went on while there was budget: well over the first round's replicates.
    assert (result.table["replicates"] > 4 * experiments.comparison.ROUND_REPLICATES).all()


def test_a_formed_reference_is_the_exact_gradient_within_its_standard_error(quadratic):
    result = experiments.compare(quadratic.objective, quadratic.params, jax.random.key(4),
                                 estimators=["pathwise", "score_function"], num_samples=(1, 16), budget_seconds=6,
                                 progress=False)
    assert result.reference_source.startswith("the mean of pathwise at L = 16")
    reference = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(result.reference)])
    se = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(result.reference_se)])
    exact = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(quadratic.exact_grad)])
    assert (np.abs(reference - exact) < bonferroni_z(FALSE_ALARM, exact.size) * se).all()
    judged = result.table.loc[result.table["parameter"] == "all", "disagrees"].dropna()
    assert len(judged) == 4 and not judged.any()  # both estimators at both L, each with >= 1,000 replicates


def test_an_estimator_whose_assumptions_fail_is_flagged():
    # A step cost: the pathwise gradient is 0 almost surely, the score function's is φ(μ) ≠ 0.  They cannot
    # both be unbiased here, and the comparison says that their means disagree.
    objective = est.Objective(dist=lambda p: est.Normal(p["loc"], jnp.ones(3)),
                              cost=lambda p, x: jnp.sum((x > 0).astype(x.dtype)))
    params = {"loc": jnp.zeros(3)}
    result = experiments.compare(objective, params, jax.random.key(5), estimators=["pathwise", "score_function"],
                                 num_samples=(16,), budget_seconds=4, progress=False)
    assert result.table["disagrees"].fillna(False).any()
    assert "disagree" in str(result)
    assert math.isclose(float(np.abs(jax.tree_util.tree_leaves(result.reference)[0]).max()), 0.0) or \
        result.reference_source.startswith("the mean of score_function")


def test_bad_arguments_name_the_fix(quadratic):
    call = lambda **kw: experiments.compare(quadratic.objective, quadratic.params, jax.random.key(0),
                                            progress=False, **kw)
    with pytest.raises(ValueError, match="budget_seconds must be positive"):
        call(budget_seconds=0)
    with pytest.raises(ValueError, match="num_samples must be positive integers"):
        call(num_samples=(0, 4))
    with pytest.raises(ValueError, match="pass reference as well"):
        call(reference_se=quadratic.exact_grad)
    with pytest.raises(ValueError, match="reference must be a pytree like params"):
        call(reference={"loc": quadratic.exact_grad["loc"]})
    with pytest.raises(ValueError, match="got True"):
        call(reference=True)
    with pytest.raises(ValueError, match="'applicable' or a list"):
        call(estimators="all")
    with pytest.raises(ValueError, match="Unknown estimator|unknown estimator"):
        call(estimators=["no_such_estimator"])


USER_MODULE = '''
import jax.numpy as jnp
import estimators as est

def make_objective():
    objective = est.Objective(dist=lambda p: est.Bernoulli(logits=p["logits"]),
                              cost=lambda p, b: jnp.sum((b - 0.45) ** 2))
    return objective, {"logits": jnp.zeros(3)}
'''


def test_command_writes_a_run_folder_that_the_report_reads(tmp_path, monkeypatch):
    from analysis.report import cli as report_cli
    from experiments import run as cli

    (tmp_path / "user_model_for_compare.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["compare", "--objective", "user_model_for_compare:make_objective", "--estimators",
                     "score_function_loo,disarm,straight_through", "--num-samples", "2,8", "--budget-seconds", "5",
                     "--output-dir", str(tmp_path / "results"), "--quiet", "--no-figures"]) == 0
    (run_dir,) = (tmp_path / "results" / "compare").iterdir()
    for name in ("metrics.csv", "comparison.csv", "recommendations.csv", "config.json", "env.json"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["objective"] == "user_model_for_compare:make_objective"
    assert config["reference_source"].startswith("the mean of ")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert set(metrics["estimator"]) == {"score_function_loo", "disarm", "straight_through"}
    assert report_cli.main([str(run_dir), "--output", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Your objective: the estimators ranked" in report and "best estimator" in report


def test_command_names_a_missing_objective(tmp_path, capsys):
    from experiments import run as cli

    with pytest.raises(SystemExit):
        cli.main(["compare", "--objective", "no_such_module_here:make", "--output-dir", str(tmp_path), "--quiet"])
    assert "cannot import 'no_such_module_here'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["compare", "--objective", "no_colon", "--output-dir", str(tmp_path), "--quiet"])
    assert "MODULE:FUNCTION" in capsys.readouterr().err
