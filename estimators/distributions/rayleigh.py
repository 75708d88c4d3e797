"""The Rayleigh distribution, with independent coordinates."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.distributions.base import Distribution, check_positive, float_dtype


class Rayleigh(Distribution):
    r"""Independent Rayleigh coordinates, :math:`x_i \sim \mathrm{Rayleigh}(\sigma_i)`:

    .. math:: q(x; \sigma) = \frac{x}{\sigma^2} \exp\!\left(-\frac{x^2}{2\sigma^2}\right), \qquad x \ge 0.

    Reparameterized by the inverse CDF, :math:`x = \sigma\sqrt{2\epsilon}` with :math:`\epsilon =
    -\log(1 - u)` standard exponential.  ``jax.random.rayleigh`` computes :math:`\sqrt{-2\log u}` from a
    uniform :math:`u \in [0, 1)`, which is infinite when :math:`u = 0` (probability :math:`2^{-23}` in
    float32: about once in eight million samples); the exponential has no such point.
    ``jax.scipy.stats`` has no Rayleigh density, so it is written out here.  ``scale`` must be
    positive; it is not checked, as it may be traced.
    """

    reparameterizable = True

    def __init__(self, scale):
        self.scale = jnp.asarray(scale, float_dtype(scale))
        check_positive("Rayleigh", scale=self.scale)

    @property
    def _defining_parameter(self):
        return self.scale

    def _draw(self, key):
        return self.scale * jnp.sqrt(2 * jax.random.exponential(key, self.event_shape, self.dtype))

    def _log_prob_elements(self, x):
        log_density = jnp.log(x) - 2 * jnp.log(self.scale) - x**2 / (2 * self.scale**2)
        return jnp.where(x >= 0, log_density, -jnp.inf)
