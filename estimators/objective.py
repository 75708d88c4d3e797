"""The objective every estimator differentiates: an expectation of a cost under a distribution, or a sum
of such expectations over independent examples."""

from __future__ import annotations

import dataclasses
import inspect
import math
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from estimators.distributions import Distribution
from estimators.sample_axis import map_samples

Params = Any  # a pytree of float arrays


@dataclasses.dataclass(frozen=True)
class Objective:
    r"""The objective :math:`F(\theta) = \mathbb{E}_{x \sim q(x; \theta)}[f(\theta, x)]`.

    Args:
      dist: maps the parameters :math:`\theta` (any pytree of float arrays) to a
        :class:`~estimators.Distribution`, :math:`q(\cdot; \theta)`.
      cost: maps the parameters and ONE sample to the cost, :math:`f(\theta, x)`: a scalar, or with
        ``batch_ndims`` one cost per example.  It may depend on :math:`\theta` directly (an ELBO
        does); every estimator then adds the direct term :math:`\mathbb{E}[\nabla_\theta f(\theta, x)]`.
      batch_ndims: B, how many leading axes of a sample index independent examples (a plate; default
        0, none).  The distribution factorizes over them, ``cost`` returns an array of exactly that
        batch shape, ``event_shape[:B]``, and entry n may depend on the sample only through ``x[n]``.
        The objective is then the sum :math:`F(\theta) = \sum_n \mathbb{E}[f_n(\theta, x_n)]` (in
        expectation the same as B = 0 with the costs summed), and every estimator uses example n's
        own cost as the learning signal of example n's latents (see the estimators' docstrings).
      has_aux: ``cost`` returns ``(cost, aux)``, aux any pytree of arrays to log (a VAE's reconstruction
        and KL terms), as with ``jax.grad(..., has_aux=True)``.  Estimators use the cost alone; the
        functions of :mod:`estimators.interface` also return the mean of aux over the L samples
        ``sample(fold_in(key, i))`` (those of the score function and pathwise estimators), from one more
        evaluation of the cost at each, without gradient.

    An objective is a pytree, so it can be an argument of a jitted function.  Plain functions and
    ``batch_ndims`` are static (part of its structure): programs are shared by objectives with the same
    functions.  ``dist`` or ``cost`` may also be a pytree of its own, such as a
    :class:`jax.tree_util.Partial` of a module-level function and arrays (a minibatch, a target) or a
    callable equinox module: its leaves are then the objective's leaves, data rather than structure, so
    objectives that differ only in those arrays share one compiled program (a jitted training step can
    take each minibatch's objective as an argument without compiling again).  Those leaves are constants
    of the objective: estimators differentiate with respect to ``params`` only.

    Example::

        obj = Objective(
            dist=lambda p: Normal(loc=p["mu"], scale=jnp.exp(p["log_sigma"])),
            cost=lambda p, x: jnp.sum(x ** 2),
        )
        # Constants as data: objectives differing only in `target` share compiled programs.
        def squared_distance(target, p, x):
            return jnp.sum((x - target) ** 2)
        obj = Objective(dist=..., cost=jax.tree_util.Partial(squared_distance, jnp.asarray(0.45)))
        # A minibatch: latents of shape (N, K), one negative ELBO per image.
        vae = Objective(
            dist=lambda p: Bernoulli(logits=encoder(p, images)),
            cost=lambda p, z: neg_elbo_per_image(p, images, z),   # shape (N,)
            batch_ndims=1,
        )
    """

    dist: Callable[[Params], Distribution]
    cost: Callable[[Params, jax.Array], jax.Array]
    batch_ndims: int = 0
    has_aux: bool = False

    def __post_init__(self):
        for field in ("dist", "cost"):
            if not callable(getattr(self, field)):
                raise TypeError(
                    f"Objective.{field} must be a function, got {type(getattr(self, field)).__name__}. "
                    "Write Objective(dist=lambda params: Normal(...), cost=lambda params, x: ...)."
                )
        batch_ndims = self.batch_ndims
        try:
            count = None if isinstance(batch_ndims, bool) else operator.index(batch_ndims)
        except TypeError:
            count = None
        if count is None or count < 0:
            raise ValueError(
                f"Objective.batch_ndims must be a non-negative integer (how many leading axes of a sample "
                f"index independent examples: 0 for none, 1 for a minibatch), got {batch_ndims!r}."
            )
        object.__setattr__(self, "batch_ndims", count)
        if not isinstance(self.has_aux, (bool, np.bool_)):
            raise TypeError(f"Objective.has_aux is on or off (cost returns (cost, aux)): pass True or False, got "
                            f"{self.has_aux!r}.")
        object.__setattr__(self, "has_aux", bool(self.has_aux))
        _check_signatures(self.dist, self.cost)

    def distribution(self, params: Params) -> Distribution:
        """``dist(params)``, checked to be a :class:`Distribution` whose samples have the batch axes."""
        dist = self.dist(params)
        if not isinstance(dist, Distribution):
            raise TypeError(
                f"Objective.dist must return an estimators distribution (Normal, Bernoulli, ...), got "
                f"{type(dist).__name__}."
            )
        if self.batch_ndims > dist.max_batch_ndims:
            event = " (its last axis is one event)" if dist.event_ndims else ""
            raise ValueError(
                f"Objective.batch_ndims={self.batch_ndims}, but a {type(dist).__name__} sample has shape "
                f"{dist.event_shape}{event}, so at most {dist.max_batch_ndims} leading axes can index "
                "examples. Lower batch_ndims, or give the distribution parameters with an axis per example."
            )
        return dist

    def batch_shape(self, dist: Distribution) -> tuple[int, ...]:
        """The examples' shape: the leading ``batch_ndims`` axes of a sample (``()`` without a plate)."""
        return dist.event_shape[: self.batch_ndims]

    def checked_cost(self, params: Params, sample: jax.Array) -> jax.Array:
        """``cost(params, sample)``, checked to have the batch shape (a scalar without a plate)."""
        cost = self.loss(params, sample)
        _check_cost_is_an_array(cost)
        self._check_cost_shape(jnp.shape(cost), jnp.shape(sample))
        return cost

    def loss(self, params: Params, sample: jax.Array) -> jax.Array:
        """``cost(params, sample)`` without its auxiliary output where ``has_aux``: what estimators use."""
        if not self.has_aux:
            return self.cost(params, sample)
        return self.cost_and_aux(params, sample)[0]

    def cost_and_aux(self, params: Params, sample: jax.Array) -> tuple[jax.Array, Any]:
        """``(cost, aux)`` of a ``has_aux`` objective, checked to be a pair."""
        output = self.cost(params, sample)
        if not (isinstance(output, tuple) and len(output) == 2):
            raise TypeError(f"Objective(..., has_aux=True): cost must return a pair (cost, aux), got "
                            f"{type(output).__name__}. Return (cost, aux), or drop has_aux.")
        return output

    def costs(self, params: Params, samples: jax.Array) -> jax.Array:
        """The cost of each sample along the leading axis of ``samples``: shape (L, *batch_shape)."""
        costs = map_samples(self.loss, params, samples, in_axes=(None, 0))
        _check_cost_is_an_array(costs)
        self._check_cost_shape(jnp.shape(costs)[1:], jnp.shape(samples)[1:])
        return costs

    def log_probs(self, dist: Distribution, samples: jax.Array) -> jax.Array:
        """The log density of each sample (of each example, with a plate): shape (L, *batch_shape)."""
        return map_samples(lambda x: self.example_log_prob(dist, x), samples)

    def example_log_prob(self, dist: Distribution, sample: jax.Array) -> jax.Array:
        """The log density of one sample, per example: shape ``batch_shape`` (a scalar without a plate)."""
        if self.batch_ndims == 0:
            return dist.log_prob(sample)
        return dist.example_log_prob(sample, self.batch_ndims)

    def sum_examples(self, per_example: jax.Array) -> jax.Array:
        """Sum the trailing ``batch_ndims`` axes (the examples) of per-example values: an (L, *batch)
        array of costs becomes the (L,) costs of the whole sample, one example's (*batch) a scalar."""
        if self.batch_ndims == 0:
            return per_example
        return jnp.sum(per_example, axis=tuple(range(per_example.ndim - self.batch_ndims, per_example.ndim)))

    def _check_cost_shape(self, cost_shape: tuple, sample_shape: tuple) -> None:
        expected = tuple(sample_shape[: self.batch_ndims])
        if tuple(cost_shape) == expected:
            return
        if self.batch_ndims == 0:
            raise ValueError(
                f"Objective.cost must return a scalar for one sample, but returned shape {tuple(cost_shape)}. "
                "Reduce it inside cost (for example with jnp.sum); the estimators average over samples "
                "themselves. For one cost per example of a minibatch, pass batch_ndims=1."
            )
        raise ValueError(
            f"Objective.cost must return one cost per example, an array of the batch shape {expected} (the "
            f"first batch_ndims={self.batch_ndims} axes of a sample of shape {tuple(sample_shape)}), but "
            f"returned shape {tuple(cost_shape)}. Reduce over each example's own latents only (for example "
            "jnp.sum(..., axis=-1)), not over the examples."
        )


