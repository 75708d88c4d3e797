"""Statistical assertions whose tolerances come from standard errors and a stated false-alarm rate.

Each assertion takes ``false_alarm``, the probability that it fails when the code is right, and
splits it over the coordinates it checks (Bonferroni), so a whole test's false-alarm rate is at most
the sum over its assertions.  The suite uses 1e-6 per assertion: with a few hundred assertions the
chance of any spurious failure in a CI run stays below 1e-3.
"""

from __future__ import annotations

import numpy as np

from experiments.engine.statistics import bonferroni_z

FALSE_ALARM = 1e-6

#: XLA options of a test's program that draws many samples: the suite compiles at level 0 (tests/conftest.py),
#: where such a program runs about 3 times slower than at level 1.
MANY_SAMPLES_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


z_threshold = bonferroni_z  # the two-sided normal quantile for a per-test rate of false_alarm / num_tests


def as_replicates(estimates) -> np.ndarray:
    estimates = np.asarray(estimates, dtype=np.float64)
    return estimates.reshape(estimates.shape[0], -1)


def assert_mean_matches(estimates, exact, false_alarm: float = FALSE_ALARM, label: str = "") -> np.ndarray:
    """|mean − exact| < k · SE in every coordinate, SE = sample std / sqrt(R).  Returns the z-scores."""
    g = as_replicates(estimates)
    exact = np.ravel(np.asarray(exact, np.float64))
    se = g.std(axis=0, ddof=1) / np.sqrt(g.shape[0])
    z = (g.mean(axis=0) - exact) / se
    k = z_threshold(false_alarm, z.size)
    assert np.all(np.abs(z) < k), f"{label}: mean differs from the exact gradient: z = {z}, threshold {k:.2f}"
    return z


def variance_standard_error(variance, fourth_central_moment, num_replicates):
    """Standard error of the unbiased sample variance of R i.i.d. draws with the given moments."""
    r = num_replicates
    return np.sqrt(fourth_central_moment / r - variance**2 * (r - 3) / (r * (r - 1)))


def assert_variance_matches(
    estimates, exact_variance, fourth_central_moment=None, false_alarm: float = FALSE_ALARM, label: str = ""
) -> np.ndarray:
    """|sample variance − exact| < k · SE in every coordinate.

    The SE is computed from the exact fourth central moment where it is given (heavy-tailed estimates
    make the sample's own fourth moment unreliable), and from the sample otherwise.
    """
    g = as_replicates(estimates)
    r = g.shape[0]
    exact_variance = np.ravel(np.asarray(exact_variance, np.float64))
    centred = g - g.mean(axis=0)
    sample_variance = (centred**2).sum(axis=0) / (r - 1)
    if fourth_central_moment is None:
        # Plug-in moments, both centred at the sample mean and divided by R, so that μ₄ − σ⁴ stays
        # non-negative (a two-point distribution has μ₄ = σ⁴ and a sample variance of O(1/R²) spread).
        fourth_central_moment = (centred**4).mean(axis=0)
        exact_or_sample = (centred**2).mean(axis=0)
    else:
        fourth_central_moment = np.ravel(np.asarray(fourth_central_moment, np.float64))
        exact_or_sample = exact_variance
    se = variance_standard_error(exact_or_sample, fourth_central_moment, r)
    z = (sample_variance - exact_variance) / se
    k = z_threshold(false_alarm, z.size)
    assert np.all(np.abs(z) < k), (
        f"{label}: variance {sample_variance} differs from the exact {exact_variance}: z = {z}, threshold {k:.2f}"
    )
    return z
