r"""RODEO: leave-one-out REINFORCE with learned discrete Stein control variates, for Bernoulli latents.

A Stein operator A of the distribution q turns any function h into one of mean zero, :math:`E_q[(Ah)(b)] = 0`,
so Ah can be added to an estimate freely.  RODEO (Shi et al. 2022) uses the generator of the random-scan Gibbs
sampler of q, which needs no derivative of q and no cost evaluation beyond the samples: with :math:`b^{(i)}`
the sample b with bit i flipped and :math:`w_i(b) = q_i(1 - b_i)` the probability of the flipped value,

.. math::

    (Ah)(b) = \frac1D \sum_{i=1}^D w_i(b)\,\big[h(b^{(i)}) - h(b)\big].

The function h for sample k is built from the *other* samples only, so that it is fixed given
:math:`b_{-k}` and the identity holds conditionally.  For each other sample j it feeds a small network
:math:`H_\phi` (two inputs, 100 LeakyReLU units, two outputs) with the first-order Taylor term of the cost
around :math:`b_j` and with :math:`f(b_j)`, and averages:
:math:`h^{(k)}(y) = \frac{1}{L-1}\sum_{j \ne k} H_\phi\big(\nabla f(b_j)^\top (y - b_j),\, f(b_j)\big)`, the
gradients :math:`\nabla f(b_j) = \nabla_b f(b_j)` from one backward pass through the L cost evaluations.  The
neighbours :math:`b^{(i)}` enter only through that linear term: no cost is evaluated at them.  Channel 0 of
h, scaled by α, is a control variate for the cost inside the leave-one-out baseline (the "double" control
variate); channel 1, scaled by β, multiplies the score.  With the score :math:`s_k = b_k - \sigma(\ell)` of the
logits,

.. math::

    \hat g_\ell = \frac1L \sum_{k=1}^L \Big[\big(f_k - \tfrac{1}{L-1}\textstyle\sum_{j \ne k}
        (f_j + \alpha\,(A h_0^{(j)})(b_j))\big)\, s_k + \beta\,\big(A[h_1^{(k)} s]\big)(b_k)\Big].

Unbiased for every (φ, α, β): the baseline's terms are functions of samples j ≠ k, independent of
:math:`s_k`, apart from :math:`(Ah_0^{(j)})(b_j)`, whose mean given :math:`b_{-j}` (which includes
:math:`b_k`) is 0; and :math:`(A[h_1^{(k)}s])(b_k)` has mean 0 given :math:`b_{-k}`.  The parameters start at
α = β = 0 (the first estimate is leave-one-out REINFORCE's) and are trained with Adam on the squared norm of
:math:`\hat g_\ell`, whose gradient is that of the estimate's variance; stateful, like RELAX: each call
estimates with the parameters it is given, then updates them from the same samples, so every estimate is
unbiased given its state.  These are the choices of the authors' code (``grad_type="discrete_stein_output_avg"``,
``"discrete_stein_avg"`` at L = 2, the same estimate there): Glorot-uniform weights, one learning rate of
1e-3 for φ, α and β.

L cost evaluations with their backward pass in b (the cost must accept non-binary inputs and be differentiable
in them), and the network on L(L − 1)(D + 1) inputs per example of D latents: L ≥ 2, and L ≤ 32 here.  A cost
that depends on θ adds :math:`\frac1L\sum_k \nabla_\theta f(\theta, b_k)`; the value is :math:`\bar f`.  With
independent examples (``Objective(..., batch_ndims=B)``) each example's signals, gradients, neighbours and
operator are its own; one network and one (α, β) serve every example.

Reference: Shi, Zhou, Hwang, Titsias & Mackey, *Gradient Estimation with Discrete Stein Operators*, NeurIPS 2022
(authors' code: ``thjashin/rodeo``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from estimators.arm import unsupported
from estimators.base import (
    Estimate,
    EstimatorInfo,
    GradientEstimator,
    check_option,
    check_positive_integer,
    estimator_dataclass,
    sample_keys,
    static,
)
from estimators.control_variates import leave_one_out_mean
from estimators.registry import register

#: The largest L: the control variate evaluates the network on every ordered pair of samples.
MAX_NUM_SAMPLES = 32
#: The slope of the network's LeakyReLU for negative inputs (the authors' 0.3).
LEAKY_SLOPE = 0.3


class RodeoState(NamedTuple):
    control: Any  #: {"network": φ, "alpha": α, "beta": β}
    optimizer: Any  #: Adam's state for the control parameters


def control_network(key: jax.Array, hidden_units: int, dtype) -> dict:
    """:math:`H_\\phi`'s initial weights: Glorot-uniform kernels (inputs 1 → hidden and hidden → 2), zero biases."""
    input_key, cost_key, output_key = jax.random.split(key, 3)
    inner = math.sqrt(6 / (1 + hidden_units))
    outer = math.sqrt(6 / (hidden_units + 2))
    return {
        "taylor": jax.random.uniform(input_key, (hidden_units,), dtype, -inner, inner),
        "cost": jax.random.uniform(cost_key, (hidden_units,), dtype, -inner, inner),
        "bias": jnp.zeros((hidden_units,), dtype),
        "output": jax.random.uniform(output_key, (hidden_units, 2), dtype, -outer, outer),
        "output_bias": jnp.zeros((2,), dtype),
    }


