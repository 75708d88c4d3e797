r"""Importance-weighted bounds with exact answers: every estimator is a function of the K particles.

- ``bernoulli_iw3``: two examples (a plate), each with a two-bit Bernoulli latent and K = 3 particles.
  Each example's 4³ particle tuples are enumerated: the bound, its gradient (autodiff of the enumerated
  bound) and the exact variances of ``score_function`` and ``vimco`` (each estimate is a deterministic
  function of the tuple; the examples are independent, so the variances add).
- ``linear_gaussian_iw2`` (K = 2) and ``linear_gaussian_elbo`` (K = 1): a one-dimensional linear-Gaussian
  model, :math:`z \sim N(0, 1)`, :math:`x \mid z \sim N(z + b, 1)`, with a Gaussian proposal
  :math:`N(\mu, \sigma^2)`.  The particles are :math:`z_k = \mu + \sigma \epsilon_k`, so the bound, its
  gradient and the variances of ``pathwise``, ``dreg`` and ``stl`` (K = 1) are K-dimensional Gauss–Hermite
  quadratures over the noise.  The proposal is not the posterior :math:`N((x - b)/2, 1/2)`;
  :func:`linear_gaussian_bound` at ``at_posterior=True`` puts it there (STL's proposal gradient is then
  zero sample by sample).

The per-particle-tuple gradients are written here from the papers' formulas with JAX autodiff in float64,
apart from the library's estimators: the tests compare the two.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import estimators as est
from experiments.problems.base import Problem, iid_variance

#: The Bernoulli bound's observations, one per example.
BERNOULLI_OBSERVATIONS = (0.7, 2.1)
#: The linear-Gaussian model's observation.
LINEAR_GAUSSIAN_OBSERVATION = 1.3
#: Gauss–Hermite nodes per particle (K ≤ 3 particles: at most 40³ points).
QUADRATURE_NODES = {1: 80, 2: 60, 3: 40}


# --- a two-bit Bernoulli latent per example, K particles ----------------------------------------------


def _example_log_joint(params, z, observation):
    """log p(x, z) of one example's two bits z: a Bernoulli(σ(w)) prior on each bit and
    x ~ N(c·(z_0 + 2 z_1), 1) (up to a constant)."""
    prior = z @ jax.nn.log_sigmoid(params["prior"]) + (1 - z) @ jax.nn.log_sigmoid(-params["prior"])
    return prior - 0.5 * (observation - params["scale"] * (z[0] + 2 * z[1])) ** 2


def _bernoulli_log_joint(params, z):
    """log p(x_n, z_n) of each example n: z has shape (2 examples, 2 bits)."""
    observations = jnp.asarray(BERNOULLI_OBSERVATIONS, z.dtype)
    return jax.vmap(_example_log_joint, in_axes=(None, 0, 0))(params, z, observations)


def bernoulli_bound(num_particles: int = 3) -> Problem:
    """Two examples, a two-bit latent each, K particles: exact gradient and the exact variances of
    ``score_function`` and ``vimco`` (K ≥ 2) by enumerating each example's particle tuples."""
    params = {"encoder": jnp.array([[0.3, -0.6], [-0.2, 0.9]]), "prior": jnp.array([0.4, -0.5]),
              "scale": jnp.asarray(0.8)}
    objective = est.ImportanceWeightedObjective(
        dist=lambda p: est.Bernoulli(logits=p["encoder"]), log_joint=_bernoulli_log_joint,
        num_particles=num_particles, batch_ndims=1)
    exact_grad, variances = _bernoulli_answers(params, num_particles)
    return Problem(
        name=f"bernoulli_iw{num_particles}",
        description=f"importance-weighted bound, K = {num_particles}, two examples with a two-bit Bernoulli latent; "
                    "exact by enumerating the particle tuples",
        objective=objective,
        params=params,
        exact_grad=exact_grad,
        exact_variances={name: iid_variance(variance) for name, variance in variances.items()},
    )


