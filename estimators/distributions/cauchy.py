"""The Cauchy distribution, with independent coordinates."""

from __future__ import annotations

import jax
from jax.scipy.stats import cauchy

from estimators.distributions.location_scale import LocationScale


class Cauchy(LocationScale):
    r"""Independent Cauchy coordinates, :math:`x_i \sim \mathrm{Cauchy}(m_i, \gamma_i)`:

    .. math:: q(x; m, \gamma) = \frac{1}{\pi\gamma\,\big(1 + ((x - m)/\gamma)^2\big)}.

    Reparameterized as a location-scale family, :math:`x = m + \gamma\,\epsilon` with :math:`\epsilon =
    \tan(\pi(u - 1/2))`, :math:`u` uniform (the inverse CDF of the standard Cauchy).  The mean does not
    exist, so only costs that grow slowly enough (bounded ones, say) have an expectation to
    differentiate.  ``scale`` must be positive; it is not checked, as it may be traced.
    """

    def _standard_sample(self, key):
        return jax.random.cauchy(key, self.event_shape, self.dtype)

    def _log_prob_elements(self, x):
        return cauchy.logpdf(x, self.loc, self.scale)
