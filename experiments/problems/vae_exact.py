r"""Exact variances on the binary VAE, image by image, by enumerating each image's :math:`2^8` latent states.

With per-example costs the estimate is a sum over the N images of independent terms (the images'
latents are independent), so each coordinate's variance is the sum over images.  For image n, with
:math:`p_n = \sigma(\ell_n)` its encoder's probabilities, :math:`J_n = \partial \ell_n / \partial \theta_{enc}`
(8 × P) and :math:`f_n(b) = [-\log p(x_n \mid b) + \mathrm{KL}_n] / N`:

- the encoder's per-sample gradient is :math:`J_n^\top g_n` plus the KL's gradient, a constant; g_n is
  the logit gradient of the estimator (score function: :math:`f_n(b)(b - p_n)`; ARM, DisARM: their
  antithetic formulas over the :math:`3^8` interval combinations), so its variance is
  :math:`\mathrm{diag}(J_n^\top \mathrm{Cov}(g_n) J_n)` from 8 × 8 moments
  (:class:`~experiments.problems.plate_exact.LinearLaw`,
  :func:`~experiments.problems.plate_exact.mapped_mixture_moments`);
  leave-one-out is a U-statistic whose :math:`\zeta_1, \zeta_2` come from the same moments;
- the decoder's is the direct term :math:`\nabla_{dec} f_n(b)` (score function, leave-one-out) or
  :math:`\tfrac12(\nabla_{dec} f_n(b) + \nabla_{dec} f_n(\tilde b))` (ARM, DisARM), enumerated over the
  256 states (and the pairs (b, b̃) the intervals give).

Everything is computed in float64 at the problem's parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from experiments.problems.base import iid_variance, u_statistic_variance
from experiments.problems.bernoulli_exact import antithetic_pairs
from experiments.problems.plate_exact import LinearLaw, mapped_mixture_moments
from experiments.problems.vae import BinaryVAE, _mlp, bernoulli_log_likelihood


def _float64(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), tree)


def binary_vae_exact_variances(model: BinaryVAE, params, images) -> dict:
    """Registry name -> variance function of L (a params pytree) for score_function,
    score_function_loo, arm and disarm with per-example costs."""
    with jax.enable_x64(True):
        params, images = _float64(params), jnp.asarray(images, jnp.float64)
        num_images = images.shape[0]
        encoder_flat, unravel_encoder = ravel_pytree(params["encoder"])
        decoder_flat, unravel_decoder = ravel_pytree(params["decoder"])
        states = model.latent_states().astype(jnp.float64)  # (S, K), the first latent most significant

        @jax.jit
        def enumerated(params, images):  # one program, not an eager compilation per operation
            logits = _mlp(params["encoder"], images)  # (N, K)
            jacobians = jax.jacrev(lambda w: _mlp(unravel_encoder(w), images))(encoder_flat)  # (N, K, P)
            decoded = _mlp(params["decoder"], states)  # (S, 64)
            reconstruction = -jax.vmap(lambda x: bernoulli_log_likelihood(decoded, x[None, :]))(images)  # (N, S)
            return logits, jacobians, decoded, reconstruction, model.kl(params, images)

        logits, jacobians, decoded, reconstruction, kl = enumerated(params, images)
        logits, jacobians, reconstruction, kl = (np.asarray(x) for x in (logits, jacobians, reconstruction, kl))

        def decoder_direct(image):
            """∇_dec f_n at every state: the decoder's vector-Jacobian product with ∂f_n/∂logits / N."""
            def one_state(state, residual):
                _, pullback = jax.vjp(lambda w: _mlp(unravel_decoder(w), state), decoder_flat)
                return pullback(residual)[0]

            residuals = (jax.nn.sigmoid(decoded) - image[None, :]) / num_images
            return jax.vmap(one_state)(states, residuals)

        decoder_direct = jax.jit(decoder_direct)
        state_list = np.asarray(states)
        powers = 2 ** np.arange(model.num_latents - 1, -1, -1)
        totals = {name: [0.0, 0.0] for name in ("score_function", "arm", "disarm")}
        zetas = [0.0, 0.0, 0.0, 0.0]  # encoder ζ₁, ζ₂; decoder ζ₁, ζ₂
        for n in range(num_images):
            p = 1 / (1 + np.exp(-logits[n]))
            probability = np.prod(np.where(state_list == 1, p, 1 - p), axis=1)
            costs = (reconstruction[n] + kl[n]) / num_images
            law = LinearLaw(probability, costs, state_list - p, jacobians[n])
            direct = np.asarray(decoder_direct(images[n]))  # (S, P_dec)
            direct_mean = probability @ direct
            direct_variance = probability @ direct**2 - direct_mean**2
            totals["score_function"][0] += law.score_function_moments()[1]
            totals["score_function"][1] += direct_variance
            zeta1, zeta2 = law.leave_one_out_zetas()
            zetas[0], zetas[1] = zetas[0] + zeta1, zetas[1] + zeta2
            zetas[2], zetas[3] = zetas[2] + direct_variance / 4, zetas[3] + direct_variance / 2
            pairs = antithetic_pairs(logits[n])
            index_b, index_antithetic = pairs.b @ powers, pairs.antithetic @ powers
            cost_b, cost_antithetic = costs[index_b.astype(int)], costs[index_antithetic.astype(int)]
            difference = (cost_antithetic - cost_b)[:, None]
            arm_means, arm_variances = difference * (pairs.u_mean - 0.5), difference**2 * pairs.u_variance
            disarm = (0.5 * (cost_b - cost_antithetic)[:, None] * (1 - 2 * pairs.antithetic)
                      * (pairs.b != pairs.antithetic) / (1 + np.exp(-np.abs(logits[n]))))
            paired = _paired_direct_variance(
                pairs.probability, index_b.astype(int), index_antithetic.astype(int), direct
            )
            for name, means, variances in (("arm", arm_means, arm_variances), ("disarm", disarm, None)):
                variances = np.zeros_like(means) if variances is None else variances
                totals[name][0] += mapped_mixture_moments(pairs.probability, means, variances, jacobians[n])[1]
                totals[name][1] += paired

    def as_params(encoder, decoder):
        return {"encoder": unravel_encoder(encoder), "decoder": unravel_decoder(decoder)}

    variances = {name: iid_variance(jax.tree_util.tree_map(np.asarray, as_params(*parts)))
                 for name, parts in totals.items()}
    variances["score_function_loo"] = u_statistic_variance(
        jax.tree_util.tree_map(np.asarray, as_params(zetas[0], zetas[2])),
        jax.tree_util.tree_map(np.asarray, as_params(zetas[1], zetas[3])))
    return variances


def _paired_direct_variance(probability, index_b, index_antithetic, direct):
    """Per-coordinate variance of ½(D[b] + D[b̃]) over the interval combinations, through the 256 × 256
    law of the pair (b, b̃)."""
    size = direct.shape[0]
    pair = np.zeros((size, size))
    np.add.at(pair, (index_b, index_antithetic), probability)
    first, second = pair.sum(axis=1), pair.sum(axis=0)
    mean = 0.5 * (first @ direct + second @ direct)
    square = 0.25 * (first @ direct**2 + 2 * np.sum(direct * (pair @ direct), axis=0) + second @ direct**2)
    return square - mean**2

