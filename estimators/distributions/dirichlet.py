"""The Dirichlet distribution over the simplex along the last axis."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import dirichlet

from estimators.distributions.base import Distribution, check_positive, float_dtype
from estimators.distributions.gamma import log_gamma_draw, log_tiny


class Dirichlet(Distribution):
    r"""Independent Dirichlet vectors over the last axis of ``concentration``:

    .. math:: q(x; \alpha) = \frac{\Gamma(\sum_k \alpha_k)}{\prod_k \Gamma(\alpha_k)}
        \prod_{k=1}^{K} x_k^{\alpha_k - 1}, \qquad x_k > 0,\ \textstyle\sum_k x_k = 1.

    With ``concentration`` of shape ``(..., K)``, a sample has the same shape and lies on the simplex
    along the last axis; ``log_prob`` sums the log densities over the leading axes, which may also index
    independent examples (``example_log_prob``).  The sample is the normalized vector of independent
    :math:`G_k \sim \mathrm{Gamma}(\alpha_k, 1)`, computed in log space,
    :math:`\log x = \log G - \operatorname{logsumexp}_k \log G_k`, from log-gamma draws
    (:func:`~estimators.distributions.gamma.log_gamma_draw`) that are differentiable in :math:`\alpha`
    through their implicit reparameterization.  ``log_prob`` is :math:`-\infty` off the simplex (a
    negative coordinate, or a sum further than 1e-6 from 1, as in ``jax.scipy.stats.dirichlet``).
    ``concentration`` must be positive; it is not checked, as it may be traced.

    Small concentrations.  A coordinate below the smallest normal float :math:`t`
    (``jnp.finfo(dtype).tiny``, 1.2e-38 in float32) cannot be stored, and below :math:`\alpha_k \approx
    0.1` a sizeable share is, about :math:`t^{\alpha_k} / (\alpha_k B(\alpha_k, \sum_j \alpha_j -
    \alpha_k))`: 28% per coordinate for :math:`\alpha = 0.01 \cdot 1_3` in float32.  The coordinate is
    0 there, and ``log_prob`` at any :math:`0 \le x_k < t` takes the mean of :math:`x_k^{\alpha_k - 1}`
    over :math:`[0, t)`, :math:`t^{\alpha_k - 1} / \alpha_k`, in its place, whose gradient is the mean
    score of the draws in that cell, to relative order t: a score-function estimate stays finite, and
    unbiased for any cost (which sees only the stored sample), where :math:`\log 0` would make it
    :math:`-\infty`.  Drawing :math:`\log G` rather than G keeps the other coordinates, and the
    derivatives of every :math:`\log G_k`, exact when some :math:`G_k` underflow, so that pathwise
    gradients stay right.

    .. warning::
       Float32 cannot make right a pathwise gradient through a cost that is not smooth at
       :math:`x_k = 0` (one of :math:`\log x_k`, as a log density evaluated at the sample is) at small
       concentrations: the stored 0 carries neither :math:`\log x_k` nor its derivative, so the gradient
       is biased.  Use float64, ``jax.config.update("jax_enable_x64", True)`` (t = 2.2e-308), which
       makes it negligible from :math:`\alpha_k` of about 0.05.

    References:
      Figurnov, Mohamed & Mnih, *Implicit Reparameterization Gradients*, NeurIPS 2018.
    """

    reparameterizable = True
    event_ndims = 1

    def __init__(self, concentration):
        concentration = jnp.asarray(concentration, float_dtype(concentration))
        if concentration.ndim == 0:
            raise ValueError(
                "Dirichlet needs a concentration with at least one axis (the K components are the last "
                "axis); got a scalar. For a single probability use Beta(a, b)."
            )
        check_positive("Dirichlet", concentration=concentration)
        self.concentration = concentration

    @property
    def _defining_parameter(self):
        return self.concentration

    @property
    def num_components(self) -> int:
        return self.concentration.shape[-1]

    def _draw(self, key):
        log_gamma = log_gamma_draw(key, self.concentration, self.event_shape, self.dtype)
        log_x = jax.nn.log_softmax(log_gamma, axis=-1)
        return jnp.where(log_x < log_tiny(self.dtype), 0, jnp.exp(log_x))

    def _log_prob_elements(self, x):
        tiny = jnp.finfo(self.dtype).tiny
        below_tiny = (x >= 0) & (x < tiny)
        # x_k^(α_k - 1) at t, divided by α_k below: the mean of x_k^(α_k - 1) over [0, t)
        cell_terms = jnp.sum(jnp.where(below_tiny, jnp.log(self.concentration), 0), axis=-1)
        rows = (-1, self.num_components)  # jax.scipy.stats.dirichlet takes one vector at a time
        densities = jax.vmap(dirichlet.logpdf)(jnp.where(below_tiny, tiny, x).reshape(rows),
                                               self.concentration.reshape(rows))
        return densities.reshape(self.event_shape[:-1]) - cell_terms
