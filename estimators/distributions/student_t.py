"""Student's t distribution with a location and a scale, with independent coordinates."""

from __future__ import annotations

import jax
from jax.scipy.stats import t as student_t

from estimators.distributions.base import broadcast_parameters
from estimators.distributions.location_scale import LocationScale


class StudentT(LocationScale):
    r"""Independent Student-t coordinates with :math:`\nu_i` degrees of freedom, location and scale:

    .. math:: q(x; \nu, \mu, \sigma) = \frac{\Gamma(\frac{\nu + 1}{2})}{\Gamma(\frac{\nu}{2})
        \sqrt{\pi\nu}\,\sigma} \left(1 + \frac{z^2}{\nu}\right)^{-(\nu + 1)/2}, \qquad z = \frac{x - \mu}{\sigma}.

    Reparameterized as a location-scale family, :math:`x = \mu + \sigma\,\epsilon` with :math:`\epsilon`
    a standard t variate (``jax.random.t``: a normal over the root of a scaled gamma).  ``df`` is meant
    to be held fixed; a gradient with respect to it would flow through JAX's gamma sampler, which
    differentiates implicitly.  The mean exists for :math:`\nu > 1` and the variance for :math:`\nu >
    2`.  ``df`` and ``scale`` must be positive; they are not checked, as they may be traced.
    """

    def __init__(self, df, loc, scale):
        super().__init__(loc, scale)
        self.df, self.loc, self.scale = broadcast_parameters("StudentT", self.dtype, ("df",), df=df, loc=self.loc,
                                                             scale=self.scale)

    def _standard_sample(self, key):
        return jax.random.t(key, self.df, self.event_shape, self.dtype)

    def _log_prob_elements(self, x):
        return student_t.logpdf(x, self.df, self.loc, self.scale)
