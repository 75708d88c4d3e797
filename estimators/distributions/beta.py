"""The beta distribution, with independent coordinates."""

from __future__ import annotations

import jax
from jax.scipy.stats import beta

from estimators.distributions.base import Distribution, broadcast_parameters, float_dtype


class Beta(Distribution):
    r"""Independent beta coordinates, :math:`x_i \sim \mathrm{Beta}(a_i, b_i)`:

    .. math:: q(x; a, b) = \frac{x^{a - 1} (1 - x)^{b - 1}}{B(a, b)}, \qquad 0 < x < 1.

    The sample is :math:`x = G_a / (G_a + G_b)` with independent :math:`G_a \sim \mathrm{Gamma}(a, 1)`,
    :math:`G_b \sim \mathrm{Gamma}(b, 1)` (``jax.random.beta``, which draws them in log space); it is
    differentiable in a and b through JAX's implicitly reparameterized gamma sampler.  Both parameters
    must be positive; they are not checked, as they may be traced.

    References:
      Figurnov, Mohamed & Mnih, *Implicit Reparameterization Gradients*, NeurIPS 2018.
    """

    reparameterizable = True

    def __init__(self, a, b):
        dtype = float_dtype(a, b)
        self.a, self.b = broadcast_parameters("Beta", dtype, ("a", "b"), a=a, b=b)

    @property
    def _defining_parameter(self):
        return self.a

    def _draw(self, key):
        return jax.random.beta(key, self.a, self.b, self.event_shape, self.dtype)

    def _log_prob_elements(self, x):
        return beta.logpdf(x, self.a, self.b)
