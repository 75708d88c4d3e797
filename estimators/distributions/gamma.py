"""The gamma distribution, parameterized by concentration and rate, with independent coordinates; and the
log-space gamma draws that the beta and Dirichlet distributions are built from."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from estimators.distributions.base import Distribution, broadcast_parameters, float_dtype


class Gamma(Distribution):
    r"""Independent gamma coordinates with concentration (shape) :math:`\alpha` and rate :math:`\beta`:

    .. math:: q(x; \alpha, \beta) = \frac{\beta^\alpha}{\Gamma(\alpha)} x^{\alpha - 1} e^{-\beta x},
        \qquad x > 0.

    The sample is :math:`x = \exp(\log\epsilon - \log\beta)`, with :math:`\log\epsilon`,
    :math:`\epsilon \sim \mathrm{Gamma}(\alpha, 1)`, drawn in log space
    (:func:`~estimators.distributions.gamma.log_gamma_draw`).  The gamma has no explicit
    reparameterization in :math:`\alpha`; the draw differentiates implicitly,
    :math:`\partial\epsilon / \partial\alpha = -(\partial_\alpha F(\epsilon; \alpha)) / q(\epsilon; \alpha)`
    with F the CDF, so ``rsample`` is differentiable in both parameters.  Both must be positive; they are
    not checked, as they may be traced.

    Small concentrations.  A draw below the smallest normal float :math:`t` (``jnp.finfo(dtype).tiny``:
    1.2e-38 in float32, 2.2e-308 in float64) cannot be stored, and at :math:`\beta = 1` a share
    :math:`P(x < t) \approx t^\alpha / \Gamma(\alpha + 1)` of them is: 42% at :math:`\alpha = 0.01` and
    1.3% at 0.05 in float32.  The sample is 0 there, and ``log_prob`` at any :math:`0 \le x < t` is the
    log of the mean density over :math:`[0, t)` (:math:`x^{\alpha - 1}` replaced by
    :math:`t^{\alpha - 1} / \alpha`), whose gradient is the mean score of those draws,
    :math:`\mathbb{E}[\nabla \log q(x) \mid x < t]`, to relative order :math:`\beta t`: a score-function
    estimate stays finite, and unbiased for any cost (which sees only the stored sample), where
    :math:`\log 0` would make it :math:`-\infty`.  Drawing :math:`\log\epsilon` rather than
    :math:`\epsilon` keeps it exact where :math:`\epsilon` underflows, and with it its derivative,
    :math:`(\psi(\alpha + 1) - \log\epsilon) / \alpha` there, so that pathwise gradients through other
    coordinates or other gamma draws (the Beta, the Dirichlet) stay right.

    .. warning::
       Float32 cannot make right a pathwise gradient through a cost that is not smooth at 0 (one of
       :math:`\log x`, as a log density evaluated at the sample is: an ELBO's entropy or prior term) at
       small concentrations: the stored 0 carries neither :math:`\log x` nor its derivative, so the
       gradient is biased.  Use float64, ``jax.config.update("jax_enable_x64", True)``, where the share
       of draws stored as 0 is about :math:`8 \cdot 10^{-4}` at :math:`\alpha = 0.01` and below
       :math:`10^{-15}` from :math:`\alpha = 0.05` (at :math:`\beta = 1`).

    References:
      Figurnov, Mohamed & Mnih, *Implicit Reparameterization Gradients*, NeurIPS 2018.
    """

    reparameterizable = True

    def __init__(self, concentration, rate):
        dtype = float_dtype(concentration, rate)
        self.concentration, self.rate = broadcast_parameters(type(self).__name__, dtype, ("concentration", "rate"),
                                                             concentration=concentration,
                                                             rate=rate)

    @property
    def _defining_parameter(self):
        return self.concentration

    def _draw(self, key):
        log_x = log_gamma_draw(key, self.concentration, self.event_shape, self.dtype) - jnp.log(self.rate)
        return jnp.where(log_x < log_tiny(self.dtype), 0, jnp.exp(log_x))

    def _log_prob_elements(self, x):
        alpha, rate = self.concentration, self.rate
        tiny = jnp.finfo(self.dtype).tiny
        below_tiny = (x >= 0) & (x < tiny)
        log_x = jnp.log(jnp.where(x >= tiny, x, 1))
        log_density = (alpha * jnp.log(rate) - gammaln(alpha) - rate * x
                       + cell_log_power(log_x, alpha, below_tiny, log_tiny(self.dtype)))
        return jnp.where(x >= 0, log_density, -jnp.inf)


def log_tiny(dtype) -> float:
    """The log of the smallest normal float of ``dtype``, below which a sample is stored as 0."""
    return math.log(float(jnp.finfo(dtype).tiny))


def cell_log_power(log_u, concentration, in_cell, log_width):
    r""":math:`(\alpha - 1) \log u` outside the cell, and inside it (:math:`0 \le u < w`, a value that
    stands for every draw that small) the log of the mean of :math:`u^{\alpha - 1}` over :math:`[0, w)`,
    :math:`(\alpha - 1) \log w - \log \alpha`.  ``log_u`` is only read outside the cell."""
    log_u = jnp.where(in_cell, log_width, log_u)
    return (concentration - 1) * log_u - jnp.where(in_cell, jnp.log(concentration), 0)


def log_gamma_draw(key, concentration, shape, dtype) -> jax.Array:
    r""":math:`\log G` with :math:`G \sim \mathrm{Gamma}(\alpha, 1)`, of shape ``shape``, differentiable in
    :math:`\alpha` (``concentration``, broadcast to ``shape``).

    The value is ``jax.random.loggamma``'s (so that :math:`\log G` is exact where :math:`G` underflows),
    and its derivative is the implicit reparameterization
    :math:`\partial \log G / \partial \alpha = -\partial_\alpha F(G; \alpha) / (G\, q(G; \alpha))`, F the
    CDF.  Where G is a normal float this is ``jax.lax.random_gamma_grad(α, G) / G``; below the smallest
    normal float t, where :math:`F(G; \alpha) = G^\alpha / \Gamma(\alpha + 1)\,(1 + O(G))`, it is
    :math:`(\psi(\alpha + 1) - \log G) / \alpha`, exact to relative order t.
    """
    concentration = jnp.broadcast_to(concentration, shape)
    log_g = jax.random.loggamma(key, jax.lax.stop_gradient(concentration), shape, dtype)
    return _implicit_log_gamma(concentration, log_g)


@jax.custom_jvp
def _implicit_log_gamma(concentration, log_g):
    """``log_g``, a log-gamma draw at ``concentration``, with its implicit derivative in the concentration."""
    return log_g


@_implicit_log_gamma.defjvp
def _implicit_log_gamma_jvp(primals, tangents):
    concentration, log_g = primals
    concentration_dot, _ = tangents  # log_g was drawn at a constant concentration: it has no tangent of its own
    # Normal where exp(log G) is: a log G at the threshold itself may round to a G flushed to 0.
    g = jnp.exp(log_g)
    normal = g >= jnp.finfo(log_g.dtype).tiny
    g = jnp.where(normal, g, 1)
    implicit = jax.lax.random_gamma_grad(concentration, g) / g
    underflow = (digamma(concentration + 1) - log_g) / concentration
    return log_g, concentration_dot * jnp.where(normal, implicit, underflow)
