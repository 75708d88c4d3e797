"""The gamma distribution, parameterized by concentration and rate, with independent coordinates."""

from __future__ import annotations

import jax
from jax.scipy.stats import gamma

from estimators.distributions.base import Distribution, broadcast_parameters, float_dtype


class Gamma(Distribution):
    r"""Independent gamma coordinates with concentration (shape) :math:`\alpha` and rate :math:`\beta`:

    .. math:: q(x; \alpha, \beta) = \frac{\beta^\alpha}{\Gamma(\alpha)} x^{\alpha - 1} e^{-\beta x},
        \qquad x > 0.

    The sample is :math:`x = \epsilon / \beta` with :math:`\epsilon \sim \mathrm{Gamma}(\alpha, 1)` from
    ``jax.random.gamma``.  The gamma has no explicit reparameterization in :math:`\alpha`; JAX's sampler
    differentiates implicitly, :math:`\partial\epsilon / \partial\alpha = -(\partial_\alpha
    F(\epsilon; \alpha)) / q(\epsilon; \alpha)` with F the CDF, so ``rsample`` is differentiable in both
    parameters.  Both must be positive; they are not checked, as they may be traced.

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
        return jax.random.gamma(key, self.concentration, self.event_shape, self.dtype) / self.rate

    def _log_prob_elements(self, x):
        return gamma.logpdf(x, self.concentration, scale=1 / self.rate)
