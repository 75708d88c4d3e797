r"""Sum-and-sample: the score function Rao-Blackwellized over the most probable outcomes.

Liu, Regier, Tripuraneni, Jordan & McAuliffe (2019) split the expectation over a discrete distribution p
into the set C of its L − 1 most probable outcomes x (all D variables together), summed exactly, and the
rest, of probability :math:`1 - p(C)`, estimated from one sample z of p restricted to it:

.. math::

    \hat g = \sum_{c \in C} \nabla p(c)\, f(c)
        + \big(1 - p(C)\big)\, f(z)\, \nabla \log p(z),
    \qquad z \sim p(\cdot \mid x \notin C).

Unbiased for any C chosen without looking at z: given C, the second term's expectation is
:math:`\sum_{x \notin C} p(x)\, f(x)\, \nabla \log p(x) = \sum_{x \notin C} \nabla p(x)\, f(x)`, the
first term's complement in :math:`\nabla F = \sum_x \nabla p(x) f(x)`.  Its variance is the sampled
term's, :math:`(1 - p(C))^2\, \mathrm{Var}_{z}[f(z) \nabla \log p(z)]`: the more mass the summed outcomes
hold, the smaller; where they hold all but one outcome, the estimate is exact.  With L = 1 nothing is
summed and the estimate is the score function without a baseline (the base estimator of the paper's
"RB-REINFORCE"; no baseline, as there, so the benchmark measures the Rao-Blackwellization alone).  The
value returned is :math:`\sum_{c \in C} p(c) f(c) + (1 - p(C)) f(z)`, unbiased for F, and a cost that
depends on θ adds that sum's direct gradient.

``sum_and_sample_baseline`` (``SumAndSample(sample_baseline=True)``) subtracts from every term's cost that of one more
sample :math:`x' \sim p`, drawn independently of z, the baseline of the sum-and-sample experiments of Kool,
van Hoof & Welling (2020; "sasbl" in their code, where it is the evaluation sample):

.. math::

    \hat g = \sum_{c \in C} \nabla p(c)\, \big(f(c) - f(x')\big)
        + \big(1 - p(C)\big)\, \big(f(z) - f(x')\big)\, \nabla \log p(z),

still unbiased (:math:`\sum_x \nabla p(x) = 0`, and x' is independent of z and of C), with L − 2 outcomes
summed so that an estimate still evaluates the cost L times: L ≥ 2.  A constant offset of the cost, which
the plain estimator carries into its sampled term, cancels.

C is found by beam search of width L − 1 over the variables, which is exact for independent variables
(the prefix of one of the top L − 1 configurations is among the top L − 1 prefixes, else L − 1
configurations would beat it).  It ranks the configurations by integer scores, each variable's class
log-probability rounded to a multiple of 2⁻¹⁰, so that equally probable outcomes tie exactly, whatever the
platform's rounding, and go to the lexicographically first: C is then a function of the parameters alone,
and so is the variance (any C chosen without z keeps the estimate unbiased).  z is the first configuration
outside C in a stochastic beam search of width L (Kool, van Hoof & Welling 2019): its L configurations
are the top L of Gumbel-perturbed joint log-probabilities, at least one of them lies outside the L − 1
outcomes of C, and the best perturbed outcome outside C is a Gumbel-max sample of p restricted to the
complement of C.  Both searches take D steps over L·K candidates, never the :math:`K^D` outcomes (with the
baseline, one fewer in each: L − 2 summed, a stochastic beam of width L − 1).  L cost evaluations.

``sum_and_sample_stochastic`` (``SumAndSample(stochastic_set=True)``) is the stochastic sum-and-sample of Kool,
van Hoof & Welling (2020): C is the first L − 1 configurations of the stochastic beam (a sample without
replacement) and z its L-th, which, given the first L − 1, is a draw of p restricted to the rest; the same
formula, unbiased for the same reason (C is random but chosen without z), with C favouring the probable
outcomes instead of being the most probable ones.  One search of width L instead of two.

Assumptions: independent categorical or Bernoulli variables, at least L outcomes in each example's joint
space (L − 1 with the baseline, whose draw may repeat one).  With independent examples
(``Objective(..., batch_ndims=B)``) each example sums its own most probable outcomes and samples its own
rest, and its logits are weighted by its own costs.

References: Liu, Regier, Tripuraneni, Jordan & McAuliffe, *Rao-Blackwellized Stochastic Gradients for
Discrete Distributions*, ICML 2019 (authors' code ``Runjing-Liu120/RaoBlackwellizedSGD``); Kool, van Hoof
& Welling, *Estimating Gradients for Discrete Random Variables by Sampling without Replacement*, ICLR 2020
(its stochastic variant, and the beam search for C).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from estimators.base import (
    EstimatorInfo,
    GradientEstimator,
    estimator_dataclass,
    sample_keys,
    static,
    surrogate_estimate,
)
from estimators.distributions import Bernoulli, Categorical
from estimators.registry import register
from estimators.unordered_set import (
    as_samples,
    class_log_probs,
    log1mexp,
    outcome_space,
    stochastic_beam_search,
)

#: The unit in which the variables' class log-probabilities are ranked: each is rounded to a multiple of it and
#: the configurations' scores are sums of those integers, exact in any order of addition.  Outcomes of equal
#: probability then tie exactly on every platform, and the tie goes to the lexicographically first; float32
#: sums would order them by their rounding, which moves C, and with it the variance (by up to 40% per
#: coordinate at L = 16 on the Bernoulli toy, whose spread logits make many outcomes equally probable).
SCORE_UNIT = 2.0**-10
#: Class log-probabilities below this rank as this (a probability under 2e-22 per variable).
SCORE_FLOOR = -50.0


def ranking_scores(log_probs: jax.Array) -> jax.Array:
    """The integer scores of the classes' log-probabilities (any shape): ``round(max(log p, floor) / unit)``."""
    return jnp.round(jnp.maximum(log_probs, SCORE_FLOOR) / SCORE_UNIT).astype(jnp.int32)


