"""The training experiment end to end, on a tiny budget."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import tables
from analysis.figures import save_run_figures
from analysis.load import load_run
from experiments import run as cli
from experiments.catalog import training


def _run(tmp_path, **overrides):
    settings = dict(problems=("logistic_regression", "binary_vae"),
                    estimators=("pathwise", "score_function_loo", "measure_valued", "straight_through"),
                    num_samples=2, budget=300, evaluations=3, seeds=1, output_dir=str(tmp_path), figures=True)
    settings.update(overrides)
    return training.run(training.Config(**settings), progress=False)


def test_every_applicable_pair_trains_at_the_same_budget(tmp_path):
    path = _run(tmp_path)
    run = load_run(path)
    metrics = run.metrics
    assert set(metrics["metric"]) == {"train_objective", "held_out_objective", "wall_time_s", "cost_evaluations",
                                      "held_out_nll"}
    assert metrics.loc[metrics["metric"] == "held_out_nll", "problem"].eq("binary_vae").all()
    pairs = set(map(tuple, metrics[["problem", "estimator"]].drop_duplicates().values))
    assert pairs == {("logistic_regression", "pathwise"), ("logistic_regression", "score_function_loo"),
                     ("logistic_regression", "measure_valued"), ("binary_vae", "score_function_loo"),
                     ("binary_vae", "straight_through"), ("binary_vae", "measure_valued")}
    spent = metrics[metrics["metric"] == "cost_evaluations"].groupby(["problem", "estimator"])["value"].max()
    assert (spent <= 300).all() and (spent > 0).all()
    steps = run.config["steps"]
    # 2 samples per step: 150 steps; the measure-valued estimator evaluates the cost 4 × 31 + 1 times per sample
    assert steps["logistic_regression/pathwise"] == 150
    assert steps["logistic_regression/measure_valued"] == 300 // (2 * (4 * 31 + 1))
    # On the binary VAE, 2 evaluations per latent of an image (8, each perturbed in every image at once) + 1
    assert steps["binary_vae/measure_valued"] == 300 // (2 * (2 * 8 + 1))
    skipped = {(s["problem"], s["estimator"]) for s in run.config["skipped"]}
    assert ("binary_vae", "pathwise") in skipped and ("logistic_regression", "straight_through") in skipped
    assert not list(path.glob("figures/*.png"))  # the runner writes data; the CLI or analysis draws figures
    save_run_figures(path)
    assert (path / "figures" / "training_curves.png").stat().st_size > 10_000
    held_out = metrics[metrics["metric"] == "held_out_objective"].sort_values("step")
    assert held_out["value"].notna().all()
    curves = held_out.groupby(["problem", "estimator"])["value"]
    start, end = curves.first(), curves.last()
    assert (end.loc["logistic_regression"] < start.loc["logistic_regression"]).all()


def test_the_same_seed_gives_the_same_curves(tmp_path):
    kwargs = dict(problems=("binary_vae",), estimators=("score_function_loo",), figures=False)
    first = load_run(_run(tmp_path / "a", **kwargs)).metrics
    second = load_run(_run(tmp_path / "b", **kwargs)).metrics
    keep = lambda m: m[m["metric"] != "wall_time_s"].drop(columns="run_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(keep(first), keep(second))


def test_cli_runs_training_and_rejects_bad_input(tmp_path, capsys):
    assert (
        cli.main(
            [
                "training",
                "--problems",
                "logistic_regression",
                "--estimators",
                "pathwise",
                "--budget",
                "40",
                "--evaluations",
                "2",
                "--seeds",
                "1",
                "--output-dir",
                str(tmp_path),
                "--quiet",
                "--no-figures",
            ]
        )
        == 0
    )
    written = list((tmp_path / "training").iterdir())
    assert len(written) == 1 and json.loads((written[0] / "config.json").read_text())["budget"] == 40
    with pytest.raises(SystemExit):
        cli.main(["training", "--problems", "mnist_vae", "--output-dir", str(tmp_path)])
    assert "unknown problems ['mnist_vae']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["training", "--problems", "binary_vae", "--estimators", "pathwise", "--output-dir", str(tmp_path)])
    assert "Nothing to train" in capsys.readouterr().err


def test_seeds_train_independently_and_the_table_shows_their_spread(tmp_path):
    """Two seeds: two curves per pair from other initializations and minibatches; seed 0's curve is the
    one-seed run's, and the final table averages the seeds with their standard error."""
    kwargs = dict(problems=("binary_vae",), estimators=("score_function_loo",), figures=False)
    two = load_run(_run(tmp_path / "two", seeds=2, **kwargs)).metrics
    one = load_run(_run(tmp_path / "one", **kwargs)).metrics
    assert sorted(two["seed"].unique()) == [0, 1]
    held_out = two[two["metric"] == "held_out_objective"].pivot_table(index="step", columns="seed", values="value")
    assert (held_out[0] != held_out[1]).all()
    keep = lambda m: m[(m["metric"] != "wall_time_s") & (m["seed"] == 0)].drop(columns="run_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(keep(two), keep(one))
    final = tables.final_objectives(two)
    last = held_out.iloc[-1]
    assert final["seeds"].tolist() == [2]
    assert final["held_out_objective"].iloc[0] == pytest.approx(last.mean())
    assert final["held_out_objective_se"].iloc[0] == pytest.approx(last.std(ddof=1) / 2**0.5)
    assert final["held_out_min"].iloc[0] == last.min() and final["held_out_max"].iloc[0] == last.max()


def test_a_step_with_a_score_per_sample_and_example_is_skipped_with_its_reason():
    runs, skipped = training.plan(training.Config(estimators=("score_function_loo", "score_function_optimal")))
    trained = {(t.problem, t.estimator.name) for t in runs if t.objective == "elbo"}
    assert ("logistic_regression", "score_function_optimal") in trained  # one example: L backward passes
    reasons = {(s["problem"], s["objective"], s["estimator"]): s["reason"] for s in skipped}
    for model in ("gaussian_vae", "binary_vae"):
        assert (model, "score_function_loo") in trained
        assert reasons[(model, "elbo", "score_function_optimal")].startswith("256 backward passes per step")


def test_vaes_train_by_their_bounds_at_the_same_budget_of_particles(tmp_path):
    """K = 1 and 3 particle bounds beside the ELBO: a bound's particle is one cost evaluation (K = 3 takes a
    third of K = 1's steps), the estimators that cannot serve a bound are skipped with the one that can,
    every bound training descends (the bound is maximized), DReG is STL at K = 1 step for step, and every
    VAE curve carries the held-out log-likelihood, exact for the binary VAE and below its −ELBO."""
    path = _run(tmp_path, problems=("gaussian_vae", "binary_vae"), estimators=("pathwise", "dreg", "stl", "vimco"),
                budget=120, evaluations=2, particles=(1, 3))
    run = load_run(path)
    metrics = run.metrics
    trained = set(map(tuple, metrics[["problem", "objective", "estimator"]].drop_duplicates().values))
    assert trained == {("gaussian_vae", "elbo", "pathwise"), ("gaussian_vae", "bound_k1", "pathwise"),
                       ("gaussian_vae", "bound_k1", "dreg"), ("gaussian_vae", "bound_k1", "stl"),
                       ("gaussian_vae", "bound_k3", "pathwise"), ("gaussian_vae", "bound_k3", "dreg"),
                       ("gaussian_vae", "bound_k3", "vimco"), ("binary_vae", "bound_k3", "vimco")}
    steps = run.config["steps"]
    assert steps["gaussian_vae/pathwise"] == 60  # L = 2
    assert steps["gaussian_vae/bound_k1/dreg"] == 120 and steps["gaussian_vae/bound_k3/dreg"] == 40  # L = 1
    reasons = {(s["problem"], s["objective"], s["estimator"]): s["reason"] for s in run.config["skipped"]}
    assert "use dreg" in reasons[("gaussian_vae", "bound_k3", "stl")]
    assert "needs K >= 2" in reasons[("gaussian_vae", "bound_k1", "vimco")]
    table = tables.training_table(metrics)
    assert (table["cost_evaluations"] <= 120).all() and table["held_out_nll"].notna().all()
    binary = table[table["problem"] == "binary_vae"]
    assert (binary["held_out_nll"] < binary["held_out_objective"]).all()
    for _, curve in table[table["objective"] != "elbo"].groupby(["problem", "objective", "estimator"]):
        curve = curve.sort_values("step")
        assert curve["held_out_nll"].iloc[-1] < curve["held_out_nll"].iloc[0] - 1.0
    at_one = table[(table["problem"] == "gaussian_vae") & (table["objective"] == "bound_k1")].set_index(
        ["estimator", "step"])["held_out_objective"]
    np.testing.assert_allclose(at_one.loc["dreg"], at_one.loc["stl"], rtol=1e-5)
    final = tables.final_objectives(metrics)
    assert set(final["objective"]) == {"elbo", "bound_k1", "bound_k3"} and final["held_out_nll"].notna().all()
    save_run_figures(path)
    assert (path / "figures" / "training_log_likelihood.png").stat().st_size > 10_000


def test_particles_are_positive_integers_or_none(tmp_path, capsys):
    with pytest.raises(ValueError, match="--particles must be positive integers"):
        training.Config(particles=(0,)).validate()
    config = training.make_config(cli.build_parser().parse_args(
        ["training", "--particles", "none", "--output-dir", str(tmp_path)]), [])
    assert config.particles == ()
    runs, _ = training.plan(config)
    assert {t.objective for t in runs} == {"elbo"}
