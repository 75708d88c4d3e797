r"""Plate toys: a few independent examples whose latents share parameters through covariates, with exact
answers per example (enumeration, Gauss–Hermite quadrature), as an objective with ``batch_ndims=1``
and, for comparison, as the same sum with one batch-level learning signal (``batch_ndims=0``).

Example n has covariates :math:`\phi_n \in \mathbb{R}^F` and K latents whose location is
:math:`\phi_n W + c` (shared W, c); the cost of example n reads only its own latents.

- **Bernoulli plate** (``bernoulli_plate``): :math:`b_{n,k} \sim \mathrm{Bernoulli}(\sigma(\ell_{n,k}))`,
  :math:`\ell_n = \phi_n W + c`, :math:`f_n(b_n) = (v^\top b_n - t_n)^2` (an interaction between each
  example's bits).  Exact answers by enumerating each example's :math:`2^K` outcomes (score function,
  leave-one-out) and :math:`3^K` antithetic interval combinations (ARM, DisARM).
- **Gaussian plate** (``gaussian_plate``): :math:`z_{n,k} = \mu_{n,k} + \sigma_k \epsilon_{n,k}`,
  :math:`\mu_n = \phi_n W + c`, :math:`\sigma = e^{s}`, :math:`f_n(z_n) = \sum_k a_k (z_{n,k} - y_{n,k})^2
  + \beta z_{n,1} z_{n,2}`.  The exact gradient in closed form; the per-sample gradients of the
  pathwise and score-function estimators are polynomials in ε of degree at most 4, so tensor
  Gauss–Hermite quadrature with 5 nodes per coordinate gives their variances exactly; the delta method
  with c = 1 returns the exact gradient from any sample of this quadratic cost (its control variate is
  the cost itself), which checks its per-example Hessian blocks.

The ``_summed`` variants are the same parameters and the same F with the cost summed over the examples
(no plate): every example's score is then weighted by the whole batch's cost, and the exact answers come
from treating the N·K latents as one sample.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from estimators import Bernoulli, Normal, Objective
from experiments.problems.base import Problem, iid_variance, u_statistic_variance
from experiments.problems.bernoulli_exact import antithetic_atoms, atom_moments
from experiments.problems.plate_exact import (
    ExampleLaw,
    leave_one_out_zetas_summed,
    mixture_moments,
    score_function_moments,
    summed_moments,
)

#: Covariates φ_n of the N = 3 examples (F = 2 features).
COVARIATES = np.array([[1.0, 0.5], [-0.5, 1.0], [0.3, -1.0]])

BERNOULLI_WEIGHTS = np.array([[0.4, -0.3, 0.8], [-0.6, 0.2, 0.5]])  # (F, K = 3)
BERNOULLI_BIAS = np.array([0.2, -0.4, 0.1])
BERNOULLI_VALUES = np.array([1.0, 0.6, -0.8])  # v
BERNOULLI_TARGETS = np.array([0.3, 0.8, -0.2])  # t_n

GAUSSIAN_WEIGHTS = np.array([[0.5, -0.4], [0.3, 0.6]])  # (F, K = 2)
GAUSSIAN_BIAS = np.array([0.1, -0.2])
GAUSSIAN_LOG_SCALE = np.log([0.8, 1.2])
GAUSSIAN_COEFFICIENTS = np.array([1.0, 0.5])  # a
GAUSSIAN_INTERACTION = 0.7  # β
GAUSSIAN_TARGETS = np.array([[0.5, -1.0], [1.5, 0.0], [-0.5, 1.0]])  # y_n
#: Gauss–Hermite nodes per latent coordinate: exact for polynomials of degree up to 9.
HERMITE_NODES = 5


def _location_jacobian(covariates: np.ndarray, num_latents: int, num_extra: int = 0) -> np.ndarray:
    """∂(φ_n W + c)/∂(W, c, extra) for one example: (K, F·K + K + extra), parameters flattened as W
    row-major, then c, then ``num_extra`` coordinates the location does not depend on."""
    eye = np.eye(num_latents)
    weights = np.einsum("f,kj->kfj", covariates, eye).reshape(num_latents, -1)
    return np.concatenate([weights, eye, np.zeros((num_latents, num_extra))], axis=1)


def _unflatten(flat: np.ndarray, shapes: dict) -> dict:
    out, start = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        out[name] = flat[start:start + size].reshape(shape)
        start += size
    return out


def _as_params(fn, shapes):
    return lambda num_samples: _unflatten(fn(num_samples), shapes)


def _flat_variances(variances: dict, shapes: dict) -> dict:
    """Registry name -> variance function of L over flat coordinates, as params pytrees."""
    return {name: _as_params(fn, shapes) for name, fn in variances.items()}


# ---------------------------------------------------------------------------------------------------
# Bernoulli plate


def _bernoulli_cost(b: np.ndarray, example: int) -> np.ndarray:
    return (b @ BERNOULLI_VALUES - BERNOULLI_TARGETS[example]) ** 2


def _bernoulli_laws(per_example: bool):
    """(outcome law, antithetic atoms, Jacobian) per example, or one for the joint sample."""
    num_examples, num_latents = len(COVARIATES), BERNOULLI_WEIGHTS.shape[1]
    logits = COVARIATES @ BERNOULLI_WEIGHTS + BERNOULLI_BIAS  # (N, K)
    jacobians = [_location_jacobian(phi, num_latents) for phi in COVARIATES]
    if per_example:
        groups = [([n], logits[n], jacobians[n]) for n in range(num_examples)]
    else:
        groups = [(list(range(num_examples)), logits.reshape(-1), np.concatenate(jacobians))]

    def cost(b, members):  # b: (outcomes, len(members) * K), the summed cost of those examples
        parts = b.reshape(len(b), len(members), num_latents)
        return sum(_bernoulli_cost(parts[:, i], n) for i, n in enumerate(members))

    laws = []
    for members, group_logits, jacobian in groups:
        p = 1 / (1 + np.exp(-group_logits))
        outcomes = np.array(list(itertools.product([0.0, 1.0], repeat=len(group_logits))))
        probability = np.prod(np.where(outcomes == 1, p, 1 - p), axis=1)
        law = ExampleLaw(probability, cost(outcomes, members), (outcomes - p) @ jacobian)
        atoms = antithetic_atoms(group_logits, lambda b, m=members: cost(b, m))
        laws.append((law, atoms, jacobian))
    return laws


def bernoulli_plate(per_example: bool = True) -> Problem:
    """The Bernoulli plate toy: 3 examples × 3 bits, logits φ_n W + c."""
    laws = _bernoulli_laws(per_example)
    examples = [law for law, _, _ in laws]
    mean, variance = score_function_moments(examples)
    zeta1, zeta2 = leave_one_out_zetas_summed(examples)
    variances = {"score_function": iid_variance(variance), "score_function_loo": u_statistic_variance(zeta1, zeta2)}
    for name in ("arm", "disarm"):
        _, antithetic_variance = summed_moments([atom_moments(atoms[name], jacobian)
                                                 for _, atoms, jacobian in laws])
        variances[name] = iid_variance(antithetic_variance)
    shapes = {"weights": BERNOULLI_WEIGHTS.shape, "bias": BERNOULLI_BIAS.shape}
    covariates, values, targets = (jnp.asarray(a, jnp.result_type(float))
                                   for a in (COVARIATES, BERNOULLI_VALUES, BERNOULLI_TARGETS))

    def dist(params):
        return Bernoulli(covariates @ params["weights"] + params["bias"][None, :])

    def example_costs(b):
        return (b @ values - targets) ** 2

    if per_example:
        objective = Objective(dist=dist, cost=lambda params, b: example_costs(b), batch_ndims=1)
    else:
        objective = Objective(dist=dist, cost=lambda params, b: jnp.sum(example_costs(b)))
    dtype = jnp.result_type(float)
    signal = "each example's own cost" if per_example else "the batch's summed cost (no plate)"
    return Problem(
        name="bernoulli_plate" if per_example else "bernoulli_plate_summed",
        description=f"3 examples x 3 bits, b ~ Bernoulli(σ(φ_n W + c)), f_n = (v·b_n - t_n)², signal: {signal}",
        objective=objective,
        params={"weights": jnp.asarray(BERNOULLI_WEIGHTS, dtype), "bias": jnp.asarray(BERNOULLI_BIAS, dtype)},
        exact_grad=_unflatten(mean, shapes),
        exact_variances=_flat_variances(variances, shapes),
    )


# ---------------------------------------------------------------------------------------------------
# Gaussian plate


def _gaussian_cost(z: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """f_n at z (..., K = 2)."""
    return (np.sum(GAUSSIAN_COEFFICIENTS * (z - targets) ** 2, axis=-1)
            + GAUSSIAN_INTERACTION * z[..., 0] * z[..., 1])


def _gaussian_cost_gradient(z: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """∂f_n/∂z at z (..., 2)."""
    return 2 * GAUSSIAN_COEFFICIENTS * (z - targets) + GAUSSIAN_INTERACTION * z[..., ::-1]


def _gaussian_laws(per_example: bool):
    """(law, pathwise per-atom gradients) per example, or one for the joint sample (N·K Gauss–Hermite
    dimensions)."""
    num_latents = GAUSSIAN_WEIGHTS.shape[1]
    loc = COVARIATES @ GAUSSIAN_WEIGHTS + GAUSSIAN_BIAS  # (N, K)
    scale = np.exp(GAUSSIAN_LOG_SCALE)
    groups = [[n] for n in range(len(COVARIATES))] if per_example else [list(range(len(COVARIATES)))]
    nodes, weights = hermegauss(HERMITE_NODES)
    weights = weights / weights.sum()
    results = []
    for members in groups:
        dims = len(members) * num_latents
        epsilon = np.array(list(itertools.product(nodes, repeat=dims))).reshape(-1, len(members), num_latents)
        probability = np.prod(np.array(list(itertools.product(weights, repeat=dims))), axis=1)
        z = loc[members] + scale * epsilon  # (A, members, K)
        cost = np.sum(_gaussian_cost(z, GAUSSIAN_TARGETS[members]), axis=1)
        score, pathwise = 0.0, 0.0
        for i, n in enumerate(members):
            jacobian = _location_jacobian(COVARIATES[n], num_latents, num_extra=num_latents)  # (K, P)
            eps = epsilon[:, i]
            log_scale_part = np.concatenate([np.zeros((len(eps), jacobian.shape[1] - num_latents)), eps**2 - 1], axis=1)
            score = score + (eps / scale) @ jacobian + log_scale_part
            slope = _gaussian_cost_gradient(z[:, i], GAUSSIAN_TARGETS[n])  # ∂f_n/∂z_n
            log_scale_path = np.concatenate([np.zeros((len(eps), jacobian.shape[1] - num_latents)),
                                             slope * scale * eps], axis=1)
            pathwise = pathwise + slope @ jacobian + log_scale_path
        results.append((ExampleLaw(probability, cost, score), pathwise))
    return results


def _gaussian_exact_grad() -> np.ndarray:
    """∇F in closed form: E f_n = Σ_k a_k((μ_nk - y_nk)² + σ_k²) + β μ_n1 μ_n2, flat as (W, c, s)."""
    loc = COVARIATES @ GAUSSIAN_WEIGHTS + GAUSSIAN_BIAS
    scale = np.exp(GAUSSIAN_LOG_SCALE)
    d_loc = 2 * GAUSSIAN_COEFFICIENTS * (loc - GAUSSIAN_TARGETS) + GAUSSIAN_INTERACTION * loc[:, ::-1]  # (N, K)
    d_weights = COVARIATES.T @ d_loc
    d_log_scale = len(COVARIATES) * 2 * GAUSSIAN_COEFFICIENTS * scale**2
    return np.concatenate([d_weights.reshape(-1), d_loc.sum(axis=0), d_log_scale])


def gaussian_plate(per_example: bool = True) -> Problem:
    """The Gaussian plate toy: 3 examples × 2 latents, locations φ_n W + c, shared scales e^s."""
    laws = _gaussian_laws(per_example)
    examples = [law for law, _ in laws]
    _, variance = score_function_moments(examples)
    zeta1, zeta2 = leave_one_out_zetas_summed(examples)
    _, pathwise_variance = summed_moments([mixture_moments(law.probability, path) for law, path in laws])
    variances = {
        "score_function": iid_variance(variance),
        "score_function_loo": u_statistic_variance(zeta1, zeta2),
        "pathwise": iid_variance(pathwise_variance),
    }
    shapes = {"weights": GAUSSIAN_WEIGHTS.shape, "bias": GAUSSIAN_BIAS.shape, "log_scale": GAUSSIAN_LOG_SCALE.shape}
    dtype = jnp.result_type(float)
    covariates, coefficients, targets = (jnp.asarray(a, dtype)
                                         for a in (COVARIATES, GAUSSIAN_COEFFICIENTS, GAUSSIAN_TARGETS))

    def dist(params):
        loc = covariates @ params["weights"] + params["bias"][None, :]
        return Normal(loc, jnp.broadcast_to(jnp.exp(params["log_scale"])[None, :], loc.shape))

    def example_costs(z):
        return (
            jnp.sum(coefficients[None, :] * (z - targets) ** 2, axis=-1) + GAUSSIAN_INTERACTION * z[..., 0] * z[..., 1]
        )

    if per_example:
        objective = Objective(dist=dist, cost=lambda params, z: example_costs(z), batch_ndims=1)
    else:
        objective = Objective(dist=dist, cost=lambda params, z: jnp.sum(example_costs(z)))
    signal = "each example's own cost" if per_example else "the batch's summed cost (no plate)"
    return Problem(
        name="gaussian_plate" if per_example else "gaussian_plate_summed",
        description=(f"3 examples x 2 latents, z ~ N(φ_n W + c, e^2s), f_n = Σ a_k (z_nk - y_nk)² + β z_n1 z_n2, "
                     f"signal: {signal}"),
        objective=objective,
        params={"weights": jnp.asarray(GAUSSIAN_WEIGHTS, dtype), "bias": jnp.asarray(GAUSSIAN_BIAS, dtype),
                "log_scale": jnp.asarray(GAUSSIAN_LOG_SCALE, dtype)},
        exact_grad=_unflatten(_gaussian_exact_grad(), shapes),
        exact_variances=_flat_variances(variances, shapes),
    )
