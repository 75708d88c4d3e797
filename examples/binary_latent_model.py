"""Which gradient estimator for a model with binary latents?  Every applicable one, ranked.

    python examples/binary_latent_model.py                  # about a minute on 2 CPU cores

or, as a run folder with figures that ``python -m analysis.report`` turns into a report:

    cd examples && python -m experiments.run compare --objective binary_latent_model:make_objective \\
        --num-samples 2,8

A binary-latent VAE (a sigmoid belief net with an amortized posterior) in plain JAX: q(b | x) has 16
independent Bernoulli latents with logits linear in the image, p(x | b) Bernoulli pixels with logits linear
in b, a uniform prior; the loss of a minibatch of 32 digits is each image's negative ELBO
log q(b | x) − log p(x, b).  Pathwise gradients do not exist here: the candidates are the score function
with its baselines, the antithetic (ARM, DisARM, ARMS), relaxation-based (REBAR, RELAX, Gumbel-Rao),
enumerating (IndeCateR), without-replacement (unordered set) and straight-through families.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from sklearn.datasets import load_digits

import estimators as est
import experiments

NUM_LATENTS = 16
BATCH_SIZE = 32


def init_params(key):
    encoder_key, decoder_key = jax.random.split(key)
    return {
        "encoder": {"w": 0.1 * jax.random.normal(encoder_key, (64, NUM_LATENTS)), "b": jnp.zeros(NUM_LATENTS)},
        "decoder": {"w": 0.1 * jax.random.normal(decoder_key, (NUM_LATENTS, 64)), "b": jnp.zeros(64)},
    }


def make_objective():
    """The minibatch's negative ELBO as an :class:`estimators.Objective` of the parameters."""
    images = jnp.asarray(load_digits().data[:BATCH_SIZE] >= 8, jnp.float32)

    def encoder_logits(p):
        return images @ p["encoder"]["w"] + p["encoder"]["b"][None, :]

    def cost(p, latents):  # one value per image: log q(b | x) − log p(x | b) − log p(b)
        logits = latents @ p["decoder"]["w"] + p["decoder"]["b"][None, :]
        log_likelihood = jnp.sum(images * logits - jnp.logaddexp(0.0, logits), axis=-1)
        q_logits = encoder_logits(p)
        log_q = jnp.sum(latents * q_logits - jnp.logaddexp(0.0, q_logits), axis=-1)
        return log_q - log_likelihood + NUM_LATENTS * jnp.log(2.0)

    objective = est.Objective(dist=lambda p: est.Bernoulli(logits=encoder_logits(p)), cost=cost, batch_ndims=1)
    return objective, init_params(jax.random.key(0))


def main(budget_seconds: float = 45.0, **options) -> experiments.Comparison:
    objective, params = make_objective()
    options.setdefault("num_samples", (2, 8))
    result = experiments.compare(objective, params, jax.random.key(0), budget_seconds=budget_seconds, **options)
    print(result)
    return result


if __name__ == "__main__":
    main()
