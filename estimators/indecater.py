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

Cost: D·(K − 1) + 1 evaluations of the cost per sample.  Of variable d's K classes, the sampled one
gives the sample itself, :math:`f(x_{i,-d}, x_{i,d}) = f(x_i)`, evaluated once for all variables (it also
gives the value and the direct term), so only the other K − 1 classes of each variable are evaluated, as
the authors count it.  With independent examples (``Objective(..., batch_ndims=B)``) variable d of every
example is moved to another class at once and example n's inner sum is read from its own cost
:math:`f_n`, which no other example's variables enter: :math:`D_n (K - 1) + 1` evaluations per sample for
:math:`D_n` variables per example, not :math:`N D_n (K - 1) + 1`.

Assumptions: q is a product of categoricals (one-hot samples, classes along the last axis); f is only
evaluated, at one-hot points, never differentiated in x.  Bernoulli latents are served as two classes
(0 and 1): :math:`\nabla_\ell [p f(x_{-d}, 1) + (1 - p) f(x_{-d}, 0)] = p(1 - p)(f(x_{-d}, 1) - f(x_{-d}, 0))`,
one evaluation per coordinate (its flip) and one at the sample: the measure-valued estimator's estimate
(:mod:`estimators.measure_valued`), which evaluates both classes of every coordinate, at D + 1 evaluations
instead of 2D + 1.

Reference: De Smet, Sansone & Zuidberg Dos Martires, *Differentiable Sampling of Categorical
Distributions Using the CatLog-Derivative Trick*, NeurIPS 2023.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, sample_keys, surrogate_estimate
from estimators.distributions import Bernoulli, Categorical
from estimators.registry import register
from estimators.sample_axis import map_samples
from estimators.unordered_set import classes_and_variables


def _class_probabilities(dist) -> jax.Array:
    """Each variable's class probabilities, (*variables, K): a Bernoulli's as (1 − p, p)."""
    if isinstance(dist, Bernoulli):
        p = jax.nn.sigmoid(dist.logits)
        return jnp.stack([1 - p, p], axis=-1)
    return jax.nn.softmax(dist.logits, axis=-1)


@register("indecater", family="measure_valued")
@estimator_dataclass
class IndeCateR(GradientEstimator):
    r"""IndeCateR: per sample, :math:`\sum_d \sum_k \nabla_\theta q_d(k)\, f(x_{-d}, k)` plus the direct term.
    Unbiased; D·(K − 1) + 1 cost evaluations per sample.  See :mod:`estimators.indecater`."""

    info = EstimatorInfo("indecater", separable=True)

    def supports(self, dist):
        if isinstance(dist, (Categorical, Bernoulli)):
            return None
        return f"it enumerates the classes of categorical or Bernoulli variables, not of a {type(dist).__name__}"

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        num_classes, variable_shape = classes_and_variables(dist)
        return num_samples * (math.prod(variable_shape[batch_ndims:]) * (num_classes - 1) + 1)

    def estimate(self, objective, params, key, num_samples, state):
        dist = objective.distribution(params)
        num_classes, variable_shape = classes_and_variables(dist)
        batch_shape = objective.batch_shape(dist)
        # Class indices as (E, V) with a plate: example e's V variables, variable v moved in every example at
        # once; (V,) without.
        flat_shape = (math.prod(batch_shape), -1) if batch_shape else (-1,)
        num_variables = math.prod(variable_shape[len(batch_shape):])

        def as_sample(classes):
            classes = classes.reshape(variable_shape)
            if isinstance(dist, Bernoulli):
                return classes.astype(dist.dtype)
            return jax.nn.one_hot(classes, num_classes, dtype=dist.dtype)

        def one_sample(sample_key):
            sample = jax.lax.stop_gradient(dist.sample(sample_key))
            classes = (sample if isinstance(dist, Bernoulli) else jnp.argmax(sample, axis=-1)).astype(jnp.int32)
            classes = classes.reshape(flat_shape)

            def at_other_class(variable, shift):  # variable v of every example moved on by `shift` classes
                moved = classes.at[..., variable].set((classes[..., variable] + shift) % num_classes)
                return objective.checked_cost(params, as_sample(moved)).reshape(flat_shape[:-1])

            shifts = jnp.arange(1, num_classes)
            others = jax.vmap(jax.vmap(at_other_class, in_axes=(None, 0)), in_axes=(0, None))(
                jnp.arange(num_variables), shifts)  # (V, K − 1, *E)
            others = jnp.moveaxis(others, (0, 1), (-2, -1))  # (*E, V, K − 1)
            moved_to = jax.nn.one_hot((classes[..., None] + shifts.reshape((1,) * classes.ndim + (-1,))) % num_classes,
                                      num_classes, dtype=others.dtype)  # (*E, V, K − 1, K)
            return jnp.sum(moved_to * others[..., None], axis=-2), classes  # (*E, V, K), the sampled class 0

        other_costs, sampled = map_samples(one_sample, sample_keys(key, num_samples))
        at_sampled_class = jax.nn.one_hot(sampled, num_classes, dtype=other_costs.dtype)  # (L, *E, V, K)
        samples = jax.vmap(as_sample)(sampled)

        def surrogate(p):
            probabilities = _class_probabilities(objective.distribution(p)).reshape(other_costs.shape[1:])
            per_example = objective.costs(p, samples)  # f at each sample: its sampled classes and the direct term
            at_sample = jax.lax.stop_gradient(per_example).reshape((num_samples, *flat_shape[:-1], 1, 1))
            class_costs = jax.lax.stop_gradient(jnp.mean(other_costs + at_sampled_class * at_sample, axis=0))
            costs = objective.sum_examples(per_example)
            return jnp.sum(class_costs * probabilities) + jnp.mean(costs), jnp.mean(costs)

        return surrogate_estimate(surrogate, params, state)

