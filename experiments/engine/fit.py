"""Optimizing a model's objective with optax and a gradient estimator, one compiled chunk of steps at a time.

A *model* (:class:`~experiments.problems.logistic_regression.LogisticRegression`,
:class:`~experiments.problems.vae.GaussianVAE`, ...) provides ``init_params(key)``, ``training_batch()``
and ``objective(batch, num_examples)``.  Step t draws its minibatch and its estimate from
``fold_in(key, t)``, so a run is a pure function of its key: the same key gives the same parameters,
whatever the chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import estimators as est

PyTree = Any

#: ``gradient(objective, batch, params, key, state) -> (value, grads, state)``: one step's estimate of
#: the gradient of ``objective``, the model's objective on ``batch``.
Gradient = Callable[[est.Objective, Any, PyTree, jax.Array, PyTree], tuple[jax.Array, PyTree, PyTree]]


class TrainState(NamedTuple):
    params: PyTree
    optimizer_state: PyTree
    estimator_state: PyTree
    step: jax.Array


def estimator_gradient(estimator: est.GradientEstimator | str, num_samples: int) -> tuple[Callable, Gradient]:
    """``(init, gradient)`` of an estimator at L = ``num_samples``: ``init(objective, params)`` is its
    state (which may depend on the objective's shapes, not on its minibatch), drawn from ``key(0)``."""
    estimator = est.get(estimator) if isinstance(estimator, str) else estimator

    def gradient(objective, batch, params, key, state):
        del batch
        return est.value_and_grad_with_state(objective, estimator, num_samples).update(params, key, state)

    def init(objective, params):
        return estimator.init(objective, params, jax.random.key(0))

    return init, gradient


def minibatch(arrays: tuple, key: jax.Array, batch_size: int | None) -> tuple:
    """The same ``batch_size`` examples, drawn without replacement, of each array (all of them for None)."""
    if batch_size is None:
        return arrays
    chosen = jax.random.choice(key, arrays[0].shape[0], (batch_size,), replace=False)
    return tuple(a[chosen] for a in arrays)


def trainer(model, init_state: Callable, gradient: Gradient, optimizer: optax.GradientTransformation,
            batch_size: int | None, steps_per_call: int):
    """``(init, run)``: ``init(params)`` is a :class:`TrainState`; ``run(state, key)`` makes
    ``steps_per_call`` optimizer steps in one compiled call and returns the new state and each step's
    objective estimate."""
    data = tuple(jnp.asarray(a, jnp.result_type(float)) for a in _as_tuple(model.training_batch()))
    num_examples = data[0].shape[0]
    batch_of = lambda arrays: arrays if len(arrays) > 1 else arrays[0]

    def init(params) -> TrainState:
        # The estimator's state is shaped by the objective on a minibatch: any one will do.
        first = batch_of(data if batch_size is None else tuple(a[:batch_size] for a in data))
        estimator_state = init_state(model.objective(first, num_examples), params)
        return TrainState(params, optimizer.init(params), estimator_state, jnp.zeros((), jnp.int32))

    def one_step(state: TrainState, key):
        key = jax.random.fold_in(key, state.step)
        batch_key, estimate_key = jax.random.split(key)
        batch = batch_of(minibatch(data, batch_key, batch_size))
        objective = model.objective(batch, num_examples)
        value, grads, estimator_state = gradient(objective, batch, state.params, estimate_key, state.estimator_state)
        updates, optimizer_state = optimizer.update(grads, state.optimizer_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, optimizer_state, estimator_state, state.step + 1), value

    @jax.jit
    def run(state: TrainState, key):
        return jax.lax.scan(lambda s, _: one_step(s, key), state, None, length=steps_per_call)

    return init, run


def _as_tuple(batch):
    return batch if isinstance(batch, tuple) else (batch,)
