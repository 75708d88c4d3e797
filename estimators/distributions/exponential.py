"""The exponential distribution, parameterized by its rate, with independent coordinates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import expon

from estimators.distributions.base import Distribution, check_positive, float_dtype


class Exponential(Distribution):
    r"""Independent exponential coordinates, :math:`x_i \sim \mathrm{Exponential}(\lambda_i)`:

    .. math:: q(x; \lambda) = \lambda e^{-\lambda x}, \qquad x \ge 0.

    Reparameterized by scaling, :math:`x = \epsilon / \lambda` with :math:`\epsilon = -\log(1 - u)`
    standard exponential (the inverse CDF).  ``rate`` must be positive; it is not checked, as it may
    be traced.
    """

    reparameterizable = True

    def __init__(self, rate):
        self.rate = jnp.asarray(rate, float_dtype(rate))
        check_positive("Exponential", rate=self.rate)

    @property
    def _defining_parameter(self):
        return self.rate

    def _draw(self, key):
        return jax.random.exponential(key, self.event_shape, self.dtype) / self.rate

    def _log_prob_elements(self, x):
        return expon.logpdf(x, scale=1 / self.rate)