def most_probable_configurations(log_probs: jax.Array, num_configurations: int) -> tuple[jax.Array, jax.Array]:
    r"""``(classes, log_p)``: the ``num_configurations`` most probable configurations of D independent variables
    with class log-probabilities ``log_probs`` (D, K) (``classes`` (k, D), their joint log-probabilities
    ``log_p`` (k,)), ranked by their :func:`ranking_scores` summed over the variables, ties to the
    lexicographically first, in that order.  Beam search of width k, which is exact for this order: a prefix of
    one of the top k configurations is among the top k prefixes (k better prefixes, completed the same way,
    would make k better configurations).  Needs :math:`K^D \ge k`."""
    num_variables, num_classes = log_probs.shape
    scores = ranking_scores(log_probs)
    invalid = -(2**30)  # below any valid score: 50 / unit per variable, for up to 20,000 variables
    start = jnp.arange(num_configurations) == 0
    # Each beam: its classes, its score, and its prefix's rank in lexicographic order among the beams.
    beams = (jnp.zeros((num_configurations, num_variables), jnp.int32),
             jnp.where(start, 0, invalid).astype(jnp.int32), jnp.arange(num_configurations, dtype=jnp.int32))

    def extend(beams, variable):
        classes, score, lexicographic = beams
        valid = score > invalid
        children = jnp.where(valid[:, None], score[:, None] + scores[variable][None, :], invalid).reshape(-1)
        child_order = (lexicographic[:, None] * num_classes + jnp.arange(num_classes)[None, :]).reshape(-1)
        index = jnp.lexsort((child_order, -children))[:num_configurations]
        parent, chosen = index // num_classes, index % num_classes
        kept_order = child_order[index]
        ranks = jnp.argsort(jnp.argsort(kept_order)).astype(jnp.int32)
        return (classes[parent].at[:, variable].set(chosen.astype(jnp.int32)), children[index], ranks), None

    # The first variable outside the scan: its carry then varies as the log-probabilities do (under shard_map a
    # carry must vary across devices from the start).
    beams, _ = extend(beams, 0)
    (classes, _, _), _ = jax.lax.scan(extend, beams, jnp.arange(1, num_variables))
    log_p = jnp.sum(jnp.take_along_axis(log_probs.T[None], classes[:, None, :], axis=1)[:, 0], axis=-1)
    return classes, log_p


def first_outside(candidates: jax.Array, excluded: jax.Array) -> jax.Array:
    """The first of the ``candidates`` (L, D) configurations that is none of the ``excluded`` (k, D)."""
    inside = jnp.any(jnp.all(candidates[:, None, :] == excluded[None, :, :], axis=-1), axis=-1)
    return candidates[jnp.argmin(inside)]


