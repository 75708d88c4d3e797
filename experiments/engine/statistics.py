"""Bias, variance and MSE of replicated gradient estimates, with standard errors, in float64.

Every function here takes the R replicate estimates of one parameter group as a float64 array of
shape (R, n) (n coordinates) and works two-pass: centre first, then square, never E[x²] − E[x]².
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from scipy import stats


def bonferroni_z(false_alarm: float, num_comparisons: int) -> float:
    """The |z| beyond which one of ``num_comparisons`` two-sided normal tests is flagged, so that all of
    them together raise a false alarm with probability at most ``false_alarm`` (Bonferroni)."""
    return -NormalDist().inv_cdf(false_alarm / (2 * max(num_comparisons, 1)))


def _as_replicates(estimates) -> np.ndarray:
    estimates = np.asarray(estimates, dtype=np.float64)
    estimates = estimates.reshape(estimates.shape[0], -1)
    if estimates.shape[0] < 2:
        raise ValueError(f"Variances need at least 2 replicates, got {estimates.shape[0]}.")
    return estimates


def _spread_se(squared_deviations: np.ndarray):
    """The standard error of a variance from its replicates' squared deviations (along the first axis):
    their spread over √R.  NaN at R = 2, where the two squared deviations from the mean are equal and
    the spread would be 0 whatever the variance."""
    num_replicates = squared_deviations.shape[0]
    if num_replicates < 3:
        return np.full(squared_deviations.shape[1:], np.nan)
    return squared_deviations.std(axis=0, ddof=1) / np.sqrt(num_replicates)


#: The blocks of replicates whose means :func:`median_of_means` takes the median of (fewer when R is smaller).
MEDIAN_OF_MEANS_BLOCKS = 20


def median_of_means_blocks(num_replicates: int) -> list[int]:
    """The sizes of the blocks that :func:`median_of_means` cuts R replicates into: min(R, 20) blocks of
    consecutive replicates, sizes differing by at most one (``np.array_split``)."""
    blocks = min(num_replicates, MEDIAN_OF_MEANS_BLOCKS)
    return [len(part) for part in np.array_split(np.arange(num_replicates), blocks)]


def median_of_means(estimates) -> np.ndarray:
    """Per coordinate, the median of the means of the blocks of :func:`median_of_means_blocks`.

    Unlike the mean's normal z-score, a test built on it holds whatever the estimates' tails, given only
    their exact variance σ²: a block of b replicates misses the expectation by c or more with probability
    q ≤ σ²/(b c²) (Chebyshev), and the median of k block means only if at least ⌈k/2⌉ blocks do, so
    P(|median − E g| ≥ c) ≤ P(Binomial(k, q) ≥ ⌈k/2⌉) (Lugosi and Mendelson, 2019, "Mean estimation and
    regression under heavy-tailed distributions"; see :func:`analysis.tables.measured_vs_exact`)."""
    g = np.asarray(estimates, dtype=np.float64)
    g = g.reshape(g.shape[0], -1)
    block_means = [part.mean(axis=0) for part in np.array_split(g, min(g.shape[0], MEDIAN_OF_MEANS_BLOCKS))]
    return np.median(np.stack(block_means), axis=0)


def coordinate_summary(estimates, exact=None, exact_se=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per coordinate: metric -> (value, standard error), each of shape (n,).

    ``mean``; ``variance`` (unbiased sample variance, standard error from the spread of the squared
    deviations, which captures heavy tails); ``median_of_means`` (:func:`median_of_means`, no standard
    error); and, with the exact gradient, ``bias`` (mean − exact).
    Where the "exact" gradient is a Monte Carlo reference with standard error ``exact_se``, the bias's
    standard error includes it.
    """
    g = _as_replicates(estimates)
    num_replicates = g.shape[0]
    mean = g.mean(axis=0)
    squared_deviations = (g - mean) ** 2
    variance = squared_deviations.sum(axis=0) / (num_replicates - 1)
    summary = {
        "mean": (mean, np.sqrt(variance / num_replicates)),
        "variance": (variance, _spread_se(squared_deviations)),
        "median_of_means": (median_of_means(g), np.full_like(mean, np.nan)),
    }
    if exact is not None:
        reference_variance = 0.0 if exact_se is None else np.ravel(exact_se) ** 2
        summary["bias"] = (mean - np.ravel(exact), np.sqrt(summary["mean"][1] ** 2 + reference_variance))
    return summary


def group_summary(estimates, exact=None, exact_se=None) -> dict[str, tuple[float, float]]:
    """For a group of coordinates: metric -> (value, standard error).

    ``variance`` is the trace of the covariance, E‖g − E g‖².  With the exact gradient g*:
    ``bias_squared`` is ‖E g − g*‖², estimated without the upward bias of ‖ḡ − g*‖² (which exceeds
    it by trace/R on average), so it can come out slightly negative for an unbiased estimator; its
    standard error is sqrt(4 bᵀΣb/R + 2 tr(Σ²)/R²), the Gaussian-limit one (conservative near b = 0,
    where it is floored at its value under b = 0).  ``mse`` is E‖g − g*‖².

    Where g* is a Monte Carlo reference with per-coordinate standard error s (``exact_se``), its noise
    adds Σ s² to both ‖ḡ − g*‖² and the mean of ‖g − g*‖² on average: it is subtracted, and the standard
    errors include that noise (Gaussian limit; see the comments).
    """
    g = _as_replicates(estimates)
    num_replicates = g.shape[0]
    mean = g.mean(axis=0)
    centred = g - mean
    squared_norms = (centred**2).sum(axis=1)
    trace = squared_norms.sum() / (num_replicates - 1)
    summary = {"variance": (trace, float(_spread_se(squared_norms)))}
    if exact is not None:
        bias = mean - np.ravel(exact)
        bias_squared = bias @ bias - trace / num_replicates
        projected = centred @ bias
        bias_sigma_bias = projected @ projected / (num_replicates - 1)
        gram = centred @ centred.T if num_replicates <= centred.shape[1] else centred.T @ centred
        trace_sigma_squared = (gram**2).sum() / (num_replicates - 1) ** 2
        # Var ‖ḡ − g*‖² = 4 bᵀΣb/R + 2 tr(Σ²)/R², with bᵀΣb estimated without the tr(Σ²)/R that the
        # noise in ḡ adds to b̂ᵀΣb̂; never below the variance under b = 0.
        null_variance = 2 * trace_sigma_squared / num_replicates**2
        bias_squared_se = np.sqrt(max(4 * bias_sigma_bias / num_replicates - null_variance, null_variance))
        errors = ((g - np.ravel(exact)) ** 2).sum(axis=1)
        mse, mse_se = errors.mean(), errors.std(ddof=1) / np.sqrt(num_replicates)
        if exact_se is not None:
            # b̂ = ḡ − g* has noise covariance C = Σ/R + S, S = diag(s²): Var ‖b̂‖² = 4 bᵀCb + 2 tr(C²),
            # with bᵀCb estimated by b̂ᵀCb̂ − tr(C²) (floored at 0).
            s2 = np.ravel(exact_se) ** 2
            coordinate_variances = (centred**2).sum(axis=0) / (num_replicates - 1)
            trace_c_squared = (
                trace_sigma_squared / num_replicates**2 + 2 * coordinate_variances @ s2 / num_replicates + s2 @ s2
            )
            bias_c_bias = bias_sigma_bias / num_replicates + bias**2 @ s2
            bias_squared -= s2.sum()
            bias_squared_se = np.sqrt(max(4 * (bias_c_bias - trace_c_squared), 0.0) + 2 * trace_c_squared)
            # The reference's noise e adds ‖e‖² − 2 (ḡ − g*)·e to the mean squared error.
            bias_s_bias = max((bias**2 - coordinate_variances / num_replicates - s2) @ s2, 0.0)
            mse -= s2.sum()
            mse_se = np.sqrt(mse_se**2 + 4 * bias_s_bias + 2 * s2 @ s2)
        summary["bias_squared"] = (bias_squared, bias_squared_se)
        summary["mse"] = (mse, mse_se)
    return {name: (float(value), float(se)) for name, (value, se) in summary.items()}


#: Groups of replicates left out in turn for the jackknife standard error of :func:`signal_to_noise`.
JACKKNIFE_GROUPS = 20


def signal_to_noise(estimates, groups: int = JACKKNIFE_GROUPS) -> dict[str, tuple[float, float]]:
    """The signal-to-noise ratio |E g_i| / sd(g_i) of a group of coordinates, summarized over the coordinates:
    metric -> (value, standard error).

    Per coordinate, the squared ratio is estimated as (ḡ_i² − s_i²/R) / s_i²: ḡ_i² alone exceeds (E g_i)² by
    Var ḡ_i = σ_i²/R on average, which would put a floor of about 1/√R under every ratio; with the noise
    removed, what remains is O(1/R) (from 1/s_i² and, for heavy-tailed estimates, their kurtosis and
    skewness).  ``snr`` is the root mean square over the coordinates (the mean of those squared ratios,
    floored at zero, square-rooted): a mean of nearly unbiased per-coordinate values, at any ratio, but a
    few coordinates with a large ratio dominate it.  ``snr_median`` is their median (square-rooted), the
    typical coordinate's ratio, robust to those, but pulled down by the per-coordinate estimates' skewed
    noise where the typical ratio is below about 3/√R.  Coordinates whose estimates do not vary (a ratio of
    zero over zero, or infinite: a parameter that no draw moves) are left out.  Standard errors are the
    delete-a-group jackknife's over ``groups`` contiguous groups of replicates; where a summary is floored
    at zero (no signal the replicates resolve), its standard error is NaN, not the zero spread of floored
    values.  (The ratio of Rainforth et al., *Tighter Variational Bounds are Not Necessarily Better*, ICML
    2018.)
    """
    g = _as_replicates(estimates)

    def summaries(g):
        num_replicates = g.shape[0]
        mean = g.mean(axis=0)
        variance = ((g - mean) ** 2).sum(axis=0) / (num_replicates - 1)
        varies = variance > 0
        if not varies.any():
            return np.array([np.nan, np.nan])
        squared = (mean[varies] ** 2 - variance[varies] / num_replicates) / variance[varies]
        return np.sqrt(np.maximum([np.mean(squared), np.median(squared)], 0.0))

    values = summaries(g)
    groups = min(groups, g.shape[0] // 2)
    if groups < 2:
        errors = np.full(2, np.nan)
    else:
        bounds = np.linspace(0, g.shape[0], groups + 1).astype(int)
        left_out = np.array([summaries(np.concatenate([g[: bounds[j]], g[bounds[j + 1]:]])) for j in range(groups)])
        errors = np.sqrt((groups - 1) / groups * ((left_out - left_out.mean(axis=0)) ** 2).sum(axis=0))
        errors = np.where(values > 0, errors, np.nan)
    return {"snr": (float(values[0]), float(errors[0])), "snr_median": (float(values[1]), float(errors[1]))}


def median_of_means_p_value(distance, variance, num_replicates):
    """P(|median of means − E g| ≥ |distance|) at most, for estimates of variance ``variance`` (any
    distribution), elementwise over arrays: each of the k blocks of
    :func:`median_of_means_blocks` misses by that much with probability
    q ≤ variance / (b |distance|²) (Chebyshev, b the smallest block, ⌊R/k⌋), and the median only if at least
    ⌈k/2⌉ of them do."""
    distance, variance, num_replicates = np.broadcast_arrays(distance, variance, num_replicates)
    blocks = np.minimum(num_replicates, MEDIAN_OF_MEANS_BLOCKS)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.minimum(1.0, variance / (num_replicates // blocks * distance**2))
    return np.where(distance == 0, 1.0, stats.binom.sf(np.ceil(blocks / 2) - 1, blocks, q))
