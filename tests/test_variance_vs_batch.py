"""The variance_vs_batch sweep end to end, on a tiny grid."""

import numpy as np
import pytest

from analysis.figures import save_run_figures
from analysis.load import load_run, wide
from experiments import run as cli
from experiments.catalog import variance_vs_batch


def test_sweep_writes_both_signals_at_every_batch_size_and_its_figure(tmp_path):
    config = variance_vs_batch.Config(models=("binary_vae",), batch_sizes=(1, 3), estimators=("disarm",),
                                      num_samples=(4,), replicates=64, output_dir=str(tmp_path))
    run = load_run(variance_vs_batch.run(config, progress=False))
    table = wide(run.metrics)
    encoder = table[table["parameter"] == "encoder"]
    assert set(map(tuple, encoder[["estimator", "batch_size", "signal"]].values)) == {
        ("disarm", n, s) for n in (1, 3) for s in ("per_example", "batch")}
    # One image: its cost is the batch's, so both signals give the same estimates, key for key.
    one = encoder[encoder["batch_size"] == 1].pivot_table(index="estimator", columns="signal", values="variance")
    np.testing.assert_allclose(one["per_example"], one["batch"], rtol=1e-4)
    save_run_figures(run.path)
    assert (run.path / "figures" / "variance_vs_batch.png").stat().st_size > 10_000


def test_the_optimal_baseline_is_skipped_where_its_scores_would_dominate():
    config = variance_vs_batch.Config(models=("gaussian_vae",), batch_sizes=(16, 17), signals=("per_example",),
                                      estimators=("score_function_optimal",), num_samples=(16,))
    cells, skipped = variance_vs_batch.plan(config)
    assert [c.labels["batch_size"] for c in cells] == [16]  # 16 × 16 = 256 backward passes per estimate
    assert skipped[0]["batch_size"] == 17 and "backward passes" in skipped[0]["reason"]


def test_the_batch_level_delta_method_is_skipped_where_its_hessian_would_dominate():
    config = variance_vs_batch.Config(models=("gaussian_vae",), batch_sizes=(64, 256),
                                      estimators=("score_function_delta",), num_samples=(16,))
    cells, skipped = variance_vs_batch.plan(config)
    assert sorted((c.labels["batch_size"], c.labels["signal"]) for c in cells) == [
        (64, "batch"), (64, "per_example"), (256, "per_example")]
    assert [(s["batch_size"], s["signal"]) for s in skipped] == [(256, "batch")]
    assert "cost evaluations per estimate" in skipped[0]["reason"]


@pytest.mark.parametrize("option, value, message", [
    ("--batch-sizes", "0,4", "--batch-sizes must be integers from 1"),
    ("--models", "mnist_vae", "unknown models"),
    ("--signals", "both", "unknown signals"),
])
def test_cli_refuses_bad_input(option, value, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["variance_vs_batch", option, value, "--output-dir", str(tmp_path)])
    assert message in capsys.readouterr().err
