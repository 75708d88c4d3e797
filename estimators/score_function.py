"""The score-function (REINFORCE, likelihood-ratio) gradient estimator."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from estimators.base import GradientEstimator, sample_keys, surrogate_estimate


@dataclasses.dataclass(frozen=True)
class ScoreFunction(GradientEstimator):
    r"""The score-function estimator: REINFORCE, or the likelihood-ratio method.

    From :math:`\nabla_\theta q = q \nabla_\theta \log q`,

    .. math::

        \nabla_\theta F(\theta) \approx \frac{1}{L} \sum_{i=1}^{L}
            \Big[ f(\theta, x_i) \, \nabla_\theta \log q(x_i; \theta)
                  + \nabla_\theta f(\theta, x_i) \Big],
        \qquad x_i \sim q(x; \theta),

    where the second term, the direct term, is present when the cost depends on θ itself.  It is
    computed as the gradient of the surrogate
    :math:`\frac{1}{L}\sum_i [f(\theta, \bar x_i) + \bar f_i \log q(\bar x_i; \theta)]` with
    :math:`\bar x_i` and :math:`\bar f_i` held constant, so ``log_prob`` is always evaluated at a
    sample that carries no gradient (otherwise a reparameterized sample would silently cancel it).

    Assumptions: :math:`\log q` is differentiable in θ and the support of q does not depend on θ; f
    need not be differentiable in x, and q may be discrete.  Unbiased; its variance grows with the
    magnitude of f and with the dimension of x, which baselines and control variates reduce.

    References:
      Williams, *Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement
      Learning*, Machine Learning 1992.
      Glynn, *Likelihood Ratio Gradient Estimation for Stochastic Systems*, CACM 1990.
      Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*, JMLR
      2020, section 4.
    """

    name = "score_function"

    def estimate(self, objective, params, key, num_samples, state):
        keys = sample_keys(key, num_samples)

        def surrogate(p):
            dist = objective.distribution(p)
            samples = jax.lax.stop_gradient(jax.vmap(dist.sample)(keys))
            costs = objective.costs(p, samples)
            log_probs = jax.vmap(dist.log_prob)(samples)
            surrogate_value = jnp.mean(costs + jax.lax.stop_gradient(costs) * log_probs)
            return surrogate_value, jnp.mean(costs)

        return surrogate_estimate(surrogate, params, state)
