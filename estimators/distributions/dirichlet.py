"""The Dirichlet distribution over the simplex along the last axis."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import dirichlet

from estimators.distributions.base import Distribution, check_positive, float_dtype


class Dirichlet(Distribution):
    r"""Independent Dirichlet vectors over the last axis of ``concentration``:

    .. math:: q(x; \alpha) = \frac{\Gamma(\sum_k \alpha_k)}{\prod_k \Gamma(\alpha_k)}
        \prod_{k=1}^{K} x_k^{\alpha_k - 1}, \qquad x_k > 0,\ \textstyle\sum_k x_k = 1.

    With ``concentration`` of shape ``(..., K)``, a sample has the same shape and lies on the simplex
    along the last axis; ``log_prob`` sums the log densities over the leading axes, which may also index
    independent examples (``example_log_prob``).  The sample is the
    normalized vector of independent :math:`G_k \sim \mathrm{Gamma}(\alpha_k, 1)`
    (``jax.random.dirichlet``, a softmax of log-gamma draws), differentiable in :math:`\alpha` through
    JAX's implicitly reparameterized gamma sampler.  ``jax.scipy.stats.dirichlet`` returns
    :math:`-\infty` off the simplex (a sum further than 1e-6 from 1).  ``concentration`` must be
    positive; it is not checked, as it may be traced.

    References:
      Figurnov, Mohamed & Mnih, *Implicit Reparameterization Gradients*, NeurIPS 2018.
    """

    reparameterizable = True
    event_ndims = 1

    def __init__(self, concentration):
        concentration = jnp.asarray(concentration, float_dtype(concentration))
        if concentration.ndim == 0:
            raise ValueError(
                "Dirichlet needs a concentration with at least one axis (the K components are the last "
                "axis); got a scalar. For a single probability use Beta(a, b)."
            )
        check_positive("Dirichlet", concentration=concentration)
        self.concentration = concentration

    @property
    def _defining_parameter(self):
        return self.concentration

    @property
    def num_components(self) -> int:
        return self.concentration.shape[-1]

    def _draw(self, key):
        return jax.random.dirichlet(key, self.concentration, dtype=self.dtype)

    def _log_prob_elements(self, x):
        rows = (-1, self.num_components)  # jax.scipy.stats.dirichlet takes one vector at a time
        densities = jax.vmap(dirichlet.logpdf)(x.reshape(rows), self.concentration.reshape(rows))
        return densities.reshape(self.event_shape[:-1])
