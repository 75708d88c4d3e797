r"""Baselines for the score-function estimator: :math:`(f(x_i) - b_i)\,\nabla_\theta \log q(x_i; \theta)`.

Since :math:`E[\nabla_\theta \log q] = 0`, any :math:`b_i` that does not depend on :math:`x_i` keeps
the estimator unbiased (a control variate, see :mod:`estimators.control_variates`).  A baseline is
called with the costs of the L samples (the state, and, where it needs them, the scores) and returns
:math:`b`, one value per sample, or, for a per-coordinate baseline, one value per sample and gradient
coordinate.

With independent examples (``Objective(..., batch_ndims=B)``) the costs have shape ``(L, *batch_shape)``,
and :math:`b_{i,n}` must not depend on :math:`x_{i,n}` (the other examples' samples may enter): the
leave-one-out and optimal baselines are fitted per example from that example's other samples; the
moving average is one scalar shared by all examples.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from estimators.base import check_option, estimator_dataclass, static
from estimators.control_variates import leave_one_out_coefficient, leave_one_out_mean


class BaselineInfo(NamedTuple):
    """What the score-function estimator needs to know about its baseline."""

    suffix: str  #: appended to ``score_function`` to name the estimator in the registry
    stateful: bool = False  #: True where it carries state between calls
    min_num_samples: int = 1  #: the smallest L it is defined for
    #: True where b is fitted per gradient coordinate and so needs every sample's score (a backward
    #: pass per sample, and per example with a plate)
    needs_scores: bool = False
    #: True where b is one value for every sample and example of a call, a function of the state alone
    #: (the moving average): with a plate, Σ_n (f_n - b) s_n = Σ_n f_n s_n - b Σ_n s_n needs no score per
    #: example
    shared: bool = False
    #: False where b depends on the sample's own cost (the group mean, GRPO's scaling), so the estimator's
    #: expectation is not the gradient
    unbiased: bool = True


class Baseline(abc.ABC):
    """The interface: ``values(costs, state, scores) -> (b, new_state)``.

    ``costs`` has shape ``(L, *batch_shape)``.  b has that shape (one value per sample and example), or,
    for a baseline whose :attr:`info` says ``needs_scores``, one value per sample, example and gradient
    coordinate: it is then given the flat scores, (L, n) without a plate and (L, E, n) with E examples
    (the costs reshaped to (L, E)), and returns b of the scores' shape.  Baselines are pytrees, like the
    estimators (:func:`estimators.estimator_dataclass`).
    """

    @property
    @abc.abstractmethod
    def info(self) -> BaselineInfo:
        """The baseline's name suffix and properties."""

    def init(self, costs_dtype) -> Any:
        """The initial state; () for a stateless baseline."""
        del costs_dtype
        return ()

    @abc.abstractmethod
    def values(self, costs: jax.Array, state: Any, scores: jax.Array | None = None) -> tuple[jax.Array, Any]:
        """b, and the next state."""


class MovingAverageState(NamedTuple):
    average: jax.Array  #: the decayed sum of past mean costs
    steps: jax.Array  #: updates so far, for the bias correction


@estimator_dataclass
class MovingAverage(Baseline):
    r"""An exponential moving average of past mean costs, :math:`b_t = \hat m_{t-1}`.

    :math:`m_t = \beta m_{t-1} + (1 - \beta)\,\bar f_t` with the bias correction
    :math:`\hat m_t = m_t / (1 - \beta^t)` of Kingma & Ba (2015), and :math:`b = 0` before the first
    update.  It uses only earlier calls' samples, so it is unbiased; it is stateful, so use
    ``grad_with_state``.

    With independent examples, :math:`\bar f_t` is the mean over the call's samples and examples of the
    per-example costs, and b is that one scalar for every example: the examples of a minibatch change
    from step to step, so a per-example average would follow no example (the centring by a running
    mean of the learning signal of Mnih & Gregor 2014).  An input-dependent baseline is left to
    leave-one-out and the optimal baseline.

    Reference: Williams 1992, section 4 (reinforcement baselines); Mnih & Gregor, *Neural Variational
    Inference and Learning in Belief Networks*, ICML 2014.
    """

    decay: float = 0.9
    info = BaselineInfo("ema", stateful=True, shared=True)

    def __post_init__(self):
        check_option(self, "decay", lambda d: 0 <= d < 1, "a decay in [0, 1)")

    def init(self, costs_dtype):
        return MovingAverageState(jnp.zeros((), costs_dtype), jnp.zeros((), jnp.int32))

    def values(self, costs, state, scores=None):
        correction = 1 - self.decay ** state.steps.astype(costs.dtype)
        baseline = jnp.where(state.steps > 0, state.average / jnp.where(state.steps > 0, correction, 1), 0)
        average = (self.decay * state.average + (1 - self.decay) * jnp.mean(costs)).astype(state.average.dtype)
        return jnp.broadcast_to(baseline, costs.shape), MovingAverageState(average, state.steps + 1)


@estimator_dataclass
class LeaveOneOut(Baseline):
    r"""The mean cost of the other samples, :math:`b_i = \frac{1}{L-1}\sum_{j \ne i} f(x_j)` (RLOO).

    Equivalently :math:`\frac{1}{L-1}\sum_i (f_i - \bar f)\nabla \log q(x_i)`.  The L terms are no
    longer independent, so its variance is not the per-sample variance over L (it is a U-statistic).
    Needs L ≥ 2.

    Reference: Kool, van Hoof & Welling, *Buy 4 REINFORCE Samples, Get a Baseline for Free!*, ICLR
    2019 workshop; Mnih & Rezende, *Variational Inference for Monte Carlo Objectives*, ICML 2016.
    """

    info = BaselineInfo("loo", min_num_samples=2)

    def values(self, costs, state, scores=None):
        return leave_one_out_mean(costs), state  # along the samples: per example with a plate


