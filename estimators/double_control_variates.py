r"""Double control variates: leave-one-out REINFORCE plus a Taylor control variate, for Bernoulli latents.

Leave-one-out REINFORCE centres each sample's cost on the mean of the others' (a *local* baseline, one per
sample).  Titsias & Shi (2022) add a *global* control variate, a first-order Taylor expansion of the cost
built from the gradients :math:`g_k = \nabla_b f(b_k)` that one backward pass through the L cost
evaluations gives, and let the baseline see it too.  With :math:`p = \sigma(\ell)`, the score
:math:`b_k - p` of the logits, :math:`\bar g_{-k} = \frac{1}{L-1}\sum_{j \ne k} g_j` and
:math:`c_k = (b_k - p)^\top \bar g_{-k}`:

.. math::

    \hat g_\ell = \frac1L \sum_{k=1}^L \Big[(f_k - \bar f_{-k}) + \alpha\,(c_k - \bar c_{-k})\Big](b_k - p)
        \;-\; \alpha\, p(1-p) \odot \bar g,

:math:`\bar f_{-k}` and :math:`\bar c_{-k}` the means over the other L − 1 samples and :math:`\bar g` the
mean of all L gradients.  Unbiased for every α: each term of :math:`\bar f_{-k}` and :math:`\bar c_{-k}`
carries a factor :math:`b_j - p` or :math:`f(b_j)` of a sample j ≠ k, independent of :math:`b_k`, except
:math:`c_k` itself, whose expectation against the score is :math:`E[(b_k - p)(b_k - p)^\top]\,E[\bar g_{-k}]
= p(1-p) \odot E[g]`, which the last term subtracts.  The estimate is linear in α,
:math:`\hat g_\ell = A + \alpha B` with E[B] = 0, so its variance :math:`\mathrm{tr\,Var}(A) + 2\alpha\,E[A^\top B]
+ \alpha^2 E[B^\top B]` is least at :math:`\alpha^* = -E[A^\top B] / E[B^\top B]`.  The authors train α toward
it by Adam on :math:`\partial_\alpha \lVert\hat g_\ell\rVert^2`; here it is that quadratic's minimizer in closed
form, from exponential moving averages of :math:`A^\top B` and :math:`B^\top B` (option ``decay``): Adam's
steps leave α jittering by about its learning rate around :math:`\alpha^*`, which, where the signal A is small
beside B (a cost nearly linear in b), multiplies the variance many times over.  Stateful: the moving
averages and α are the state; each call estimates with the α it is given, then updates the averages and α
from the same samples, so every estimate is unbiased given its state.  α starts at 0 (option ``alpha``), as
in the authors' code: the first estimate is leave-one-out REINFORCE's.

L cost evaluations, each with its backward pass in b (the cost must accept non-binary inputs and be
differentiable in them), L ≥ 2.  A cost that depends on θ adds :math:`\frac1L\sum_k \nabla_\theta f(\theta,
b_k)`; the value is :math:`\bar f`.  With independent examples (``Objective(..., batch_ndims=B)``) each
example's signals and gradients are its own, and one α serves every example.

Reference: Titsias & Shi, *Double Control Variates for Gradient Estimation in Discrete Latent Variable
Models*, AISTATS 2022 (authors' code: ``thjashin/rodeo``, ``grad_type="double_cv"``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from estimators.arm import unsupported
from estimators.base import (
    Estimate,
    EstimatorInfo,
    GradientEstimator,
    check_option,
    estimator_dataclass,
    sample_keys,
)
from estimators.control_variates import leave_one_out_mean
from estimators.registry import register


class DoubleControlVariateState(NamedTuple):
    alpha: jax.Array  #: the control variate's coefficient α (a scalar)
    cross: jax.Array  #: moving average of :math:`A^\top B`
    square: jax.Array  #: moving average of :math:`B^\top B`


def double_control_variate_terms(costs: jax.Array, cost_gradients: jax.Array, samples: jax.Array,
                                  p: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""``(A, B)`` with the logit gradient :math:`\hat g_\ell = A + \alpha B` (see the module docstring).

    ``costs`` (L, *batch_shape), ``cost_gradients`` and ``samples`` (L, *event_shape) and ``p``
    (*event_shape), the event shape the batch shape followed by each example's latent axes."""
    num_samples = samples.shape[0]
    score = samples - p[None]  # ∂ log q(b_k) / ∂ℓ
    example_axes = tuple(range(costs.ndim, samples.ndim))  # one example's latent axes
    others_gradient = leave_one_out_mean(cost_gradients)  # ḡ_{-k}
    taylor = jnp.sum(score * others_gradient, axis=example_axes)  # c_k, per example
    expand = (...,) + (None,) * len(example_axes)
    local = (costs - leave_one_out_mean(costs))[expand]
    a = jnp.sum(local * score, axis=0) / num_samples
    b = (jnp.sum((taylor - leave_one_out_mean(taylor))[expand] * score, axis=0) / num_samples
         - p * (1 - p) * jnp.mean(cost_gradients, axis=0))
    return a, b


@register("double_cv", family="control_variate")
@estimator_dataclass
class DoubleControlVariate(GradientEstimator):
    r"""Double control variates: leave-one-out REINFORCE plus a multiple α of a first-order Taylor control
    variate, :math:`\hat g_\ell = A + \alpha B`, α the variance's minimizer estimated from moving averages.
    Unbiased; stateful; L ≥ 2; Bernoulli latents and a cost differentiable in them.  Options: ``alpha`` (α
    before any update), ``decay`` of the moving averages.  See :mod:`estimators.double_control_variates`."""

    alpha: float = 0.0
    decay: float = 0.95
    info = EstimatorInfo("double_cv", stateful=True, min_num_samples=2)

    def __post_init__(self):
        check_option(self, "alpha", math.isfinite, "a finite initial coefficient alpha")
        check_option(self, "decay", lambda decay: 0 <= decay < 1, "a decay in [0, 1)")

    def supports(self, dist):
        return unsupported(dist)

    def init(self, objective, params, key):
        del key
        zero = jnp.zeros((), objective.distribution(params).dtype)
        return DoubleControlVariateState(zero + self.alpha, zero, zero)

    def estimate(self, objective, params, key, num_samples, state):
        dist = objective.distribution(params)
        logits = jax.lax.stop_gradient(dist.logits)
        p = jax.nn.sigmoid(logits)
        samples = jax.lax.stop_gradient(jax.vmap(dist.sample)(sample_keys(key, num_samples)).astype(logits.dtype))

        def surrogate(q):
            costs, pullback = jax.vjp(lambda b: objective.costs(q, b), samples)
            (cost_gradients,) = pullback(jnp.ones_like(costs))  # g_k: example n's cost reaches only b_kn
            a, b = jax.lax.stop_gradient(
                double_control_variate_terms(costs, cost_gradients, samples, p))
            logit_grad = a + state.alpha * b
            value = jnp.mean(objective.sum_examples(costs))
            return jnp.sum(logit_grad * objective.distribution(q).logits) + value, (value, a, b)

        (_, (value, a, b)), grads = jax.value_and_grad(surrogate, has_aux=True)(params)
        # The averages start at zero and share a decay, so their ratio needs no bias correction.
        cross = self.decay * state.cross + (1 - self.decay) * jnp.sum(a * b)
        square = self.decay * state.square + (1 - self.decay) * jnp.sum(b * b)
        alpha = jnp.where(square > 0, -cross / jnp.where(square > 0, square, 1), state.alpha)
        return Estimate(value=value, grads=grads, state=DoubleControlVariateState(alpha, cross, square))
