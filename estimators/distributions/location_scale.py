"""Location-scale families: a sample is a location plus a scale times a parameter-free standard sample."""

from __future__ import annotations

import abc

import jax

from estimators.distributions.base import Distribution, broadcast_parameters, float_dtype


class LocationScale(Distribution):
    r"""Independent coordinates :math:`x_i = \mu_i + \sigma_i \epsilon_i`, :math:`\epsilon_i` standard.

    The reparameterization is explicit: :math:`\epsilon` is drawn by ``_standard_sample`` and carries
    no parameters, so :math:`\partial x / \partial \mu = 1` and :math:`\partial x / \partial \sigma =
    \epsilon`.  ``loc`` and ``scale`` broadcast against each other; their common shape is the event
    shape.  A family supplies ``_standard_sample`` and ``log_prob``.
    """

    reparameterizable = True

    def __init__(self, loc, scale):
        dtype = float_dtype(loc, scale)
        self.loc, self.scale = broadcast_parameters(type(self).__name__, dtype, ("scale",), loc=loc, scale=scale)

    @property
    def _defining_parameter(self):
        return self.loc

    @abc.abstractmethod
    def _standard_sample(self, key: jax.Array) -> jax.Array:
        """ε with the event shape and dtype, from the family's standard member (loc 0, scale 1)."""

    def _draw(self, key):
        return self.loc + self.scale * self._standard_sample(key)
