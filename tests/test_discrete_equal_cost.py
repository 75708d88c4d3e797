"""The equal-cost comparison of discrete estimators: each estimator measured at the largest L a budget of cost
evaluations buys, and the ranking's arithmetic on hand-made metrics."""

import math

import pandas as pd
import pytest

import estimators as est
from analysis import tables
from experiments import problems
from experiments.catalog import discrete


@pytest.fixture(scope="module")
def toy():
    return problems.get("bernoulli_toy")


@pytest.mark.parametrize("name, budget, expected", [
    ("disarm", 16, 8),  # two evaluations per sample
    ("disarm", 3, 1),
    ("score_function_loo", 16, 16),
    ("score_function_loo", 1, None),  # leave-one-out needs two samples
    ("measure_valued", 10, None),  # 2 per coordinate and one more: 11 for 5 bits
    ("measure_valued", 64, 5),
    ("straight_through", 4, 4),
])
def test_each_estimator_gets_the_largest_l_its_budget_buys(toy, name, budget, expected):
    estimator = est.get(name)
    assert discrete.largest_affordable_num_samples(toy, estimator, toy.distribution(), budget) == expected


def test_the_plan_measures_every_budget_at_its_largest_l_and_names_what_does_not_fit():
    config = discrete.Config(problems=("bernoulli_toy", "categorical_toy_10"),
                             estimators=("disarm", "indecater", "score_function_loo"), cost_budgets=(4, 16, 64))
    cells, skipped = discrete.plan(config)
    grids = {}
    for cell in cells:
        grids.setdefault((cell.problem.name, cell.estimator.name), []).append(cell.num_samples)
    assert grids[("bernoulli_toy", "disarm")] == [2, 8, 32]
    assert grids[("bernoulli_toy", "score_function_loo")] == [4, 16, 64]
    assert grids[("categorical_toy_10", "score_function_loo")] == [4, 16, 64]
    # IndeCateR on 3 variables of 10 classes needs more than 16 evaluations for one sample.
    assert grids[("categorical_toy_10", "indecater")] == [2]
    reasons = {(s["problem"], s["estimator"], s.get("cost_budget")): s["reason"] for s in skipped}
    assert "fits 16 cost evaluations" in reasons[("categorical_toy_10", "indecater", 16)]
    assert "Bernoulli latents" in reasons[("categorical_toy_10", "disarm", None)]
    for cell in cells:
        assert cell.problem.cost_evaluations(cell.estimator, cell.num_samples) <= 64


def test_a_continuous_problem_is_skipped_with_the_reason():
    cells, skipped = discrete.plan(discrete.Config(problems=("gaussian_quadratic",), estimators=("score_function",)))
    assert cells == [] and "not a discrete problem" in skipped[0]["reason"]


@pytest.mark.parametrize("budgets", [(), (0, 4), (2.5,)])
def test_bad_budgets_are_refused(budgets):
    with pytest.raises(ValueError, match="--cost-budgets"):
        discrete.Config(cost_budgets=budgets).validate()


def _metrics(cells):
    """Tidy rows for (estimator, L, cost evaluations, MSE, MSE se) cells of one problem."""
    rows = []
    for estimator, num_samples, evaluations, mse, mse_se in cells:
        key = {"problem": "toy", "estimator": estimator, "num_samples": num_samples, "parameter": "all"}
        rows += [{**key, "metric": "mse", "value": mse, "std_error": mse_se},
                 {**key, "metric": "cost_evaluations", "value": evaluations, "std_error": math.nan},
                 {**key, "metric": "time_per_estimate_s", "value": 1e-3, "std_error": math.nan}]
    return pd.DataFrame(rows).assign(replicates=1000)


def test_the_equal_cost_table_takes_each_estimators_largest_estimate_within_the_budget():
    metrics = _metrics([("a", 2, 4, 1.0, 0.01), ("a", 8, 16, 0.25, 0.01),
                        ("b", 4, 4, 0.5, 0.01), ("b", 16, 16, 0.2, 0.01),
                        ("c", 1, 11, 0.1, 0.001)])
    table = tables.equal_cost(metrics, [4, 16])
    at = {(row.cost_budget, row.estimator): (row.num_samples, row.mse) for row in table.itertuples()}
    assert at == {(4, "a"): (2, 1.0), (4, "b"): (4, 0.5),
                  (16, "a"): (8, 0.25), (16, "b"): (16, 0.2), (16, "c"): (1, 0.1)}
    ranking = tables.equal_cost_ranking(table).set_index("cost_budget")
    assert ranking.loc[4, "best"] == "b" and ranking.loc[4, "runner_up"] == "a"
    assert ranking.loc[4, "margin"] == pytest.approx(2.0) and ranking.loc[4, "clear"]
    assert ranking.loc[16, "best"] == "c" and ranking.loc[16, "runner_up"] == "b"
    assert ranking.loc[16, "margin"] == pytest.approx(2.0)


def test_an_estimator_skipped_at_a_budget_has_no_row_there():
    metrics = _metrics([("a", 2, 4, 1.0, 0.01), ("a", 8, 16, 0.25, 0.01), ("b", 4, 4, 0.5, 0.01)])
    skipped = [{"problem": "toy", "estimator": "b", "cost_budget": 16, "reason": "too many backward passes"}]
    table = tables.equal_cost(metrics, [4, 16], skipped)
    assert sorted(zip(table["cost_budget"], table["estimator"])) == [(4, "a"), (4, "b"), (16, "a")]


def test_estimators_exact_to_rounding_are_named_apart_and_the_rest_ranked():
    metrics = _metrics([("a", 4, 4, 1.0, 0.01), ("b", 4, 4, 0.5, 0.01), ("exact", 1, 4, 1e-16, 1e-18)])
    ranking = tables.equal_cost_ranking(tables.equal_cost(metrics, [4]))
    assert ranking.loc[0, "exact"] == "exact"
    assert (ranking.loc[0, "best"], ranking.loc[0, "runner_up"]) == ("b", "a")
    assert ranking.loc[0, "margin"] == pytest.approx(2.0)


def test_a_margin_within_two_standard_errors_is_not_clear():
    metrics = _metrics([("a", 4, 4, 1.0, 0.1), ("b", 4, 4, 1.1, 0.1)])
    ranking = tables.equal_cost_ranking(tables.equal_cost(metrics, [4]))
    assert ranking.loc[0, "best"] == "a" and not ranking.loc[0, "clear"]


def test_the_report_grid_reads_well_when_an_estimator_has_no_runner_up(tmp_path):
    """At 16 evaluations one inexact estimator is left beside an exact one: no runner-up to compare with."""
    from analysis.load import Run
    from analysis.report.content import _equal_cost_blocks

    metrics = _metrics([("exact", 1, 4, 1e-16, 1e-18), ("b", 4, 4, 0.5, 0.01), ("c", 4, 4, 1.0, 0.01),
                        ("exact", 4, 16, 1e-16, 1e-18), ("a", 8, 16, 0.25, 0.01)])
    skipped = [{"problem": "toy", "estimator": name, "cost_budget": 16, "reason": "r"} for name in ("b", "c")]
    run = Run(path=tmp_path, config={"cost_budgets": [4, 16], "skipped": skipped}, env={}, metrics=metrics,
              coordinate_metrics=pd.DataFrame())
    glance = _equal_cost_blocks(run, "discrete", tmp_path)[0].frame
    assert glance.loc[0, "4 evaluations"] == "exact: exact; then b (L = 4; ×2.00 to c)"
    assert glance.loc[0, "16 evaluations"] == "exact: exact; then a (L = 8)"
