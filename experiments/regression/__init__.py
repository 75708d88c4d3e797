r"""The variance-bound regression check: every estimator's mean and variance on the ``ci`` profile's
cells must stay inside statistically justified bands, committed in ``variance_bounds.json`` beside this
package's modules.

**What is checked.**  For every cell (problem, estimator, L) of ``python -m experiments.run
variance_vs_L --profile ci`` and every gradient coordinate, two statistics of the R replicate
L-sample estimates: the mean m̂ and the sample variance v̂.

**Expected values.**  Where the problem knows the answer exactly (closed form, quadrature,
enumeration) it is used: the exact gradient as the mean of an unbiased estimator, the exact
expectation of a biased one, the exact variance of the L-sample estimate.  Elsewhere the expected
value is a large reference run's measurement (``regenerate``: R_ref = 1,000,000 replicates at seed
10,000, a stream no check uses), which carries its own standard error into the band.  A problem added
to the profile later gets its bounds from a reference run of its own cells (``extend``, recorded in
the file's ``reference.extensions``; the plate toys': R_ref = 200,000, which widens their
reference-based bands by about 12%), and no existing check's expected value moves.

**Bands.**  With a per-check false-alarm probability α = α_FW / N over the N checks (Bonferroni, so
the probability that any check fails when nothing changed is at most α_FW = 1e-4, ten times below
the 1e-3 that CI can live with) and z = Φ⁻¹(1 − α/2):

- mean:      |m̂ − m*| ≤ z · sqrt(v*/R + se_ref²), v* the expected variance;
- variance:  |ln v̂ − ln v*| ≤ z · sqrt(ρ²/R + se_ref²), where ρ² = (μ₄ − σ⁴)/σ⁴ is the relative
  variance of one squared deviation (the kurtosis minus one, measured in the reference run), so that
  ρ/√R is the standard error of ln v̂ and se_ref that of the reference's ln v.

Both statistics are averages over R = 50,000 independent replicates, and the bands rest on their
normal approximations.  The mean's holds well.  The sample variance is skewed, the more so the
heavier the estimate's tails, and the normal tail at z ≈ 5 is then optimistic (a first-order
Edgeworth correction puts it about ten times too low at ρ = 8 and R = 50,000).  So coordinates with
ρ above ``MAX_RELATIVE_SPREAD`` = 8 (kurtosis above 65: the score function with the delta-method
control variate, leave-one-out at L = 2 on the ELBO's σ) get no variance check; the file lists them
(``reference.variance_unchecked``), and their means are still checked.  The family-wise rate is a
sum over checks, and only a few dozen variance checks have ρ above 3 (kurtosis above 10): the file
states the rate if each of those had a tail 100 times the normal one, still below 1e-3.
``calibrate`` checks the approximation where it can be checked: over many seeds, the pooled
z-scores should look standard normal.  A halved variance or a doubled one moves ln v by 0.69, more
than six times the widest band's half-width; ``tests/test_variance_bounds.py`` plants such
regressions and shows each is caught.

**Commands.**

    python -m experiments.bounds check [RUN_DIR]     # measure the ci profile (or read a run) and compare
    python -m experiments.bounds regenerate          # after an intended change: new reference, new file,
                                                     # and a list of what moved
    python -m experiments.bounds extend              # a problem added to the profile: its bounds only
    python -m experiments.bounds calibrate --seeds 20   # the unmodified code on 20 seeds in a row

The package: :mod:`~experiments.regression.bands` (the statistics of the bands),
:mod:`~experiments.regression.bounds_file` (the committed file), :mod:`~experiments.regression.profile`
(measuring the profile, and regenerating, extending and calibrating the file); ``python -m
experiments.bounds`` is its command line.
"""
