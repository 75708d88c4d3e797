"""The Laplace (double exponential) distribution, with independent coordinates."""

from __future__ import annotations

import jax
from jax.scipy.stats import laplace

from estimators.distributions.location_scale import LocationScale


class Laplace(LocationScale):
    r"""Independent Laplace coordinates, :math:`x_i \sim \mathrm{Laplace}(\mu_i, b_i)`:

    .. math:: q(x; \mu, b) = \frac{1}{2b} \exp\!\left(-\frac{|x - \mu|}{b}\right).

    Reparameterized as a location-scale family, :math:`x = \mu + b\,\epsilon` with :math:`\epsilon`
    standard Laplace.  ``scale`` must be positive; it is not checked, as it may be traced.
    """

    def _standard_sample(self, key):
        return jax.random.laplace(key, self.event_shape, self.dtype)

    def _log_prob_elements(self, x):
        return laplace.logpdf(x, self.loc, self.scale)
