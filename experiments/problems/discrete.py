r"""Discrete toys with exact answers by enumeration: the Bernoulli toy of Tucker et al. (2017) and a
categorical toy.

**Bernoulli toy.** :math:`b_d \sim \mathrm{Bernoulli}(\sigma(\theta_d))`, :math:`f(b) = \sum_d (b_d - t)^2`.
With :math:`p = \sigma(\theta)`, :math:`\partial_{\theta_d} F = p_d(1 - p_d)(1 - 2t)`: a tiny signal
when t is near ½ (t = 0.499), the hard case for high-variance estimators.  Exact per-sample moments
come from enumerating the :math:`2^D` outcomes:

- score function: :math:`f(b)\,(b - p)`;
- straight-through: :math:`2(b - t)\,p(1 - p)`, mean :math:`2(p - t)p(1 - p)`, biased by
  :math:`2p(1-p)(p - \tfrac12)`;
- Gumbel-Softmax and straight-through Gumbel (temperature τ) depend only on each coordinate's logistic
  noise u: with :math:`z = \sigma((\theta + u)/\tau)`, :math:`2(z - t)\,z(1 - z)/\tau` and
  :math:`2(\mathbb{1}[z > \tfrac12] - t)\,z(1 - z)/\tau`, integrated over u by Gauss–Legendre
  quadrature in the uniform variable (split where the indicator jumps), at any temperature;
- decoupled straight-through likewise, with :math:`2(\mathbb{1}[\theta/\tau_f + u > 0] - t)\,z(1 - z)/\tau_b`,
  :math:`z = \sigma(\theta/\tau_b + u)`.

**Categorical toy.** D independent variables with K classes, :math:`x_d` one-hot with probabilities
:math:`p_d = \mathrm{softmax}(\ell_d)`, and :math:`f(x) = \sum_d (v^\top x_d - t)^2` for class values
:math:`v = (0, \tfrac1{K-1}, \dots, 1)`.  :math:`\nabla_{\ell_d} F = p_d \odot (c - p_d^\top c)` with
:math:`c_k = (v_k - t)^2`; the score function's per-sample gradient is :math:`f(x)(x_d - p_d)` and the
straight-through one :math:`(\mathrm{diag}\,p_d - p_d p_d^\top)\,2(v^\top x_d - t)v`, enumerated over
the :math:`K^D` outcomes.

ARMS's L coupled samples have a variance in closed form for the Bernoulli toy's separable cost at any L
(:func:`experiments.problems.bernoulli_exact.arms_separable_variance`).

Sum-and-sample's variance is its sampled term's, enumerated over the outcomes outside its summed set C,
which is ranked as the estimator ranks it (:func:`sum_and_sample_variance`).

Categorical DisARM's variance on the categorical toy's separable cost follows from the law of each variable's
antithetic pair (z, z̃) and the pair's estimate, both functions of (z, z̃) alone
(:func:`categorical_disarm_pairs`, :func:`categorical_disarm_separable_variance`).

The leave-one-out baseline's variance is that of a U-statistic (see
:func:`experiments.problems.base.u_statistic_variance`), from moments of single outcomes.

Reference: Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein, *REBAR: Low-variance, unbiased gradient
estimates for discrete latent variable models*, NeurIPS 2017, section 6.1.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from numpy.polynomial.legendre import leggauss

from estimators import (
    Bernoulli,
    Categorical,
    DecoupledStraightThrough,
    GappedStraightThrough,
    GumbelRao,
    GumbelSoftmax,
    Objective,
    Rebar,
    ReinMax,
    StraightThroughGumbel,
)
from estimators.sum_and_sample import SCORE_FLOOR, SCORE_UNIT
from experiments.problems.base import Problem, iid_variance, u_statistic_variance
from experiments.problems.bernoulli_exact import (
    antithetic_moments,
    arms_separable_variance,
    gumbel_rao_separable_moments,
    rebar_separable_moments,
)


def _moments(probabilities, values):
    """Mean and variance of per-outcome values (outcomes along axis 0) under the outcome probabilities."""
    mean = probabilities @ values
    return mean, probabilities @ (values - mean) ** 2


def _leave_one_out_zetas(probabilities, costs, scores):
    """ζ₁, ζ₂ of the leave-one-out U-statistic with kernel h = ½(f₁ − f₂)(s₁ − s₂).

    Both come from single-outcome moments m(·) = E[·], so the cost is linear in the outcomes: with two
    independent samples, E[h] = m(fs) − m(f)m(s) and
    E[(f₁ − f₂)²(s₁ − s₂)²] = 2m(f²s²) − 4m(f²s)m(s) + 2m(f²)m(s²) − 4m(f)m(fs²) + 4m(fs)²."""
    m = lambda values: probabilities @ values
    f, s = costs[:, None], scores
    mean_cost = m(costs)
    _, zeta1 = _moments(probabilities, 0.5 * (costs - mean_cost)[:, None] * scores)
    kernel_mean = m(f * s) - mean_cost * m(s)
    kernel_second = 0.25 * (2 * m(f**2 * s**2) - 4 * m(f**2 * s) * m(s) + 2 * m(costs**2) * m(s**2)
                            - 4 * mean_cost * m(f * s**2) + 4 * m(f * s) ** 2)
    return zeta1, kernel_second - kernel_mean**2


def _enumerated_answers(probabilities, costs, scores, per_sample):
    """Exact variances for the i.i.d. estimators in ``per_sample`` (name -> (outcomes, n) gradients),
    plus the leave-one-out baseline (from the costs and scores), and the means of the biased ones."""
    variances, means = {}, {}
    for name, gradients in per_sample.items():
        mean, variance = _moments(probabilities, gradients)
        variances[name] = iid_variance(variance)
        means[name] = mean
    variances["score_function_loo"] = u_statistic_variance(
        *_leave_one_out_zetas(probabilities, costs, scores)
    )
    return variances, means


def sum_and_sample_variance(probabilities, costs, scores, class_log_probs, classes, baseline=False):
    """Sum-and-sample's exact variance as a function of L.  Its summed set C is the L − 1 (L − 2 with
    ``baseline``) outcomes of largest ranking score (each variable's class log-probability rounded to a
    multiple of :data:`~estimators.sum_and_sample.SCORE_UNIT`, summed over the variables), ties to the
    lexicographically first, that is the first in the enumeration's order (``classes`` (outcomes, D),
    lexicographic).  Without a baseline the summed part is the same in every estimate, so the variance is that
    of the sampled term, (1 − p(C)) f(z) ∇log p(z), z drawn from the outcomes outside C; with one, b = f(x') of
    an independent x' ~ p enters every term, and the variance is over the pairs (z, x')."""
    floored = np.maximum(np.asarray(class_log_probs, np.float64), SCORE_FLOOR)
    integer_scores = np.round(floored / SCORE_UNIT).astype(np.int64)  # (D, K)
    totals = integer_scores[np.arange(classes.shape[1]), classes].sum(axis=1)
    ranking = np.lexsort((np.arange(len(totals)), -totals))

    def variance(num_samples):
        num_summed = num_samples - 2 if baseline else num_samples - 1
        summed, rest = ranking[:num_summed], ranking[num_summed:]
        weight = 1.0 - probabilities[summed].sum()
        conditional = probabilities[rest] / probabilities[rest].sum()
        if not baseline:
            return _moments(conditional, weight * costs[rest, None] * scores[rest])[1]
        summed_scores = probabilities[summed] @ scores[summed]  # Σ_C ∇p(c), which −b multiplies
        b = costs[:, None, None]  # (x', 1, 1)
        draws = (probabilities[summed] * costs[summed]) @ scores[summed] - b * summed_scores \
            + weight * (costs[rest, None] - b) * scores[rest]  # (x', z, coordinates)
        pair_weights = probabilities[:, None] * conditional[None, :]
        mean = np.tensordot(pair_weights, draws, axes=2)
        return np.tensordot(pair_weights, (draws - mean) ** 2, axes=2)

    return variance


def categorical_disarm_pairs(logits):
    """The law of categorical DisARM's antithetic pair (z, z̃) for one variable in natural order, and its
    estimate per pair before the cost weight: (P, G), P[m, n] = P(z = m, z̃ = n) and G[m, n] ∈ R^K such
    that the pair's estimate in the logits is ½(f(z) − f(z̃)) G[z, z̃].

    Per stick-breaking coordinate i, with s = σ(α_i): both bits 0 with probability (1 − 2s)_+, one of them
    1 with min(s, 1 − s) each, both 1 with (2s − 1)_+.  Below min(z, z̃) both bits are 0 (DisARM's term is
    0); at min(z, z̃) < K − 1, where z ≠ z̃, the stopping sample's bit is 1 and the other's 0 (± σ(|α_i|));
    between min and max only the continuing sample's bit is read (0, then 1 at its own stop).  The
    gradient in the logits is Jᵀ of that in α, J = ∂α/∂ℓ."""
    logits = np.asarray(logits, np.float64)
    num_classes = len(logits)
    tails = np.array([np.logaddexp.reduce(logits[i:]) for i in range(num_classes)])
    alpha = logits[:-1] - tails[1:]
    s = 1 / (1 + np.exp(-alpha))
    both_zero, one_only, both_one = np.maximum(1 - 2 * s, 0), np.minimum(s, 1 - s), np.maximum(2 * s - 1, 0)
    stop = np.append(s, 1.0)  # P(a continuing sample stops at class k | it reached k); class K always stops
    law = np.zeros((num_classes, num_classes))
    factors = np.zeros((num_classes, num_classes, num_classes - 1))
    for m in range(num_classes):
        for n in range(num_classes):
            low, high = min(m, n), max(m, n)
            reach = np.prod(both_zero[:low])
            if m == n:
                law[m, n] = reach * (both_one[m] if m < num_classes - 1 else 1.0)
                continue
            law[m, n] = reach * one_only[low] * np.prod(1 - s[low + 1:high]) * stop[high]
            sign = 1.0 if m < n else -1.0  # +: z stops first (b = 1, b̃ = 0), −: z̃ does
            factors[m, n, low] = sign / (1 + np.exp(-abs(alpha[low])))
            bits = (np.arange(num_classes - 1) == high).astype(float)
            between = (np.arange(num_classes - 1) > low) & (np.arange(num_classes - 1) <= high)
            factors[m, n, between] = -sign * (bits - s)[between]  # +(b − s) where z continues, −(b̃ − s) where z̃ does
    # J[i, k] = ∂α_i/∂ℓ_k = δ_ik − [k > i] e^{ℓ_k} / Σ_{j > i} e^{ℓ_j}.
    jacobian = np.eye(num_classes)[:-1] - np.triu(np.exp(logits[None, :] - tails[1:, None]), k=1)
    return law, factors @ jacobian


def categorical_disarm_separable_variance(logits, class_costs):
    """Categorical DisARM's exact one-pair variance, (D, K), in natural order, for a separable cost
    f(x) = Σ_d c(x_d).  With Δ_e = c(z_e) − c(z̃_e) (mean 0, the pair's samples share a law) and
    G_d = G[z_d, z̃_d]: ĝ_d = ½(Δ_d + Σ_{e≠d} Δ_e) G_d, the other variables independent of variable d, so
    E[ĝ_d²] = ¼(E[Δ_d² G_d²] + Σ_{e≠d} E[Δ_e²] E[G_d²])."""
    pairs = [categorical_disarm_pairs(row) for row in np.asarray(logits, np.float64)]
    delta = np.asarray(class_costs, np.float64)[:, None] - np.asarray(class_costs, np.float64)[None, :]
    spread = np.array([np.sum(law * delta**2) for law, _ in pairs])  # E[Δ_e²]
    variances = []
    for d, (law, gradients) in enumerate(pairs):
        mean = 0.5 * np.einsum("mn,mn,mnk->k", law, delta, gradients)
        second = 0.25 * (np.einsum("mn,mn,mnk->k", law, delta**2, gradients**2)
                         + (spread.sum() - spread[d]) * np.einsum("mn,mnk->k", law, gradients**2))
        variances.append(second - mean**2)
    return np.array(variances)


def _uniform_quadrature(fn, breakpoints=(), num_nodes: int = 400):
    """∫₀¹ fn(u) du by Gauss–Legendre on each piece between the breakpoints."""
    edges = [0.0, *sorted(breakpoints), 1.0]
    nodes, weights = leggauss(num_nodes)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        u = low + (high - low) * (nodes + 1) / 2
        total = total + (high - low) / 2 * (fn(u) @ weights)
    return total


def relaxed_bernoulli_moments(logit: float, target: float, temperature: float, straight_through: bool):
    """Mean and variance of one coordinate's Gumbel-Softmax (or straight-through Gumbel) gradient."""
    def gradient(u):
        z = 1 / (1 + np.exp(-(logit + np.log(u) - np.log1p(-u)) / temperature))
        forward = (z > 0.5).astype(float) if straight_through else z
        return 2 * (forward - target) * z * (1 - z) / temperature

    # Split where logit + logistic(u) = 0: the indicator jumps there, and z is steepest there at low τ.
    middle = [1 / (1 + np.exp(logit))]
    mean = _uniform_quadrature(gradient, middle)
    return mean, _uniform_quadrature(lambda u: gradient(u) ** 2, middle) - mean**2


def decoupled_bernoulli_moments(logit: float, target: float, forward_temperature: float,
                                backward_temperature: float):
    """Mean and variance of one coordinate's decoupled straight-through gradient: the sample
    𝟙[ℓ/τ_f + u > 0] forward, σ'(ℓ/τ_b + u)/τ_b backward, u = log(v/(1 − v)) logistic, by quadrature over v."""
    def gradient(v):
        noise = np.log(v) - np.log1p(-v)
        forward = (logit / forward_temperature + noise > 0).astype(float)
        z = 1 / (1 + np.exp(-(logit / backward_temperature + noise)))
        return 2 * (forward - target) * z * (1 - z) / backward_temperature

    middle = [1 / (1 + np.exp(logit / forward_temperature))]  # where the forward sample jumps
    mean = _uniform_quadrature(gradient, middle)
    return mean, _uniform_quadrature(lambda v: gradient(v) ** 2, middle) - mean**2


def bernoulli_toy(name: str = "bernoulli_toy", target: float = 0.45, dim: int = 5) -> Problem:
    """The Bernoulli toy with logits spread over [−1, 1] in ``dim`` dimensions."""
    logits = np.linspace(-1.0, 1.0, dim)
    p = 1 / (1 + np.exp(-logits))
    outcomes = np.array(list(itertools.product([0.0, 1.0], repeat=dim)))
    probabilities = np.prod(np.where(outcomes == 1, p, 1 - p), axis=1)
    costs = ((outcomes - target) ** 2).sum(axis=1)
    scores = outcomes - p
    per_sample = {
        "score_function": costs[:, None] * scores,
        "straight_through": 2 * (outcomes - target) * p * (1 - p),
        # f(x_{-d}, 1) − f(x_{-d}, 0) = (1 − t)² − t² whatever the sample: the exact gradient every time.
        "measure_valued": np.broadcast_to(p * (1 - p) * ((1 - target) ** 2 - target**2), outcomes.shape),
    }
    per_sample["indecater"] = per_sample["measure_valued"]  # the same estimate for two classes
    variances, means = _enumerated_answers(probabilities, costs, scores, per_sample)
    for estimator_name, (_, variance) in antithetic_moments(logits, lambda b: ((b - target) ** 2).sum(axis=1)).items():
        variances[estimator_name] = iid_variance(variance)
    # ARMS couples its L samples, so its variance is not the per-sample one over L; the cost is separable.
    variances["arms"] = functools.partial(arms_separable_variance, logits, (1 - target) ** 2 - target**2)
    for estimator_name, baseline in (("sum_and_sample", False), ("sum_and_sample_baseline", True)):
        variances[estimator_name] = sum_and_sample_variance(probabilities, costs, scores,
                                                  np.stack([np.log1p(-p), np.log(p)], axis=-1), outcomes.astype(int),
                                                  baseline)

    def coordinate_cost(x):
        return (x - target) ** 2

    def coordinate_cost_derivative(x):
        return 2 * (x - target)

    @functools.cache
    def relaxation_answers(estimator):
        """The estimators whose answers depend on their options (temperatures, REBAR's scale, Gumbel-Rao's
        K): Gumbel-Softmax, straight-through Gumbel and decoupled straight-through by quadrature, REBAR and
        Gumbel-Rao by :mod:`experiments.problems.bernoulli_exact`."""
        if isinstance(estimator, Rebar):
            _, variance = rebar_separable_moments(logits, coordinate_cost, coordinate_cost_derivative,
                                                  estimator.scale, estimator.temperature)
            return None, _as_logits(iid_variance(variance), (dim,))
        if isinstance(estimator, GumbelRao):
            mean, variance = gumbel_rao_separable_moments(logits, coordinate_cost_derivative, estimator.temperature,
                                                          estimator.num_conditional_samples)
            return {"logits": mean}, _as_logits(iid_variance(variance), (dim,))
        if isinstance(estimator, ReinMax):
            return reinmax_answers(estimator, {"logits": p * (1 - p) * (1 - 2 * target)})
        if isinstance(estimator, GappedStraightThrough):  # the two-class categorical with logits (0, ℓ)
            two_class = np.stack([np.zeros(dim), logits], axis=-1)
            class_gradients = np.zeros((dim, 2, 2))
            class_gradients[:, :, 1] = 2 * (np.array([0.0, 1.0]) - target)  # ∂f/∂b at b = 0 and b = 1
            return gapped_answers(estimator, two_class, class_gradients, (dim, 2), column=1)
        if isinstance(estimator, DecoupledStraightThrough):
            moments = np.array([decoupled_bernoulli_moments(logit, target, float(estimator.forward_temperature),
                                                            float(estimator.temperature)) for logit in logits])
            return {"logits": moments[:, 0]}, _as_logits(iid_variance(moments[:, 1]), (dim,))
        if not isinstance(estimator, (GumbelSoftmax, StraightThroughGumbel)):
            return None
        straight_through = isinstance(estimator, StraightThroughGumbel)
        moments = np.array([relaxed_bernoulli_moments(logit, target, estimator.temperature, straight_through)
                            for logit in logits])
        return {"logits": moments[:, 0]}, _as_logits(iid_variance(moments[:, 1]), (dim,))

    dtype = jnp.result_type(float)
    return Problem(
        name=name,
        description=f"f(b) = Σ (b - {target})², b ~ Bernoulli(σ(θ)) in {dim} dimensions",
        # The target is data (a leaf of the objective), so toys that differ only in it share compiled programs.
        objective=Objective(dist=_bernoulli_of_logits,
                            cost=jax.tree_util.Partial(_squared_distance, jnp.asarray(target, dtype))),
        params={"logits": jnp.asarray(logits, dtype)},
        exact_grad={"logits": p * (1 - p) * (1 - 2 * target)},
        exact_variances={name: _as_logits(v, (dim,)) for name, v in variances.items()},
        exact_means={name: {"logits": m} for name, m in means.items() if name != "score_function"},
        exact_for_options=relaxation_answers,
    )


def _bernoulli_of_logits(params):
    return Bernoulli(params["logits"])


def _squared_distance(target, params, sample):
    """The Bernoulli toy's cost Σ (b - t)²."""
    del params
    return jnp.sum((sample - target) ** 2)


def _as_logits(variance, shape):
    """A variance function of L over flat coordinates, as a params pytree ``{"logits": ...}``."""
    return lambda num_samples: {"logits": np.reshape(variance(num_samples), shape)}


def categorical_toy(name: str = "categorical_toy", dim: int = 3, num_categories: int = 4,
                    target: float = 0.45) -> Problem:
    """The categorical toy: ``dim`` variables with ``num_categories`` classes and spread logits."""
    logits = np.linspace(1.0, -1.0, num_categories)[None, :] * np.linspace(0.5, 1.5, dim)[:, None]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    values = np.linspace(0.0, 1.0, num_categories)
    classes = np.array(list(itertools.product(range(num_categories), repeat=dim)))  # (outcomes, dim)
    outcomes = np.eye(num_categories)[classes]  # (outcomes, dim, K) one-hot
    probabilities = np.prod(p[np.arange(dim), classes], axis=1)
    costs = ((outcomes @ values - target) ** 2).sum(axis=1)
    jacobian = np.einsum("dk,kj->dkj", p, np.eye(num_categories)) - np.einsum("dk,dj->dkj", p, p)
    straight_through = np.einsum("dkj,odj->odk", jacobian, 2 * (outcomes @ values - target)[..., None] * values)
    scores = (outcomes - p).reshape(len(costs), -1)
    per_sample = {
        "score_function": costs[:, None] * scores,
        "straight_through": straight_through.reshape(len(costs), -1),
    }
    class_costs = (values - target) ** 2
    exact_grad = p * (class_costs - (p @ class_costs)[:, None])
    # ∇ of (v·x_d − t)² in x_d at class k, for every variable: 2(v_k − t) v.
    class_gradients = np.broadcast_to(2 * (values - target)[:, None] * values[None, :],
                                      (dim, num_categories, num_categories))
    # The cost is separable, so IndeCateR's every estimate is the exact gradient.
    per_sample["indecater"] = np.broadcast_to(exact_grad.reshape(-1), (len(costs), exact_grad.size))
    variances, means = _enumerated_answers(probabilities, costs, scores, per_sample)
    for estimator_name, baseline in (("sum_and_sample", False), ("sum_and_sample_baseline", True)):
        variances[estimator_name] = sum_and_sample_variance(probabilities, costs, scores, np.log(p), classes, baseline)
    disarm_pair = categorical_disarm_separable_variance(logits, class_costs)  # the toy is in natural order
    variances["categorical_disarm"] = iid_variance(disarm_pair.reshape(-1))
    dtype = jnp.result_type(float)
    shape = (dim, num_categories)
    return Problem(
        name=name,
        description=f"f(x) = Σ_d (v·x_d - {target})², x_d ~ Categorical(softmax(ℓ_d)), "
        f"{dim} variables × {num_categories} classes",
        objective=Objective(
            dist=lambda q: Categorical(q["logits"]),
            cost=lambda q, x: jnp.sum((x @ jnp.asarray(values, x.dtype) - target) ** 2),
        ),
        params={"logits": jnp.asarray(logits, dtype)},
        exact_grad={"logits": exact_grad},
        exact_variances={name: _as_logits(v, shape) for name, v in variances.items()},
        exact_means={"straight_through": {"logits": means["straight_through"].reshape(shape)}},
        exact_for_options=lambda estimator: (reinmax_answers(estimator, {"logits": exact_grad})
                                             or gapped_answers(estimator, logits, class_gradients, shape)),
    )


def gapped_answers(estimator, logits, class_gradients, shape, column=None):
    """Gapped straight-through's exact mean and variance function at the estimator's options, or None for
    other estimators; ``column`` picks one class's logit (a Bernoulli's ℓ in logits (0, ℓ))."""
    if not isinstance(estimator, GappedStraightThrough):
        return None
    mean, variance = gapped_straight_through_moments(logits, class_gradients, float(estimator.temperature),
                                                     float(estimator.gap))
    if column is not None:
        mean, variance, shape = mean[:, column], variance[:, column], shape[:-1]
    return {"logits": mean.reshape(shape)}, _as_logits(iid_variance(variance.reshape(-1)), shape)


def reinmax_answers(estimator, exact_grad):
    """ReinMax's expectation on a cost quadratic in the latents: the exact gradient at τ = 1 (its variance is
    not derived), unknown at other temperatures; None for other estimators."""
    if not isinstance(estimator, ReinMax) or float(estimator.temperature) != 1.0:
        return None
    return exact_grad, None


def gapped_straight_through_moments(logits, class_gradients, temperature: float, gap: float):
    r"""Exact (mean, per-sample variance) of gapped straight-through's logit gradient for a cost separable
    across variables, whose gradient in variable d's one-hot vector at class k is ``class_gradients[d, k]``
    (shape (D, K, K)).  The estimate is a function of the sampled class alone:
    :math:`J(s)\,g/\tau` with s the softmax of the gapped logits over τ, written here from the formula."""
    logits = np.asarray(logits, np.float64)
    num_classes = logits.shape[-1]
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    top = logits.max(axis=-1, keepdims=True)
    estimates = []  # (K, D, K): the estimate when class k is sampled
    for k in range(num_classes):
        sampled = np.arange(num_classes) == k
        moved = np.where(sampled, top, logits - np.maximum(logits - top + gap, 0.0))
        soft = np.exp((moved - moved.max(axis=-1, keepdims=True)) / temperature)
        soft /= soft.sum(axis=-1, keepdims=True)
        jacobian = np.einsum("dk,kj->dkj", soft, np.eye(num_classes)) - np.einsum("dk,dj->dkj", soft, soft)
        estimates.append(np.einsum("dkj,dj->dk", jacobian, class_gradients[:, k]) / temperature)
    estimates = np.stack(estimates)
    weights = probabilities.T[..., None]  # (K, D, 1)
    mean = (weights * estimates).sum(axis=0)
    return mean, (weights * (estimates - mean) ** 2).sum(axis=0)