def _bernoulli_answers(params, num_particles: int):
    """(exact gradient, {estimator: per-sample variance}) by enumeration, in float64."""
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        states = jnp.array(list(itertools.product([0.0, 1.0], repeat=2)))  # (4, 2)
        tuples = jnp.array(list(itertools.product(range(4), repeat=num_particles)))  # (4^K, K)
        particles = states[tuples]  # (T, K, 2): one example's particles

        def example_terms(p, n):
            """Per tuple: its probability, the bound, and the log density of each particle, example n."""
            logits = p["encoder"][n]
            log_q = particles @ jax.nn.log_sigmoid(logits) + (1 - particles) @ jax.nn.log_sigmoid(-logits)  # (T, K)
            observation = BERNOULLI_OBSERVATIONS[n]
            log_joint = jax.vmap(jax.vmap(lambda z: _example_log_joint(p, z, observation)))(particles)  # (T, K)
            log_w = log_joint - log_q
            bound = jax.nn.logsumexp(log_w, axis=1) - math.log(num_particles)
            return jnp.exp(jnp.sum(log_q, axis=1)), bound, log_q, log_w

        def bound_expectation(p):
            return sum(jnp.sum(prob * bound) for prob, bound, _, _ in (example_terms(p, n) for n in range(2)))

        @jax.jit  # one program: eager float64 operations would each compile
        def answers(params):
            flat_variances = {}
            for name in ("score_function", "vimco") if num_particles >= 2 else ("score_function",):
                per_example = []
                for n in range(2):
                    prob, *_ = example_terms(params, n)
                    tuple_grads = _bernoulli_tuple_gradients(example_terms, params, n, name)  # (T, P)
                    mean = prob @ tuple_grads
                    per_example.append(prob @ (tuple_grads - mean[None]) ** 2)
                flat_variances[name] = sum(per_example)
            return jax.grad(bound_expectation)(params), flat_variances

        exact, flat_variances = answers(params)
        _, unravel = ravel_pytree(params)
        return _as_numpy(exact), {name: _as_numpy(unravel(v)) for name, v in flat_variances.items()}


def _bernoulli_tuple_gradients(example_terms, params, n: int, name: str):
    """Each tuple's one-sample estimate of example n's bound gradient, flat (T, P):
    score function, :math:`\\hat{\\mathcal L} \\nabla \\log q(z_{1:K}) + \\nabla \\hat{\\mathcal L}|_z`;
    VIMCO, :math:`\\sum_k (\\hat{\\mathcal L} - \\hat{\\mathcal L}_{-k}) \\nabla \\log q(z_k) +
    \\nabla \\hat{\\mathcal L}|_z`."""
    flat, unravel = ravel_pytree(params)
    bound_grad = jax.jacrev(lambda w: example_terms(unravel(w), n)[1])(flat)  # (T, P): ∇L̂ at fixed particles
    score_grad = jax.jacrev(lambda w: example_terms(unravel(w), n)[2])(flat)  # (T, K, P): ∇ log q(z_k)
    _, bound, _, log_w = example_terms(params, n)
    if name == "score_function":
        return bound[:, None] * jnp.sum(score_grad, axis=1) + bound_grad
    num_particles = log_w.shape[1]
    signals = []
    for k in range(num_particles):  # L̂_{-k}: log w_k replaced by the mean of the others' log weights
        others = [j for j in range(num_particles) if j != k]
        replaced = log_w.at[:, k].set(jnp.mean(log_w[:, others], axis=1))
        signals.append(bound - (jax.nn.logsumexp(replaced, axis=1) - math.log(num_particles)))
    return jnp.einsum("tk,tkp->tp", jnp.stack(signals, axis=1), score_grad) + bound_grad


# --- a linear-Gaussian model, K Gaussian particles ----------------------------------------------------


def _linear_gaussian_log_joint(params, z):
    """log N(z; 0, 1) + log N(x; z + b, 1) for a one-dimensional z (shape (1,))."""
    x = jnp.asarray(LINEAR_GAUSSIAN_OBSERVATION, z.dtype)
    return jnp.sum(jax.scipy.stats.norm.logpdf(z) + jax.scipy.stats.norm.logpdf(x, z + params["b"]))


def linear_gaussian_posterior(b: float) -> tuple[float, float]:
    """The exact posterior's mean and standard deviation, N((x − b)/2, 1/2)."""
    return (LINEAR_GAUSSIAN_OBSERVATION - b) / 2, math.sqrt(0.5)


