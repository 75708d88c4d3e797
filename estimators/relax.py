r"""RELAX: the score function with a learned control variate on the continuous relaxation.

The estimator of :func:`estimators.relaxation.control_variate_surrogate`,

.. math::

    \hat g = \big[f(b) - c_\phi(\tilde z)\big]\,\nabla_\theta \log p(b; \theta)
        + \nabla_\theta c_\phi(z) - \nabla_\theta c_\phi(\tilde z) + \nabla_\theta f(\theta, b),

with :math:`c_\phi(z) = \eta f(\sigma_\lambda(z)) + r_\rho(z)` (Grathwohl et al. 2018, section 3.3): a
small neural network :math:`r_\rho` (one tanh hidden layer on the flattened z, its output layer starting
at zero, so RELAX starts as REBAR, :mod:`estimators.rebar`) and :math:`\phi = (\eta, \log\lambda, \rho)`
(the paper writes the relaxed term without η; learning η too is REBAR's choice) trained with Adam on
one draw of :math:`\partial_\phi \lVert\hat g_L\rVert^2`, :math:`\hat g_L` the L-sample estimate, an
unbiased gradient of its variance (:math:`E\lVert\hat g\rVert^2 = \mathrm{tr\,Var}\,\hat g +
\lVert\nabla F\rVert^2` and the mean does not depend on φ).  Stateful: φ and Adam's moments are the
state of ``grad_with_state``; each call estimates with the φ it is given, then updates φ from the same
samples, so every estimate is unbiased given its state.  Four cost evaluations per sample (b, the two
relaxed points, and the weight's second evaluation that carries φ's derivative).

With independent examples, example n's score is weighted by its own cost and control variate, and
:math:`r_\rho` sees one example's latents: one network shared by all examples.

Assumptions: a Bernoulli or categorical distribution parameterized by logits; a cost that accepts
relaxed (non-binary) inputs and is differentiable in them.  Unbiased.

Reference: Grathwohl, Choi, Wu, Roeder & Duvenaud, *Backpropagation through the Void: Optimizing
control variates for black-box gradient estimation*, ICLR 2018.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

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
from estimators.registry import register
from estimators.relaxation import check_temperature, control_variate_surrogate, unsupported


class RelaxState(NamedTuple):
    control: Any  #: φ: {"scale": η, "log_temperature": log λ, "network": ρ}
    optimizer: Any  #: Adam's state for φ


@register("relax", family="conditional_relaxation")
@estimator_dataclass
class Relax(GradientEstimator):
    r"""RELAX: the control variate :math:`\eta f(\sigma_\lambda(z)) + r_\rho(z)`, its parameters trained
    to minimize the estimator's variance.  Stateful.  Options: ``temperature`` and ``scale`` (λ and η
    at the start), ``hidden_units`` of :math:`r_\rho` (static; the others are leaves), Adam's
    ``learning_rate``.  The network's initial weights are drawn from the key given to ``init``.  The
    network's input is one example's latents (the whole sample without a plate), so its size does not
    depend on the number of examples.  See :mod:`estimators.relax`."""

    temperature: float = 0.5
    scale: float = 1.0
    hidden_units: int = static(default=16)
    learning_rate: float = 0.01
    info = EstimatorInfo("relax", stateful=True)

    def __post_init__(self):
        check_temperature(self)
        check_option(self, "scale", math.isfinite, "a finite initial scale η for its control variate")
        check_positive_integer(self, "hidden_units")
        check_option(self, "learning_rate", lambda rate: rate > 0, "a positive learning_rate")

    def supports(self, dist):
        return unsupported(dist)

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        return 4 * num_samples

    def _optimizer(self):
        return optax.adam(self.learning_rate)

    def init(self, objective, params, key):
        dist = objective.distribution(params)
        size, dtype = math.prod(dist.event_shape[objective.batch_ndims:]), dist.dtype  # one example's latents
        temperature = self.temperature
        log_temperature = math.log(temperature) if isinstance(temperature, float) else jnp.log(temperature)
        control = {
            "scale": jnp.asarray(self.scale, dtype),
            "log_temperature": jnp.asarray(log_temperature, dtype),
            "network": {
                "hidden": jax.random.normal(key, (size, self.hidden_units), dtype) / math.sqrt(size),
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
            return phi["scale"] * objective.loss(p, relaxed) + hidden @ net["output"] + net["output_bias"]

        surrogate = control_variate_surrogate(objective, sample_keys(key, num_samples), control, learned=True)

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
