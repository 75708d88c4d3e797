"""Trained parameters of the real-data models, made deterministically and cached as ``.npz`` files.

Each checkpoint is trained by a fixed recipe (:data:`RECIPES`): Adam from ``init_params`` at a fixed
seed, with an unbiased gradient.  The files ship in ``experiments/problems/checkpoints/`` (a few tens of
kilobytes each); a missing one is trained on first use and written there (or, where that folder is not
writable, to ``$XDG_CACHE_HOME/mc-gradient-estimators``).  Nothing is downloaded.  To remake them:

    python -m experiments.problems.checkpoints            # trains the missing ones
    python -m experiments.problems.checkpoints --force    # retrains every one
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.engine import fit
from experiments.problems import stored
from experiments.problems.logistic_regression import LogisticRegression
from experiments.problems.vae import BinaryVAE, GaussianVAE

PACKAGE_DIR = Path(__file__).resolve().parent / "checkpoints"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mc-gradient-estimators"
#: Where checkpoints (and the reference gradients made for them) are looked up and written, in order.
FOLDERS = (PACKAGE_DIR, CACHE_DIR)

#: The seed of every model's initial parameters (the "init" checkpoints) and of its training run.
INIT_SEED = 0
TRAIN_SEED = 1


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a checkpoint is trained: ``steps`` Adam steps at ``learning_rate``, minibatches of
    ``batch_size`` training examples (None: all), each step's gradient from ``gradient``."""

    model: Any
    gradient: str  #: "pathwise:<L>" or "exact" (enumeration, for the binary VAE)
    steps: int
    learning_rate: float
    batch_size: int | None

    def gradient_fn(self) -> tuple[Callable, fit.Gradient]:
        if self.gradient == "exact":
            model = self.model

            def gradient(objective, batch, params, key, state):
                del objective, key
                value, grads = jax.value_and_grad(model.exact_objective)(params, batch)
                return value, grads, state

            return (lambda objective, params: ()), gradient
        name, num_samples = self.gradient.split(":")
        return fit.estimator_gradient(name, int(num_samples))


RECIPES = {
    "logistic_regression": Recipe(LogisticRegression(), "pathwise:16", steps=2000, learning_rate=0.02, batch_size=None),
    "gaussian_vae": Recipe(GaussianVAE(), "pathwise:1", steps=10_000, learning_rate=3e-3, batch_size=64),
    "binary_vae": Recipe(BinaryVAE(), "exact", steps=10_000, learning_rate=3e-3, batch_size=64),
}


def init_params(name: str):
    """The model's parameters before training, from :data:`INIT_SEED`."""
    return _recipe(name).model.init_params(jax.random.key(INIT_SEED))


def train(name: str, progress: bool = False):
    """Train checkpoint ``name`` by its recipe; returns its parameters (JAX arrays)."""
    recipe = _recipe(name)
    init_state, gradient = recipe.gradient_fn()
    steps_per_call = 500
    if recipe.steps % steps_per_call:
        raise ValueError(f"{name}: steps must be a multiple of {steps_per_call}, got {recipe.steps}.")
    init, run = fit.trainer(recipe.model, init_state, gradient, optax.adam(recipe.learning_rate),
                            recipe.batch_size, steps_per_call)
    state = init(init_params(name))
    key = jax.random.key(TRAIN_SEED)
    for chunk in range(recipe.steps // steps_per_call):
        state, values = run(state, key)
        if progress:
            print(f"  {name}: step {(chunk + 1) * steps_per_call:6d}, objective {float(values.mean()):.4f}", flush=True)
    return state.params


def path(name: str) -> Path:
    """Where checkpoint ``name`` is read from: the package folder, else the user cache."""
    return stored.find(name, FOLDERS) or FOLDERS[0] / f"{name}.npz"


def load(name: str):
    """The trained parameters of ``name``, training and caching them first if no file has them."""
    file = path(name)
    if not file.exists():
        print(f"Training the {name} checkpoint (once; cached in {file.parent})...", file=sys.stderr, flush=True)
        file = save(name, train(name))
    template = jax.eval_shape(lambda: init_params(name))  # the shapes and dtypes alone: nothing is computed
    with np.load(file) as arrays:
        expected = stored.leaves_by_key(template)
        if set(arrays) != set(expected) or any(arrays[k].shape != v.shape for k, v in expected.items()):
            raise ValueError(
                f"{file} does not match the model's parameters (expected {sorted(expected)} with their shapes). "
                "Remake it: python -m experiments.problems.checkpoints --force"
            )
        params = stored.unflatten(template, arrays)
    return jax.tree_util.tree_map(lambda x, like: jnp.asarray(x, jnp.result_type(like)), params, template)


def save(name: str, params) -> Path:
    """Write ``params`` atomically as checkpoint ``name``; returns the file written."""
    return stored.write(name, stored.flatten(params), FOLDERS)


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"Unknown checkpoint {name!r}; known: {', '.join(RECIPES)}.")
    return RECIPES[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.problems.checkpoints",
                                     description="Train the real-data models' checkpoints by their fixed recipes.")
    parser.add_argument("names", nargs="*", default=list(RECIPES), help=f"checkpoints (default: {' '.join(RECIPES)})")
    parser.add_argument("--force", action="store_true", help="retrain and overwrite existing files")
    args = parser.parse_args(argv)
    for name in args.names:
        _recipe(name)
    for name in args.names:
        if path(name).exists() and not args.force:
            print(f"{name}: {path(name)} exists (use --force to retrain)")
            continue
        start = time.perf_counter()
        file = save(name, train(name, progress=True))
        print(f"{name}: wrote {file} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
