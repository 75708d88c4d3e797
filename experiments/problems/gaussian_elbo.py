r"""A variational objective whose cost depends on the parameters: the negative ELBO of a one-dimensional
Poisson latent model, with exact answers.

The model has a latent :math:`z \sim \mathcal N(0, 1)` and a count :math:`y \mid z \sim
\mathrm{Poisson}(e^{w z})`; the variational posterior is :math:`q(z) = \mathcal N(\mu, \sigma^2)`.  The
parameters are ``{"loc": μ, "scale": σ, "weight": w}``: two of the distribution and one of the model
only, like a VAE's encoder and decoder.  The cost of one sample is

.. math::

    f(\theta, z) = \log q(z; \mu, \sigma) - \log \mathcal N(z; 0, 1) - \log \mathrm{Poisson}(y; e^{w z}),

so every estimator needs the direct term :math:`E[\nabla_\theta f]`: for w it is the whole gradient,
for μ and σ it has mean zero (it is the score) but changes the variance.  With
:math:`E = E_q e^{w z} = e^{w\mu + w^2\sigma^2/2}`, the objective is
:math:`F = -\log\sigma - \tfrac12 + \tfrac12(\mu^2 + \sigma^2) - y w \mu + E + \log y!` and

.. math::

    \partial_\mu F = \mu - y w + w E, \qquad \partial_\sigma F = -\tfrac1\sigma + \sigma + w^2 \sigma E,
    \qquad \partial_w F = -y\mu + (\mu + w\sigma^2) E.

With :math:`z = \mu + \sigma\epsilon` and :math:`e = e^{w z}`, the per-sample gradients are

- pathwise: :math:`z - y w + w e` (μ), :math:`-\tfrac1\sigma + \epsilon\,(z - y w + w e)` (σ),
  :math:`z (e - y)` (w);
- score function: :math:`(f + 1)\,\epsilon/\sigma` (μ), :math:`(f + 1)(\epsilon^2 - 1)/\sigma` (σ),
  :math:`z (e - y)` (w), where the 1 is the direct term :math:`\nabla_\theta \log q`, the score itself;

their exact variances, and the leave-one-out baseline's (a U-statistic whose kernel carries the direct
term), come from Gauss–Hermite quadrature in ε.  The cost is not quadratic in z, so the delta method's
Taylor control variate is not exact here.

Reference: Mohamed, Rosca, Figurnov & Mnih, *Monte Carlo Gradient Estimation in Machine Learning*,
JMLR 2020, section 8 (the ELBO and its direct term).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.scipy.stats
import numpy as np

from estimators import Normal, Objective
from experiments.problems.base import Problem, iid_variance, u_statistic_variance
from experiments.problems.gaussian_1d import leave_one_out_zetas_by_quadrature, noise_variance, scores


def _exact_grad(mu: float, sigma: float, w: float, y: int) -> dict[str, np.float64]:
    expected_rate = math.exp(w * mu + w**2 * sigma**2 / 2)
    return {
        "loc": np.float64(mu - y * w + w * expected_rate),
        "scale": np.float64(-1 / sigma + sigma + w**2 * sigma * expected_rate),
        "weight": np.float64(-y * mu + (mu + w * sigma**2) * expected_rate),
    }


def gaussian_elbo(mu: float = 0.8, sigma: float = 0.6, weight: float = 0.6, count: int = 3) -> Problem:
    """The negative ELBO of the Poisson latent model above at q = N(mu, sigma²), model weight ``weight``
    and observed ``count``."""
    dtype = jnp.result_type(float)
    params = {"loc": jnp.asarray(mu, dtype), "scale": jnp.asarray(sigma, dtype), "weight": jnp.asarray(weight, dtype)}
    log_count_factorial = math.lgamma(count + 1)
    # The exact answers are at the parameters as stored (0.8 in float32 is 0.800000012).
    mu, sigma, weight = (float(params[name]) for name in ("loc", "scale", "weight"))

    def cost(p, z):
        q = Normal(p["loc"], p["scale"])
        log_prior = jax.scipy.stats.norm.logpdf(z)
        log_likelihood = count * p["weight"] * z - jnp.exp(p["weight"] * z) - log_count_factorial
        return q.log_prob(z) - log_prior - log_likelihood

    objective = Objective(dist=lambda p: Normal(p["loc"], p["scale"]), cost=cost)

    z = lambda eps: mu + sigma * eps
    rate = lambda eps: np.exp(weight * z(eps))
    f = lambda eps: (
        -math.log(sigma) - eps**2 / 2 + z(eps) ** 2 / 2 - count * weight * z(eps) + rate(eps) + log_count_factorial
    )
    path = lambda eps: z(eps) - count * weight + weight * rate(eps)
    weight_term = lambda eps: z(eps) * (rate(eps) - count)
    score = scores(sigma)
    per_sample = {
        "pathwise": {"loc": path, "scale": lambda eps: -1 / sigma + eps * path(eps), "weight": weight_term},
        "score_function": {
            "loc": lambda eps: (f(eps) + 1) * score["loc"](eps),
            "scale": lambda eps: (f(eps) + 1) * score["scale"](eps),
            "weight": weight_term,
        },
    }
    variances = {
        estimator: iid_variance({name: np.float64(noise_variance(g)) for name, g in grads.items()})
        for estimator, grads in per_sample.items()
    }
    zero_score = {"weight": lambda eps: 0.0 * eps}
    variances["score_function_loo"] = u_statistic_variance(*leave_one_out_zetas_by_quadrature(
        f, {**score, **zero_score}, {**score, "weight": weight_term}))
    return Problem(
        name="gaussian_elbo",
        description=f"negative ELBO, z ~ N(0,1), y={count} ~ Poisson(exp(w z)), q = N({mu:g}, {sigma:g}²), "
        f"w = {weight:g}",
        objective=objective,
        params=params,
        exact_grad=_exact_grad(mu, sigma, weight, count),
        exact_variances=variances,
    )
