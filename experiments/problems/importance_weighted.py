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


#: With ``shared=True`` the proposal's mean is ``loc + SHARED_COUPLING · b``: b, the model's parameter, is
#: the proposal's too (as an amortized encoder shares weights with nothing, but a prior-informed proposal
#: might), which DReG must handle in one pytree.
SHARED_COUPLING = 0.5


def linear_gaussian_bound(num_particles: int, at_posterior: bool = False, shared: bool = False) -> Problem:
    """The K-particle bound of the linear-Gaussian model, with the exact gradient and the exact variances
    of ``pathwise``, ``dreg`` and, at K = 1, ``stl`` by Gauss–Hermite quadrature over the particles' noise.
    ``at_posterior``: the proposal is the exact posterior; ``shared``: the model's parameter b moves the
    proposal's mean too."""
    b = 0.2
    coupling = SHARED_COUPLING if shared else 0.0
    mean, scale = linear_gaussian_posterior(b) if at_posterior else (0.1, 1.1)
    params = {"loc": jnp.array([mean - coupling * b]), "log_scale": jnp.array([math.log(scale)]),
              "b": jnp.asarray(b)}
    objective = est.ImportanceWeightedObjective(
        dist=lambda p: est.Normal(p["loc"] + coupling * p["b"], jnp.exp(p["log_scale"])),
        log_joint=_linear_gaussian_log_joint, num_particles=num_particles)
    exact_grad, variances = _linear_gaussian_answers(params, num_particles, coupling)
    name = "linear_gaussian_elbo" if num_particles == 1 else f"linear_gaussian_iw{num_particles}"
    variant = " with the exact posterior as proposal" if at_posterior else ""
    variant += " whose proposal mean moves with the model's b" if shared else ""
    return Problem(
        name=name + ("_posterior" if at_posterior else "") + ("_shared" if shared else ""),
        description=f"importance-weighted bound, K = {num_particles}, of a 1-D linear-Gaussian model{variant}; "
                    "exact by Gauss-Hermite quadrature over the particles' noise",
        objective=objective,
        params=params,
        exact_grad=exact_grad,
        exact_variances={name: iid_variance(variance) for name, variance in variances.items()},
    )


def _linear_gaussian_answers(params, num_particles: int, coupling: float):
    """(exact gradient, {estimator: per-sample variance}): the gradient of the quadrature of the bound, the
    pathwise variance from autodiff of each node's bound, DReG's and STL's from their closed forms here,
    z_k = m + σ ε_k with m = loc + c·b:

    - ∂ log w_k / ∂z = −z_k + (x − z_k − b) + (z_k − m)/σ², ∂z_k/∂loc = 1, ∂z_k/∂log σ = σ ε_k, ∂z_k/∂b = c;
    - the model's term, ∂ log p(x, z_k)/∂b at fixed z_k, is x − z_k − b;
    - DReG: Σ_k w̃_k (model's term) + Σ_k w̃_k² ∂ log w_k/∂z ∂z_k/∂θ; STL the same at K = 1 (w̃ = 1).
    """
    if num_particles not in QUADRATURE_NODES:
        raise ValueError(f"The quadrature covers K = {', '.join(map(str, QUADRATURE_NODES))} particles, "
                         f"got {num_particles}.")
    x = LINEAR_GAUSSIAN_OBSERVATION
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), params)
        nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES[num_particles])
        weights = weights / math.sqrt(2 * math.pi)  # a standard normal's
        grid = jnp.array(list(itertools.product(nodes, repeat=num_particles)))  # (Q, K)
        grid_weights = jnp.array([math.prod(w) for w in itertools.product(weights, repeat=num_particles)])

        def proposal(p):
            return p["loc"][0] + coupling * p["b"], jnp.exp(p["log_scale"][0])

        def log_weights(p, z):  # z: (K,)
            mean, scale = proposal(p)
            log_joint = jax.scipy.stats.norm.logpdf(z) + jax.scipy.stats.norm.logpdf(x, z + p["b"])
            return log_joint - jax.scipy.stats.norm.logpdf(z, mean, scale)

        def bound(p, noise):
            mean, scale = proposal(p)
            return jax.nn.logsumexp(log_weights(p, mean + scale * noise)) - math.log(num_particles)

        def doubly_reparameterized(p, noise):
            mean, scale = proposal(p)
            z = mean + scale * noise
            weights = jax.nn.softmax(log_weights(p, z))
            path = -z + (x - z - p["b"]) + (z - mean) / scale**2  # ∂ log w_k / ∂z
            squared = weights**2 * path
            return {"b": weights @ (x - z - p["b"]) + coupling * jnp.sum(squared), "loc": jnp.sum(squared)[None],
                    "log_scale": (squared @ (scale * noise))[None]}

        @jax.jit  # one program: eager float64 operations would each compile
        def answers(params):
            exact = jax.grad(lambda p: grid_weights @ jax.vmap(lambda e: bound(p, e))(grid))(params)
            per_node = {"pathwise": jax.vmap(lambda e: jax.grad(bound)(params, e))(grid),
                        "dreg": jax.vmap(lambda e: doubly_reparameterized(params, e))(grid)}
            if num_particles == 1:
                per_node["stl"] = per_node["dreg"]  # w̃ = 1: the same closed form
            def variance(g):
                return grid_weights @ (g - (grid_weights @ g)[None]) ** 2

            variances = {name: jax.tree_util.tree_map(variance, grads) for name, grads in per_node.items()}
            return exact, variances

        exact, variances = answers(params)
        return _as_numpy(exact), {name: _as_numpy(v) for name, v in variances.items()}


