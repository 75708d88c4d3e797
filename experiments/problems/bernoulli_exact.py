r"""Exact moments of the advanced Bernoulli estimators (ARM, DisARM, REBAR, Gumbel-Rao), computed in
NumPy from their formulas, apart from the JAX implementations they check.

For independent coordinates :math:`b_d \sim \mathrm{Bernoulli}(p_d)`, :math:`p = \sigma(\ell)`:

- **ARM and DisARM**, for any cost f of the binary vector: both are functions of one uniform vector u
  whose coordinate d enters only through which of the three intervals cut at :math:`\min(p_d, 1 - p_d)`
  and :math:`\max(p_d, 1 - p_d)` it falls in (the pair :math:`b = \mathbb{1}[u < p]`,
  :math:`\tilde b = \mathbb{1}[u > 1 - p]` is constant there), and, for ARM, through :math:`u_d - \tfrac12`,
  whose conditional mean and second moment on an interval are known.  Enumerating the :math:`3^D`
  interval combinations gives the exact mean and variance of one sample's gradient.
- **REBAR**, for a separable cost :math:`f(b) = \sum_d c(b_d)`: coordinate d of one sample's gradient is
  :math:`X_d + S_{-d} Y_d` with :math:`Y_d = b_d - p_d`, :math:`S_{-d} = \sum_{j \ne d} a_j`,
  :math:`a_j = c(b_j) - \eta\, c(\sigma(\tilde z_j/\lambda))`, and
  :math:`X_d = a_d Y_d + \eta\,(\partial_{\ell_d} c(\sigma(z_d/\lambda))
  - \partial_{\ell_d} c(\sigma(\tilde z_d/\lambda)))`,
  each a function of coordinate d's two uniforms only, so its moments are 2-D integrals (Gauss–Legendre,
  split where b flips) and :math:`S_{-d}` is independent of :math:`(X_d, Y_d)`.
- **Gumbel-Rao** with K conditional draws, separable cost: coordinate d is
  :math:`c'(b_d)\,\frac1K\sum_k h(\tilde z_k)`, :math:`h(z) = \sigma'(z/\tau)/\tau`, the :math:`\tilde z_k`
  i.i.d. given :math:`b_d`; its moments follow from :math:`E[h \mid b]` and :math:`E[h^2 \mid b]`
  (1-D integrals over the uniform's interval for that b).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np
from numpy.polynomial.legendre import leggauss


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def _logit(u):
    return np.log(u) - np.log1p(-u)


def _nodes(low, high, num_nodes):
    """Gauss–Legendre nodes and weights on [low, high]."""
    x, w = leggauss(num_nodes)
    return low + (high - low) * (x + 1) / 2, (high - low) / 2 * w


class Atoms(NamedTuple):
    """A per-sample logit gradient as a finite mixture: with probability ``probability[a]`` it has
    conditional mean ``mean[a]`` and independent coordinates of conditional variance ``variance[a]``
    (zero where the atom fixes the gradient)."""

    probability: np.ndarray  #: (A,)
    mean: np.ndarray  #: (A, D)
    variance: np.ndarray  #: (A, D)


class AntitheticPairs(NamedTuple):
    """The 3^D interval combinations of u that fix the antithetic pair b = 1[u < p], b̃ = 1[u > 1 − p]."""

    probability: np.ndarray  #: (3^D,)
    u_mean: np.ndarray  #: (3^D, D) the midpoint of u's interval (its conditional mean)
    u_variance: np.ndarray  #: (3^D, D) its conditional variance, length² / 12
    b: np.ndarray  #: (3^D, D)
    antithetic: np.ndarray  #: (3^D, D)


def antithetic_pairs(logits) -> AntitheticPairs:
    """Each coordinate's u falls in one of three intervals cut at min(p, 1 − p) and max(p, 1 − p), on
    which the pair is constant; the combinations are enumerated with their probabilities."""
    logits = np.asarray(logits, np.float64)
    p = _sigmoid(logits)
    dim = len(p)
    edges = np.stack([np.zeros(dim), np.minimum(p, 1 - p), np.maximum(p, 1 - p), np.ones(dim)], axis=1)
    lengths, midpoints = np.diff(edges, axis=1), (edges[:, 1:] + edges[:, :-1]) / 2  # (D, 3)
    combos = np.array(list(itertools.product(range(3), repeat=dim)))  # (3^D, D) interval per coordinate
    rows = np.arange(dim)
    probability = np.prod(lengths[rows, combos], axis=1)
    u_mid = midpoints[rows, combos]
    return AntitheticPairs(probability, u_mid, lengths[rows, combos] ** 2 / 12, (u_mid < p).astype(float),
                           (u_mid > 1 - p).astype(float))


def antithetic_atoms(logits, cost) -> dict[str, Atoms]:
    """ARM's and DisARM's per-sample logit gradients as mixtures over the 3^D interval combinations.

    ``cost`` maps an (n, D) array of binary vectors to their n costs.  Given the intervals, DisARM's
    gradient is fixed and ARM's coordinate d is :math:`(f(\tilde b) - f(b))(u_d - \tfrac12)` with
    :math:`u_d` uniform on its interval, independently across d.
    """
    logits = np.asarray(logits, np.float64)
    pairs = antithetic_pairs(logits)
    b, antithetic = pairs.b, pairs.antithetic
    cost_b, cost_antithetic = cost(b), cost(antithetic)
    difference = (cost_antithetic - cost_b)[:, None]
    arm = Atoms(pairs.probability, difference * (pairs.u_mean - 0.5), difference**2 * pairs.u_variance)
    disarm = (
        0.5 * (cost_b - cost_antithetic)[:, None] * (1 - 2 * antithetic) * (b != antithetic) * _sigmoid(np.abs(logits))
    )
    return {"arm": arm, "disarm": Atoms(pairs.probability, disarm, np.zeros_like(disarm))}


def atom_moments(atoms: Atoms, jacobian=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-coordinate variance of :math:`J^\top g` for the mixture g (``jacobian`` J of shape
    (D, P) maps the logit gradient to P parameter coordinates; None for the logits themselves)."""
    jacobian = np.eye(atoms.mean.shape[1]) if jacobian is None else np.asarray(jacobian, np.float64)
    means = atoms.mean @ jacobian  # (A, P)
    mean = atoms.probability @ means
    second = atoms.probability @ (means**2 + atoms.variance @ jacobian**2)
    return mean, second - mean**2


