r"""REBAR and RELAX: the score function with a control variate built from the continuous relaxation.

Write the discrete sample as a hard map of noisy logits, :math:`b = H(z)` (for a Bernoulli
:math:`z = \ell + \text{Logistic}`, :math:`H(z) = \mathbb{1}[z > 0]`; for a categorical
:math:`z = \ell + \text{Gumbel}`, H the one-hot argmax), and let :math:`\tilde z \sim p(z \mid b)` be a
second draw of the noisy logits given the sample (reparameterized by fresh uniforms, so
differentiable in θ).  For any differentiable control variate :math:`c(z)`,

.. math::

    \hat g = \big[f(b) - c(\tilde z)\big]\,\nabla_\theta \log p(b; \theta)
        + \nabla_\theta c(z) - \nabla_\theta c(\tilde z)

is unbiased for :math:`\nabla_\theta E[f(b)]`: the last two terms and :math:`-c(\tilde z)\nabla \log p(b)`
have expectation zero together, since :math:`E[c(z)] = E_b[E_{\tilde z \mid b}[c(\tilde z)]]`.  A cost
that depends on θ adds :math:`\nabla_\theta f(\theta, b)`.  The average over L samples is returned,
with the value :math:`\frac1L\sum f(b_i)`.  Three cost evaluations per sample (at b, and at the two
relaxed points, with their gradients).

- **REBAR** (Tucker et al. 2017): :math:`c(z) = \eta\, f(\sigma_\lambda(z))`, the cost at the
  Concrete relaxation :math:`\sigma_\lambda(z) = \mathrm{sigmoid}(z/\lambda)` (a softmax for a
  categorical) with scale η and temperature λ, options ``scale`` and ``temperature``.  The paper also
  tunes η and λ online to minimize the variance; here they are fixed options, and ``relax`` learns them.
- **RELAX** (Grathwohl et al. 2018, section 3.3): :math:`c_\phi(z) = \eta f(\sigma_\lambda(z)) + r_\rho(z)`
  with a small neural network :math:`r_\rho` (one tanh hidden layer on the flattened z, its output layer
  starting at zero, so RELAX starts as REBAR) and :math:`\phi = (\eta, \log\lambda, \rho)` (the paper
  writes the relaxed term without η; learning η too is REBAR's choice) trained with Adam on one draw of
  :math:`\partial_\phi \lVert\hat g_L\rVert^2`, :math:`\hat g_L` the L-sample estimate, an
  unbiased gradient of its variance (:math:`E\lVert\hat g\rVert^2 = \mathrm{tr\,Var}\,\hat g +
  \lVert\nabla F\rVert^2` and the mean does not depend on φ).  Stateful: φ and Adam's moments are the
  state of ``grad_with_state``; each call estimates with the φ it is given, then updates φ from the same
  samples, so every estimate is unbiased given its state.

With independent examples (``Objective(..., batch_ndims=B)``) everything is per example: example n's
score :math:`\nabla_\theta \log p(b_n)` is weighted by :math:`f_n(b) - c_n(\tilde z)`, its own cost and
control variate (the relaxed cost of example n; for RELAX plus :math:`r_\rho(z_n)`, one network that
sees one example's latents, shared by all examples), and the relaxations and conditional draws are
those of each example's latents.

Assumptions: a Bernoulli or categorical distribution parameterized by logits; a cost that accepts
relaxed (non-binary) inputs and is differentiable in them.

References:
  Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein, *REBAR: Low-variance, unbiased gradient estimates
  for discrete latent variable models*, NeurIPS 2017.
  Grathwohl, Choi, Wu, Roeder & Duvenaud, *Backpropagation through the Void: Optimizing control
  variates for black-box gradient estimation*, ICLR 2018.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from estimators.base import Estimate, GradientEstimator, sample_keys
from estimators.straight_through import check_temperature, relaxation_incompatibility


def relaxed_control_variate_surrogate(objective, keys, control, learned: bool = False):
    r"""``surrogate(params, control_params) -> (s, value)``: the gradient of s in params is the
    estimator :math:`\hat g` of the module docstring, averaged over one sample per key, for the control
    variate ``control(control_params, params, dist, z) -> c(z)``.

    With ``learned``, that gradient stays differentiable in the control parameters: the weight
    :math:`f(b) - c(\tilde z)` of the score is then evaluated a second time, with the params and
    :math:`\tilde z` held constant, so that it carries its derivative in φ but none in θ."""

    def surrogate(params, control_params):
        dist = objective.distribution(params)

        def one_sample(key):
            # Costs, controls and log densities are per example (scalars without a plate).
            noise_key, conditional_key = jax.random.split(key)
            z = dist.noisy_logits(noise_key)
            b = jax.lax.stop_gradient(dist.hard(z))
            conditional = dist.conditional_noisy_logits(conditional_key, b)
            cost = objective.checked_cost(params, b)  # b carries no gradient: only the direct term
            c_z = control(control_params, params, dist, z)
            c_conditional = control(control_params, params, dist, conditional)
            if learned:
                frozen = jax.lax.stop_gradient((params, conditional))
                weight = jax.lax.stop_gradient(cost) - control(control_params, frozen[0], dist, frozen[1])
            else:
                weight = jax.lax.stop_gradient(cost - c_conditional)
            term = weight * objective.example_log_prob(dist, b) + c_z - c_conditional + cost
            return objective.sum_examples(term), objective.sum_examples(cost)

        terms, costs = jax.vmap(one_sample)(keys)
        return jnp.mean(terms), jnp.mean(costs)

    return surrogate


@dataclasses.dataclass(frozen=True)
class Rebar(GradientEstimator):
    r"""REBAR: the control variate :math:`\eta f(\sigma_\lambda(z))` with fixed scale η (option ``scale``)
    and temperature λ (option ``temperature``).  Unbiased for any η, λ.  See :mod:`estimators.rebar`."""

    temperature: float = 0.5
    scale: float = 1.0
    name = "rebar"

    def __post_init__(self):
        check_temperature(self)
        if not math.isfinite(self.scale):
            raise ValueError(f"rebar needs a finite scale η for its control variate, got {self.scale!r}.")
        object.__setattr__(self, "scale", float(self.scale))

    def incompatibility(self, dist):
        return relaxation_incompatibility(dist)

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        return 3 * num_samples

    def estimate(self, objective, params, key, num_samples, state):
        def control(_, p, dist, z):
            return self.scale * objective.cost(p, dist.soft(z, self.temperature))

        surrogate = relaxed_control_variate_surrogate(objective, sample_keys(key, num_samples), control)
        (_, value), grads = jax.value_and_grad(surrogate, has_aux=True)(params, ())
        return Estimate(value=value, grads=grads, state=state)


class RelaxState(NamedTuple):
    control: Any  #: φ: {"scale": η, "log_temperature": log λ, "network": ρ}
    optimizer: Any  #: Adam's state for φ


@dataclasses.dataclass(frozen=True)
class Relax(GradientEstimator):
    r"""RELAX: the control variate :math:`\eta f(\sigma_\lambda(z)) + r_\rho(z)`, its parameters trained
    to minimize the estimator's variance.  Stateful.  Options: ``temperature`` and ``scale`` (λ and η
    at the start), ``hidden_units`` of :math:`r_\rho`, Adam's ``learning_rate``, and the ``seed`` of the
    network's initial weights.  The network's input is one example's latents (the whole sample without
    a plate), so its size does not depend on the number of examples.  See :mod:`estimators.rebar`."""

    temperature: float = 0.5
    scale: float = 1.0
    hidden_units: int = 16
    learning_rate: float = 0.01
    seed: int = 0
    name = "relax"
    stateful = True

    def __post_init__(self):
        check_temperature(self)
        if not math.isfinite(self.scale):
            raise ValueError(f"relax needs a finite initial scale η for its control variate, got {self.scale!r}.")
        object.__setattr__(self, "scale", float(self.scale))
        if not (isinstance(self.hidden_units, int) and self.hidden_units > 0):
            raise ValueError(f"relax needs a positive integer number of hidden_units, got {self.hidden_units!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"relax needs a positive learning_rate, got {self.learning_rate!r}.")

    def incompatibility(self, dist):
        return relaxation_incompatibility(dist)

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        return 4 * num_samples

    def _optimizer(self):
        return optax.adam(self.learning_rate)

    def init(self, params):
        raise TypeError("relax's state is sized by the objective's samples: build it with "
                        "`init, update = estimators.grad_with_state(objective, 'relax', num_samples)`, then init(params).")

    def init_state(self, objective, params):
        dist = objective.distribution(params)
        size, dtype = math.prod(dist.event_shape[objective.batch_ndims:]), dist.dtype  # one example's latents
        hidden_key = jax.random.key(self.seed)
        control = {
            "scale": jnp.asarray(self.scale, dtype),
            "log_temperature": jnp.asarray(math.log(self.temperature), dtype),
            "network": {
                "hidden": jax.random.normal(hidden_key, (size, self.hidden_units), dtype) / math.sqrt(size),
                "hidden_bias": jnp.zeros((self.hidden_units,), dtype),
                "output": jnp.zeros((self.hidden_units,), dtype),  # r starts at 0: RELAX starts as REBAR
                "output_bias": jnp.zeros((), dtype),
            },
        }
        return RelaxState(control, self._optimizer().init(control))

    def estimate_with_control_gradient(self, objective, params, key, num_samples, control_params):
        r"""``(value, grads, control_grads)``: the estimate at control parameters φ and one draw of
        :math:`\partial_\phi \lVert\hat g_L\rVert^2` from the same samples, whose expectation is the
        gradient of the estimate's variance (summed over coordinates)."""

        def control(phi, p, dist, z):
            relaxed = dist.soft(z, jnp.exp(phi["log_temperature"]))
            net = phi["network"]
            batch_shape = objective.batch_shape(dist)
            examples = z.reshape(batch_shape + (-1,))  # r sees each example's latents
            hidden_bias = net["hidden_bias"].reshape((1,) * len(batch_shape) + (-1,))
            hidden = jnp.tanh(examples @ net["hidden"] + hidden_bias)
            return phi["scale"] * objective.cost(p, relaxed) + hidden @ net["output"] + net["output_bias"]

        surrogate = relaxed_control_variate_surrogate(objective, sample_keys(key, num_samples), control, learned=True)

        def squared_norm(phi):
            (_, value), grads = jax.value_and_grad(surrogate, has_aux=True)(params, phi)
            total = sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grads))
            return total, (value, grads)

        (_, (value, grads)), control_grads = jax.value_and_grad(squared_norm, has_aux=True)(control_params)
        return value, grads, control_grads

    def estimate(self, objective, params, key, num_samples, state):
        value, grads, control_grads = self.estimate_with_control_gradient(objective, params, key, num_samples,
                                                                          state.control)
        updates, optimizer_state = self._optimizer().update(control_grads, state.optimizer, state.control)
        control = optax.apply_updates(state.control, updates)
        return Estimate(value=value, grads=grads, state=RelaxState(control, optimizer_state))
