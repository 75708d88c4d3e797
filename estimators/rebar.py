r"""REBAR, and the construction RELAX shares: the score function with a control variate built from the
continuous relaxation.

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
- **RELAX** (Grathwohl et al. 2018, section 3.3; :mod:`estimators.relax`):
  :math:`c_\phi(z) = \eta f(\sigma_\lambda(z)) + r_\rho(z)`
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

import math

from estimators.base import (
    EstimatorInfo,
    GradientEstimator,
    check_option,
    estimator_dataclass,
    sample_keys,
    surrogate_estimate,
)
from estimators.registry import register
from estimators.relaxation import check_temperature, control_variate_surrogate, unsupported


@register("rebar", family="conditional_relaxation")
@estimator_dataclass
class Rebar(GradientEstimator):
    r"""REBAR: the control variate :math:`\eta f(\sigma_\lambda(z))` with fixed scale η (option ``scale``)
    and temperature λ (option ``temperature``).  Unbiased for any η, λ.  See :mod:`estimators.rebar`."""

    temperature: float = 0.5
    scale: float = 1.0
    info = EstimatorInfo("rebar", separable=True)

    def __post_init__(self):
        check_temperature(self)
        check_option(self, "scale", math.isfinite, "a finite scale η for its control variate")

    def supports(self, dist):
        return unsupported(dist)

    def cost_evaluations(self, num_samples, dist, batch_ndims=0):
        return 3 * num_samples

    def estimate(self, objective, params, key, num_samples, state):
        def control(_, p, dist, z):
            return self.scale * objective.loss(p, dist.soft(z, self.temperature))

        surrogate = control_variate_surrogate(objective, sample_keys(key, num_samples), control)
        return surrogate_estimate(lambda p: surrogate(p, ()), params, state)
