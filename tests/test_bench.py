"""The benchmark's table: every applicable estimator timed against a floor with as many cost evaluations."""

import pandas as pd

from experiments import bench


def test_bench_times_each_estimator_against_its_floor(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert bench.main(["--problems", "gaussian_cosine,bernoulli_toy", "--estimators",
                       "pathwise,measure_valued,straight_through", "--num-samples", "4", "--replicates", "64",
                       "--repeats", "2", "--output", str(out)]) == 0
    table = pd.read_csv(out)
    assert set(map(tuple, table[["problem", "estimator"]].values)) == {
        ("gaussian_cosine", "pathwise"), ("gaussian_cosine", "measure_valued"), ("bernoulli_toy", "straight_through")}
    rows = table.set_index(["problem", "estimator"])
    assert rows.loc[("gaussian_cosine", "pathwise"), "cost_evaluations"] == 4
    assert rows.loc[("gaussian_cosine", "measure_valued"), "cost_evaluations"] == 4 * (4 * 1 + 1)
    assert (table["x_floor"] > 0).all() and (table["estimates_per_s"] > 0).all() and (table["compile_s"] > 0).all()
    assert "| gaussian_cosine | measure_valued |" in capsys.readouterr().out
