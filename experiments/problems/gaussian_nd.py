r"""The D-dimensional Gaussian quadratic, :math:`f(x) = \lVert x - k \rVert^2`, with exact answers.

With :math:`x_d = \mu_d + \sigma_d \epsilon_d` independent and :math:`a_d = \mu_d - k_d`, the gradient
is :math:`\partial_{\mu_d} F = 2 a_d`, :math:`\partial_{\sigma_d} F = 2 \sigma_d`.  Per sample, the
pathwise estimator sees only its own coordinate, with variances :math:`4\sigma_d^2` (μ) and
:math:`4 a_d^2 + 8 \sigma_d^2` (σ), independent of D.  The score function multiplies the whole cost
:math:`f = f_d + R_d` by the score of coordinate d, where :math:`R_d = \sum_{j \ne d} (x_j - k_j)^2` is
independent of :math:`\epsilon_d`, so with :math:`m_j = a_j^2 + \sigma_j^2` and
:math:`v_j = 4 a_j^2 \sigma_j^2 + 2 \sigma_j^4` (the mean and variance of :math:`(x_j - k_j)^2`),
:math:`E R_d = \sum_{j \ne d} m_j` and :math:`E R_d^2 = \sum_{j \ne d} v_j + (E R_d)^2`:

.. math::

    \mathrm{Var}_{\mu_d} &= \big[a^4 + 18 a^2\sigma^2 + 15\sigma^4
        + 2\,E R_d\,(a^2 + 3\sigma^2) + E R_d^2\big] / \sigma^2 - 4a^2, \\
    \mathrm{Var}_{\sigma_d} &= \big[2a^4 + 60 a^2\sigma^2 + 78\sigma^4
        + 2\,E R_d\,(2a^2 + 10\sigma^2) + 2\,E R_d^2\big] / \sigma^2 - 4\sigma^2,

with :math:`a = a_d, \sigma = \sigma_d`, from the standard normal moments 1, 3, 15, 105.  The score
function's variance grows with D through :math:`E R_d^2`, quadratically; the pathwise one does not.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from estimators import Normal, Objective
from experiments.problems.base import Problem, iid_variance


def exact_per_sample_variances(mu: np.ndarray, sigma: np.ndarray, k: np.ndarray) -> dict:
    """Per-coordinate, per-sample variances of both estimators (closed form, see the module doc)."""
    a, s2 = mu - k, sigma**2
    m, v = a**2 + s2, 4 * a**2 * s2 + 2 * s2**2
    rest_mean = m.sum() - m
    rest_second_moment = (v.sum() - v) + rest_mean**2
    score_loc = (a**4 + 18 * a**2 * s2 + 15 * s2**2 + 2 * rest_mean * (a**2 + 3 * s2) + rest_second_moment) / s2
    score_scale = (
        2 * a**4 + 60 * a**2 * s2 + 78 * s2**2 + 2 * rest_mean * (2 * a**2 + 10 * s2) + 2 * rest_second_moment
    ) / s2
    return {
        "pathwise": {"loc": 4 * s2, "scale": 4 * a**2 + 8 * s2},
        "score_function": {"loc": score_loc - 4 * a**2, "scale": score_scale - 4 * s2},
    }


def gaussian_quadratic_nd(dim: int, k: float = 0.5) -> Problem:
    """‖x − k‖² under N(μ, diag σ²) in ``dim`` dimensions, μ spread over [−1, 1] and σ over [0.5, 1.5]
    so that every coordinate differs."""
    mu = np.linspace(-1.0, 1.0, dim)
    sigma = np.linspace(0.5, 1.5, dim) if dim > 1 else np.ones(1)
    shift = np.full(dim, k)
    dtype = jnp.result_type(float)
    params = {"loc": jnp.asarray(mu, dtype), "scale": jnp.asarray(sigma, dtype)}
    shift_device = jnp.asarray(shift, dtype)
    objective = Objective(
        dist=lambda p: Normal(p["loc"], p["scale"]),
        cost=lambda p, x: jnp.sum((x - shift_device) ** 2),
    )
    variances = exact_per_sample_variances(mu, sigma, shift)
    return Problem(
        name=f"gaussian_quadratic_{dim}d",
        description=f"f(x) = ||x - {k:g}||², x ~ N(μ, diag σ²) in {dim} dimensions",
        objective=objective,
        params=params,
        exact_grad={"loc": 2 * (mu - shift), "scale": 2 * sigma},
        exact_variances={name: iid_variance(v) for name, v in variances.items()},
    )
