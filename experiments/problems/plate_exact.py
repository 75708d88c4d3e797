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

from collections.abc import Sequence
from typing import NamedTuple

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


class LinearLaw(NamedTuple):
    r"""One example whose score in the parameters is a fixed linear map of a score in few coordinates:
    :math:`u = J^\top s` with s the score in the example's K latent parameters (a Bernoulli's logits)
    and J (K, P) their Jacobian in the P parameters, plus a direct term d that does not depend on the
    latents.  Every moment the estimators need is then a K × K matrix mapped by J, so P may be large
    (a network's weights) without forming an (atoms, P) table.
    """

    probability: np.ndarray  #: (A,)
    cost: np.ndarray  #: (A,)
    score: np.ndarray  #: (A, K) the score in the latent parameters
    jacobian: np.ndarray  #: (K, P)
    direct: np.ndarray | None = None  #: (P,) the latent-independent gradient of the cost, or None

    def _quadratic(self, weights, vectors):
        """diag(Jᵀ E[weights · s sᵀ] J) for per-atom vectors (A, K) and weights (A,)."""
        second = (vectors * (self.probability * weights)[:, None]).T @ vectors  # (K, K)
        return np.einsum("kp,kl,lp->p", self.jacobian, second, self.jacobian)

    def _linear(self, weights):
        return (self.probability * weights) @ self.score @ self.jacobian

    def moments(self) -> dict:
        """The θ-space moments: E u, E u², E a u, E a u², E a² u, E a² u², E a, E a²."""
        a, s = self.cost, self.score
        one = np.ones_like(a)
        return {"u": self._linear(one), "uu": self._quadratic(one, s), "au": self._linear(a),
                "auu": self._quadratic(a, s), "aau": self._linear(a**2), "aauu": self._quadratic(a**2, s),
                "a": self.probability @ a, "aa": self.probability @ a**2}

    def score_function_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of w = a u + d per coordinate."""
        m = self.moments()
        c = 0.0 if self.direct is None else self.direct
        return m["au"] + c, m["aauu"] - m["au"] ** 2

    def leave_one_out_zetas(self) -> tuple[np.ndarray, np.ndarray]:
        """ζ₁ and ζ₂ of the leave-one-out U-statistic (the formulas of the module docstring)."""
        m = self.moments()
        c = 0.0 if self.direct is None else self.direct
        mean_w, mean_ww = m["au"] + c, m["aauu"] + 2 * c * m["au"] + c**2
        mean_wa, mean_wu = m["aau"] + c * m["a"], m["auu"] + c * m["u"]
        second = 0.25 * (2 * mean_ww + 2 * mean_w**2 - 4 * (mean_wa * m["u"] + mean_wu * m["a"])
                         + 2 * m["aa"] * m["uu"] + 2 * m["au"] ** 2)
        zeta2 = second - (mean_w - m["a"] * m["u"]) ** 2
        # E[h | Z₁] = ½ Jᵀ[(a − E a) s − a E s] + constant.
        mean_s = self.probability @ self.score
        v = (self.cost - m["a"])[:, None] * self.score - self.cost[:, None] * mean_s
        mean_v = self._linear_of(v)
        zeta1 = 0.25 * (self._quadratic(np.ones_like(self.cost), v) - mean_v**2)
        return zeta1, zeta2

    def _linear_of(self, vectors):
        return self.probability @ vectors @ self.jacobian


def mapped_mixture_moments(probability, means, variances, jacobian) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and per-coordinate variance of :math:`J^\top g` for a mixture g over atoms (conditional means
    (A, K) and independent conditional variances (A, K)), through K × K moments."""
    mean = probability @ means @ jacobian
    second = np.einsum("kp,kl,lp->p", jacobian, (means * probability[:, None]).T @ means, jacobian)
    second = second + (probability @ variances) @ jacobian**2
    return mean, second - mean**2
