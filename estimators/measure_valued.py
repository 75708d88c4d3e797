r"""The measure-valued (weak-derivative) gradient estimator for Gaussian mean and scale, and Bernoulli
probabilities.

The derivative of a density in one parameter is written as a difference of two densities,
:math:`\partial_\theta q = c_\theta (q^+ - q^-)`, so
:math:`\partial_\theta E_q[f] = c_\theta (E_{q^+}[f] - E_{q^-}[f])`.  For coordinate d of
:math:`\mathcal{N}(\mu, \sigma^2)` (Mohamed et al. 2020, Table 1):

- mean: :math:`c = 1/(\sigma\sqrt{2\pi})`, :math:`x_d^\pm = \mu_d \pm \sigma_d W`, W ~ Weibull(2, √2)
  (the Rayleigh distribution);
- scale: :math:`c = 1/\sigma`, :math:`x_d^+ = \mu_d + \sigma_d M` with M double-sided Maxwell
  (density :math:`m^2\phi(m)`), and :math:`x_d^- = \mu_d + \sigma_d \epsilon`, ε standard normal.

The other coordinates keep a common draw from q.  With coupling (the default), the positive and
negative parts share their randomness: the same W for both mean parts, and
:math:`\epsilon = M U` with U ~ Uniform(0, 1), which is standard normal.  Each sample evaluates the
cost 4 times per coordinate of x.  With independent examples (``Objective(..., batch_ndims=B)``)
coordinate k of every example is perturbed at once and example n's derivative is read from its own
cost :math:`f_n`, which sees no other example's perturbation: 4K + 1 evaluations per sample for K
coordinates per example, instead of 4NK + 1 for N examples treated as one sample.  When the cost
depends on θ, the direct term
:math:`E[\nabla_\theta f(\theta, x)]` is added at the common draw; gradients reach any θ that maps to
(μ, σ) through the chain rule.

For a Bernoulli coordinate, :math:`\partial_{p_d} q = \delta_1 - \delta_0` in coordinate d (c = 1): the
derivative is the difference of the cost with :math:`x_d` set to 1 and to 0, the other coordinates at the
common draw,

.. math::

    \nabla_{\ell_d} F \approx \frac1L \sum_{i=1}^L p_d(1 - p_d)\,
        \big(f(x_{i,-d}, x_d = 1) - f(x_{i,-d}, x_d = 0)\big),

2 evaluations per coordinate and sample (plus the common draw's), the same per-example treatment of a
plate, and no noise to couple (``coupling`` changes nothing).  This is IndeCateR's estimate for two
classes (:mod:`estimators.indecater`), and, since the difference does not depend on :math:`x_d`, the
conditional expectation given :math:`x_{-d}` of the score function with a baseline fitted per coordinate.

Assumptions: q is a diagonal Gaussian or a product of Bernoullis; f need not be differentiable (only
evaluated).  Unbiased.

References:
  Pflug, *Optimization of Stochastic Models*, 1996.
  Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*, JMLR 2020,
  section 6.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from estimators.base import (
    EstimatorInfo,
    GradientEstimator,
    estimator_dataclass,
    sample_keys,
    static,
    surrogate_estimate,
)
from estimators.distributions import Bernoulli, Normal
from estimators.registry import register
from estimators.sample_axis import map_samples


def _weak_derivative_noise(key, shape, dtype, coupled: bool):
    """Standardized draws (W⁺, W⁻, M, ε) for the positive and negative parts, each of ``shape``."""
    keys = jax.random.split(key, 5)
    rayleigh = jnp.sqrt(2 * jax.random.exponential(keys[0], shape, dtype))
    sign = jnp.where(jax.random.bernoulli(keys[1], 0.5, shape), 1, -1).astype(dtype)
    # |M| is chi-distributed with 3 degrees of freedom: the norm of three standard normals (the same law
    # as sqrt(2 Gamma(3/2)), without the gamma sampler's rejection loop).
    maxwell = sign * jnp.linalg.norm(jax.random.normal(keys[2], (3, *shape), dtype), axis=0)
    if coupled:
        return rayleigh, rayleigh, maxwell, maxwell * jax.random.uniform(keys[3], shape, dtype)
    other_rayleigh = jnp.sqrt(2 * jax.random.exponential(keys[3], shape, dtype))
    return rayleigh, other_rayleigh, maxwell, jax.random.normal(keys[4], shape, dtype)


@register("measure_valued", family="measure_valued")
@estimator_dataclass
class MeasureValued(GradientEstimator):
    """The measure-valued estimator of a Gaussian's mean and scale gradients, or a Bernoulli's
    probabilities; option ``coupling`` (static, Gaussian only).  See :mod:`estimators.measure_valued` for
    the formulas."""

    coupling: bool = static(default=True)
    info = EstimatorInfo("measure_valued", separable=True)

    def supports(self, dist):
        if isinstance(dist, (Normal, Bernoulli)):
            return None
        return (f"its weak-derivative decomposition is implemented for the Gaussian (Normal) and the Bernoulli, "
                f"not {type(dist).__name__}")

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        # 4 (Gaussian) or 2 (Bernoulli) per coordinate of one example per sample, plus the common draw (for
        # the value and direct term).
        per_coordinate = 2 if isinstance(dist, Bernoulli) else 4
        return num_samples * (per_coordinate * math.prod(dist.event_shape[batch_ndims:]) + 1)

    def estimate(self, objective, params, key, num_samples, state):
        dist = objective.distribution(params)
        if isinstance(dist, Bernoulli):
            return self._bernoulli_estimate(objective, params, key, num_samples, state)
        batch_shape = objective.batch_shape(dist)
        # (E, K) with a plate: example e's K coordinates, coordinate k perturbed in every example at once;
        # (K,) without one.
        flat_shape = (math.prod(batch_shape), -1) if batch_shape else (-1,)
        loc = jax.lax.stop_gradient(dist.loc).reshape(flat_shape)
        scale = jax.lax.stop_gradient(dist.scale).reshape(flat_shape)
        size = loc.shape[-1]

        def cost(x):
            return objective.checked_cost(params, x.reshape(dist.event_shape)).reshape(flat_shape[:-1])

        def one_sample(sample_key):
            base_key, noise_key = jax.random.split(sample_key)
            common = jax.lax.stop_gradient(dist.sample(base_key)).reshape(loc.shape)
            up, down, maxwell, normal = _weak_derivative_noise(noise_key, loc.shape, loc.dtype, self.coupling)

            def difference(plus, minus, k):
                return cost(common.at[..., k].set(plus[..., k])) - cost(common.at[..., k].set(minus[..., k]))

            def derivatives(plus, minus):
                coordinates = jnp.arange(size)
                differences = jax.vmap(difference, in_axes=(None, None, 0))(plus, minus, coordinates)
                return jnp.moveaxis(differences, 0, -1)  # the coordinates last, as in loc

            loc_part = derivatives(loc + scale * up, loc - scale * down)
            scale_part = derivatives(loc + scale * maxwell, loc + scale * normal)
            return loc_part / (scale * math.sqrt(2 * math.pi)), scale_part / scale, common

        loc_grads, scale_grads, commons = map_samples(one_sample, sample_keys(key, num_samples))
        loc_grad = jax.lax.stop_gradient(jnp.mean(loc_grads, axis=0).reshape(dist.event_shape))
        scale_grad = jax.lax.stop_gradient(jnp.mean(scale_grads, axis=0).reshape(dist.event_shape))
        commons = commons.reshape(num_samples, *dist.event_shape)

        def surrogate(p):
            q = objective.distribution(p)
            costs = objective.sum_examples(objective.costs(p, commons))  # the direct term, at the common draws
            return jnp.sum(loc_grad * q.loc) + jnp.sum(scale_grad * q.scale) + jnp.mean(costs), jnp.mean(costs)

        return surrogate_estimate(surrogate, params, state)

    def _bernoulli_estimate(self, objective, params, key, num_samples, state):
        dist = objective.distribution(params)
        batch_shape = objective.batch_shape(dist)
        flat_shape = (math.prod(batch_shape), -1) if batch_shape else (-1,)
        size = math.prod(dist.event_shape[len(batch_shape):])

        def cost(x):
            return objective.checked_cost(params, x.reshape(dist.event_shape)).reshape(flat_shape[:-1])

        def one_sample(sample_key):
            common = jax.lax.stop_gradient(dist.sample(sample_key)).reshape(flat_shape)

            def difference(k):  # coordinate k of every example at 1, then at 0
                return cost(common.at[..., k].set(1)) - cost(common.at[..., k].set(0))

            return jnp.moveaxis(jax.vmap(difference)(jnp.arange(size)), 0, -1), common

        differences, commons = map_samples(one_sample, sample_keys(key, num_samples))
        probability_grad = jax.lax.stop_gradient(jnp.mean(differences, axis=0).reshape(dist.event_shape))
        commons = commons.reshape(num_samples, *dist.event_shape)

        def surrogate(p):
            probabilities = jax.nn.sigmoid(objective.distribution(p).logits)
            costs = objective.sum_examples(objective.costs(p, commons))  # the direct term, at the common draws
            return jnp.sum(probability_grad * probabilities) + jnp.mean(costs), jnp.mean(costs)

        return surrogate_estimate(surrogate, params, state)
