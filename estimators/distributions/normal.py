"""The normal distribution, with independent coordinates."""

from __future__ import annotations

import jax
from jax.scipy.stats import norm

from estimators.distributions.location_scale import LocationScale


class Normal(LocationScale):
    r"""Independent normal coordinates, :math:`x_i \sim \mathcal{N}(\mu_i, \sigma_i^2)`.

    ``loc`` and ``scale`` broadcast against each other; their common shape is the event shape.
    The reparameterized sample is :math:`x = \mu + \sigma \epsilon` with :math:`\epsilon \sim
    \mathcal{N}(0, I)`, and ``sample`` draws the same :math:`x` for the same key, so estimators that
    share keys share samples.  ``scale`` must be positive; it is not checked, as it may be traced.
    """

    def _standard_sample(self, key):
        return jax.random.normal(key, self.event_shape, self.dtype)

    def _log_prob_elements(self, x):
        return norm.logpdf(x, self.loc, self.scale)
