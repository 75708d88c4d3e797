"""Which gradient estimator for a Gaussian VAE written with equinox?  Every applicable one, ranked.

    python examples/gaussian_vae_equinox.py                 # about a minute on 2 CPU cores

or, as a run folder with figures that ``python -m analysis.report`` turns into a report:

    cd examples && python -m experiments.run compare --objective gaussian_vae_equinox:make_objective

The model is an ordinary equinox one: an MLP encoder gives q(z | x) = N(μ(x), σ(x)²) over 4 latents, an MLP
decoder gives Bernoulli pixel logits, and the loss of a minibatch of 32 digits is each image's negative ELBO,
−log p(x | z) + KL(q(z | x) ‖ N(0, I)).  Its trainable arrays are split from the rest with
``eqx.partition`` and the objective is written in them, as an optax training step would be.  The images
are independent examples (``batch_ndims=1``): each image's latents are scored by that image's own loss.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from sklearn.datasets import load_digits

import estimators as est
import experiments

NUM_LATENTS = 4
BATCH_SIZE = 32


class VAE(eqx.Module):
    encoder: eqx.nn.MLP
    decoder: eqx.nn.MLP

    def __init__(self, key):
        encoder_key, decoder_key = jax.random.split(key)
        self.encoder = eqx.nn.MLP(64, 2 * NUM_LATENTS, width_size=32, depth=1, key=encoder_key)
        self.decoder = eqx.nn.MLP(NUM_LATENTS, 64, width_size=32, depth=1, key=decoder_key)

    def posterior(self, images):
        out = jax.vmap(self.encoder)(images)
        return out[:, :NUM_LATENTS], jax.nn.softplus(out[:, NUM_LATENTS:]) + 1e-3

    def negative_elbo(self, images, latents):
        """−log p(x | z) + KL(q(z | x) ‖ N(0, I)), one value per image."""
        logits = jax.vmap(self.decoder)(latents)
        log_likelihood = jnp.sum(images * logits - jnp.logaddexp(0.0, logits), axis=-1)
        loc, scale = self.posterior(images)
        kl = jnp.sum(0.5 * (loc**2 + scale**2 - 1.0) - jnp.log(scale), axis=-1)
        return kl - log_likelihood


def make_objective():
    """The minibatch's negative ELBO as an :class:`estimators.Objective` of the model's arrays."""
    images = jnp.asarray(load_digits().data[:BATCH_SIZE] >= 8, jnp.float32)
    params, static = eqx.partition(VAE(jax.random.key(0)), eqx.is_inexact_array)

    def posterior(p):
        return est.Normal(*eqx.combine(p, static).posterior(images))

    def cost(p, latents):
        return eqx.combine(p, static).negative_elbo(images, latents)

    return est.Objective(dist=posterior, cost=cost, batch_ndims=1), params


def main(budget_seconds: float = 45.0, **options) -> experiments.Comparison:
    objective, params = make_objective()
    result = experiments.compare(objective, params, jax.random.key(0), budget_seconds=budget_seconds, **options)
    print(result)
    return result


if __name__ == "__main__":
    main()
