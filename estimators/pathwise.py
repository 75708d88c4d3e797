"""The pathwise (reparameterization) gradient estimator."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, sample_keys, surrogate_estimate
from estimators.registry import register


@register("pathwise", family="pathwise")
@estimator_dataclass
class Pathwise(GradientEstimator):
    r"""The pathwise estimator, or reparameterization trick.

    Writing a sample as a differentiable map of parameter-free noise, :math:`x = g(\epsilon; \theta)`
    with :math:`\epsilon \sim p(\epsilon)`, the gradient moves inside the expectation:

    .. math::

        \nabla_\theta F(\theta) \approx \frac{1}{L} \sum_{i=1}^{L}
            \nabla_\theta f\big(\theta, g(\epsilon_i; \theta)\big),
        \qquad \epsilon_i \sim p(\epsilon).

    Autodiff through ``cost(θ, x(θ))`` gives both the path through the sample and the direct term.
    With independent examples the per-example costs are summed: each example's latents reach only its
    own cost, so nothing changes but the bookkeeping.

    Assumptions: the distribution is reparameterizable (``rsample``) and the cost is differentiable
    in x almost everywhere, with :math:`\nabla_x f` integrable; discrete distributions do not qualify.
    Unbiased; its variance scales with the smoothness of f, not with the dimension of θ.

    References:
      Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014.
      Rezende, Mohamed & Wierstra, *Stochastic Backpropagation and Approximate Inference in Deep
      Generative Models*, ICML 2014.
      Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*, JMLR
      2020, section 5.
    """

    info = EstimatorInfo("pathwise", separable=True)

    def supports(self, dist):
        if dist.reparameterizable:
            return None
        return (
            f"{type(dist).__name__} samples are not a differentiable function of its parameters, so "
            "there is no path to differentiate"
        )

    def sample_surrogate(self, objective, params, key, controls=()):
        """``(s, f)`` for the one sample of ``key``: ``s[0]``'s gradient is that sample's term of the
        estimate (the estimate is their mean over the L keys), ``s[j]``'s the same term for the cost
        ``controls[j-1](x)`` (a control variate with the objective's batch shape), f the sample's cost
        (summed over examples)."""
        x = objective.distribution(params).rsample(key)
        cost = objective.checked_cost(params, x)
        totals = jnp.stack([objective.sum_examples(c) for c in (cost, *(control(x) for control in controls))])
        return totals, jax.lax.stop_gradient(totals[0])

    def estimate(self, objective, params, key, num_samples, state):
        keys = sample_keys(key, num_samples)

        def surrogate(p):
            samples = jax.vmap(objective.distribution(p).rsample)(keys)
            value = jnp.mean(objective.sum_examples(objective.costs(p, samples)))
            return value, value

        return surrogate_estimate(surrogate, params, state)
