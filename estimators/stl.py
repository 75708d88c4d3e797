"""Sticking the landing (STL): the ELBO's pathwise gradient without its score term."""

from __future__ import annotations

import jax

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, surrogate_estimate
from estimators.distributions import Particles
from estimators.dreg import _reparameterizable_reason
from estimators.importance_weighted import importance_weighted_reason, log_weights, surrogate_of_samples
from estimators.registry import register


@register("stl", family="importance_weighted")
@estimator_dataclass
class STL(GradientEstimator):
    r"""Sticking the landing (STL): the path derivative of the ELBO.

    The pathwise gradient of the ELBO, :math:`\log w = \log p(x, z; \theta) - \log q(z; \theta)` with
    :math:`z = g(\epsilon; \theta)`, is the path derivative plus the score term
    :math:`-\nabla_\theta \log q(z; \theta)|_z`, whose mean is zero.  STL drops it:

    .. math::

        \nabla_\theta F \approx \nabla_\theta \log p(x, z; \theta)\big|_z
            + \frac{\partial \log w}{\partial z} \frac{\partial z}{\partial \theta},

    so where q is the exact posterior (:math:`\log w = \log p(x)` for every z) the proposal's gradient
    is exactly zero, sample by sample: zero variance.  It is DReG at K = 1.

    Assumptions: an importance-weighted objective with K = 1 particle (the ELBO) and a reparameterizable
    proposal whose support does not move with θ (not Pareto's: the dropped term no longer has mean zero).
    Unbiased at K = 1; for K > 1 dropping the score term biases the gradient (its mean is no longer zero
    under the importance weights), so it refuses K > 1 and names ``dreg``, the unbiased estimator of that
    kind.

    Reference:
      Roeder, Wu & Duvenaud, *Sticking the Landing: Simple, Lower-Variance Gradient Estimators for
      Variational Inference*, NeurIPS 2017.
    """

    info = EstimatorInfo("stl", separable=True)

    def supports(self, dist):
        reason = importance_weighted_reason(dist, self.name) or _reparameterizable_reason(dist, self.name)
        if reason is None and isinstance(dist, Particles) and dist.num_particles > 1:
            return (f"dropping the score term biases the gradient of a K = {dist.num_particles} particle bound "
                    "(STL is unbiased for K = 1 only); use dreg, its unbiased extension to K particles")
        return reason

    def estimate(self, objective, params, key, num_samples, state):
        surrogate = surrogate_of_samples(objective, self.name, params, key, num_samples, _stl_sample)
        return surrogate_estimate(surrogate, params, state)


def _stl_sample(objective, p, sample_key):
    particles = objective.distribution(p).rsample(sample_key)
    log_w = log_weights(objective, p, jax.lax.stop_gradient(p), particles)[..., 0]  # the one particle's
    return log_w, log_w
