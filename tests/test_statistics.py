"""Host-side statistics: float64 two-pass results, and standard errors that are calibrated."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.engine.statistics import coordinate_summary, group_summary, signal_to_noise
from tests.stats import FALSE_ALARM, z_threshold


def test_variance_is_two_pass_in_float64():
    # Values near 1e4 with unit spread: a one-pass E[x²] − E[x]² in float32 loses the whole answer.
    data = (np.float32(1e4) + np.array([-1.0, 1.0] * 500, np.float32))[:, None]
    one_pass = np.mean(data**2, dtype=np.float32) - np.mean(data, dtype=np.float32) ** 2
    assert abs(float(one_pass) - 1.0) > 0.5
    assert coordinate_summary(data)["variance"][0][0] == pytest.approx(1000 / 999, rel=1e-12)
    assert group_summary(data)["variance"][0] == pytest.approx(1000 / 999, rel=1e-12)


def test_group_metrics_on_known_values():
    data = np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])
    exact = np.array([1.0, 1.0])
    summary = group_summary(data, exact)
    centred = data - data.mean(axis=0)
    trace = (centred**2).sum() / 2
    assert summary["variance"][0] == pytest.approx(trace)
    bias = data.mean(axis=0) - exact
    assert summary["bias_squared"][0] == pytest.approx(bias @ bias - trace / 3)
    assert summary["mse"][0] == pytest.approx(((data - exact) ** 2).sum(axis=1).mean())


def test_needs_two_replicates():
    with pytest.raises(ValueError, match="at least 2 replicates"):
        group_summary(np.ones((1, 3)))


def test_two_replicates_give_a_variance_no_standard_error():
    # The two squared deviations from the mean are equal, so their spread is 0 whatever the variance:
    # the standard error is not a number, never a zero.
    data = np.array([[1.0, 5.0], [3.0, 2.0]])
    assert np.isnan(group_summary(data)["variance"][1])
    assert np.all(np.isnan(coordinate_summary(data)["variance"][1]))
    assert group_summary(data)["variance"][0] == pytest.approx((4 + 9) / 2)
    assert np.isfinite(group_summary(np.vstack([data, [[0.0, 1.0]]]))["variance"][1])


@pytest.mark.parametrize("bias", [0.0, 0.3])
def test_estimates_are_unbiased_and_standard_errors_calibrated(bias):
    # Over many simulated runs of R = 400 replicates: the variance and squared-bias estimates average
    # to the truth (within 5 standard errors of that average), and their reported squared standard
    # errors average to the spread actually seen across runs. That spread is itself known to about
    # sqrt(2/2000) ≈ 3% (Gaussian limit), so the ±15% band is 5 such errors.  At zero bias the
    # squared-bias error is conservative by construction (it is floored at its null value, and the
    # noisy bᵀΣb term adds to it), so there it may exceed the spread, by less than 2× in variance.
    rng = np.random.default_rng(12345)
    runs, replicates, dim = 2000, 400, 3
    scales = np.array([1.0, 2.0, 0.5])
    truth_mean = np.full(dim, bias)
    truths = {"variance": (scales**2).sum(), "bias_squared": truth_mean @ truth_mean}
    estimates = {name: [] for name in truths}
    for _ in range(runs):
        summary = group_summary(truth_mean + scales * rng.standard_normal((replicates, dim)), np.zeros(dim))
        for name in truths:
            estimates[name].append(summary[name])
    for name, truth in truths.items():
        values, errors = np.array(estimates[name]).T
        spread = values.std(ddof=1)
        assert abs(values.mean() - truth) < z_threshold(FALSE_ALARM, 1) * spread / np.sqrt(runs), name
        upper = 2.0 if name == "bias_squared" and bias == 0 else 1.15
        assert 0.85 < np.mean(errors**2) / spread**2 < upper, name


def test_signal_to_noise_is_debiased_and_its_jackknife_error_calibrated():
    # 41 coordinates with known ratios |m_i| / σ_i (the last four with no signal at all), over many simulated
    # runs of R = 800 replicates: the root mean square averages to the true one within 5 standard errors of
    # that average (the squared ratios are debiased, so what remains is O(1/R)), and the jackknife's squared
    # error averages to the spread seen across runs within 5 standard errors of that comparison (the spread's
    # square is known to ±7% from 400 runs, the errors' mean square to a few %: ±35%).  The median, at ratios
    # well above 3/√R ≈ 0.1 here, averages to the truth too; its jackknife error is conservative (the
    # jackknife of a median overstates its spread: about 1.5× here), so only its lower side is held to the band.
    rng = np.random.default_rng(2024)
    runs, replicates = 400, 800
    scales = np.linspace(0.5, 3.0, 41)
    for metric, ratios, truth, most in [
        ("snr", np.concatenate([np.linspace(0.02, 0.18, 37), np.zeros(4)]), None, 1.35),
        ("snr_median", np.linspace(0.2, 1.0, 41), 0.6, 4.0),
    ]:
        truth = np.sqrt(np.mean(ratios**2)) if truth is None else truth
        draws = (ratios * scales + scales * rng.standard_normal((replicates, ratios.size)) for _ in range(runs))
        values, errors = np.array([signal_to_noise(g)[metric] for g in draws]).T
        spread = values.std(ddof=1)
        assert abs(values.mean() - truth) < z_threshold(FALSE_ALARM, 1) * spread / np.sqrt(runs), metric
        assert 0.65 < np.mean(errors**2) / spread**2 < most, metric


def test_signal_to_noise_has_no_floor_without_a_signal():
    # n coordinates with no signal: each debiased squared ratio is (t_i² − 1)/R with t_i² ≈ χ²₁, so their mean
    # is 0 ± √(2/n)/R and the root mean square at most √(z √(2/n) / R) (z for a false alarm of FALSE_ALARM,
    # one-sided), half the floor √(2/π)/√R ≈ 0.028 that |ḡ|/s alone would have at R = 800.
    rng = np.random.default_rng(7)
    replicates, coordinates = 800, 2000
    value, error = signal_to_noise(rng.standard_normal((replicates, coordinates)))["snr"]
    bound = np.sqrt(z_threshold(2 * FALSE_ALARM, 1) * np.sqrt(2 / coordinates) / replicates)
    assert bound < 0.6 * np.sqrt(2 / np.pi / replicates)
    assert value < bound
    assert value > 0 or np.isnan(error)  # a floored value has no standard error


def test_signal_to_noise_leaves_out_coordinates_that_do_not_vary():
    rng = np.random.default_rng(5)
    varying = 1.0 + rng.standard_normal((400, 1))
    constant = np.ones((400, 2)) * np.array([0.0, 2.0])
    with_constant, alone = signal_to_noise(np.hstack([varying, constant])), signal_to_noise(varying)
    assert with_constant == {metric: pytest.approx(value, rel=1e-12) for metric, value in alone.items()}
    assert np.isnan(signal_to_noise(np.zeros((10, 3)))["snr"][0])  # nothing varies: no ratio
