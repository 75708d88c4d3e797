"""The two ways of averaging give the same estimate: the mean of L per-sample gradients, and the gradient
of the L-sample average objective (for the score function, of the average surrogate), with the same
samples.  Checked on the Gaussian VAE, where users meet the question, and on the binary VAE, both with a
cost per image (``batch_ndims=1``): an image's latents are weighted by that image's cost."""

import jax
import jax.numpy as jnp
import numpy as np

import estimators as est
from experiments.problems.checkpoints import init_params
from experiments.problems.vae import BinaryVAE, GaussianVAE

NUM_SAMPLES = 8
#: float32 sums in a different order: agreement to a few units in the last place of the largest entry.
RTOL, ATOL_FRACTION = 1e-4, 1e-5


def _close(tree_a, tree_b):
    for a, b in zip(jax.tree_util.tree_leaves(tree_a), jax.tree_util.tree_leaves(tree_b)):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL_FRACTION * max(np.abs(b).max(), 1e-30))


def _gaussian_vae():
    model = GaussianVAE()
    return model.objective(model.training_batch()[:16]), init_params("gaussian_vae")


def test_pathwise_equals_gradient_of_the_average_objective():
    objective, params = _gaussian_vae()
    key = lambda: jax.random.key(3)  # the same samples three ways, so a fresh copy of the key for each
    keys = lambda: est.sample_keys(key(), NUM_SAMPLES)  # sample i is drawn with fold_in(key, i)

    def average_objective(p):  # (1/L) Σ f(θ, μ(θ) + σ(θ) ε_i), reparameterized samples
        samples = jax.vmap(objective.distribution(p).rsample)(keys())
        return jnp.mean(jnp.sum(jax.vmap(objective.cost, in_axes=(None, 0))(p, samples), axis=1))

    def mean_of_per_sample_gradients(p):
        one = lambda k: jax.grad(lambda q: jnp.sum(objective.cost(q, objective.distribution(q).rsample(k))))(p)
        return jax.tree_util.tree_map(lambda g: g.mean(axis=0), jax.vmap(one)(keys()))

    # Each form as one compiled program (run eagerly, each of the VAE's operations would compile apart).
    estimate = jax.jit(est.grad(objective, "pathwise", NUM_SAMPLES))(params, key())
    _close(estimate, jax.jit(jax.grad(average_objective))(params))
    _close(estimate, jax.jit(mean_of_per_sample_gradients)(params))


def test_score_function_equals_gradient_of_the_average_surrogate():
    model = BinaryVAE()
    objective, params = model.objective(model.training_batch()[:16]), init_params("binary_vae")
    samples = jax.vmap(objective.distribution(params).sample)(est.sample_keys(jax.random.key(4), NUM_SAMPLES))

    def average_surrogate(p):  # (1/L) Σ_i Σ_n [sg(f_n(x_i)) log q_n(x_in; θ) + f_n(θ, x_i)]
        log_q = jax.vmap(lambda x: objective.distribution(p).example_log_prob(x, 1))(samples)
        costs = jax.vmap(objective.cost, in_axes=(None, 0))(p, samples)
        return jnp.mean(jnp.sum(jax.lax.stop_gradient(costs) * log_q + costs, axis=1))

    def per_sample_gradient(p, x):  # Σ_n [f_n ∇ log q_n + ∇ f_n], one image's score at a time
        costs = objective.cost(p, x)
        scores = jax.jacrev(lambda q: objective.distribution(q).example_log_prob(x, 1))(p)
        direct = jax.grad(lambda q: jnp.sum(objective.cost(q, x)))(p)
        return jax.tree_util.tree_map(lambda s, d: jnp.tensordot(costs, s, axes=1) + d, scores, direct)

    estimate = jax.jit(est.grad(objective, "score_function", NUM_SAMPLES))(params, jax.random.key(4))
    _close(estimate, jax.jit(jax.grad(average_surrogate))(params))
    per_sample = jax.jit(jax.vmap(per_sample_gradient, in_axes=(None, 0)))(params, samples)
    _close(estimate, jax.tree_util.tree_map(lambda g: g.mean(axis=0), per_sample))
