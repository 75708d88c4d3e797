r"""ARMS: antithetic REINFORCE with L mutually antithetic samples, for Bernoulli latents.

Leave-one-out REINFORCE draws its L samples independently; ARMS (Dimitriev & Zhou 2021) draws them
negatively correlated, per coordinate, through a Dirichlet copula, and corrects the baseline for the
correlation so that the estimate stays unbiased.  For each coordinate (and example), with
:math:`p = \sigma(\ell)`:

- :math:`d \sim \mathrm{Dirichlet}(1, \dots, 1)` over the L samples (L exponentials, sample i's drawn
  from its own key, divided by their sum), and :math:`u_i = (1 - d_i)^{L-1}`, uniform on (0, 1) and
  negatively dependent: :math:`P(u_i \le a, u_j \le c) = C(a, c) = (a^{1/(L-1)} + c^{1/(L-1)} - 1)_+^{L-1}`;
- :math:`b_i = \mathbb{1}[u_i < p]` where p < ½, and :math:`b_i = \mathbb{1}[1 - u_i < p]` otherwise (the
  copula is most antithetic in its lower tail, so the rarer outcome is drawn there), each
  Bernoulli(p);
- with q = min(p, 1 − p) and ρ the correlation of two samples' :math:`b`,
  :math:`1/(1 - \rho) = p(1-p) / (q - C(q, q))`, and

  .. math::

      \hat g_\ell = \frac{1}{(L-1)(1-\rho)} \sum_{i=1}^L \big(f(b_i) - \bar f\big)(b_i - p),
      \qquad \bar f = \frac1L \sum_j f(b_j).

Unbiased: :math:`E[f(b_j)(b_{i,d} - p_d)] = \rho_d\, \partial_{\ell_d} F` for j ≠ i (coordinate d of b_j is
the only part of it correlated with :math:`b_{i,d}`), which the factor :math:`1/(1 - \rho)` corrects; with
independent samples (ρ = 0) it is leave-one-out REINFORCE.  At L = 2 the pair is antithetic (u, 1 − u) and
the estimate, a function of the pair alone, is DisARM's with one pair (their exact variances agree:
tests/test_reproductions.py).  L evaluations of the cost, L ≥ 2.  The samples are
coupled, so an L-sample estimate is not the mean of per-sample terms.  A cost that depends on θ adds
:math:`\frac1L\sum_i \nabla_\theta f(\theta, b_i)`; the value is :math:`\bar f`.  With independent examples
(``Objective(..., batch_ndims=B)``) each example's samples are coupled among themselves and its logits
weighted by its own costs.

Reference: Dimitriev & Zhou, *ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary Variables*, ICML
2021 (the Dirichlet-copula estimator, ARMS-D).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from estimators.arm import unsupported
from estimators.base import EstimatorInfo, GradientEstimator, estimator_dataclass, sample_keys, surrogate_estimate
from estimators.registry import register


def dirichlet_copula_uniforms(keys: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """L uniforms per entry of ``shape`` (leading axis L, one per key), mutually antithetic:
    :math:`u_i = (1 - d_i)^{L-1}`, d the L exponentials of the keys divided by their sum."""
    exponentials = jax.vmap(lambda k: jax.random.exponential(k, shape, dtype))(keys)
    shares = exponentials / jnp.sum(exponentials, axis=0, keepdims=True)
    return jnp.exp((keys.shape[0] - 1) * jnp.log1p(-shares))


def copula_diagonal(q: jax.Array, num_samples: int) -> jax.Array:
    """:math:`C(q, q) = P(u_i \\le q, u_j \\le q)` of two of the Dirichlet copula's L uniforms, written
    :math:`\\exp((L-1)\\log(1 + 2\\,\\mathrm{expm1}(\\log q / (L-1))))` so that it keeps float32's precision at
    L = 1024 (where :math:`q^{1/(L-1)}` is within 1e-3 of 1)."""
    shortfall = 2 * jnp.expm1(jnp.log(q) / (num_samples - 1))  # 2 q^(1/(L-1)) - 2, in (-2, 0]
    positive = shortfall > -1
    return jnp.where(positive, jnp.exp((num_samples - 1) * jnp.log1p(jnp.where(positive, shortfall, 0))), 0.0)


def decorrelation(p: jax.Array, num_samples: int) -> jax.Array:
    """:math:`1/(1 - \\rho) = p(1-p) / (q - C(q, q))`, q = min(p, 1 − p), ρ the correlation of two samples."""
    q = jnp.minimum(p, 1 - p)
    return jnp.where(q > 0, (1 - q) / (1 - copula_diagonal(q, num_samples) / jnp.where(q > 0, q, 1)), 1.0)


@register("arms", family="antithetic")
@estimator_dataclass
class ARMS(GradientEstimator):
    r"""ARMS: :math:`\frac{1}{(L-1)(1-\rho)}\sum_i (f(b_i) - \bar f)(b_i - p)` over L Bernoulli samples coupled
    by a Dirichlet copula.  Unbiased; L ≥ 2.  See :mod:`estimators.arms`."""

    info = EstimatorInfo("arms", min_num_samples=2)

    def supports(self, dist):
        return unsupported(dist)

    def estimate(self, objective, params, key, num_samples, state):
        logits = jax.lax.stop_gradient(objective.distribution(params).logits)
        p = jax.nn.sigmoid(logits)[None]  # broadcast against the L samples
        u = dirichlet_copula_uniforms(sample_keys(key, num_samples), logits.shape, logits.dtype)
        b = jnp.where(p < 0.5, u < p, 1 - u < p).astype(logits.dtype)  # (L, *logits.shape)

        def surrogate(q):
            costs = objective.costs(q, b)  # (L, *batch_shape)
            weights = jax.lax.stop_gradient(costs)  # example n's costs for its logits:
            weights = weights.reshape(weights.shape + (1,) * (b.ndim - weights.ndim))
            centred = weights - jnp.mean(weights, axis=0, keepdims=True)
            scale = decorrelation(p[0], num_samples) / (num_samples - 1)
            logit_grad = jax.lax.stop_gradient(scale * jnp.sum(centred * (b - p), axis=0))
            value = jnp.mean(objective.sum_examples(costs))
            return jnp.sum(logit_grad * objective.distribution(q).logits) + value, value

        return surrogate_estimate(surrogate, params, state)
