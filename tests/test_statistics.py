"""Host-side statistics: float64 two-pass results, and standard errors that are calibrated."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.engine.statistics import coordinate_summary, group_summary
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