def _positional_arity(function: Callable) -> tuple[int, float] | None:
    """(required, accepted) positional arguments of ``function``, or None where it has no signature."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin or another callable without a signature
        return None
    positional = [p for p in parameters
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is inspect.Parameter.empty for p in positional)
    accepted = math.inf if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters) else len(positional)
    return required, accepted


def _check_signatures(dist: Callable, cost: Callable) -> None:
    """Refuse a ``dist`` that cannot be called as ``dist(params)`` or a ``cost`` that cannot be called as
    ``cost(params, x)`` (a cost that forgot ``params``, or the two swapped), where their signatures say so."""
    dist_arity, cost_arity = _positional_arity(dist), _positional_arity(cost)
    dist_fits = dist_arity is None or dist_arity[0] <= 1 <= dist_arity[1]
    cost_fits = cost_arity is None or cost_arity[0] <= 2 <= cost_arity[1]
    if dist_fits and cost_fits:
        return
    if not dist_fits and not cost_fits and dist_arity[0] == 2 and cost_arity[1] == 1:  # type: ignore[index]
        raise TypeError(
            f"Objective's dist and cost look swapped: dist takes {inspect.signature(dist)} and cost takes "
            f"{inspect.signature(cost)}. Write Objective(dist=lambda params: Normal(...), cost=lambda params, x: ...)."
        )
    if not dist_fits:
        raise TypeError(f"Objective.dist must take one argument, the parameters, and return a distribution; its "
                        f"signature is {inspect.signature(dist)}. Write dist=lambda params: Normal(...).")
    raise TypeError(
        f"Objective.cost must take two arguments, the parameters and one sample x; its signature is "
        f"{inspect.signature(cost)}. A cost that does not use the parameters still takes them: "
        "cost=lambda params, x: f(x)."
    )


def _check_cost_is_an_array(cost) -> None:
    if isinstance(cost, (tuple, list, dict)):
        raise TypeError(
            f"Objective.cost returned a {type(cost).__name__}; it must return the cost alone, one array (a scalar, "
            "or one cost per example with batch_ndims). For a (cost, aux) pair, with aux what you would log (a "
            "reconstruction or KL term), declare Objective(..., has_aux=True)."
        )


def _is_function_tree(fn: Callable) -> bool:
    """Whether ``fn`` is a pytree node (a ``jax.tree_util.Partial``, an equinox module) rather than a leaf."""
    return not jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(fn))


def _flatten_objective_with_keys(objective: Objective):
    """Children: ``dist`` and ``cost`` where they are pytrees; the rest is static, with the class."""
    children, static = [], []
    for name in ("dist", "cost"):
        fn = getattr(objective, name)
        if _is_function_tree(fn):
            children.append((jax.tree_util.GetAttrKey(name), fn))
            static.append((name, None))
        else:
            static.append((name, fn))
    return children, (tuple(static), objective.batch_ndims, objective.has_aux)


def _flatten_objective(objective: Objective):
    children, static = _flatten_objective_with_keys(objective)
    return [child for _, child in children], static


def _unflatten_objective(static, children) -> Objective:
    functions, batch_ndims, has_aux = static
    objective = object.__new__(Objective)  # skips the checks: the children may be tracers or placeholders
    children = iter(children)
    for name, fn in functions:
        object.__setattr__(objective, name, next(children) if fn is None else fn)
    object.__setattr__(objective, "batch_ndims", batch_ndims)
    object.__setattr__(objective, "has_aux", has_aux)
    return objective


jax.tree_util.register_pytree_with_keys(Objective, _flatten_objective_with_keys, _unflatten_objective,
                                        _flatten_objective)