def apply_control_network(network: dict, taylor: jax.Array, cost: jax.Array) -> jax.Array:
    """:math:`H_\\phi(a, c)` elementwise over broadcast ``taylor`` (a) and ``cost`` (c): shape (..., 2)."""
    leading = (1,) * taylor.ndim
    hidden = (taylor[..., None] * network["taylor"].reshape(leading + (-1,))
              + cost[..., None] * network["cost"].reshape(leading + (-1,)) + network["bias"].reshape(leading + (-1,)))
    return (jax.nn.leaky_relu(hidden, LEAKY_SLOPE) @ network["output"]
            + network["output_bias"].reshape(leading + (-1,)))


def rodeo_logit_gradient(control: dict, costs: jax.Array, cost_gradients: jax.Array, samples: jax.Array,
                         probs: jax.Array) -> jax.Array:
    r"""RODEO's estimate of :math:`\nabla_\ell F` (the module docstring's formula), per example.

    ``samples`` and ``cost_gradients`` (L, N, D): L samples of N examples of D binary latents and the cost's
    gradients in them; ``costs`` (L, N); ``probs`` σ(ℓ), (N, D).  Returns (N, D)."""
    num_samples, num_latents = samples.shape[0], samples.shape[-1]
    network = control["network"]
    score = samples - probs[None]
    flip = 1 - 2 * samples  # a neighbour's change in its flipped coordinate
    # ∇f(b_j)ᵀ(b_k − b_j) for every (k, j): the Taylor input at the sample itself; a neighbour adds ∇f(b_j)_i flip_ki.
    at_sample = (jnp.einsum("knd,jnd->kjn", samples, cost_gradients)
                 - jnp.einsum("jnd,jnd->jn", cost_gradients, samples)[None])
    others = 1 - jnp.eye(num_samples, dtype=samples.dtype)  # [k, j]: sample j is one of k's others

    def other_outputs(inputs):  # sample j's network outputs for every k: at b_k and at its neighbours
        taylor_j, gradient_j, cost_j = inputs  # (K, N), (N, D), (N,)
        at_neighbours = taylor_j[..., None] + gradient_j[None] * flip  # (K, N, D)
        return (apply_control_network(network, taylor_j, cost_j[None]),
                apply_control_network(network, at_neighbours, cost_j[None, :, None]))

    # One j at a time (rematerialized in the backward pass): the hidden units of all (k, j) pairs at once would
    # be L² N D × hidden_units numbers.
    per_other = jax.lax.map(jax.checkpoint(other_outputs), (jnp.moveaxis(at_sample, 1, 0), cost_gradients, costs))
    at_x, at_neighbours = (jnp.einsum("jk,jk...->k...", others, outputs) for outputs in per_other)
    at_x, at_neighbours = at_x / (num_samples - 1), at_neighbours / (num_samples - 1)
    flip_probability = probs[None] * (1 - samples) + (1 - probs[None]) * samples  # w_i(b_k)
    # (A h₀^(k))(b_k), and (A[h₁^(k) s])(b_k) = mean_i w_i [h₁(b⁽ⁱ⁾)(s_k + flip_i e_i) − h₁(b_k) s_k].
    stein_cost = jnp.mean(flip_probability * (at_neighbours[..., 0] - at_x[..., None, 0]), axis=-1)
    stein_score = (jnp.mean(flip_probability * (at_neighbours[..., 1] - at_x[..., None, 1]), axis=-1)[..., None]
                   * score + flip_probability * at_neighbours[..., 1] * flip / num_latents)
    baseline = leave_one_out_mean(costs + control["alpha"] * stein_cost)
    return jnp.mean((costs - baseline)[..., None] * score + control["beta"] * stein_score, axis=0)