@register("sum_and_sample", family="score_function")
@estimator_dataclass
class SumAndSample(GradientEstimator):
    r"""Sum-and-sample: the score function summed exactly over the most probable joint outcomes and sampled
    once from the rest, weighted by its probability; with ``sample_baseline``, every term's cost less that of
    one more, independent sample (L − 2 summed); with ``stochastic_set``, the summed outcomes drawn without
    replacement instead of the most probable (Kool et al.'s stochastic variant; not with ``sample_baseline``).
    Unbiased; independent categorical or Bernoulli variables.  See :mod:`estimators.sum_and_sample`."""

    sample_baseline: bool = static(default=False)
    stochastic_set: bool = static(default=False)

    def __post_init__(self):
        if self.sample_baseline and self.stochastic_set:
            raise ValueError("SumAndSample takes sample_baseline or stochastic_set, not both: the registered forms are "
                             "sum_and_sample, sum_and_sample_baseline and sum_and_sample_stochastic.")

    @property
    def info(self):
        if self.sample_baseline:
            return EstimatorInfo("sum_and_sample_baseline", min_num_samples=2)
        if self.stochastic_set:
            return EstimatorInfo("sum_and_sample_stochastic")
        return EstimatorInfo("sum_and_sample")

    def supports(self, dist):
        if isinstance(dist, (Bernoulli, Categorical)):
            return None
        return "it sums over the most probable outcomes of independent categorical or Bernoulli variables"

    def _distinct(self, num_samples: int) -> int:
        """The distinct outcomes an estimate takes: C and the sample, not the baseline's independent draw."""
        return num_samples - 1 if self.sample_baseline else num_samples

    def applicability(self, dist, num_samples, batch_ndims=0):
        reason = super().applicability(dist, num_samples, batch_ndims)
        if reason is None:
            num_classes, num_variables = outcome_space(dist, batch_ndims)
            if num_variables * math.log2(num_classes) < math.log2(self._distinct(num_samples)):
                largest = num_classes ** num_variables + num_samples - self._distinct(num_samples)
                reason = f"needs L <= {largest}, the number of joint outcomes of an example"
                if self.sample_baseline:
                    reason += " plus the baseline's draw"
        return reason

    def estimate(self, objective, params, key, num_samples, state):
        dist = objective.distribution(params)
        batch_shape = objective.batch_shape(dist)
        log_probs = jax.lax.stop_gradient(class_log_probs(dist))
        num_classes = log_probs.shape[-1]
        per_example = log_probs.reshape((math.prod(batch_shape), -1, num_classes))  # (N, D, K)
        num_examples, num_variables = per_example.shape[:2]
        distinct = self._distinct(num_samples)
        if num_variables * math.log2(num_classes) < math.log2(distinct):
            raise ValueError(f"{self.name} sums {distinct - 1} outcomes and samples one more, but each example has "
                             f"only {num_classes ** num_variables}; use a smaller num_samples.")
        num_summed = distinct - 1
        keys = sample_keys(key, num_samples)
        # The sample's noise: beam i's Gumbels from sample key i, as every estimator draws its samples' noise; the
        # baseline's draw from the last key.
        noise = jax.vmap(lambda k: jax.random.gumbel(k, (num_examples, num_variables, num_classes), log_probs.dtype))
        gumbels = jnp.moveaxis(noise(keys[:distinct]), 0, 2)  # (N, D, distinct, K)
        candidates, log_p_candidates = jax.vmap(stochastic_beam_search)(gumbels, per_example)  # (N, distinct, D)
        if self.stochastic_set or not num_summed:  # C: the beam's first L − 1 (none at L = 1), z: its next
            log_p_summed = log_p_candidates[:, :num_summed]
            classes = jnp.moveaxis(candidates, 1, 0)  # (distinct, N, D)
        else:
            summed, log_p_summed = jax.vmap(most_probable_configurations, in_axes=(0, None))(per_example, num_summed)
            sampled = jax.vmap(first_outside)(candidates, summed)
            classes = jnp.concatenate([jnp.moveaxis(summed, 1, 0), sampled[None]])  # (distinct, N, D): C, then z
        # 1 − p(C), each example's probability of the outcomes not summed (1 where nothing is).
        rest = jnp.exp(log1mexp(jnp.minimum(jax.nn.logsumexp(log_p_summed, axis=-1), 0.0)))
        samples = as_samples(dist, classes)
        if self.sample_baseline:
            samples = jnp.concatenate([samples, jax.lax.stop_gradient(dist.sample(keys[distinct]))[None]])

        def surrogate(q):
            costs = objective.costs(q, samples).reshape((num_samples, -1))  # (L, N): C, z, the baseline's draw
            signal = jax.lax.stop_gradient(costs)
            if self.sample_baseline:
                signal = signal - signal[distinct][None]  # b = f(x'), per example
            log_q = jax.vmap(lambda x: objective.example_log_prob(objective.distribution(q), x))(samples)
            log_q = log_q.reshape((num_samples, -1))
            probabilities = jnp.exp(log_q[:num_summed])  # p(c), differentiable: Σ ∇p(c) (f(c) − b)
            summed_value = jnp.sum(jax.lax.stop_gradient(probabilities) * costs[:num_summed])
            sampled_value = jnp.sum(rest * costs[num_summed])
            score_terms = jnp.sum(probabilities * signal[:num_summed]) + jnp.sum(rest * signal[num_summed]
                                                                                 * log_q[num_summed])
            value = summed_value + sampled_value
            return score_terms + value, jax.lax.stop_gradient(value)

        return surrogate_estimate(surrogate, params, state)


register("sum_and_sample_baseline", lambda: SumAndSample(sample_baseline=True), family="score_function")
register("sum_and_sample_stochastic", lambda: SumAndSample(stochastic_set=True), family="score_function")