def antithetic_moments(logits, cost) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Exact (mean, variance) per coordinate of one sample's ARM and DisARM logit gradient.

    ``cost`` maps an (n, D) array of binary vectors to their n costs.
    """
    return {name: atom_moments(atoms) for name, atoms in antithetic_atoms(logits, cost).items()}


def rebar_separable_moments(logits, coordinate_cost, coordinate_cost_derivative, scale: float, temperature: float,
                            num_nodes: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Exact (mean, variance) per coordinate of one sample's REBAR logit gradient, for the separable cost
    ``f(b) = Σ_d coordinate_cost(b_d)`` (vectorized functions of one coordinate, with its derivative)."""
    logits = np.asarray(logits, np.float64)
    moments = []
    for logit in logits:
        p = _sigmoid(logit)
        # u: z = ℓ + logit(u), b = 1[u > 1 - p]; v: z̃ given b, its inverse CDF with derivative dz̃/dℓ.
        pieces = []
        for low, high in ((0.0, 1 - p), (1 - p, 1.0)):
            u, wu = _nodes(low, high, num_nodes)
            v, wv = _nodes(0.0, 1.0, num_nodes)
            u, v = u[:, None], v[None, :]
            weight = wu[:, None] * wv[None, :]
            b = (u > 1 - p).astype(float)
            sign = 2 * b - 1
            z = logit + _logit(u)
            z_tilde = sign * (np.logaddexp(0, sign * logit + np.log(v)) - np.log1p(-v))
            dz_tilde = _sigmoid(sign * logit + np.log(v))
            relaxed, relaxed_tilde = _sigmoid(z / temperature), _sigmoid(z_tilde / temperature)
            d_relaxed = coordinate_cost_derivative(relaxed) * relaxed * (1 - relaxed) / temperature
            d_relaxed_tilde = (coordinate_cost_derivative(relaxed_tilde) * relaxed_tilde * (1 - relaxed_tilde)
                               / temperature * dz_tilde)
            a = coordinate_cost(b) - scale * coordinate_cost(relaxed_tilde)
            y = b - p
            x = a * y + scale * (d_relaxed - d_relaxed_tilde)
            pieces.append([np.sum(weight * q) for q in (a, a**2, x, x**2, x * y)])
        moments.append(np.sum(pieces, axis=0))
    moments = np.array(moments)  # (D, 5): E a, E a², E X, E X², E XY
    mean_a, second_a, mean_x, second_x, cross = moments.T
    p = _sigmoid(logits)
    mean_rest = mean_a.sum() - mean_a
    variance_rest = (second_a - mean_a**2).sum() - (second_a - mean_a**2)
    second = second_x + 2 * mean_rest * cross + (variance_rest + mean_rest**2) * p * (1 - p)
    return mean_x, second - mean_x**2