@register("rodeo", family="control_variate")
@estimator_dataclass
class Rodeo(GradientEstimator):
    r"""RODEO: leave-one-out REINFORCE plus discrete Stein control variates (the Gibbs operator applied to a
    learned function of the other samples' costs and Taylor terms), α and β scaling them.  Unbiased; stateful;
    2 ≤ L ≤ 32; Bernoulli latents and a cost differentiable in them.  Options: ``hidden_units`` (static),
    Adam's ``learning_rate``.  The network's initial weights are drawn from the key given to ``init``.  See
    :mod:`estimators.rodeo`."""

    hidden_units: int = static(default=100)
    learning_rate: float = 1e-3
    info = EstimatorInfo("rodeo", stateful=True, min_num_samples=2)

    def __post_init__(self):
        check_positive_integer(self, "hidden_units")
        check_option(self, "learning_rate", lambda rate: rate > 0, "a positive learning_rate")

    def supports(self, dist):
        return unsupported(dist)

    def applicability(self, dist, num_samples, batch_ndims=0):
        reason = super().applicability(dist, num_samples, batch_ndims)
        if reason is None and num_samples > MAX_NUM_SAMPLES:
            reason = (f"needs L <= {MAX_NUM_SAMPLES} (its control variate evaluates a network on every pair of "
                      "samples)")
        return reason

    def _optimizer(self):
        return optax.adam(self.learning_rate)

    def init(self, objective, params, key):
        dtype = objective.distribution(params).dtype
        zero = jnp.zeros((), dtype)
        control = {"network": control_network(key, self.hidden_units, dtype), "alpha": zero, "beta": zero}
        return RodeoState(control, self._optimizer().init(control))

    def estimate_with_control_gradient(self, objective, params, key, num_samples, control):
        r"""``(value, grads, control_grads)``: the estimate at control parameters (φ, α, β) and, from the same
        samples, the gradient of :math:`\lVert\hat g_\ell\rVert^2` in them, whose expectation is the gradient of
        the estimate's variance (summed over the logits)."""
        if num_samples > MAX_NUM_SAMPLES:
            raise ValueError(f"Estimator 'rodeo' needs num_samples <= {MAX_NUM_SAMPLES}, got {num_samples}: its "
                             "control variate evaluates a network on every pair of samples.")
        dist = objective.distribution(params)
        logits = jax.lax.stop_gradient(dist.logits)
        samples = jax.lax.stop_gradient(jax.vmap(dist.sample)(sample_keys(key, num_samples)).astype(logits.dtype))
        # One backward pass gives the direct term Σ ∇θ f(θ, b_k) and every g_k (example n's cost reaches only b_kn).
        costs, pullback = jax.vjp(objective.costs, params, samples)
        direct, cost_gradients = pullback(jnp.ones_like(costs))
        examples = (num_samples, math.prod(objective.batch_shape(dist)), -1)
        flat = (jax.lax.stop_gradient(costs).reshape(examples[:2]), cost_gradients.reshape(examples),
                samples.reshape(examples), jax.nn.sigmoid(logits).reshape(examples[1:]))

        def squared_norm(control):
            logit_gradient = rodeo_logit_gradient(control, *flat)
            return jnp.sum(jnp.square(logit_gradient)), logit_gradient

        (_, logit_gradient), control_grads = jax.value_and_grad(squared_norm, has_aux=True)(control)
        _, logits_pullback = jax.vjp(lambda q: objective.distribution(q).logits, params)
        (through_logits,) = logits_pullback(logit_gradient.reshape(logits.shape))
        grads = jax.tree_util.tree_map(lambda d, s: d / num_samples + s, direct, through_logits)
        return jnp.mean(objective.sum_examples(costs)), grads, control_grads

    def estimate(self, objective, params, key, num_samples, state):
        value, grads, control_grads = self.estimate_with_control_gradient(objective, params, key, num_samples,
                                                                          state.control)
        updates, optimizer_state = self._optimizer().update(control_grads, state.optimizer, state.control)
        return Estimate(value=value, grads=grads,
                        state=RodeoState(optax.apply_updates(state.control, updates), optimizer_state))
