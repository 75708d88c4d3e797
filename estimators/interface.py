"""``grad``, ``value_and_grad`` and ``grad_with_state``: stochastic counterparts of ``jax.grad``."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from estimators import registry
from estimators.base import Estimate, GradientEstimator, sample_keys
from estimators.objective import Objective, Params
from estimators.sample_axis import map_samples

PyTree = Any


class StatefulGrad(NamedTuple):
    """The pure functions of a stateful estimator, as in optax: ``state = init(params)``,
    ``grads, state = update(params, key, state)`` (``value, grads, state`` for
    :func:`value_and_grad_with_state`).  ``init(params, key)`` draws any random initial state (RELAX's
    network weights) from ``key``; without one it uses ``jax.random.key(0)``, so ``init(params)`` is
    reproducible."""

    init: Callable[..., PyTree]
    update: Callable[[Params, jax.Array, PyTree], tuple[PyTree, PyTree]]


def grad(objective: Objective, estimator: GradientEstimator | str, num_samples: int, *, check_finite: bool = False):
    """A function ``g(params, key)`` that returns a Monte Carlo estimate of ∇θ F(θ).

    ``g`` is pure: the same key gives the same estimate, and it can be jitted, and vmapped over keys
    and parameters.  The estimate has the structure, shapes and dtypes of ``params``.

    Args:
      objective: the :class:`Objective` F(θ) = E_{x ~ dist(θ)}[cost(θ, x)].
      estimator: an estimator object, or a registry name such as ``"score_function"``.
      num_samples: L, the number of samples averaged in one estimate.
      check_finite: a debugging aid: raise ``FloatingPointError``, naming the estimator and what is not
        finite (the cost's mean over the samples, which entries of which gradient leaf), where an estimate
        holds NaN or inf, also under ``jit`` and ``vmap`` (there JAX wraps it in a runtime error that
        carries the message).  It copies the estimate to the host on every call, so leave it off for speed.

    With ``Objective(..., has_aux=True)``, ``g`` returns ``(grads, aux)``, as ``jax.grad(..., has_aux=True)``
    does: aux is the mean over the L samples of the cost's auxiliary output (see :class:`Objective`).
    """
    estimate = _checked_estimate(objective, estimator, num_samples, caller="grad", check_finite=check_finite)

    def grad_fn(params, key):
        result, aux = estimate(params, key, ())
        return (result.grads, aux) if objective.has_aux else result.grads

    return grad_fn


def value_and_grad(objective: Objective, estimator: GradientEstimator | str, num_samples: int, *,
                   check_finite: bool = False):
    """Like :func:`grad`, but ``g(params, key)`` returns ``(value, grads)``, where ``value`` is the
    L-sample estimate of F(θ) from the same samples; ``((value, aux), grads)`` with ``has_aux``."""
    estimate = _checked_estimate(objective, estimator, num_samples, caller="value_and_grad",
                                 check_finite=check_finite)

    def value_and_grad_fn(params, key):
        result, aux = estimate(params, key, ())
        return ((result.value, aux) if objective.has_aux else result.value), result.grads

    return value_and_grad_fn


def grad_with_state(objective: Objective, estimator: GradientEstimator | str, num_samples: int, *,
                    check_finite: bool = False):
    """``(init, update)`` for an estimator that carries state between calls (any estimator works;
    stateless ones carry the empty state ``()``).  With ``has_aux``, ``update`` returns
    ``((grads, aux), state)``."""
    init, update_with_value = value_and_grad_with_state(objective, estimator, num_samples,
                                                        check_finite=check_finite)

    def update(params, key, state):
        value, grads, new_state = update_with_value(params, key, state)
        return ((grads, value[1]) if objective.has_aux else grads), new_state

    return StatefulGrad(init=init, update=update)


def value_and_grad_with_state(objective: Objective, estimator: GradientEstimator | str, num_samples: int, *,
                              check_finite: bool = False):
    """Like :func:`grad_with_state`, but ``update`` returns ``(value, grads, state)``; ``((value, aux),
    grads, state)`` with ``has_aux``."""
    estimator = _resolve(estimator)
    estimate = _checked_estimate(objective, estimator, num_samples, caller="grad_with_state",
                                 check_finite=check_finite)

    def update(params, key, state):
        result, aux = estimate(params, key, state)
        return ((result.value, aux) if objective.has_aux else result.value), result.grads, result.state

    def init(params, key=None):
        return estimator.init(objective, params, jax.random.key(0) if key is None else key)

    return StatefulGrad(init=init, update=update)


def _check_state(estimator: GradientEstimator, objective: Objective, params, state) -> None:
    """``state`` must have the structure, shapes and dtypes of ``init(params)`` (checked abstractly:
    nothing runs): a state of another estimator, of other parameters, or ``None`` fails here, by name."""
    expected = jax.eval_shape(lambda p: estimator.init(objective, p, jax.random.key(0)), params)
    describe = lambda tree: jax.tree_util.tree_map(lambda x: f"{jnp.result_type(x)}{list(jnp.shape(x))}", tree)
    try:
        expected_structure: Any = jax.tree_util.tree_structure(expected)
        same_structure = bool(expected_structure == jax.tree_util.tree_structure(state))
        leaves = same_structure and all(
            jnp.shape(a) == b.shape and jnp.result_type(a) == b.dtype
            for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(expected)))
    except TypeError:  # a leaf that is no array
        leaves = False
    if not leaves:
        stateless = "the empty state () (it is stateless)" if expected == () else "the state that init(params) returns"
        raise ValueError(
            f"update of {estimator.name!r} got a state that is not its own: expected {stateless}, "
            f"{describe(expected)!s:.300}, got {type(state).__name__} {describe(state)!s:.300}. Pass the state from "
            "`init(params)` (for the same objective and parameters), then the one each update returns."
        )


def _resolve(estimator: GradientEstimator | str) -> GradientEstimator:
    if isinstance(estimator, str):
        return registry.get(estimator)
    if not isinstance(estimator, GradientEstimator):
        raise TypeError(
            f"estimator must be a registry name ({', '.join(registry.names())}) or an estimator object "
            f"such as estimators.ScoreFunction(), got {type(estimator).__name__}."
        )
    return estimator


def _checked_estimate(objective, estimator, num_samples, caller,
                      check_finite: bool = False) -> Callable[..., tuple[Estimate, PyTree]]:
    """Validate everything that can be checked before tracing; return the checked estimate function, which
    gives the estimate and the mean auxiliary output of a ``has_aux`` objective (None otherwise)."""
    estimator = _resolve(estimator)
    if not isinstance(objective, Objective):
        raise TypeError(
            f"objective must be an estimators.Objective(dist=..., cost=...), got {type(objective).__name__}."
        )
    num_samples = _check_num_samples(num_samples, estimator)
    if estimator.stateful and caller != "grad_with_state":
        raise ValueError(
            f"Estimator {estimator.name!r} is stateful, so {caller} cannot run it: use "
            f"`init, update = estimators.grad_with_state(objective, estimator, num_samples)`, then "
            "`state = init(params)` and `grads, state = update(params, key, state)`."
        )

    def estimate(params, key, state):
        _check_params(params)
        _check_key(key)
        _check_distribution(estimator, objective.distribution(params))
        if caller == "grad_with_state":
            _check_state(estimator, objective, params, state)
        aux = _mean_aux(objective, params, _same_key(key), num_samples) if objective.has_aux else None
        result = estimator.estimate(objective, params, key, num_samples, state)
        if check_finite:
            paths, leaves = zip(*jax.tree_util.tree_flatten_with_path(result.grads)[0])
            paths = tuple(jax.tree_util.keystr(path) for path in paths)
            jax.debug.callback(functools.partial(_raise_if_not_finite, estimator.name, num_samples, paths),
                               result.value, list(leaves))
        return result, aux

    return estimate


def _raise_if_not_finite(name: str, num_samples: int, paths: tuple[str, ...], value, grad_leaves) -> None:
    """On the host: a ``FloatingPointError`` naming what in an estimate (or a batch of them) is not finite;
    ``paths`` name the gradient's leaves."""
    problems = []
    value = np.asarray(value)
    if not np.all(np.isfinite(value)):
        problems.append(f"the cost's mean over the L = {num_samples} samples is {_non_finite_kinds(value)} (the cost "
                        "returned NaN or inf for some sample)")
    for path, leaf in zip(paths, grad_leaves):
        leaf = np.asarray(leaf)
        bad = ~np.isfinite(leaf)
        if bad.any():
            problems.append(f"the gradient in params{path} has {int(bad.sum())} of {leaf.size} entries "
                            f"{_non_finite_kinds(leaf)}")
    if problems:
        raise FloatingPointError(f"{name}: the estimate is not finite: " + "; ".join(problems) + ".")


def _non_finite_kinds(array: np.ndarray) -> str:
    kinds = [kind for kind, present in (("nan", np.isnan(array).any()), ("inf", np.isinf(array).any())) if present]
    return " and ".join(kinds)


def _mean_aux(objective: Objective, params, key, num_samples: int) -> PyTree:
    """The mean over the samples ``sample(fold_in(key, i))``, i < L, of a ``has_aux`` cost's auxiliary
    output, without gradient."""
    params = jax.lax.stop_gradient(params)
    dist = objective.distribution(params)
    samples = jax.vmap(dist.sample)(sample_keys(key, num_samples))
    _, aux = map_samples(lambda x: objective.cost_and_aux(params, x), samples)
    return jax.tree_util.tree_map(lambda leaf: jnp.mean(leaf, axis=0), aux)


def _same_key(key):
    """``key`` again, for the draws an estimator makes from it too (common random numbers); a typed key is
    cloned, as JAX's key-reuse checker asks."""
    return jax.random.clone(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def _check_num_samples(num_samples, estimator: GradientEstimator) -> int:
    if isinstance(num_samples, bool):
        raise TypeError(f"num_samples must be a positive Python int (L, the samples per estimate), got {num_samples}.")
    try:
        count = operator.index(num_samples)
    except TypeError:
        raise TypeError(
            f"num_samples must be a Python int (it fixes array shapes), got {type(num_samples).__name__}."
        ) from None
    if count < estimator.min_num_samples:
        need = estimator.min_num_samples
        raise ValueError(
            f"Estimator {estimator.name!r} needs num_samples >= {need}, got {count}."
            + (" It compares each sample with the others, so use num_samples=2 or more." if need > 1 else "")
        )
    return count


def _check_params(params) -> None:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if not leaves:
        raise ValueError("params is an empty pytree: there is nothing to differentiate.")
    for path, leaf in leaves:
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int, complex)):
            raise TypeError(
                f"params{jax.tree_util.keystr(path)} is a {type(leaf).__name__}; params must hold only float "
                "arrays. Keep names, functions and other static values out of params (close over them in dist "
                "and cost); for an equinox module, split it first: `params, static = eqx.partition(model, "
                "eqx.is_inexact_array)`, and rebuild it inside dist and cost with `eqx.combine(params, static)`."
            )
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"params{jax.tree_util.keystr(path)} has dtype {dtype}; gradients need floating-point "
                "parameters. Convert it, for example with jnp.asarray(value, dtype=jnp.float32)."
            )


def _check_key(key) -> None:
    dtype = getattr(key, "dtype", None)
    is_typed_key = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    is_raw_key = dtype == jnp.uint32 and jnp.shape(key)[-1:] == (2,)
    if not (is_typed_key or is_raw_key):
        raise TypeError(
            f"key must be a JAX random key, for example jax.random.key(0), got {type(key).__name__}"
            + (f" of dtype {dtype}" if dtype is not None else "")
            + "."
        )
    batch_shape = jnp.shape(key) if is_typed_key else jnp.shape(key)[:-1]
    if batch_shape:
        raise ValueError(
            f"key must be a single key, got a batch of shape {batch_shape}. For one estimate per key, "
            "map over them: jax.vmap(g, in_axes=(None, 0))(params, keys)."
        )


def _check_distribution(estimator: GradientEstimator, dist) -> None:
    reason = estimator.supports(dist)
    if reason is None:
        return
    alternatives = registry.supporting(dist)
    raise ValueError(
        f"Estimator {estimator.name!r} cannot serve a {type(dist).__name__} distribution: {reason}. "
        f"Estimators that can: {', '.join(alternatives) or 'none'}."
    )
