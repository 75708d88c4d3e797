"""The Gumbel (type-I extreme value, for maxima) distribution, with independent coordinates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import gumbel_r

from estimators.distributions.location_scale import LocationScale


class Gumbel(LocationScale):
    r"""Independent Gumbel coordinates, :math:`x_i \sim \mathrm{Gumbel}(\mu_i, \beta_i)`:

    .. math:: q(x; \mu, \beta) = \frac{1}{\beta} \exp\!\big(-z - e^{-z}\big), \qquad z = (x - \mu)/\beta.

    Reparameterized as a location-scale family, :math:`x = \mu + \beta\,\epsilon` with :math:`\epsilon =
    -\log(-\log u)`, :math:`u` uniform (the inverse CDF of the standard Gumbel).  ``scale`` must be
    positive; it is not checked, as it may be traced.

    The density is the standard one at :math:`z`, less :math:`\log\beta`: ``jax.scipy.stats.gumbel_r``
    (jax 0.10) cannot be differentiated in its ``scale`` argument (its ``xlogy(-1, scale)`` has an
    integer tangent), which would break the score function.
    """

    def _standard_sample(self, key):
        return jax.random.gumbel(key, self.event_shape, self.dtype)

    def _log_prob_elements(self, x):
        return gumbel_r.logpdf((x - self.loc) / self.scale) - jnp.log(self.scale)