def gumbel_rao_separable_moments(logits, coordinate_cost_derivative, temperature: float, num_conditional: int,
                                 num_nodes: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Exact (mean, variance) per coordinate of one sample's Gumbel-Rao logit gradient with K =
    ``num_conditional`` draws, for a separable cost with coordinate derivative ``coordinate_cost_derivative``."""
    means, variances = [], []
    for logit in np.asarray(logits, np.float64):
        p = _sigmoid(logit)
        mean, second = 0.0, 0.0
        for b, (low, high) in ((0.0, (0.0, 1 - p)), (1.0, (1 - p, 1.0))):
            u, w = _nodes(low, high, num_nodes)
            relaxed = _sigmoid((logit + _logit(u)) / temperature)
            h = relaxed * (1 - relaxed) / temperature
            probability = high - low
            h_mean, h_second = w @ h / probability, w @ h**2 / probability
            slope = coordinate_cost_derivative(b)
            mean += probability * slope * h_mean
            second += probability * slope**2 * (h_mean**2 + (h_second - h_mean**2) / num_conditional)
        means.append(mean)
        variances.append(second - mean**2)
    return np.array(means), np.array(variances)


def _spacing_count_moments(q: float, num_samples: int) -> tuple[Fraction, ...]:
    """E[K^r], r = 0…4, K the number of ARMS's L coupled uniforms at or below q, in exact arithmetic.

    :math:`u_i \\le q \\iff d_i \\ge a = 1 - q^{1/(L-1)}` for the uniform spacings d, and
    :math:`P(d_i \\ge a \\text{ for } r \\text{ given } i) = (1 - r a)_+^{L-1}`, so the factorial
    moments are :math:`E[K^{\\underline r}] = L^{\\underline r} (1 - r a)_+^{L-1}`, and the raw ones follow
    through the Stirling numbers of the second kind.  The float a is exact as a rational, so no sum
    cancels: this holds at any L."""
    gap = Fraction(-math.expm1(math.log(q) / (num_samples - 1)))
    falling = [Fraction(math.perm(num_samples, r)) * max(1 - r * gap, Fraction(0)) ** (num_samples - 1)
               for r in range(5)]
    stirling = [[1], [0, 1], [0, 1, 1], [0, 1, 3, 1], [0, 1, 7, 6, 1]]
    return tuple(sum((s * falling[j] for j, s in enumerate(row)), Fraction(0)) for row in stirling)


def arms_separable_variance(logits, cost_difference, num_samples: int) -> np.ndarray:
    r"""Exact per-coordinate variance of the L-sample ARMS logit gradient for a separable cost
    :math:`f(b) = \sum_d c_d(b_d)`, given :math:`\Delta_d = c_d(1) - c_d(0)`.

    With :math:`y_i = b_{i,d} - p_d` and n the number of ones among coordinate d's L samples,
    :math:`\sum_i (f_i - \bar f)\,y_i = \Delta_d\,Q_d + \sum_i S_{i}\,(y_i - \bar y)`, where
    :math:`Q_d = \sum_i y_i (y_i - \bar y) = n(L - n)/L` and :math:`S_i` is sample i's cost over the other
    coordinates, independent of coordinate d and exchangeable over i.  The cross term has mean zero given
    coordinate d, so with :math:`k_d = p_d(1-p_d)/(q_d - C_d)` (:math:`q = \min(p, 1-p)`, C the copula's
    diagonal),

    .. math::
        \mathrm{Var}\,\hat g_d = \frac{k_d^2}{(L-1)^2}\Big(\Delta_d^2\,\mathrm{Var}\,Q_d
        + E[Q_d] \sum_{j \ne d} \Delta_j^2\,(q_j - C_j)\Big),

    :math:`q_j - C_j = E[c_j(b_{1j})^2] - E[c_j(b_{1j}) c_j(b_{2j})]` over \Delta_j^2.  Q is symmetric in
    n ↔ L − n, so its moments are those of K = #{u_i ≤ q} (:func:`_spacing_count_moments`) whichever
    side of ½ p lies."""
    if num_samples < 2:
        raise ValueError(f"ARMS needs at least 2 samples, got {num_samples}.")
    p = _sigmoid(np.asarray(logits, np.float64))
    cost_difference = np.broadcast_to(np.asarray(cost_difference, np.float64), p.shape)
    size = Fraction(num_samples)
    q_mean, q_variance, q_gap = [], [], []
    for p_d in p:
        k1, k2, k3, k4 = _spacing_count_moments(min(p_d, 1 - p_d), num_samples)[1:]
        mean = (size * k1 - k2) / size  # E[K(L − K)] / L
        second = (size**2 * k2 - 2 * size * k3 + k4) / size**2
        q_mean.append(float(mean))
        q_variance.append(float(second - mean**2))
        q_gap.append(float(mean) / (num_samples - 1))  # E[Q] = (L − 1)(q − C)
    q_mean, q_variance, q_gap = map(np.array, (q_mean, q_variance, q_gap))
    decorrelation = p * (1 - p) / q_gap
    others = np.sum(cost_difference**2 * q_gap) - cost_difference**2 * q_gap
    return (decorrelation / (num_samples - 1)) ** 2 * (cost_difference**2 * q_variance + q_mean * others)
