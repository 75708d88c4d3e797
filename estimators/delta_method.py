r"""The delta-method control variate: a second-order Taylor expansion of the cost under a Gaussian.

Around the mean :math:`\bar\mu` of :math:`q = \mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)` (held constant),

.. math::

    h(\theta, x) = f(\theta, \bar\mu) + \nabla_x f(\theta, \bar\mu)^\top (x - \bar\mu)
                   + \tfrac12 (x - \bar\mu)^\top \nabla_x^2 f(\theta, \bar\mu)\, (x - \bar\mu),

whose expectation is known in closed form,
:math:`E_q[h] = f + \nabla f^\top(\mu - \bar\mu) + \tfrac12[(\mu - \bar\mu)^\top H (\mu - \bar\mu)
+ \sum_d H_{dd}\sigma_d^2]`, so its gradient :math:`\nabla_\theta E_q[h]` is exact (by autodiff).  The
estimators average :math:`\hat g[f - c\,h] + c\,\nabla_\theta E_q[h]`, where :math:`\hat g` is the
pathwise or the score-function estimator (the base estimator that :class:`DeltaMethod` wraps: any
estimator whose L-sample estimate is the mean of per-sample terms, ``sample_surrogate``); for a
quadratic cost h = f and, with c = 1, the variance is
zero.  The coefficient c is fixed, or fitted per gradient coordinate leave-one-out
(:mod:`estimators.control_variates`) to :math:`\mathrm{Cov}(\hat g[f], \hat g[h]) / \mathrm{Var}(\hat g[h])`.

With independent examples (``Objective(..., batch_ndims=B)``) each example's cost is expanded in that
example's latents only, :math:`h_n(x_n)`: its Hessian is block diagonal, so the N blocks of K × K come
from K Hessian-vector products (coordinate k of every example at once) instead of an NK × NK Hessian,
and the score-function variant weights example n's score by :math:`f_n - c\,h_n`.

Assumptions: q is a diagonal Gaussian (``Normal``); f is twice differentiable in x at the mean; the
Hessian is formed once per estimate (dense in one example's size).

Reference: Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*,
JMLR 2020, section 7.2 (delta method); Paisley, Blei & Jordan, *Variational Bayesian Inference with
Stochastic Search*, ICML 2012; Miller et al., *Reducing Reparameterization Gradient Variance*, NeurIPS
2017.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from estimators.base import (
    Estimate,
    EstimatorInfo,
    GradientEstimator,
    check_option,
    estimator_dataclass,
    sample_keys,
    surrogate_estimate,
)
from estimators.control_variates import leave_one_out_coefficient, per_sample_jacobians
from estimators.distributions import Normal
from estimators.pathwise import Pathwise
from estimators.registry import export, register
from estimators.sample_axis import map_samples
from estimators.score_function import ScoreFunction


def _quadratic(value, gradient, hessian, centre, x):
    """The expansion of one example's cost at x (all arguments flat over that example's coordinates)."""
    delta = x - centre
    return value + gradient @ delta + 0.5 * delta @ hessian @ delta


def _quadratic_mean(value, gradient, hessian, centre, loc, variances):
    """E[h] of one example under N(loc, diag variances)."""
    mean_shift = loc - centre
    return value + gradient @ mean_shift + 0.5 * (mean_shift @ hessian @ mean_shift + jnp.diag(hessian) @ variances)


def _example_hessians(total_cost, flat_centre):
    """The (E, K, K) Hessian blocks of each example's cost in its own K latents, from K
    Hessian-vector products of the summed cost: perturbing coordinate k of every example at once
    gives column k of every block, since example e's cost sees no other example's latents."""
    size = flat_centre.shape[1]
    gradient = jax.grad(total_cost)
    # Built from the centre, so that the tangents vary over the same mapped axes as the point they are at
    # (inside shard_map a constant tangent would not).
    tangents = jnp.eye(size, dtype=flat_centre.dtype)[:, None, :] + jnp.zeros_like(flat_centre)[None]
    columns = jax.vmap(lambda tangent: jax.jvp(gradient, (flat_centre,), (tangent,))[1])(tangents)  # (K, E, K)
    return jnp.transpose(columns, (1, 2, 0))


def _expansion(objective, params, dist):
    """``(coefficients, centre)``: the expansion's value, gradient and Hessian at the centre
    ``stop_gradient(dist.loc)``, flat per example ((), (K,), (K, K) without a plate; a leading axis of E
    examples with one); they depend on the parameters only through the cost."""
    centre = jax.lax.stop_gradient(dist.loc)
    shape = centre.shape
    batch_shape = objective.batch_shape(dist)
    if not batch_shape:
        def flat_cost(p, flat_x):
            return objective.checked_cost(p, flat_x.reshape(shape))

        flat_centre = centre.reshape(-1)
        return (flat_cost(params, flat_centre), jax.grad(flat_cost, argnums=1)(params, flat_centre),
                jax.hessian(flat_cost, argnums=1)(params, flat_centre)), flat_centre

    num_examples = math.prod(batch_shape)
    flat_centre = centre.reshape(num_examples, -1)

    def example_costs(flat_x):
        return objective.checked_cost(params, flat_x.reshape(shape)).reshape(num_examples)

    def total_cost(flat_x):
        return jnp.sum(example_costs(flat_x))

    return (example_costs(flat_centre), jax.grad(total_cost)(flat_centre),
            _example_hessians(total_cost, flat_centre)), flat_centre


def _expansion_at(objective, dist, coefficients, centre, x):
    """h(x): the expansion of :func:`_expansion` at a sample x (the batch shape with a plate)."""
    batch_shape = objective.batch_shape(dist)
    if not batch_shape:
        return _quadratic(*coefficients, centre, x.reshape(-1))
    examples = centre.shape[0]
    return jax.vmap(_quadratic)(*coefficients, centre, x.reshape(examples, -1)).reshape(batch_shape)


def _expansion_mean(objective, dist, coefficients, centre):
    """E_q[h], summed over the examples."""
    if not objective.batch_shape(dist):
        return _quadratic_mean(*coefficients, centre, dist.loc.reshape(-1), (dist.scale**2).reshape(-1))
    examples = centre.shape[0]
    return jnp.sum(jax.vmap(_quadratic_mean)(*coefficients, centre, dist.loc.reshape(examples, -1),
                                             (dist.scale**2).reshape(examples, -1)))


def _taylor(objective, params, dist):
    """(h, expected_h): the expansion of x ↦ f(params, x) around stop_gradient(dist.loc), per example
    (with a plate, each example's cost in that example's latents only: E blocks of K × K, and h(x) has
    the batch shape), and E_q[h] summed over the examples."""
    coefficients, centre = _expansion(objective, params, dist)
    return (lambda x: _expansion_at(objective, dist, coefficients, centre, x),
            _expansion_mean(objective, dist, coefficients, centre))


@export
@estimator_dataclass
class DeltaMethod(GradientEstimator):
    r"""A base estimator ĝ with the delta-method control variate:
    :math:`\frac1L\sum_i (\hat g_i[f] - c\,\hat g_i[h]) + c\,\nabla_\theta E_q[h]`, ĝ_i the base
    estimator's term of sample i (its ``sample_surrogate``).  Registered as ``pathwise_delta`` (base
    :class:`~estimators.Pathwise`) and ``score_function_delta`` (base :class:`~estimators.ScoreFunction`
    without a baseline).  Options: ``coefficient`` c, or None to fit it per coordinate leave-one-out
    (L ≥ 2).  See :mod:`estimators.delta_method`."""

    base: Pathwise | ScoreFunction = Pathwise()
    #: the control variate's coefficient c, or None to fit it per coordinate leave-one-out (L ≥ 2)
    coefficient: float | None = 1.0

    def __post_init__(self):
        if not hasattr(self.base, "sample_surrogate") or getattr(self.base, "baseline", None) is not None:
            raise ValueError(
                "DeltaMethod wraps an estimator whose estimate is a mean of per-sample terms (Pathwise, or "
                f"ScoreFunction without a baseline), got {self.base!r}."
            )
        if self.coefficient is not None:
            check_option(self, "coefficient", math.isfinite,
                         "a finite coefficient c, or coefficient=None to fit it per coordinate leave-one-out")

    @property
    def info(self):
        # Not separable: a fitted coefficient couples the samples, and with a fixed one the Taylor terms
        # (the Hessian at the mean) are shared by the samples, so per-sample terms would repeat them
        # (sample_statistics keeps them apart instead).
        return EstimatorInfo(f"{self.base.name}_delta", min_num_samples=2 if self.coefficient is None else 1)

    def supports(self, dist):
        if not isinstance(dist, Normal):
            return (f"its Taylor control variate has a closed-form mean only under a Gaussian (Normal), not "
                    f"{type(dist).__name__}")
        return self.base.supports(dist)

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        # L samples, plus the value, gradient and K Hessian columns of f at the mean (K per example).
        return num_samples + 2 + math.prod(dist.event_shape[batch_ndims:])

    def _sample_terms(self, objective, p, key, h):
        """The base estimator's surrogates of one sample for f and for the expansion h, stacked, and the
        sample's cost (for the value)."""
        return self.base.sample_surrogate(objective, p, key, controls=(h,))  # h carries p's gradient

    def has_sample_statistics(self, objective):
        # A fitted coefficient couples the samples beyond their statistics.
        return self.coefficient is not None

    def sample_statistics(self, objective, params, keys):
        r"""Per sample i, with the expansion's coefficients a(θ) held constant: the flat gradient of
        :math:`\hat g_i[f] - c\,\hat g_i[h]`, the sensitivity of its h term to the coefficients,
        :math:`\partial h(x_i)/\partial a`, and its cost.  :meth:`estimate_from_statistics` adds what flows
        through a(θ) and :math:`c\,\nabla_\theta E_q[h]` with one backward pass through the expansion per
        estimate, as the estimate does (per-sample terms would repeat it for every sample)."""
        if self.coefficient is None:
            raise ValueError(f"{self.name} with a fitted coefficient has no per-sample statistics.")
        c = self.coefficient
        dist = objective.distribution(params)
        coefficients, centre = jax.lax.stop_gradient(_expansion(objective, params, dist))
        h = lambda a, x: _expansion_at(objective, dist, a, centre, x)

        def one_sample(key):
            sample_key = jax.random.clone(key)  # the same sample again, on purpose, for its sensitivity

            def term(p):
                parts, cost = self._sample_terms(objective, p, key, lambda x: h(coefficients, x))
                return parts[0] - c * parts[1], cost

            gradient, cost = jax.grad(term, has_aux=True)(params)
            x = jax.lax.stop_gradient(dist.sample(sample_key))  # the sample of both bases (a value)
            sensitivity = jax.grad(lambda a: jnp.sum(h(a, x)))(coefficients)
            return ravel_pytree(gradient)[0], sensitivity, cost

        gradients, sensitivities, costs = map_samples(one_sample, keys)
        return {"gradients": gradients, "sensitivities": sensitivities, "costs": costs}

    def estimate_from_statistics(self, objective, params, statistics, state=()):
        c = self.coefficient
        mean = lambda tree: jax.tree_util.tree_map(lambda t: jnp.mean(t, axis=0), tree)

        def expansion(p):
            dist = objective.distribution(p)
            coefficients, centre = _expansion(objective, p, dist)
            return coefficients, _expansion_mean(objective, dist, coefficients, centre)

        (coefficients, expected), pullback = jax.vjp(expansion, params)
        # d/dθ of c E_q[h] - c mean_i h(x_i), through the coefficients and (for E_q[h]) the distribution.
        cotangent = (jax.tree_util.tree_map(lambda s: -c * s, mean(statistics["sensitivities"])),
                     jnp.full_like(expected, c))
        (through_expansion,) = pullback(cotangent)
        grads = jax.tree_util.tree_map(jnp.add, ravel_pytree(params)[1](mean(statistics["gradients"])),
                                       through_expansion)
        return Estimate(value=jnp.mean(statistics["costs"]), grads=grads, state=state)

    def estimate(self, objective, params, key, num_samples, state):
        keys = sample_keys(key, num_samples)
        if self.coefficient is not None:
            c = self.coefficient

            def surrogate(p):
                h, expected = _taylor(objective, p, objective.distribution(p))  # formed once for all samples
                parts, costs = map_samples(lambda k: self._sample_terms(objective, p, k, h), keys)
                return jnp.mean(parts[:, 0] - c * parts[:, 1]) + c * expected, jnp.mean(costs)

            return surrogate_estimate(surrogate, params, state)

        def terms(p, k):
            h, _ = _taylor(objective, p, objective.distribution(p))
            return self._sample_terms(objective, p, k, h)

        jacobians, costs, unravel = per_sample_jacobians(terms, params, keys)
        f_grads, h_grads = jacobians[:, 0], jacobians[:, 1]
        h_mean, _ = ravel_pytree(jax.grad(lambda p: _taylor(objective, p, objective.distribution(p))[1])(params))
        centred = h_grads - h_mean[None]
        coefficients = leave_one_out_coefficient(f_grads, centred)
        grads = unravel(jnp.mean(f_grads - coefficients * centred, axis=0))
        return Estimate(value=jnp.mean(costs), grads=grads, state=state)


register("pathwise_delta", lambda coefficient=1.0: DeltaMethod(Pathwise(), coefficient), family="control_variate")
register("score_function_delta", lambda coefficient=1.0: DeltaMethod(ScoreFunction(), coefficient),
         family="control_variate")
