"""The Pareto (type I) distribution, with independent coordinates."""

from __future__ import annotations

import jax
from jax.scipy.stats import pareto

from estimators.distributions.base import Distribution, broadcast_parameters, float_dtype


@jax.custom_jvp
def _support_bound(scale):
    """The identity on the scale, refusing to be differentiated: the support moves with it."""
    return scale


@_support_bound.defjvp
def _support_bound_jvp(primals, tangents):
    raise ValueError(
        "Pareto's support [scale, ∞) moves with its scale, so its log density has no useful gradient in "
        "the scale: a score-function estimator would miss the moving boundary and return a wrong number. "
        "Differentiate the scale with pathwise, or hold it fixed (the concentration is fine)."
    )


class Pareto(Distribution):
    r"""Independent Pareto coordinates with scale (minimum) :math:`x_m` and concentration :math:`\alpha`:

    .. math:: q(x; x_m, \alpha) = \frac{\alpha\, x_m^\alpha}{x^{\alpha + 1}}, \qquad x \ge x_m.

    Reparameterized by the inverse CDF, :math:`x = x_m u^{-1/\alpha} = x_m e^{\epsilon / \alpha}` with
    :math:`\epsilon = -\log u` standard exponential (``jax.random.pareto``).  The support
    :math:`[x_m, \infty)` depends on ``scale``, so the score function is not valid for ``scale`` (the
    moving boundary contributes a term it misses), and differentiating ``log_prob`` in ``scale`` raises
    a ValueError that says so: differentiate ``scale`` pathwise only, or hold it fixed; the score
    function is valid for ``concentration``.  The mean exists for :math:`\alpha > 1`
    and the variance for :math:`\alpha > 2`.  Both parameters must be positive; they are not checked,
    as they may be traced.
    """

    reparameterizable = True

    support_depends_on_parameters = True

    def __init__(self, scale, concentration):
        dtype = float_dtype(scale, concentration)
        self.scale, self.concentration = broadcast_parameters(type(self).__name__, dtype, ("scale", "concentration"),
                                                              scale=scale, concentration=concentration)

    @property
    def _defining_parameter(self):
        return self.scale

    def _draw(self, key):
        return self.scale * jax.random.pareto(key, self.concentration, self.event_shape, self.dtype)

    def _log_prob_elements(self, x):
        return pareto.logpdf(x, self.concentration, scale=_support_bound(self.scale))
