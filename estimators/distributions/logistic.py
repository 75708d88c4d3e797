"""The logistic distribution, with independent coordinates."""

from __future__ import annotations

import jax
from jax.scipy.stats import logistic

from estimators.distributions.location_scale import LocationScale


class Logistic(LocationScale):
    r"""Independent logistic coordinates, :math:`x_i \sim \mathrm{Logistic}(\mu_i, s_i)`:

    .. math:: q(x; \mu, s) = \frac{e^{-(x - \mu)/s}}{s\,\big(1 + e^{-(x - \mu)/s}\big)^2}.

    Reparameterized as a location-scale family, :math:`x = \mu + s\,\epsilon` with :math:`\epsilon =
    \log u - \log(1 - u)`, :math:`u` uniform (the inverse CDF of the standard logistic).  ``scale``
    must be positive; it is not checked, as it may be traced.
    """

    def _standard_sample(self, key):
        return jax.random.logistic(key, self.event_shape, self.dtype)

    def _log_prob_elements(self, x):
        return logistic.logpdf(x, self.loc, self.scale)