def _as_numpy(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


# --- the linear-Gaussian model of Rainforth et al. (2018), amortized, for the particle sweep -------------

#: Latent (and observed) dimensions, the proposal's fixed standard deviation (√(2/3), as in the linear-Gaussian
#: experiment of Rainforth et al. 2018; the posterior's is √(1/2)), the data set that defines the optimum, and
#: the minibatch of it whose bound the problem is.
AMORTIZED_DIMENSION = 20
AMORTIZED_PROPOSAL_SCALE = math.sqrt(2 / 3)
AMORTIZED_DATASET = 1024
AMORTIZED_EXAMPLES = 16
#: The parameters sit at the data set's optimum plus Gaussian noise of this standard deviation (the paper's
#: 0.01): the encoder's gradient is then small and its noise is what the sweep measures, and the decoder's
#: on a minibatch is that of log p(x) on those examples, which the optimum of the whole data set leaves
#: nonzero, as in training.
AMORTIZED_PERTURBATION = 0.01


def amortized_linear_gaussian(num_particles: int) -> Problem:
    r"""The K-particle bound of :math:`z_n \sim N(\mu, I)`, :math:`x_n \mid z_n \sim N(z_n, I)` (D = 20) with the
    amortized proposal :math:`q(z \mid x_n) = N(A x_n + b, \tfrac23 I)`, on a minibatch of 16 examples (a plate)
    of a data set of 1024 drawn from the model: parameters ``{"encoder": {"weight": A, "bias": b}, "decoder":
    {"mean": μ}}``, at the data set's optimum (μ its mean, A = I/2, b = μ/2: the posterior's mean) moved by
    noise of standard deviation 0.01.  The model of Rainforth et al. (2018); no exact gradient is attached
    (the sweep measures variances and signal-to-noise ratios)."""
    rng = np.random.default_rng(0)
    dimension = AMORTIZED_DIMENSION
    true_mean = rng.normal(size=dimension)
    data = true_mean + rng.normal(scale=math.sqrt(2.0), size=(AMORTIZED_DATASET, dimension))  # x ~ N(μ, 2I)
    mean = data.mean(axis=0)
    optimum = {"encoder": {"weight": np.eye(dimension) / 2, "bias": mean / 2}, "decoder": {"mean": mean}}
    leaves, treedef = jax.tree_util.tree_flatten(optimum)
    perturbed = [leaf + AMORTIZED_PERTURBATION * rng.normal(size=leaf.shape) for leaf in leaves]
    dtype = jnp.result_type(float)
    params = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(leaf, dtype) for leaf in perturbed])
    x = jnp.asarray(data[:AMORTIZED_EXAMPLES], dtype)

    def proposal(p):
        return est.Normal(x @ p["encoder"]["weight"].T + p["encoder"]["bias"][None],
                          jnp.full(x.shape, AMORTIZED_PROPOSAL_SCALE, dtype))

    def log_joint(p, z):  # z: (examples, D)
        prior = jax.scipy.stats.norm.logpdf(z, p["decoder"]["mean"][None])
        return jnp.sum(prior + jax.scipy.stats.norm.logpdf(x, z), axis=-1)

    return Problem(
        name="linear_gaussian_amortized",
        description=f"importance-weighted bound, K = {num_particles}, of a {dimension}-D linear-Gaussian model on a "
                    f"minibatch of {AMORTIZED_EXAMPLES} examples, an amortized Gaussian proposal, near the optimum",
        objective=est.ImportanceWeightedObjective(dist=proposal, log_joint=log_joint, num_particles=num_particles,
                                                  batch_ndims=1),
        params=params,
        exact_grad=None,
    )
