r"""IndeCateR: each categorical variable's classes enumerated, the other variables sampled.

For a product of categoricals :math:`q(x; \theta) = \prod_d q_d(x_d; \theta)` over D variables of K classes,
the gradient is a sum over variables of an expectation over the others (the CatLog-derivative trick,
De Smet et al. 2023, theorem 3.2):

.. math::

    \nabla_\theta E_q[f] = \sum_{d=1}^D E_{x_{-d} \sim q_{-d}}\Big[\sum_{k=1}^K
        \nabla_\theta q_d(k; \theta)\, f(\theta, x_{-d}, x_d = k)\Big] + E_q[\nabla_\theta f(\theta, x)],

and IndeCateR estimates each expectation with the same L samples :math:`x_i \sim q`:

.. math::

    \hat g = \frac1L \sum_{i=1}^L \Big[\sum_{d=1}^D \sum_{k=1}^K \nabla_\theta q_d(k; \theta)\,
        f(\theta, x_{i,-d}, k) + \nabla_\theta f(\theta, x_i)\Big].

Unbiased: variable d's inner sum is the exact derivative of :math:`E_{x_d}[f]` given :math:`x_{i,-d}`, a
Rao-Blackwellization of the score function in each variable.  Since :math:`\sum_k \nabla q_d(k) = 0` a
constant added to f cancels exactly, so no baseline is needed, and for a separable cost
:math:`f = \sum_d c_d(x_d)` every estimate is the exact gradient (zero variance).  The last term, the
direct term where the cost depends on θ itself, is taken at the sample.

Cost: D·K evaluations of the cost per sample, plus one at the sample (for the value and the direct
term).  With independent examples (``Objective(..., batch_ndims=B)``) variable d of every example is set
to class k at once and example n's inner sum is read from its own cost :math:`f_n`, which no other
example's variables enter: :math:`D_n K + 1` evaluations per sample for :math:`D_n` variables per
example, not :math:`N D_n K + 1`.

Assumptions: q is a product of categoricals (one-hot samples, classes along the last axis); f is only
evaluated, at one-hot points, never differentiated in x.  Bernoulli latents are served as two classes
(0 and 1): :math:`\nabla_\ell [p f(x_{-d}, 1) + (1 - p) f(x_{-d}, 0)] = p(1 - p)(f(x_{-d}, 1) - f(x_{-d}, 0))`, 2
evaluations per coordinate, the same estimate as the measure-valued estimator's
(:mod:`estimators.measure_valued`), which computes it.

Reference: De Smet, Sansone & Zuidberg Dos Martires, *Differentiable Sampling of Categorical
Distributions Using the CatLog-Derivative Trick*, NeurIPS 2023.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, sample_keys, surrogate_estimate
from estimators.distributions import Bernoulli, Categorical
from estimators.measure_valued import MeasureValued
from estimators.registry import register
from estimators.sample_axis import map_samples


@register("indecater", family="measure_valued")
@estimator_dataclass
class IndeCateR(GradientEstimator):
    r"""IndeCateR: per sample, :math:`\sum_d \sum_k \nabla_\theta q_d(k)\, f(x_{-d}, k)` plus the direct term.
    Unbiased; D·K + 1 cost evaluations per sample.  See :mod:`estimators.indecater`."""

    info = EstimatorInfo("indecater", separable=True)

    def supports(self, dist):
        if isinstance(dist, (Categorical, Bernoulli)):
            return None
        return f"it enumerates the classes of categorical or Bernoulli variables, not of a {type(dist).__name__}"

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        if isinstance(dist, Bernoulli):
            return MeasureValued().cost_evaluations(num_samples, dist, batch_ndims)
        variables_per_example = math.prod(dist.event_shape[batch_ndims:-1])
        return num_samples * (variables_per_example * dist.event_shape[-1] + 1)

    def estimate(self, objective, params, key, num_samples, state):
        dist = objective.distribution(params)
        if isinstance(dist, Bernoulli):  # two classes: the weak derivative δ₁ − δ₀ of each coordinate
            return MeasureValued().estimate(objective, params, key, num_samples, state)
        batch_shape = objective.batch_shape(dist)
        num_classes = dist.event_shape[-1]
        # (E, V, K) with a plate: example e's V variables, variable v set in every example at once; (V, K) without.
        flat_shape = (math.prod(batch_shape), -1, num_classes) if batch_shape else (-1, num_classes)
        num_variables = math.prod(dist.event_shape[len(batch_shape):-1])

        def cost(x):
            return objective.checked_cost(params, x.reshape(dist.event_shape)).reshape(flat_shape[:-2])

        def one_sample(sample_key):
            common = jax.lax.stop_gradient(dist.sample(sample_key)).reshape(flat_shape)

            def at_class(variable, klass):  # variable v of every example set to class k
                return cost(common.at[..., variable, :].set(jax.nn.one_hot(klass, num_classes, dtype=common.dtype)))

            classes = jnp.arange(num_classes)
            values = jax.vmap(jax.vmap(at_class, in_axes=(None, 0)), in_axes=(0, None))(jnp.arange(num_variables),
                                                                                        classes)  # (V, K, *E)
            return jnp.moveaxis(values, (0, 1), (-2, -1)), common  # (*E, V, K), as the flat latents

        class_costs, commons = map_samples(one_sample, sample_keys(key, num_samples))
        class_costs = jax.lax.stop_gradient(jnp.mean(class_costs, axis=0).reshape(dist.event_shape))
        commons = commons.reshape(num_samples, *dist.event_shape)

        def surrogate(p):
            probabilities = jax.nn.softmax(objective.distribution(p).logits, axis=-1)
            costs = objective.sum_examples(objective.costs(p, commons))  # the direct term, at the samples
            return jnp.sum(class_costs * probabilities) + jnp.mean(costs), jnp.mean(costs)

        return surrogate_estimate(surrogate, params, state)
