r"""Exact moments of estimators on objectives with independent examples (plates), in NumPy.

With independent examples the L-sample estimate is a sum over examples of independent terms, one per
example, so its mean and its per-coordinate variance are the sums of the examples' own.  Each example is
described by a finite law over its latents ("atoms": every outcome of a small discrete latent, or
Gauss–Hermite nodes of a Gaussian one, exact for polynomial integrands), and at each atom by the
quantities the estimators combine, already mapped to the shared parameters:

- ``cost`` a: the example's cost :math:`f_n(x)`;
- ``score`` u: :math:`\nabla_\theta \log q_n(x; \theta)`;
- ``direct`` d: :math:`\nabla_\theta f_n(\theta, x)` at fixed x (zero where the cost does not depend on θ).

The score-function estimator's per-sample gradient is :math:`w = a u + d`; the leave-one-out estimator is
a U-statistic of order 2 with kernel :math:`h(Z_1, Z_2) = \tfrac12 (a_1 - a_2)(u_1 - u_2) + \tfrac12 (d_1 + d_2)`
(its average over the pairs of L samples is :math:`\frac1L \sum_i [(f_i - \bar f_{-i}) u_i + d_i]`), whose
:math:`\zeta_1 = \mathrm{Var}\,E[h \mid Z_1]` and :math:`\zeta_2 = \mathrm{Var}\,h` follow from moments of
one atom, with no enumeration of pairs:

.. math::

    E[h \mid Z_1] = \tfrac12 (w_1 + E w - a_1 E u - E a\, u_1), \qquad
    4 E[h^2] = 2 E w^2 + 2 (E w)^2 - 4 (E[w a] E u + E[w u] E a) + 2 E a^2 E u^2 + 2 (E[a u])^2,

all products taken coordinate by coordinate.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class ExampleLaw(NamedTuple):
    """One example's latents as a finite law, with what the estimators see at each atom."""

    probability: np.ndarray  #: (A,) summing to 1
    cost: np.ndarray  #: (A,) the example's cost
    score: np.ndarray  #: (A, P) the example's score in the P flat parameters
    direct: np.ndarray | None = None  #: (A, P) the gradient of its cost at fixed latents, or None for 0

    def per_sample_gradient(self) -> np.ndarray:
        """The score-function estimator's per-sample gradient at each atom, a u + d: (A, P)."""
        gradient = self.cost[:, None] * self.score
        return gradient if self.direct is None else gradient + self.direct


def _expect(probability, values):
    return np.tensordot(probability, values, axes=1)


def mixture_moments(probability, gradient_means, gradient_variances=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-coordinate variance of a per-sample gradient that, with probability ``probability[a]``,
    has conditional mean ``gradient_means[a]`` and conditional variance ``gradient_variances[a]``."""
    mean = _expect(probability, gradient_means)
    second = _expect(probability, gradient_means**2)
    if gradient_variances is not None:
        second = second + _expect(probability, gradient_variances)
    return mean, second - mean**2


def summed_moments(per_example: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of a sum of independent terms, from each term's (mean, variance)."""
    means, variances = zip(*per_example)
    return np.sum(means, axis=0), np.sum(variances, axis=0)


def score_function_moments(examples: Sequence[ExampleLaw]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-coordinate variance of one sample's score-function gradient over all examples."""
    return summed_moments([mixture_moments(e.probability, e.per_sample_gradient()) for e in examples])


def leave_one_out_zetas(example: ExampleLaw) -> tuple[np.ndarray, np.ndarray]:
    """ζ₁ and ζ₂ of one example's leave-one-out U-statistic (see the module docstring)."""
    p, a, u = example.probability, example.cost, example.score
    w = example.per_sample_gradient()
    mean_a, mean_u, mean_w = _expect(p, a), _expect(p, u), _expect(p, w)
    conditional = 0.5 * (w + mean_w - a[:, None] * mean_u - mean_a * u)
    _, zeta1 = mixture_moments(p, conditional)
    second = 0.25 * (2 * _expect(p, w**2) + 2 * mean_w**2
                     - 4 * (_expect(p, w * a[:, None]) * mean_u + _expect(p, w * u) * mean_a)
                     + 2 * _expect(p, a**2) * _expect(p, u**2) + 2 * _expect(p, a[:, None] * u) ** 2)
    mean_h = mean_w - mean_a * mean_u  # ½(E w + E w − 2 E a E u)
    return zeta1, second - mean_h**2


def leave_one_out_zetas_summed(examples: Sequence[ExampleLaw]) -> tuple[np.ndarray, np.ndarray]:
    """ζ₁ and ζ₂ of the sum over independent examples of their U-statistics (same L, so they add)."""
    zetas = [leave_one_out_zetas(e) for e in examples]
    return np.sum([z[0] for z in zetas], axis=0), np.sum([z[1] for z in zetas], axis=0)


def leave_one_out_zetas_by_pairs(example: ExampleLaw) -> tuple[np.ndarray, np.ndarray]:
    """The same ζ₁ and ζ₂ by enumerating every pair of atoms (for checking, and small laws only)."""
    p, a, u = example.probability, example.cost, example.score
    d = np.zeros_like(u) if example.direct is None else example.direct
    kernel = (0.5 * (a[:, None] - a[None, :])[..., None] * (u[:, None] - u[None, :])
              + 0.5 * (d[:, None] + d[None, :]))  # (A, A, P)
    pair = np.outer(p, p)
    mean = np.tensordot(pair, kernel, axes=2)
    zeta2 = np.tensordot(pair, kernel**2, axes=2) - mean**2
    conditional = np.tensordot(kernel, p, axes=([1], [0]))  # E[h | Z₁ = atom], (A, P)
    _, zeta1 = mixture_moments(p, conditional)
    return zeta1, zeta2