def linear_gaussian_bound(num_particles: int, at_posterior: bool = False) -> Problem:
    """The K-particle bound of the linear-Gaussian model, with the exact gradient and the exact variances
    of ``pathwise``, ``dreg`` and, at K = 1, ``stl`` by Gauss–Hermite quadrature over the particles' noise.
    ``at_posterior``: the proposal is the exact posterior."""
    b = 0.2
    mean, scale = linear_gaussian_posterior(b) if at_posterior else (0.1, 1.1)
    params = {"loc": jnp.array([mean]), "log_scale": jnp.array([math.log(scale)]), "b": jnp.asarray(b)}
    objective = est.ImportanceWeightedObjective(
        dist=lambda p: est.Normal(p["loc"], jnp.exp(p["log_scale"])), log_joint=_linear_gaussian_log_joint,
        num_particles=num_particles)
    exact_grad, variances = _linear_gaussian_answers(params, num_particles)
    name = "linear_gaussian_elbo" if num_particles == 1 else f"linear_gaussian_iw{num_particles}"
    return Problem(
        name=name + ("_posterior" if at_posterior else ""),
        description=f"importance-weighted bound, K = {num_particles}, of a 1-D linear-Gaussian model"
                    f"{' with the exact posterior as proposal' if at_posterior else ''}; exact by Gauss-Hermite "
                    "quadrature over the particles' noise",
        objective=objective,
        params=params,
        exact_grad=exact_grad,
        exact_variances={name: iid_variance(variance) for name, variance in variances.items()},
    )


def _linear_gaussian_answers(params, num_particles: int):
    if num_particles not in QUADRATURE_NODES:
        raise ValueError(f"The quadrature covers K = {', '.join(map(str, QUADRATURE_NODES))} particles, "
                         f"got {num_particles}.")
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES[num_particles])
        weights = weights / math.sqrt(2 * math.pi)  # a standard normal's
        grid = jnp.array(list(itertools.product(nodes, repeat=num_particles)))  # (Q, K)
        grid_weights = jnp.array([math.prod(w) for w in itertools.product(weights, repeat=num_particles)])

        def log_weights(joint_params, proposal_params, z):  # z: (K,)
            scale = jnp.exp(proposal_params["log_scale"][0])
            log_q = jax.scipy.stats.norm.logpdf(z, proposal_params["loc"][0], scale)
            log_joint = jax.vmap(lambda zk: _linear_gaussian_log_joint(joint_params, zk[None]))(z)
            return log_joint - log_q

        def particles(p, noise):
            return p["loc"][0] + jnp.exp(p["log_scale"][0]) * noise

        def bound(p, noise):
            log_w = log_weights(p, p, particles(p, noise))
            return jax.nn.logsumexp(log_w) - math.log(num_particles)

        def dreg(p, noise):
            fixed = jax.lax.stop_gradient(p)
            z = particles(p, noise)
            through_model = log_weights(p, fixed, jax.lax.stop_gradient(z))
            weights = jax.lax.stop_gradient(jax.nn.softmax(through_model))
            return jnp.sum(weights * through_model + weights**2 * log_weights(fixed, fixed, z))

        def stl(p, noise):
            return jnp.sum(log_weights(p, jax.lax.stop_gradient(p), particles(p, noise)))

        surrogates = {"pathwise": bound, "dreg": dreg, **({"stl": stl} if num_particles == 1 else {})}
        flat, unravel = ravel_pytree(params)

        @jax.jit  # one program: eager float64 operations would each compile
        def answers(flat):
            exact = jax.grad(lambda w: grid_weights @ jax.vmap(lambda e: bound(unravel(w), e))(grid))(flat)
            variances = {}
            for name, surrogate in surrogates.items():
                grads = jax.vmap(lambda e, s=surrogate: jax.grad(lambda w: s(unravel(w), e))(flat))(grid)  # (Q, P)
                variances[name] = grid_weights @ (grads - (grid_weights @ grads)[None]) ** 2
            return exact, variances

        exact, variances = answers(flat)
        return _as_numpy(unravel(exact)), {name: _as_numpy(unravel(v)) for name, v in variances.items()}


def _as_numpy(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)
