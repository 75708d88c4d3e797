"""The real-data problems: Bayesian logistic regression and two VAEs, at their initial parameters and at
their trained checkpoints, with exact or reference gradients.

- ``logistic_regression``: the ELBO on all 455 training examples; exact gradient by quadrature.
- ``gaussian_vae``: the ELBO on a fixed batch of 64 training images; the reference gradient is the mean
  of 2²⁰ pathwise samples, with its standard error (no closed form exists).
- ``binary_vae``: the same batch; exact gradient by enumerating the 2⁸ latent states of each image.

The ``_init`` variants are the same problems at the models' initial parameters (seed 0).  Gradients are
measured for a fixed batch: the estimators' noise, not the data's (training adds minibatch noise on top).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.problems import checkpoints, reference
from experiments.problems.base import Problem
from experiments.problems.logistic_regression import LogisticRegression
from experiments.problems.vae import BinaryVAE, GaussianVAE

#: Training images whose ELBO the VAE problems differentiate (the first of the training split).
EVALUATION_BATCH = 64
CHECKPOINTS = ("trained", "init")


def _params(name: str, checkpoint: str):
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}.")
    return checkpoints.load(name) if checkpoint == "trained" else checkpoints.init_params(name)


def _problem_name(name: str, checkpoint: str) -> str:
    return name if checkpoint == "trained" else f"{name}_init"


def _to_numpy(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def logistic_regression(checkpoint: str = "trained") -> Problem:
    model = LogisticRegression()
    params = _params(model.name, checkpoint)
    exact = model.exact_grad(params)
    return Problem(
        name=_problem_name(model.name, checkpoint),
        description=f"{model.description}, {checkpoint} parameters; exact gradient by quadrature",
        objective=model.objective(model.training_batch()),
        params=params,
        exact_grad=_to_numpy(exact),
        dataset="breast_cancer",
    )


def gaussian_vae(checkpoint: str = "trained") -> Problem:
    model = GaussianVAE()
    params = _params(model.name, checkpoint)
    objective = model.objective(model.training_batch()[:EVALUATION_BATCH])
    name = _problem_name(model.name, checkpoint)
    mean, se = reference.cached_reference(f"{name}_reference", objective, params, checkpoints.FOLDERS)
    return Problem(
        name=name,
        description=f"{model.description}, {checkpoint} parameters; reference gradient from 2^20 pathwise samples",
        objective=objective,
        params=params,
        exact_grad=mean,
        exact_grad_se=se,
        dataset="digits",
    )


def binary_vae(checkpoint: str = "trained") -> Problem:
    model = BinaryVAE()
    params = _params(model.name, checkpoint)
    images = model.training_batch()[:EVALUATION_BATCH]
    with jax.enable_x64(True):
        params64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        exact = _to_numpy(jax.grad(model.exact_objective)(params64, jnp.asarray(images, jnp.float64)))
    return Problem(
        name=_problem_name(model.name, checkpoint),
        description=f"{model.description}, {checkpoint} parameters; exact gradient by enumeration",
        objective=model.objective(images),
        params=params,
        exact_grad=exact,
        dataset="digits",
    )
