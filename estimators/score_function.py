"""The score-function (REINFORCE, likelihood-ratio) gradient estimator, with optional baselines."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from estimators.base import (
    Estimate,
    EstimatorInfo,
    GradientEstimator,
    estimator_dataclass,
    sample_keys,
    surrogate_estimate,
)
from estimators.baselines import (
    Baseline,
    GroupMean,
    GroupStandardized,
    LeaveOneOut,
    MovingAverage,
    OptimalConstant,
)
from estimators.control_variates import per_sample_jacobians
from estimators.registry import register
from estimators.sample_axis import map_samples


@register("score_function", family="score_function")
@estimator_dataclass
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

    With independent examples (``Objective(..., batch_ndims=B)``), example n's score is weighted by
    its own cost only, :math:`\sum_n (f_n(\theta, x_{i,n}) - b_{i,n})\,\nabla_\theta \log q_n(x_{i,n}; \theta)`,
    and the baselines are per example (see :mod:`estimators.baselines`): the other examples' costs,
    independent of :math:`x_{i,n}`, would only add noise.

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
    def info(self):
        if self.baseline is None:
            return EstimatorInfo("score_function", separable=True)
        baseline = self.baseline.info
        return EstimatorInfo(f"score_function_{baseline.suffix}", unbiased=baseline.unbiased,
                             stateful=baseline.stateful, min_num_samples=baseline.min_num_samples)

    def init(self, objective, params, key):
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        return self.baseline.init(dtype) if self.baseline else ()

    def sample_surrogate(self, objective, params, key, controls=()):
        r"""``(s, f)`` for the one sample of ``key`` (without a baseline): ``s[0]``'s gradient is that
        sample's term, :math:`f \nabla \log q + \nabla_\theta f`, ``s[j]``'s the same term for the cost
        ``controls[j-1](x)`` (a control variate with the objective's batch shape), f the sample's cost
        (summed over examples)."""
        if self.baseline is not None:
            raise ValueError("A score function with a baseline couples its samples: it has no per-sample term.")
        dist = objective.distribution(params)
        x = dist.sample(key)  # no gradient
        cost = objective.checked_cost(params, x)
        values = jnp.stack([cost, *(control(x) for control in controls)])  # per example: example n's score gets f_n
        log_prob = objective.example_log_prob(dist, x)
        log_prob = log_prob[None] if objective.batch_ndims else log_prob  # against the stacked values
        terms = values + jax.lax.stop_gradient(values) * log_prob
        return objective.sum_examples(terms), jax.lax.stop_gradient(objective.sum_examples(cost))

    def has_sample_statistics(self, objective):
        # With a plate, a baseline fitted per example from the costs (leave-one-out) weights each example's
        # own score, which per-sample statistics would have to keep (a backward pass per example); the
        # optimal baseline needs those scores anyway, and a baseline shared by every example (the moving
        # average) needs only two sums over the examples, Σ_n f_n s_n and Σ_n s_n.
        if self.baseline is None:
            return True
        info = self.baseline.info
        return info.needs_scores or info.shared or objective.batch_ndims == 0

    def sample_statistics(self, objective, params, keys):
        """Without a baseline, the per-sample terms.  With one: each sample's costs (its batch shape), the
        flat gradient of its cost in θ (the direct term) and its flat score, one per example for a baseline
        fitted per coordinate with a plate, and with a plate and a baseline shared by the examples the two
        flat sums Σ_n f_n ∇log q_n and Σ_n ∇log q_n (one linearization, two cotangents): what the baseline
        and the estimate are functions of."""
        if self.baseline is None:
            return super().sample_statistics(objective, params, keys)
        if not self.has_sample_statistics(objective):
            raise ValueError(f"{self.name} with a plate has no per-sample statistics; measure each L alone.")
        samples = jax.vmap(objective.distribution(params).sample)(keys)  # no gradient
        flat = lambda tree: ravel_pytree(tree)[0]
        plate = objective.batch_ndims > 0

        def one_sample(x):
            cost, cost_pullback = jax.vjp(lambda p: objective.checked_cost(p, x), params)
            direct = flat(cost_pullback(jnp.ones_like(cost))[0])  # the gradient of the summed costs
            cost = jax.lax.stop_gradient(cost)
            if plate and self.baseline.info.shared:  # (2, n): Σ_n f_n s_n and Σ_n s_n
                _, pullback = jax.vjp(lambda p: objective.example_log_prob(objective.distribution(p), x), params)
                scores = jax.vmap(lambda c: flat(pullback(c)[0]))(jnp.stack([cost, jnp.ones_like(cost)]))
            elif plate:  # needs_scores: one score per example
                scores, _, _ = per_sample_jacobians(
                    lambda p, x: (objective.example_log_prob(objective.distribution(p), x).reshape(-1), None),
                    params, x[None])
                scores = scores[0]
            else:
                scores = flat(jax.grad(lambda p: objective.example_log_prob(objective.distribution(p), x))(params))
            return cost, direct, scores

        costs, direct, scores = map_samples(one_sample, samples)
        return {"costs": costs, "direct": direct, "scores": scores}

    def estimate_from_statistics(self, objective, params, statistics, state=()):
        if self.baseline is None:
            return super().estimate_from_statistics(objective, params, statistics, state)
        costs, direct, scores = statistics["costs"], statistics["direct"], statistics["scores"]
        plate = objective.batch_ndims > 0
        if plate:
            costs = costs.reshape(costs.shape[0], -1)  # (L, E)
        needs_scores = self.baseline.info.needs_scores
        baseline, state = self.baseline.values(costs, state, scores if needs_scores else None)
        if plate and self.baseline.info.shared:  # b the same for every example: Σ_n f_n s_n - b Σ_n s_n
            score_term = jnp.mean(scores[:, 0] - baseline[:, :1] * scores[:, 1], axis=0)
        else:
            weights = costs[..., None] - baseline if needs_scores else (costs - baseline)[..., None]
            per_sample = weights * scores
            score_term = jnp.mean(jnp.sum(per_sample, axis=1) if plate else per_sample, axis=0)
        unravel = ravel_pytree(params)[1]
        value = jnp.mean(jnp.sum(costs, axis=1) if plate else costs)
        return Estimate(value=value, grads=unravel(score_term + jnp.mean(direct, axis=0)), state=state)

    def estimate(self, objective, params, key, num_samples, state):
        samples = jax.vmap(objective.distribution(params).sample)(sample_keys(key, num_samples))  # no gradient
        if self.baseline is not None and self.baseline.info.needs_scores:
            return self._per_coordinate_estimate(objective, params, samples, state)

        def surrogate(p):
            costs = objective.costs(p, samples)  # (L, *batch_shape)
            weights = jax.lax.stop_gradient(costs)
            new_state = state
            if self.baseline is not None:
                baseline, new_state = self.baseline.values(weights, state)
                weights = weights - jax.lax.stop_gradient(baseline)
            log_probs = objective.log_probs(objective.distribution(p), samples)
            surrogates = objective.sum_examples(costs + weights * log_probs)
            return jnp.mean(surrogates), (jnp.mean(objective.sum_examples(costs)), new_state)

        (_, (value, new_state)), grads = jax.value_and_grad(surrogate, has_aux=True)(params)
        return Estimate(value=value, grads=grads, state=new_state)

    def _per_coordinate_estimate(self, objective, params, samples, state):
        costs = objective.costs(params, samples)
        plate = objective.batch_ndims > 0
        if plate:
            costs = costs.reshape(samples.shape[0], -1)  # (L, E): the examples along one axis

        def log_prob(p, x):
            log_probs = objective.example_log_prob(objective.distribution(p), x)
            return log_probs.reshape(-1) if plate else log_probs[None], None

        # Scores (L, n) without a plate, (L, E, n) with one: a score per example, fitted apart.
        scores, _, unravel = per_sample_jacobians(log_prob, params, samples)
        scores = scores if plate else scores[:, 0]
        baseline, state = self.baseline.values(costs, state, scores)
        per_sample = (costs[..., None] - baseline) * scores
        score_term = unravel(jnp.mean(jnp.sum(per_sample, axis=1) if plate else per_sample, axis=0))
        value = jnp.mean(jnp.sum(costs, axis=1) if plate else costs)  # costs (L, E): the examples are axis 1
        direct = surrogate_estimate(lambda p: (jnp.mean(objective.sum_examples(objective.costs(p, samples))), value),
                                    params, state)
        grads = jax.tree_util.tree_map(jnp.add, score_term, direct.grads)
        return Estimate(value=direct.value, grads=grads, state=state)


register("score_function_ema", lambda decay=0.9: ScoreFunction(baseline=MovingAverage(decay)), family="score_function")
register("score_function_loo", lambda: ScoreFunction(baseline=LeaveOneOut()), family="score_function")
register("score_function_optimal", lambda: ScoreFunction(baseline=OptimalConstant()), family="score_function")
register("score_function_group_mean", lambda: ScoreFunction(baseline=GroupMean()), family="score_function")
register("score_function_grpo", lambda epsilon=1e-4: ScoreFunction(baseline=GroupStandardized(epsilon)),
         family="score_function")
register("score_function_grpo_batch",
         lambda epsilon=1e-4: ScoreFunction(baseline=GroupStandardized(epsilon, batch_std=True)),
         family="score_function")
