r"""The importance-weighted (multi-sample) bound as an objective: one sample is K particles.

With a proposal :math:`q(z; \theta)` and a model's log joint :math:`\log p(x, z; \theta)`, the K-particle
bound (Burda, Grosse & Salakhutdinov 2016) is

.. math::

    F(\theta) = \mathbb{E}_{z_1, \dots, z_K \sim q}\Big[\log \frac1K \sum_{k=1}^K w_k\Big],
    \qquad \log w_k = \log p(x, z_k; \theta) - \log q(z_k; \theta),

the ELBO at K = 1, and :math:`\log p(x)` as K grows.  It is an :class:`~estimators.Objective` whose
distribution is K independent draws of q (:class:`~estimators.Particles`) and whose cost is
:math:`\log \frac1K \sum_k w_k`, a cost that depends on θ directly: so ``pathwise`` (the IWAE gradient)
and ``score_function`` (with its direct term, and any baseline) serve it unchanged, and ``vimco``,
``dreg`` and ``stl`` use its parts (:func:`log_weights`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp

from estimators.base import sample_keys
from estimators.distributions import Distribution, Particles
from estimators.objective import Objective, Params
from estimators.pytrees import register_frozen_dataclass
from estimators.sample_axis import map_samples


@functools.partial(register_frozen_dataclass, data_fields=[],
                   meta_fields=["dist", "cost", "batch_ndims", "proposal", "log_joint", "num_particles"])
@dataclasses.dataclass(frozen=True, init=False)
class ImportanceWeightedObjective(Objective):
    r"""The K-particle importance-weighted bound, :math:`F(\theta) = \mathbb{E}[\log \frac1K \sum_k w_k]`.

    Args:
      dist: maps the parameters to the proposal :math:`q(z; \theta)` of ONE particle, a
        :class:`~estimators.Distribution` (with ``batch_ndims``, one particle holds every example's latents).
      log_joint: maps the parameters and one particle to :math:`\log p(x, z; \theta)`: a scalar, or with
        ``batch_ndims`` one value per example.
      num_particles: K, the particles of one bound (K = 1: the ELBO).
      batch_ndims: as for :class:`~estimators.Objective`: leading axes of a particle that index
        independent examples, each with its own bound; F is their sum.

    A sample of this objective is K particles stacked at axis ``batch_ndims`` (shape
    ``(*examples, K, *latent)``); its cost is the bound's estimate, so ``value`` estimates F (a bound
    to maximize: ``grads`` point uphill, so negate them for a minimizing optimizer such as optax's) and
    ``num_samples = L`` averages L independent K-particle estimates.  As an
    :class:`~estimators.Objective`, its ``dist`` gives the distribution of a whole sample
    (:class:`~estimators.Particles`) and its ``cost`` the bound's estimate; the functions given here are
    kept as ``proposal`` and ``log_joint``.
    """

    # Keyword-only: they follow the inherited batch_ndims, which has a default (the constructor is below).
    proposal: Callable[[Params], Distribution] = dataclasses.field(kw_only=True)
    log_joint: Callable[[Params, jax.Array], jax.Array] = dataclasses.field(kw_only=True)
    num_particles: int = dataclasses.field(kw_only=True)

    def __init__(self, dist: Callable[[Params], Distribution], log_joint: Callable[[Params, jax.Array], jax.Array],
                 num_particles: int, batch_ndims: int = 0):
        if not callable(dist):
            raise TypeError(f"ImportanceWeightedObjective.dist must be a function, got {type(dist).__name__}. "
                            "Write ImportanceWeightedObjective(dist=lambda params: Normal(...), log_joint=..., ...).")
        if not callable(log_joint):
            raise TypeError(f"ImportanceWeightedObjective.log_joint must be a function of (params, z), got "
                            f"{type(log_joint).__name__}.")
        count = None
        if not isinstance(num_particles, bool):
            try:
                count = operator.index(num_particles)
            except TypeError:
                pass
        if count is None or count < 1:
            raise ValueError(f"ImportanceWeightedObjective.num_particles must be a positive integer (K particles "
                             f"per bound; 1 is the ELBO), got {num_particles!r}.")
        num_particles = count
        object.__setattr__(self, "proposal", dist)
        object.__setattr__(self, "log_joint", log_joint)
        object.__setattr__(self, "num_particles", num_particles)
        object.__setattr__(self, "batch_ndims", batch_ndims)
        object.__setattr__(self, "dist", _ParticlesOf(dist, num_particles, batch_ndims))
        object.__setattr__(self, "cost", _Bound(self))
        self.__post_init__()

    def with_num_particles(self, num_particles: int) -> ImportanceWeightedObjective:
        """The same bound with K = ``num_particles`` (``dataclasses.replace`` cannot rebuild the derived
        ``dist`` and ``cost``)."""
        return ImportanceWeightedObjective(self.proposal, self.log_joint, num_particles, self.batch_ndims)

    def proposal_distribution(self, params: Params) -> Distribution:
        """``dist(params)``, the proposal of one particle, checked like :meth:`Objective.distribution`."""
        return cast(Particles, self.distribution(params)).proposal


@dataclasses.dataclass(frozen=True)
class _ParticlesOf:
    """The objective's distribution: K draws of the proposal at axis ``batch_ndims``."""

    proposal: Callable[[Params], Distribution]
    num_particles: int
    batch_ndims: int

    def __call__(self, params: Params) -> Particles:
        proposal = self.proposal(params)
        if not isinstance(proposal, Distribution):
            raise TypeError(f"ImportanceWeightedObjective.dist must return an estimators distribution (Normal, "
                            f"Bernoulli, ...) for one particle, got {type(proposal).__name__}.")
        if self.batch_ndims > proposal.max_batch_ndims:
            raise ValueError(
                f"ImportanceWeightedObjective.batch_ndims={self.batch_ndims}, but a {type(proposal).__name__} "
                f"particle has shape {proposal.event_shape}, so at most {proposal.max_batch_ndims} leading axes "
                "can index examples.")
        return Particles(proposal, self.num_particles, self.batch_ndims)


@dataclasses.dataclass(frozen=True, eq=False)
class _Bound:
    """The objective's cost: the bound's estimate from one sample of K particles, per example."""

    objective: ImportanceWeightedObjective

    def __call__(self, params: Params, particles: jax.Array) -> jax.Array:
        return log_mean_exp(log_weights(self.objective, params, params, particles))

    def __eq__(self, other):  # as the objective's other functions: by the user's functions
        return isinstance(other, _Bound) and _parts(self.objective) == _parts(other.objective)

    def __hash__(self):
        return hash(_parts(self.objective))


def _parts(objective: ImportanceWeightedObjective) -> tuple:
    return objective.proposal, objective.log_joint, objective.num_particles, objective.batch_ndims


def log_weights(objective: ImportanceWeightedObjective, joint_params: Params, proposal_params: Params,
                particles: jax.Array) -> jax.Array:
    r""":math:`\log w_k = \log p(x, z_k; \theta_p) - \log q(z_k; \theta_q)` for each particle of one sample,
    with the log joint at ``joint_params`` and the proposal's density at ``proposal_params`` (the same
    parameters, or one of them with its gradient stopped): shape ``(*examples, K)``."""
    return (particle_log_joints(objective, joint_params, particles)
            - particle_log_probs(objective, proposal_params, particles))


def particle_log_joints(objective: ImportanceWeightedObjective, params: Params, particles: jax.Array) -> jax.Array:
    r""":math:`\log p(x, z_k; \theta)` of each particle of one sample, per example: shape ``(*examples, K)``;
    a ``log_joint`` of another shape is refused, naming the shape it must have."""
    batch_ndims = objective.batch_ndims
    batch_shape = jnp.shape(particles)[:batch_ndims]

    def one(z):
        log_joint = objective.log_joint(params, z)
        if jnp.shape(log_joint) != batch_shape:
            raise ValueError(
                f"ImportanceWeightedObjective.log_joint must return "
                f"{'a scalar' if not batch_ndims else f'one value per example, shape {batch_shape}'} for one "
                f"particle of shape {jnp.shape(z)}, but returned shape {jnp.shape(log_joint)}.")
        return log_joint

    return jax.vmap(one, in_axes=batch_ndims, out_axes=-1)(particles)


def particle_log_probs(objective: ImportanceWeightedObjective, params: Params, particles: jax.Array) -> jax.Array:
    r""":math:`\log q(z_k; \theta)` of each particle of one sample, per example: shape ``(*examples, K)``."""
    proposal = objective.proposal_distribution(params)
    batch_ndims = objective.batch_ndims

    def one(z):
        return proposal.example_log_prob(z, batch_ndims) if batch_ndims else proposal.log_prob(z)

    return jax.vmap(one, in_axes=batch_ndims, out_axes=-1)(particles)


def log_mean_exp(log_weights: jax.Array) -> jax.Array:
    r""":math:`\log \frac1K \sum_k w_k` over the last axis: the bound's estimate."""
    return jax.nn.logsumexp(log_weights, axis=-1) - math.log(log_weights.shape[-1])


def normalized_weights(log_weights: jax.Array) -> jax.Array:
    r""":math:`\tilde w_k = w_k / \sum_j w_j` over the last axis."""
    return jax.nn.softmax(log_weights, axis=-1)


def surrogate_of_samples(objective, estimator_name: str, params: Params, key: jax.Array, num_samples: int,
                         one_sample: Callable) -> Callable:
    """The surrogate of an L-sample estimate of an importance-weighted bound: the mean over the L sample
    keys of ``one_sample(objective, params, sample_key)``, which returns one K-particle sample's
    ``(surrogate, bound estimate)``, each per example; a ValueError naming what ``estimator_name`` needs
    where ``objective`` is not an :class:`ImportanceWeightedObjective`.  For
    :func:`~estimators.base.surrogate_estimate`."""
    if not isinstance(objective, ImportanceWeightedObjective):
        raise ValueError(
            f"{estimator_name} estimates the gradient of an importance-weighted bound: give it an "
            f"est.ImportanceWeightedObjective(dist, log_joint, num_particles), not a {type(objective).__name__}.")
    keys = sample_keys(key, num_samples)

    def surrogate(p):
        surrogates, bounds = map_samples(lambda k: one_sample(objective, p, k), keys)
        return (jnp.mean(objective.sum_examples(surrogates)),
                jax.lax.stop_gradient(jnp.mean(objective.sum_examples(bounds))))

    return surrogate


def importance_weighted_reason(dist: Distribution, estimator_name: str) -> str | None:
    """Why ``estimator_name``, an estimator of importance-weighted bounds, cannot serve ``dist``: None where
    it is the particles of an importance-weighted objective."""
    if isinstance(dist, Particles):
        return None
    return (f"{estimator_name} estimates the gradient of an importance-weighted bound, whose samples are "
            f"Particles; a plain {type(dist).__name__} objective has none (write the model as "
            "est.ImportanceWeightedObjective(dist, log_joint, num_particles))")
