"""The beta distribution, with independent coordinates."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln

from estimators.distributions.base import Distribution, broadcast_parameters, float_dtype
from estimators.distributions.gamma import cell_log_power, log_gamma_draw, log_tiny


class Beta(Distribution):
    r"""Independent beta coordinates, :math:`x_i \sim \mathrm{Beta}(a_i, b_i)`:

    .. math:: q(x; a, b) = \frac{x^{a - 1} (1 - x)^{b - 1}}{B(a, b)}, \qquad 0 < x < 1.

    The sample is :math:`x = G_a / (G_a + G_b)` with independent :math:`G_a \sim \mathrm{Gamma}(a, 1)`,
    :math:`G_b \sim \mathrm{Gamma}(b, 1)`, computed in log space from :math:`\log G_a` and
    :math:`\log G_b` (:func:`~estimators.distributions.gamma.log_gamma_draw`):
    :math:`\log x = \log G_a - \operatorname{logaddexp}(\log G_a, \log G_b)`, likewise
    :math:`\log(1 - x)`, and x from the smaller of the two.  It is differentiable in a and b through the
    implicitly reparameterized gamma draws.  Both parameters must be positive; they are not checked, as
    they may be traced.

    Small parameters.  A float cannot hold x below the smallest normal float :math:`t`
    (``jnp.finfo(dtype).tiny``, 1.2e-38 in float32) nor within :math:`\delta` of 1, half the spacing of
    the floats below 1 (``jnp.finfo(dtype).epsneg / 2``: 3.0e-8 in float32, 5.6e-17 in float64); with a
    or b below about 0.1 much of the mass lies there, :math:`P(1 - x < \delta) \approx \delta^b /
    (b\, B(a, b))`: 42% for Beta(0.01, 0.01) in float32, 34% in float64.  The sample is 0 or 1 there, and
    ``log_prob`` at 0 (any :math:`0 \le x < t`) or at 1 is the log of the mean density over the cell
    :math:`[0, t)` or :math:`(1 - \delta, 1]` (:math:`x^{a - 1}` replaced by :math:`t^{a - 1} / a`, or
    :math:`(1 - x)^{b - 1}` by :math:`\delta^{b - 1} / b`), whose gradient is the mean score of the
    draws in the cell, to relative order t or :math:`\delta`: a score-function estimate stays finite,
    and unbiased for any cost (which sees only the stored sample), where :math:`\log 0` would make it
    :math:`-\infty`.  Drawing :math:`\log G_a` and :math:`\log G_b` rather than the gammas keeps x, and
    the derivatives of both logarithms, exact when :math:`G_a` or :math:`G_b` underflows, so that
    pathwise gradients stay right.

    .. warning::
       Float32 cannot make right a pathwise gradient through a cost that is not smooth at 0 or 1 (one of
       :math:`\log x` or :math:`\log(1 - x)`, as a log density evaluated at the sample is) at small
       parameters: the stored 0 or 1 carries neither logarithm nor its derivative, so the gradient is
       biased.  Use float64, ``jax.config.update("jax_enable_x64", True)``: it makes the cell at 0
       negligible from a of about 0.05 (t = 2.2e-308), but no float can shrink the cell at 1 enough
       for small b.

    References:
      Figurnov, Mohamed & Mnih, *Implicit Reparameterization Gradients*, NeurIPS 2018.
    """

    reparameterizable = True

    def __init__(self, a, b):
        dtype = float_dtype(a, b)
        self.a, self.b = broadcast_parameters("Beta", dtype, ("a", "b"), a=a, b=b)

    @property
    def _defining_parameter(self):
        return self.a

    def _draw(self, key):
        key_a, key_b = jax.random.split(key)
        log_gamma_a = log_gamma_draw(key_a, self.a, self.event_shape, self.dtype)
        log_gamma_b = log_gamma_draw(key_b, self.b, self.event_shape, self.dtype)
        log_total = jnp.logaddexp(log_gamma_a, log_gamma_b)
        log_x, log_1m_x = log_gamma_a - log_total, log_gamma_b - log_total
        x = jnp.where(log_x < log_1m_x, jnp.exp(log_x), 1 - jnp.exp(log_1m_x))  # each side from its small end
        x = jnp.where(log_x < log_tiny(self.dtype), 0, x)
        return jnp.where(log_1m_x < _log_half_epsneg(self.dtype), 1, x)

    def _log_prob_elements(self, x):
        a, b = self.a, self.b
        at_zero = (x >= 0) & (x < jnp.finfo(self.dtype).tiny)
        at_one = (x <= 1) & (1 - x < jnp.finfo(self.dtype).epsneg / 2)
        outside = (x < 0) | (x > 1)
        log_x = jnp.log(jnp.where(at_zero | outside, 1, x))  # each logarithm read only where finite
        log_1m_x = jnp.log1p(-jnp.where(at_one | outside, 0, x))
        log_density = (cell_log_power(log_x, a, at_zero, log_tiny(self.dtype))
                       + cell_log_power(log_1m_x, b, at_one, _log_half_epsneg(self.dtype))
                       - betaln(a, b))
        log_density = jnp.where(outside, -jnp.inf, log_density)
        return jnp.where((a <= 0) | (b <= 0), jnp.nan, log_density)  # as jax.scipy.stats.beta.logpdf


def _log_half_epsneg(dtype) -> float:
    """The log of half the spacing of the floats just below 1: closer to 1 than this, a sample is 1."""
    return math.log(float(jnp.finfo(dtype).epsneg) / 2)