@estimator_dataclass
class OptimalConstant(Baseline):
    r"""The per-coordinate variance-minimizing constant :math:`b^*_d = E[f s_d^2] / E[s_d^2]`,
    :math:`s = \nabla_\theta \log q(x)`, fitted leave-one-out:
    :math:`b_{i,d} = \sum_{j \ne i} f_j s_{j,d}^2 / \sum_{j \ne i} s_{j,d}^2`.

    Fitting on all samples would reuse sample i's own cost and bias the estimate by O(1/L); leaving it
    out keeps it unbiased.  Needs L ≥ 2 and one score per sample and coordinate (a vmapped backward
    pass per sample).

    With independent examples, :math:`b_{i,n,d} = \sum_{j \ne i} f_{j,n} s_{j,n,d}^2 / \sum_{j \ne i}
    s_{j,n,d}^2` with :math:`s_{j,n} = \nabla_\theta \log q_n(x_{j,n})` example n's own score: the
    variance of :math:`\sum_n (f_n - b_n) s_n` is the sum of the examples' variances, each smallest at
    its own :math:`b^*_{n,d}`.  The scores then take one backward pass per sample and example (a Jacobian
    of the E per-example log densities), E times the cost without a plate.

    Reference: Greensmith, Bartlett & Baxter, *Variance Reduction Techniques for Gradient Estimates
    in Reinforcement Learning*, JMLR 2004; Mohamed et al. 2020, section 7.4.
    """

    info = BaselineInfo("optimal", min_num_samples=2, needs_scores=True)

    def values(self, costs, state, scores=None):
        """b of shape (L, n) from the costs (L,) and flat scores (L, n); with E examples, (L, E, n) from
        the costs (L, E) and scores (L, E, n), fitted per example and coordinate."""
        if scores is None:
            raise ValueError("OptimalConstant is fitted per gradient coordinate and needs the scores.")
        return leave_one_out_coefficient(costs[..., None] * scores, scores), state


@estimator_dataclass
class GroupMean(Baseline):
    r"""The mean cost of the whole group of L samples, the sample's own included:
    :math:`b_i = \bar f = \frac1L \sum_j f(x_j)`, so the estimate is
    :math:`\frac1L \sum_i (f_i - \bar f)\,\nabla \log q(x_i)`.

    The centring of GRPO's advantages without its division by the standard deviation (Liu et al.'s
    Dr. GRPO); a group is the L samples of one example (one prompt), so with a plate b is each example's
    own mean.  Since :math:`f_i - \bar f = \frac{L-1}{L}(f_i - b^{\text{loo}}_i)`, it is
    :math:`\frac{L-1}{L}` times the leave-one-out estimator: its expectation is
    :math:`\frac{L-1}{L}\nabla F` (plus the direct term, unscaled), the gradient's direction exactly and
    its length shrunk by 1/L, which a learning rate absorbs.  It is registered as biased, since its
    expectation is not the gradient.  Needs L ≥ 2.

    Reference: Shao et al., *DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
    Models*, 2024 (GRPO); Liu et al., *Understanding R1-Zero-Like Training: A Critical Perspective*, 2025.
    """

    info = BaselineInfo("group_mean", min_num_samples=2, unbiased=False)

    def values(self, costs, state, scores=None):
        return jnp.broadcast_to(jnp.mean(costs, axis=0, keepdims=True), costs.shape), state


@estimator_dataclass
class GroupStandardized(Baseline):
    r"""GRPO's advantage: the cost centred by its group's mean and divided by a standard deviation,
    :math:`A_i = (f_i - \bar f) / (s + \epsilon)`, the estimate :math:`\frac1L \sum_i A_i \nabla \log q(x_i)`
    (as a baseline, :math:`b_i = f_i - A_i`).

    s is the sample standard deviation (L − 1 in the denominator) of the group's L costs (per example with a
    plate: a group is one prompt's samples), or with ``batch_std=True`` of every cost of the call, all samples
    of all examples (the ``scale_rewards="batch"`` of TRL's GRPO trainer; without a plate the two agree).
    ε = 1e-4 as in TRL keeps a group whose costs are all equal at A = 0.

    Biased twice over: the centring by a mean that includes f_i scales the expectation by (L − 1)/L
    (:class:`GroupMean`), and s depends on the samples, so the expectation is no longer a multiple of the
    gradient: groups whose costs barely differ are amplified, so coordinates are reweighted by how
    spread their costs are (measured against the exact gradient in the benchmark; on one Bernoulli
    variable the expectation is a binomial sum, tests/test_group_baselines.py).  Needs L ≥ 2.

    Reference: Shao et al., *DeepSeekMath*, 2024, section 4.1 (GRPO); Liu et al., *Understanding
    R1-Zero-Like Training*, 2025 (the bias of the standard-deviation scaling); Hu, *REINFORCE++*, 2025
    (the batch standard deviation).
    """

    epsilon: float = 1e-4
    batch_std: bool = static(default=False)

    def __post_init__(self):
        check_option(self, "epsilon", lambda e: e >= 0, "an epsilon >= 0")

    @property
    def info(self):
        return BaselineInfo("grpo_batch" if self.batch_std else "grpo", min_num_samples=2, unbiased=False)

    def values(self, costs, state, scores=None):
        centred = costs - jnp.mean(costs, axis=0, keepdims=True)
        if self.batch_std:
            spread = jnp.std(costs, ddof=1)
        else:
            spread = jnp.std(costs, axis=0, ddof=1, keepdims=True)
        return costs - centred / (spread + self.epsilon), state
