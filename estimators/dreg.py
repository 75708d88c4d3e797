"""DReG: doubly reparameterized gradients of importance-weighted bounds."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, surrogate_estimate
from estimators.importance_weighted import (
    importance_weighted_reason,
    log_mean_exp,
    log_weights,
    normalized_weights,
    surrogate_of_samples,
)
from estimators.registry import register


@register("dreg", family="importance_weighted")
@estimator_dataclass
class DReG(GradientEstimator):
    r"""The doubly reparameterized gradient estimator (DReG) of an importance-weighted bound.

    The IWAE pathwise gradient of :math:`\hat{\mathcal L} = \log \frac1K \sum_k w_k` carries the score
    term :math:`-\sum_k \tilde w_k \nabla_\theta \log q(z_k; \theta)|_z`, whose noise makes the proposal's
    gradient signal-to-noise ratio fall like :math:`1/\sqrt K` (Rainforth et al. 2018).  Reparameterizing
    it a second time, :math:`\mathbb{E}[\sum_k \tilde w_k \nabla_\theta \log q(z_k)|_z] =
    \mathbb{E}[\sum_k (\tilde w_k - \tilde w_k^2)\, \partial_{z_k} \log w_k \, \partial_\theta z_k]`, gives

    .. math::

        \nabla_\theta F \approx \sum_{k=1}^K \tilde w_k \, \nabla_\theta \log p(x, z_k; \theta)\big|_{z}
            + \sum_{k=1}^K \tilde w_k^2 \, \frac{\partial \log w_k}{\partial z_k}
              \frac{\partial z_k}{\partial \theta},
        \qquad z_k = g(\epsilon_k; \theta),

    with :math:`\partial \log w_k / \partial z_k` taken at fixed θ (in the model and in q).  In one
    pytree of parameters the model's parameters get the first sum (the usual importance-weighted
    gradient) and the proposal's the second (the doubly reparameterized one); a parameter of both gets
    both.  L samples average L independent K-particle estimates; with independent examples each example
    has its own weights.

    Assumptions: an importance-weighted objective whose proposal is reparameterizable, with a support that
    does not move with θ (not Pareto's), and :math:`\log p`, :math:`\log q` differentiable in z.  Unbiased
    for every K (at K = 1 it is sticking-the-landing, ``stl``).

    Reference:
      Tucker, Lawson, Gu & Maddison, *Doubly Reparameterized Gradient Estimators for Monte Carlo
      Objectives*, ICLR 2019.
    """

    info = EstimatorInfo("dreg", separable=True)

    def supports(self, dist):
        return importance_weighted_reason(dist, self.name) or _reparameterizable_reason(dist, self.name)

    def estimate(self, objective, params, key, num_samples, state):
        surrogate = surrogate_of_samples(objective, self.name, params, key, num_samples, _dreg_sample)
        return surrogate_estimate(surrogate, params, state)


def _dreg_sample(objective, p, sample_key):
    particles = objective.distribution(p).rsample(sample_key)
    fixed_p, fixed_particles = jax.lax.stop_gradient((p, particles))
    through_model = log_weights(objective, p, fixed_p, fixed_particles)  # ∇: the model's term
    through_particles = log_weights(objective, fixed_p, fixed_p, particles)  # ∇: the path through z
    weights = jax.lax.stop_gradient(normalized_weights(through_model))
    surrogate = jnp.sum(weights * through_model + weights**2 * through_particles, axis=-1)
    return surrogate, log_mean_exp(through_model)


def _reparameterizable_reason(dist, name: str) -> str | None:
    """Why ``name`` (DReG, STL) cannot differentiate through the particles of ``dist``: None where it can."""
    if not dist.reparameterizable:
        return (f"{name} differentiates through the particles, but {type(dist.proposal).__name__} samples are "
                "not a differentiable function of its parameters; use vimco (K >= 2) or score_function")
    if dist.support_depends_on_parameters:
        return (f"{name} trades q's score term for a path term, which needs a support that does not move with "
                f"the parameters, and {type(dist.proposal).__name__}'s does; use pathwise")
    return None
