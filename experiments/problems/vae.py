r"""Variational autoencoders on the binarized 8×8 digits: Gaussian latents and binary latents.

Both have an encoder (64 pixels → 64 tanh units → the parameters of q(z | x)) and a decoder
(z → 64 tanh units → 64 Bernoulli logits), parameters ``{"encoder": ..., "decoder": ...}``.  The cost
of one sample z of the whole batch's latents (shape (N, K)) is the negative ELBO per image with the KL
divergence to the prior in closed form,

.. math::

    f(\theta, z) = \frac1N \sum_n \Big[-\log p_\theta(x_n \mid z_n) + \mathrm{KL}(q_\theta(z \mid x_n)\,\|\,p(z))\Big].

The images are independent examples: the objective has ``batch_ndims=1`` and the cost of image n is
its own term of the sum (divided by N), so every estimator weights image n's latents by image n's cost
(``objective(..., per_example=False)`` gives the batch-level form, one cost for all latents).  The
decoder's parameters reach the cost only directly (the gradient goes inside the expectation and
every estimator agrees on it in expectation); the encoder's reach it through the distribution, where
the estimators differ, and through the KL term.

- **Gaussian latents** (K = 4): the encoder outputs a mean and a log-variance, q = N(μ, diag σ²),
  z = μ + exp(½ log σ²) ε, prior N(0, I), KL = ½ Σ (μ² + σ² − 1 − log σ²).
- **Binary latents** (K = 8): the encoder outputs Bernoulli logits ℓ, prior Bernoulli(½),
  KL = Σ [q log q + (1 − q) log(1 − q)] + K log 2 with q = σ(ℓ).  Only the estimators for discrete
  distributions apply.  With 2⁸ = 256 latent states per image the objective is a finite sum, so its
  exact gradient comes from enumeration (:meth:`BinaryVAE.exact_objective`).

Reference: Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014; for binary latents Mnih &
Gregor, *Neural Variational Inference and Learning in Belief Networks*, ICML 2014.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from estimators import Bernoulli, ImportanceWeightedObjective, Normal, Objective
from experiments.problems import data

NUM_PIXELS = 64
HIDDEN_UNITS = 64


def _dense(key, fan_in: int, fan_out: int) -> dict:
    """A dense layer with Glorot-normal weights and zero biases."""
    dtype = jnp.result_type(float)
    scale = np.sqrt(2.0 / (fan_in + fan_out))
    return {"w": scale * jax.random.normal(key, (fan_in, fan_out), dtype), "b": jnp.zeros(fan_out, dtype)}


def _affine(layer: dict, inputs):
    outputs = inputs @ layer["w"]
    return outputs + jnp.broadcast_to(layer["b"], outputs.shape)


def _mlp(params: dict, inputs):
    return _affine(params["out"], jnp.tanh(_affine(params["hidden"], inputs)))


def _network(key, fan_in: int, fan_out: int) -> dict:
    first, second = jax.random.split(key)
    return {"hidden": _dense(first, fan_in, HIDDEN_UNITS), "out": _dense(second, HIDDEN_UNITS, fan_out)}


def bernoulli_log_likelihood(logits, images):
    """Σ over pixels of log p(x | logits), per image: x log σ(ℓ) + (1 − x) log σ(−ℓ)."""
    return jnp.sum(images * jax.nn.log_sigmoid(logits) + (1 - images) * jax.nn.log_sigmoid(-logits), axis=-1)


@dataclasses.dataclass(frozen=True)
class _VAE:
    name: str
    description: str
    num_latents: int

    @property
    def split(self) -> data.Split:
        return data.binarized_digits()

    def training_batch(self):
        return self.split.train_x

    def held_out_batch(self):
        return self.split.held_out_x

    def init_params(self, key: jax.Array) -> dict:
        encoder_key, decoder_key = jax.random.split(key)
        return {
            "encoder": _network(encoder_key, NUM_PIXELS, self._encoder_outputs),
            "decoder": _network(decoder_key, self.num_latents, NUM_PIXELS),
        }

    def reconstruction_cost(self, params, images, latents):
        """−log p(x_n | z_n) per image."""
        return -bernoulli_log_likelihood(_mlp(params["decoder"], latents), images)

    def objective(self, images, num_examples: int | None = None, per_example: bool = True) -> Objective:
        """The negative ELBO per image of ``images`` (N, 64), a sum over the images of their own
        negative ELBOs over N (``batch_ndims=1``: image n's latents are weighted by its own cost), or
        with ``per_example=False`` the same mean as one cost of the whole batch (every image's latents
        weighted by the batch's cost: the form no one trains with, kept to measure what it costs).
        ``num_examples`` is unused (the KL term belongs to each image)."""
        images = jnp.asarray(images, jnp.result_type(float))
        num_images = images.shape[0]

        def example_costs(p, z):
            return (self.reconstruction_cost(p, images, z) + self.kl(p, images)) / num_images

        if per_example:
            return Objective(dist=lambda p: self.posterior(p, images), cost=example_costs, batch_ndims=1)
        return Objective(dist=lambda p: self.posterior(p, images), cost=lambda p, z: jnp.sum(example_costs(p, z)))

    def log_joint(self, params, latents, images):
        """log p(x_n, z_n) = log p(z_n) + log p(x_n | z_n) per image of ``images``, latents of shape (N, D)."""
        return self.log_prior(latents) - self.reconstruction_cost(params, images, latents)

    def bound_objective(self, images, num_particles: int) -> ImportanceWeightedObjective:
        """The K-particle importance-weighted bound of each image of ``images`` (N, 64), summed over the images
        (a plate: each image's particles are weighted by its own bound), q(z | x_n) the encoder's as proposal.
        At K = 1 it is the ELBO (with the KL term estimated from the sample, not in closed form), to maximize."""
        images = jnp.asarray(images, jnp.result_type(float))
        return ImportanceWeightedObjective(dist=functools.partial(self.posterior, images=images),
                                           log_joint=functools.partial(self.log_joint, images=images),
                                           num_particles=num_particles, batch_ndims=1)


#: Latent samples per image when the Gaussian VAE's objective is estimated for a training curve.
EVALUATION_SAMPLES = 16
#: Particles per image of the importance-sampled log-likelihood that measures a Gaussian VAE trained by
#: any objective (Burda et al. 2016 report theirs with 5,000; the estimate's bias, of order Var(w)/(2K E[w]²),
#: is what remains of the K-particle bound's gap).
LIKELIHOOD_PARTICLES = 1024


@dataclasses.dataclass(frozen=True)
class GaussianVAE(_VAE):
    """Gaussian latents, a mean and a log-variance per latent from the encoder."""

    name: str = "gaussian_vae"
    description: str = "VAE, 4 Gaussian latents, binarized digits, 64 images, Bernoulli decoder"
    num_latents: int = 4

    @property
    def _encoder_outputs(self) -> int:
        return 2 * self.num_latents

    def _loc_and_log_variance(self, params, images):
        outputs = _mlp(params["encoder"], images)
        return outputs[..., : self.num_latents], outputs[..., self.num_latents:]

    def posterior(self, params, images) -> Normal:
        loc, log_variance = self._loc_and_log_variance(params, images)
        return Normal(loc, jnp.exp(0.5 * log_variance))

    def log_prior(self, latents):
        """log N(z; 0, I) per image."""
        return jnp.sum(jax.scipy.stats.norm.logpdf(latents), axis=-1)

    def kl(self, params, images):
        """KL(N(μ, diag σ²) ‖ N(0, I)) per image."""
        loc, log_variance = self._loc_and_log_variance(params, images)
        return 0.5 * jnp.sum(loc**2 + jnp.exp(log_variance) - 1 - log_variance, axis=-1)

    def evaluate(self, params, images, key, num_examples: int | None = None) -> tuple[float, float]:
        """The negative ELBO per image of ``images`` estimated from EVALUATION_SAMPLES latent samples
        per image, with its standard error (over the samples, images fixed)."""
        values = _sampled_objectives(self, params, jnp.asarray(images, jnp.result_type(float)), key)
        values = np.asarray(values, np.float64)
        return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))

    def negative_log_likelihood(self, params, images, key,
                                particles: int = LIKELIHOOD_PARTICLES) -> tuple[float, float]:
        """−log p(x_n) per image of ``images``, estimated by importance sampling from the encoder's q with
        ``particles`` particles per image: −log (1/K) Σ_k w_k, w_k = p(x_n, z_k) / q(z_k | x_n), the
        K-particle bound at large K (an overestimate that shrinks like 1/K), the measure every training
        objective (the ELBO, a K-particle bound) is compared by.  Its standard error is the delta method's,
        √(Σ_n Var(w_n) / (K w̄_n²)) / N, images fixed; it understates the error of images whose weights are
        heavy-tailed (q far from the posterior: an effective sample size of tens of the K)."""
        log_weights = _likelihood_log_weights(self, params, jnp.asarray(images, jnp.result_type(float)), key, particles)
        log_weights = np.asarray(log_weights, np.float64)  # (K, N)
        particles = log_weights.shape[0]
        peak = log_weights.max(axis=0)
        weights = np.exp(log_weights - peak)
        mean = weights.mean(axis=0)
        log_likelihood = peak + np.log(mean)
        variance = weights.var(axis=0, ddof=1) / (particles * mean**2)
        return float(-log_likelihood.mean()), float(np.sqrt(variance.sum()) / len(mean))


@dataclasses.dataclass(frozen=True)
class BinaryVAE(_VAE):
    """Bernoulli latents with logits from the encoder, a Bernoulli(½) prior."""

    name: str = "binary_vae"
    description: str = "VAE, 8 Bernoulli latents, binarized digits, 64 images, Bernoulli decoder"
    num_latents: int = 8

    @property
    def _encoder_outputs(self) -> int:
        return self.num_latents

    def posterior(self, params, images) -> Bernoulli:
        return Bernoulli(_mlp(params["encoder"], images))

    def log_prior(self, latents):
        """log Bernoulli(z; ½) = −D log 2 per image, D latents."""
        return jnp.full(latents.shape[:-1], -self.num_latents * jnp.log(2.0), latents.dtype)

    def kl(self, params, images):
        """KL(Bernoulli(σ(ℓ)) ‖ Bernoulli(½)) per image."""
        logits = _mlp(params["encoder"], images)
        probs = jax.nn.sigmoid(logits)
        neg_entropy = probs * jax.nn.log_sigmoid(logits) + (1 - probs) * jax.nn.log_sigmoid(-logits)
        return jnp.sum(neg_entropy, axis=-1) + self.num_latents * jnp.log(2.0)

    def evaluate(self, params, images, key=None, num_examples: int | None = None) -> tuple[float, float]:
        """The negative ELBO per image of ``images``, exact by enumeration."""
        del key
        return float(_exact_objective(self, params, jnp.asarray(images, jnp.result_type(float)))), 0.0

    def negative_log_likelihood(self, params, images, key=None) -> tuple[float, float]:
        """−log p(x_n) = −log Σ_b p(b) p(x_n | b) per image of ``images``, exact by enumerating the 2⁸ latent
        states: the measure every training objective (the ELBO, a K-particle bound) is compared by."""
        del key
        return float(_exact_negative_log_likelihood(self, params, jnp.asarray(images, jnp.result_type(float)))), 0.0

    def latent_states(self):
        """All 2^K latent vectors, (2^K, K)."""
        return jnp.asarray(list(itertools.product((0.0, 1.0), repeat=self.num_latents)), jnp.result_type(float))

    def state_log_likelihoods(self, params, images):
        """log p(x_n | b) of every image of ``images`` (N, 64) under every latent state b: (2^K, N)."""
        decoded = _mlp(params["decoder"], self.latent_states())  # (S, 64)
        return jax.nn.log_sigmoid(decoded) @ images.T + jax.nn.log_sigmoid(-decoded) @ (1 - images).T

    def exact_objective(self, params, images):
        """The negative ELBO per image by enumerating every latent state of every image:
        (1/N) Σ_n [Σ_b q(b | x_n) (−log p(x_n | b)) + KL_n]."""
        images = jnp.asarray(images, jnp.result_type(float))
        states = self.latent_states()
        logits = _mlp(params["encoder"], images)  # (N, K)
        log_q = states @ jax.nn.log_sigmoid(logits).T + (1 - states) @ jax.nn.log_sigmoid(-logits).T  # (S, N)
        reconstruction = -self.state_log_likelihoods(params, images)
        expected = jnp.sum(jnp.exp(log_q) * reconstruction, axis=0)  # (N,)
        return jnp.mean(expected + self.kl(params, images))

    def exact_bound(self, params, images, num_particles: int):
        """The K-particle bound of :meth:`bound_objective` (summed over the images) by enumerating every
        K-tuple of latent states of each image, K = 1 or 2 (2⁸ states: 65,536 pairs per image)."""
        if num_particles not in (1, 2):
            raise ValueError(f"The bound is enumerated for K = 1 or 2 particles ({2**self.num_latents}^K tuples per "
                             f"image), got K = {num_particles}.")
        images = jnp.asarray(images, jnp.result_type(float))
        states = self.latent_states()
        logits = _mlp(params["encoder"], images)  # (N, D)
        log_q = states @ jax.nn.log_sigmoid(logits).T + (1 - states) @ jax.nn.log_sigmoid(-logits).T  # (S, N)
        log_w = self.state_log_likelihoods(params, images) - self.num_latents * jnp.log(2.0) - log_q  # (S, N)
        if num_particles == 1:
            return jnp.sum(jnp.exp(log_q) * log_w)
        pair_bound = jnp.logaddexp(log_w[:, None], log_w[None, :]) - jnp.log(2.0)  # (S, S, N)
        return jnp.sum(jnp.exp(log_q[:, None] + log_q[None, :]) * pair_bound)


@functools.partial(jax.jit, static_argnums=0)
def _exact_objective(model: BinaryVAE, params, images):
    return model.exact_objective(params, images)


@functools.partial(jax.jit, static_argnums=0)
def _exact_negative_log_likelihood(model: BinaryVAE, params, images):
    log_prior = -model.num_latents * jnp.log(2.0)
    log_marginal = jax.nn.logsumexp(model.state_log_likelihoods(params, images), axis=0) + log_prior  # (N,)
    return -jnp.mean(log_marginal)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _likelihood_log_weights(model: GaussianVAE, params, images, key, particles):
    """log w = log p(x_n, z) − log q(z | x_n) for ``particles`` particles z of each image, (K, N)."""
    posterior = model.posterior(params, images)
    keys = jax.random.split(key, particles)

    def log_weight(particle_key):
        latents = posterior.sample(particle_key)
        return model.log_joint(params, latents, images) - posterior.example_log_prob(latents, 1)

    return jax.lax.map(log_weight, keys, batch_size=64)


@functools.partial(jax.jit, static_argnums=0)
def _sampled_objectives(model: GaussianVAE, params, images, key):
    objective = model.objective(images)
    dist = objective.distribution(params)
    keys = jax.random.split(key, EVALUATION_SAMPLES)
    return jax.vmap(lambda k: jnp.sum(objective.cost(params, dist.sample(k))))(keys)
