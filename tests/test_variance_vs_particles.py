"""The particle sweep: its rows and figures, its refusals, and the published shape of the signal-to-noise
ratios on the amortized linear-Gaussian model.

The shape checks compare two measured ratios by their jackknife standard errors (calibrated in
tests/test_statistics.py) with a one-sided normal threshold for a false-alarm rate of FALSE_ALARM each.
"""

import math

import jax
import numpy as np
import pandas as pd
import pytest

from analysis import figures
from analysis.load import load_run
from experiments import run as cli
from experiments.catalog import variance_vs_particles
from tests.stats import FALSE_ALARM, z_threshold

#: One-sided: z_threshold splits the rate over two tails.
ONE_SIDED = z_threshold(2 * FALSE_ALARM, 1)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """pathwise, DReG, STL and VIMCO at K = 1 and 16 on the linear-Gaussian model, R = 2000."""
    out = tmp_path_factory.mktemp("particles")
    config = variance_vs_particles.Config(models=("linear_gaussian",), particles=(1, 16),
                                          estimators=("pathwise", "dreg", "stl", "vimco"), replicates=2000,
                                          output_dir=str(out))
    run_dir = variance_vs_particles.run(config, progress=False)
    figures.save_run_figures(run_dir)
    return load_run(run_dir)


def _snr(run) -> pd.DataFrame:
    rows = run.metrics[(run.metrics.metric == "snr")]
    return rows.set_index(["estimator", "num_particles", "parameter"])[["value", "std_error"]]


def test_rows_carry_snr_and_variance_per_group_and_k_and_skip_what_does_not_apply(sweep):
    metrics = sweep.metrics
    measured = set(zip(metrics.estimator, metrics.num_particles))
    assert measured == {("pathwise", 1), ("pathwise", 16), ("dreg", 1), ("dreg", 16), ("stl", 1), ("vimco", 16)}
    for metric in ("snr", "variance"):
        groups = metrics[metrics.metric == metric].groupby(["estimator", "num_particles"])["parameter"]
        assert all(set(g) == {"encoder", "decoder", "all"} for _, g in groups), metric
    # A K-particle estimate evaluates the log joint K times per sample.
    cost = metrics[metrics.metric == "cost_evaluations"]
    assert (cost["value"] == cost["num_samples"] * cost["num_particles"]).all()
    skipped = {(s["estimator"], s["num_samples"]): s["reason"] for s in sweep.config["skipped"]}
    assert "dreg" in skipped["stl", 1]  # STL at K = 16 is refused, naming DReG
    assert "score_function_loo" in skipped["vimco", 1]
    assert all((sweep.path / "figures" / f"{name}.png").stat().st_size > 10_000
               for name in ("snr_vs_particles", "variance_vs_particles"))


def test_the_published_shape(sweep):
    """Pathwise (IWAE): encoder ratio falls with K (Rainforth et al. 2018: like 1/√K) and the decoder's rises
    (like √K); DReG's encoder ratio does not fall, and is above pathwise's at K = 16; the decoder's variance
    falls faster than 1/√K."""
    snr = _snr(sweep)

    def z(first, second, factor=1.0):  # factor × first above second, in standard errors
        (a, sa), (b, sb) = snr.loc[first], snr.loc[second]
        return (factor * a - b) / math.hypot(factor * sa, sb)

    # Fallen by more than half from K = 1 to 16 (1/√16 = 0.25 asymptotically; about 0.3 measured).
    assert z(("pathwise", 1, "encoder"), ("pathwise", 16, "encoder"), factor=0.5) > ONE_SIDED
    assert z(("pathwise", 16, "decoder"), ("pathwise", 1, "decoder")) > ONE_SIDED
    assert z(("dreg", 16, "encoder"), ("pathwise", 16, "encoder")) > ONE_SIDED
    assert z(("dreg", 16, "encoder"), ("dreg", 1, "encoder")) > -ONE_SIDED
    # STL at K = 1 is DReG at K = 1, estimate for estimate (to float rounding: two programs).
    assert snr.loc[("stl", 1, "encoder"), "value"] == pytest.approx(snr.loc[("dreg", 1, "encoder"), "value"], rel=1e-5)
    variance = sweep.metrics[(sweep.metrics.metric == "variance") & (sweep.metrics.parameter == "decoder")
                             & (sweep.metrics.estimator == "pathwise")].set_index("num_particles")
    (v1, s1), (v16, s16) = variance.loc[1, ["value", "std_error"]], variance.loc[16, ["value", "std_error"]]
    # Each particle's decoder gradient is weighted by w̃_k: near the posterior the variance falls about like
    # 1/K (12.7-fold from K = 1 to 16 measured); the check is that it falls faster than 1/√K (more than
    # 4-fold), by the ratio's standard error (relative errors added in quadrature: the cells share random
    # numbers, positively correlated, which makes this conservative).
    ratio = v1 / v16
    assert (ratio - 4) / (ratio * np.hypot(s1 / v1, s16 / v16)) > ONE_SIDED


@pytest.mark.parametrize("argv, message", [
    (["--models", "mnist_vae"], "unknown models"),
    (["--particles", "0,4"], "--particles must be positive integers"),
    (["--images", "0"], "--images must be an integer from 1"),
])
def test_cli_refuses_bad_input(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["variance_vs_particles", *argv, "--output-dir", str(tmp_path)])
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("model, latents", [("gaussian_vae", 4), ("binary_vae", 8)])
def test_the_vaes_bounds_are_per_image(model, latents, key):
    """One bound per image (a plate of N images) of K particles each, the encoder's and decoder's groups."""
    problem = variance_vs_particles.bound_problem(model, 4, images=3)
    assert problem.objective.batch_ndims == 1 and problem.objective.num_particles == 4
    assert set(problem.params) == {"encoder", "decoder"}
    assert problem.distribution().sample(key).shape == (3, 4, latents)
    assert problem.objective.cost(problem.params, problem.distribution().sample(jax.random.clone(key))).shape == (3,)
