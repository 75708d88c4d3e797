"""The benchmark's table: every applicable estimator timed against a floor with as many cost evaluations."""

import numpy as np
import pandas as pd
import pytest

from experiments import bench


def test_bench_times_each_estimator_against_its_floor(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert bench.main(["--problems", "gaussian_cosine,bernoulli_toy", "--estimators",
                       "pathwise,measure_valued,straight_through", "--num-samples", "4", "--replicates", "64",
                       "--repeats", "2", "--output", str(out)]) == 0
    table = pd.read_csv(out)
    assert set(map(tuple, table[["problem", "estimator"]].values)) == {
        ("gaussian_cosine", "pathwise"), ("gaussian_cosine", "measure_valued"), ("bernoulli_toy", "measure_valued"),
        ("bernoulli_toy", "straight_through")}
    rows = table.set_index(["problem", "estimator"])
    assert rows.loc[("gaussian_cosine", "pathwise"), "cost_evaluations"] == 4
    assert rows.loc[("gaussian_cosine", "measure_valued"), "cost_evaluations"] == 4 * (4 * 1 + 1)
    assert rows.loc[("bernoulli_toy", "measure_valued"), "cost_evaluations"] == 4 * (2 * 5 + 1)
    assert (table["x_floor"] > 0).all() and (table["estimates_per_s"] > 0).all() and (table["compile_s"] > 0).all()
    assert "| gaussian_cosine | measure_valued |" in capsys.readouterr().out


@pytest.mark.parametrize("num_samples, evaluations", [(4, 4), (4, 8), (3, 10)])
def test_the_floor_evaluates_the_cost_as_often_as_the_estimator_on_copies_of_its_samples(num_samples, evaluations):
    """The floor of an estimator of L samples that evaluates the cost E times evaluates it ceil(E / L) times,
    on copies of the L samples (not on E fresh draws: an antithetic pair shares its uniform)."""
    import dataclasses

    import jax

    import estimators as est
    from experiments import problems

    problem = problems.get("bernoulli_toy")
    batches = []

    def cost(params, x):
        batches.append(x.shape)
        return problem.objective.cost(params, x)

    counted = dataclasses.replace(problem, objective=est.Objective(problem.objective.dist, cost))
    floor = bench.floor_fn(counted, num_samples, evaluations, num_replicates=8, batch=8)
    jax.make_jaxpr(floor)(problem.params, jax.random.key(0))
    copies = -(-evaluations // num_samples)
    assert len(batches) == copies  # traced once per copy, under the vmap over the L samples


def test_scaling_times_the_runner_program_over_a_grid_compiling_once_per_shape(tmp_path, capsys):
    out = tmp_path / "scaling.csv"
    assert bench.main(["--scaling", "--problems", "gaussian_cosine", "--estimators", "pathwise,score_function_loo",
                       "--num-samples", "1,4", "--replicates", "32,64", "--repeats", "2", "--output", str(out)]) == 0
    table = pd.read_csv(out)
    # Leave-one-out needs L >= 2: its L = 1 shapes are skipped.
    assert len(table) == 4 + 2 and set(table.loc[table.estimator == "score_function_loo", "num_samples"]) == {4}
    assert (table["samples"] == table["replicates"] * table["num_samples"]).all()
    # Three timed calls per shape, compiled by the first only (3 bounds the first cell's eager helpers).
    assert table["compilations"].between(1, 3).all()
    slopes = bench.scaling_slopes(table)
    assert np.isfinite(slopes["slope"]).all() and (slopes["spread"] >= 1).all()
    assert "| gaussian_cosine | pathwise | " in capsys.readouterr().out


def test_bench_rejects_bad_counts(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--num-samples", "4,16"])
    assert "--num-samples takes a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--scaling", "--replicates", "0,4"])
    assert "--replicates takes comma-separated positive integers" in capsys.readouterr().err
