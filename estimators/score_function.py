"""The score-function (REINFORCE, likelihood-ratio) gradient estimator, with optional baselines."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from estimators.base import Estimate, GradientEstimator, sample_keys, surrogate_estimate
from estimators.baselines import Baseline
from estimators.control_variates import per_sample_jacobians


@dataclasses.dataclass(frozen=True)
class ScoreFunction(GradientEstimator):
    r"""The score-function estimator: REINFORCE, or the likelihood-ratio method.

    From :math:`\nabla_\theta q = q \nabla_\theta \log q`,

    .. math::

        \nabla_\theta F(\theta) \approx \frac{1}{L} \sum_{i=1}^{L}
            \Big[ \big(f(\theta, x_i) - b_i\big) \, \nabla_\theta \log q(x_i; \theta)
                  + \nabla_\theta f(\theta, x_i) \Big],
        \qquad x_i \sim q(x; \theta),

    where :math:`b_i` is the baseline (0 without one; see :mod:`estimators.baselines`) and the last
    term, the direct term, is present when the cost depends on θ itself.  It is computed as the
    gradient of the surrogate
    :math:`\frac{1}{L}\sum_i [f(\theta, \bar x_i) + (\bar f_i - b_i) \log q(\bar x_i; \theta)]` with
    :math:`\bar x_i`, :math:`\bar f_i` and :math:`b_i` held constant, so ``log_prob`` is always
    evaluated at a sample that carries no gradient (otherwise a reparameterized sample would silently
    cancel it).

    Assumptions: :math:`\log q` is differentiable in θ and the support of q does not depend on θ; f
    need not be differentiable in x, and q may be discrete.  Unbiased; its variance grows with the
    magnitude of f and with the dimension of x, which baselines reduce.

    References:
      Williams, *Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement
      Learning*, Machine Learning 1992.
      Glynn, *Likelihood Ratio Gradient Estimation for Stochastic Systems*, CACM 1990.
      Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*, JMLR
      2020, section 4.
    """

    baseline: Baseline | None = None

    @property
    def name(self):
        return "score_function" + (f"_{self.baseline.suffix}" if self.baseline else "")

    @property
    def stateful(self):
        return bool(self.baseline and self.baseline.stateful)

    @property
    def min_num_samples(self):
        return self.baseline.min_num_samples if self.baseline else 1

    def init(self, params):
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        return self.baseline.init(dtype) if self.baseline else ()

    def estimate(self, objective, params, key, num_samples, state):
        samples = jax.vmap(objective.distribution(params).sample)(sample_keys(key, num_samples))  # no gradient
        if self.baseline is not None and self.baseline.per_coordinate:
            return self._per_coordinate_estimate(objective, params, samples, state)

        def surrogate(p):
            costs = objective.costs(p, samples)
            weights = jax.lax.stop_gradient(costs)
            new_state = state
            if self.baseline is not None:
                baseline, new_state = self.baseline.values(weights, state)
                weights = weights - jax.lax.stop_gradient(baseline)
            log_probs = jax.vmap(objective.distribution(p).log_prob)(samples)
            return jnp.mean(costs + weights * log_probs), (jnp.mean(costs), new_state)

        (_, (value, new_state)), grads = jax.value_and_grad(surrogate, has_aux=True)(params)
        return Estimate(value=value, grads=grads, state=new_state)

    def _per_coordinate_estimate(self, objective, params, samples, state):
        costs = objective.costs(params, samples)
        log_prob = lambda p, x: (objective.distribution(p).log_prob(x)[None], None)  # noqa: E731
        scores, _, unravel = per_sample_jacobians(log_prob, params, samples)
        scores = scores[:, 0]
        baseline = self.baseline.coordinate_values(costs, scores)
        score_term = unravel(jnp.mean((costs[:, None] - baseline) * scores, axis=0))
        direct = surrogate_estimate(lambda p: (jnp.mean(objective.costs(p, samples)), jnp.mean(costs)), params, state)
        grads = jax.tree_util.tree_map(jnp.add, score_term, direct.grads)
        return Estimate(value=direct.value, grads=grads, state=state)
