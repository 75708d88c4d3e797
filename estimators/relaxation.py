r"""What the relaxation-based estimators share: the check that a distribution has a continuous
relaxation, the temperature option, the surrogate of the straight-through family, and the score-function
estimator with a relaxed control variate of REBAR and RELAX.

A Bernoulli or categorical sample is a hard map of noisy logits, :math:`b = H(z)`, and its relaxation the
soft map :math:`\sigma_\tau(z)` at a temperature τ (see :class:`~estimators.Bernoulli` and
:class:`~estimators.Categorical`).  The estimators differ in which of them the cost sees and how the
two are coupled; the modules that define them (:mod:`estimators.straight_through`,
:mod:`estimators.gumbel_rao`, :mod:`estimators.rebar`, :mod:`estimators.relax`) state their formulas.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from estimators.base import Estimate, check_option, sample_keys, surrogate_estimate
from estimators.distributions import Bernoulli, Categorical
from estimators.sample_axis import map_samples


def unsupported(dist) -> str | None:
    """Why an estimator that needs the continuous relaxation cannot serve ``dist``; None where it can."""
    if dist.relaxable:
        return None
    return (
        f"it needs a discrete distribution with a continuous relaxation (Bernoulli or Categorical), "
        f"and {type(dist).__name__} is not one"
    )


def check_temperature(estimator) -> None:
    """Check that a frozen estimator's ``temperature`` is a positive number where it is concrete."""
    check_option(estimator, "temperature", lambda t: t > 0,
                 "a positive temperature τ (the relaxation's sharpness; 0.5 to 1 is common)")


def hard_sample(dist, relaxed: jax.Array) -> jax.Array:
    """The discrete sample a relaxed sample rounds to (same noise, so the same draw)."""
    if isinstance(dist, Categorical):  # one-hot samples
        return jax.nn.one_hot(jnp.argmax(relaxed, axis=-1), relaxed.shape[-1], dtype=relaxed.dtype)
    return (relaxed > 0.5).astype(relaxed.dtype)


def one_hot_surrogate(dist, key: jax.Array, surrogate: Callable[[jax.Array, jax.Array], jax.Array]):
    """``(surrogate sample, hard sample)`` for an estimator written for one-hot samples,
    ``surrogate(logits, one_hot)`` (classes on the last axis); a Bernoulli is the two-class categorical with
    logits (0, ℓ), and its surrogate the second class's coordinate."""
    hard = jax.lax.stop_gradient(dist.sample(key))
    if isinstance(dist, Bernoulli):
        logits = jnp.stack([jnp.zeros_like(dist.logits), dist.logits], axis=-1)
        return surrogate(logits, jnp.stack([1 - hard, hard], axis=-1))[..., 1], hard
    return surrogate(dist.logits, hard), hard


def relaxed_cost_estimate(objective, params, key, num_samples, state,
                          surrogate_sample: Callable[[object, jax.Array], tuple[jax.Array, jax.Array]]) -> Estimate:
    """The straight-through family's estimate: the mean gradient of the cost at
    ``surrogate_sample(dist, key) -> (the sample the cost sees, differentiable in the parameters; the hard
    sample)``; the value is the mean cost at the hard samples, unbiased for the objective."""
    keys = sample_keys(key, num_samples)

    def surrogate(p):
        dist = objective.distribution(p)
        relaxed, hard = jax.vmap(lambda k: surrogate_sample(dist, k))(keys)
        value = jnp.mean(objective.sum_examples(objective.costs(p, jax.lax.stop_gradient(hard))))
        return jnp.mean(objective.sum_examples(objective.costs(p, relaxed))), value

    return surrogate_estimate(surrogate, params, state)


def control_variate_surrogate(objective, keys, control, learned: bool = False):
    r"""``surrogate(params, control_params) -> (s, value)``: the gradient of s in params is the estimator

    .. math::

        \hat g = \big[f(b) - c(\tilde z)\big]\,\nabla_\theta \log p(b; \theta)
            + \nabla_\theta c(z) - \nabla_\theta c(\tilde z) + \nabla_\theta f(\theta, b),

    :math:`b = H(z)`, :math:`\tilde z \sim p(z \mid b)`, averaged over one sample per key, for the
    control variate ``control(control_params, params, dist, z) -> c(z)`` (per example with a plate).

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

        terms, costs = map_samples(one_sample, keys)
        return jnp.mean(terms), jnp.mean(costs)

    return surrogate
