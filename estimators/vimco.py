"""VIMCO: the score function for importance-weighted bounds, with a leave-one-out signal per particle."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, surrogate_estimate
from estimators.distributions import Particles
from estimators.importance_weighted import (
    importance_weighted_reason,
    log_mean_exp,
    particle_log_joints,
    particle_log_probs,
    surrogate_of_samples,
)
from estimators.registry import register


@register("vimco", family="importance_weighted")
@estimator_dataclass
class VIMCO(GradientEstimator):
    r"""Variational inference for Monte Carlo objectives (VIMCO).

    For the K-particle bound :math:`\hat{\mathcal L} = \log \frac1K \sum_k w_k` of an
    :class:`~estimators.ImportanceWeightedObjective`, each particle's score is weighted by its own
    learning signal, the bound minus the bound with :math:`\log w_k` replaced by the mean of the other
    particles' log weights (a geometric mean of theirs, which does not depend on :math:`z_k`):

    .. math::

        \nabla_\theta F \approx \sum_{k=1}^K \big(\hat{\mathcal L} - \hat{\mathcal L}_{-k}\big)
            \nabla_\theta \log q(z_k; \theta) + \sum_{k=1}^K \tilde w_k \nabla_\theta \log w_k,
        \qquad \hat{\mathcal L}_{-k} = \log \frac1K \Big(\sum_{j \ne k} w_j
            + \exp \tfrac{1}{K-1} \textstyle\sum_{j \ne k} \log w_j\Big),

    with :math:`\tilde w_k = w_k / \sum_j w_j` and the last term (the direct term) taken at fixed
    particles.  L samples average L independent K-particle estimates.  With independent examples each
    example has its own bound, signals and weights.

    Its leave-one-out bounds take K × K log weights per example.

    Assumptions: an importance-weighted objective with K ≥ 2 particles (one particle has no others to
    leave out: use ``score_function`` with a baseline); q may be discrete, its log density
    differentiable in θ.  Unbiased: :math:`\hat{\mathcal L}_{-k}` does not depend on :math:`z_k`.

    Reference:
      Mnih & Rezende, *Variational Inference for Monte Carlo Objectives*, ICML 2016.
    """

    info = EstimatorInfo("vimco", separable=True)

    def supports(self, dist):
        reason = importance_weighted_reason(dist, self.name)
        if reason is None and isinstance(dist, Particles) and dist.num_particles < 2:
            return ("its per-particle signal leaves one of K particles out, so it needs K >= 2; with K = 1 (the "
                    "ELBO) use score_function with a baseline (score_function_loo over L >= 2 samples)")
        return reason

    def estimate(self, objective, params, key, num_samples, state):
        surrogate = surrogate_of_samples(objective, self.name, params, key, num_samples, _vimco_sample)
        return surrogate_estimate(surrogate, params, state)


def _vimco_sample(objective, p, sample_key):
    particles = objective.distribution(p).sample(sample_key)
    log_q = particle_log_probs(objective, p, particles)  # its gradient: each particle's score
    log_w = particle_log_joints(objective, p, particles) - log_q  # (*examples, K), the direct term's path
    bound = log_mean_exp(log_w)
    signal = jax.lax.stop_gradient(bound[..., None] - leave_one_out_bounds(log_w))
    return bound + jnp.sum(signal * log_q, axis=-1), bound


def leave_one_out_bounds(log_w: jax.Array) -> jax.Array:
    r""":math:`\hat{\mathcal L}_{-k}` for each k over the last axis: the bound with :math:`\log w_k` replaced
    by the mean of the other K − 1 log weights."""
    num_particles = log_w.shape[-1]
    shape = (*log_w.shape, num_particles)
    diagonal = jnp.broadcast_to(jnp.eye(num_particles, dtype=bool), shape)
    rows = jnp.broadcast_to(log_w[..., None, :], shape)  # row k: the K log weights
    # The others' mean as a sum without the k-th term (not the total minus it: a log weight of −∞, a latent
    # the model rules out, would give −∞ − (−∞)); K × K per example.
    others_mean = jnp.sum(jnp.where(diagonal, 0.0, rows), axis=-1) / (num_particles - 1)
    replaced = jnp.where(diagonal, jnp.broadcast_to(others_mean[..., :, None], shape), rows)
    return log_mean_exp(replaced)  # row k: the K log weights with the k-th replaced
