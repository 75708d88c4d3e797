"""The real-data problems: Bayesian logistic regression and two VAEs, at their initial parameters and at
their trained checkpoints, with exact or reference gradients.

- ``logistic_regression``: the ELBO on all 455 training examples; exact gradient by quadrature.
- ``gaussian_vae``: the ELBO on a fixed batch of 64 training images; the reference gradient is the mean
  of 2²⁰ pathwise samples, with its standard error (no closed form exists).
- ``binary_vae``: the same batch; exact gradient by enumerating the 2⁸ latent states of each image, and
  exact variances of the score function, leave-one-out, ARM and DisARM the same way
  (:mod:`experiments.problems.vae_exact`).
- ``binary_vae_iw2``, ``gaussian_vae_iw8``: the VAEs' K-particle importance-weighted bounds on the same
  batch, one per image; the binary one's gradient exact by enumerating each image's particle pairs, the
  Gaussian one's a cached reference of 2¹⁶ DReG estimates.

The VAEs' images are independent examples (``batch_ndims=1``): every estimator weights an image's
latents by that image's own cost.  The ``_summed`` variants are the same objectives with one cost for
the whole batch, the form no one trains with, kept to measure what the per-example signal buys.

The ``_init`` variants are the same problems at the models' initial parameters (seed 0).  Gradients are
measured for a fixed batch: the estimators' noise, not the data's (training adds minibatch noise on top).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.problems import reference
from experiments.problems.base import Problem
from experiments.problems.logistic_regression import LogisticRegression
from experiments.problems.vae import BinaryVAE, GaussianVAE
from experiments.problems.vae_exact import binary_vae_exact_variances

#: Training images whose ELBO the VAE problems differentiate (the first of the training split).
EVALUATION_BATCH = 64
CHECKPOINTS = ("trained", "init")


def checkpoints():
    """The checkpoints module, imported where it is used: importing it with the package would make
    ``python -m experiments.problems.checkpoints`` (which trains them) warn that it was imported twice."""
    from experiments.problems import checkpoints as module

    return module


def _params(name: str, checkpoint: str):
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}.")
    return checkpoints().load(name) if checkpoint == "trained" else checkpoints().init_params(name)


def trained_params(name: str):
    """The trained checkpoint of ``name`` (``logistic_regression``, ``gaussian_vae``, ``binary_vae``)."""
    return _params(name, "trained")


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


def gaussian_vae(checkpoint: str = "trained", per_example: bool = True) -> Problem:
    model = GaussianVAE()
    params = _params(model.name, checkpoint)
    objective = model.objective(model.training_batch()[:EVALUATION_BATCH], per_example=per_example)
    name = _problem_name(model.name, checkpoint)
    # The same F either way, so one reference (pathwise differentiates the same sum of costs).
    mean, se = reference.cached_reference(f"{name}_reference", objective, params, checkpoints().FOLDERS)
    signal = "" if per_example else "; one batch-level cost for every image's latents (no plate)"
    return Problem(
        name=name + ("" if per_example else "_summed"),
        description=f"{model.description}, {checkpoint} parameters; reference gradient from 2^20 pathwise "
        f"samples{signal}",
        objective=objective,
        params=params,
        exact_grad=mean,
        exact_grad_se=se,
        dataset="digits",
    )


def binary_vae(checkpoint: str = "trained", per_example: bool = True) -> Problem:
    model = BinaryVAE()
    params = _params(model.name, checkpoint)
    images = model.training_batch()[:EVALUATION_BATCH]
    exact, variances = _binary_vae_answers(checkpoint, per_example)
    signal = "" if per_example else "; one batch-level cost for every image's latents (no plate)"
    return Problem(
        name=_problem_name(model.name, checkpoint) + ("" if per_example else "_summed"),
        description=f"{model.description}, {checkpoint} parameters; exact gradient and variances by "
        f"enumeration{signal}",
        objective=model.objective(images, per_example=per_example),
        params=params,
        exact_grad=exact,
        exact_variances=variances,
        dataset="digits",
    )


@functools.cache
def _binary_vae_answers(checkpoint: str, per_example: bool):
    """The exact gradient, and with per-example costs the exact variances of the score function,
    leave-one-out, ARM and DisARM (:mod:`experiments.problems.vae_exact`); computed once per process."""
    model = BinaryVAE()
    params = _params(model.name, checkpoint)
    images = model.training_batch()[:EVALUATION_BATCH]
    with jax.enable_x64(True):
        params64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        exact = _to_numpy(jax.jit(jax.grad(model.exact_objective))(params64, jnp.asarray(images, jnp.float64)))
    variances = binary_vae_exact_variances(model, params, images) if per_example else {}
    return exact, variances


#: Samples of the Gaussian VAE's bound-gradient reference: 256 chunks of 256 K-particle estimates (DReG,
#: whose encoder gradient has the least variance of the unbiased estimators here).
BOUND_REFERENCE_CHUNKS = 256


def binary_vae_bound(num_particles: int = 2) -> Problem:
    """The binary VAE's K-particle importance-weighted bound (K = 1 or 2) on the evaluation batch, one bound per
    image (a plate), at the trained checkpoint; exact gradient by enumerating each image's K-tuples of states."""
    model = BinaryVAE()
    params = _params(model.name, "trained")
    images = model.training_batch()[:EVALUATION_BATCH]
    with jax.enable_x64(True):
        params64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        bound_grad = jax.jit(jax.grad(model.exact_bound), static_argnums=2)
        exact = _to_numpy(bound_grad(params64, jnp.asarray(images, jnp.float64), num_particles))
    return Problem(
        name=f"binary_vae_iw{num_particles}",
        description=f"binary VAE's importance-weighted bound, K = {num_particles}, per image of {EVALUATION_BATCH}, "
        "trained parameters; exact gradient by enumerating every image's particle tuples",
        objective=model.bound_objective(images, num_particles),
        params=params,
        exact_grad=exact,
        dataset="digits",
    )


def gaussian_vae_bound(num_particles: int = 8) -> Problem:
    """The Gaussian VAE's K-particle importance-weighted bound on the evaluation batch, one bound per image (a
    plate), at the trained checkpoint; reference gradient from 2¹⁶ DReG estimates, cached."""
    model = GaussianVAE()
    params = _params(model.name, "trained")
    objective = model.bound_objective(model.training_batch()[:EVALUATION_BATCH], num_particles)
    name = f"gaussian_vae_iw{num_particles}"
    mean, se = reference.cached_reference(f"{name}_reference", objective, params, checkpoints().FOLDERS,
                                          estimator="dreg", num_chunks=BOUND_REFERENCE_CHUNKS,
                                          chunk_size=BOUND_REFERENCE_CHUNKS)
    return Problem(
        name=name,
        description=f"Gaussian VAE's importance-weighted bound, K = {num_particles}, per image of {EVALUATION_BATCH}, "
        f"trained parameters; reference gradient from {BOUND_REFERENCE_CHUNKS**2:,} DReG samples",
        objective=objective,
        params=params,
        exact_grad=mean,
        exact_grad_se=se,
        dataset="digits",
    )


def num_training_images() -> int:
    """How many training images the VAEs' problems can be built on."""
    return len(BinaryVAE().training_batch())


def vae_on_images(name: str, num_images: int, per_example: bool = True) -> Problem:
    """A VAE (``binary_vae`` or ``gaussian_vae``, trained checkpoint) on its first ``num_images`` training
    images, with per-example costs or the batch-level one: the problems of ``variance_vs_batch``.  The
    binary VAE's exact gradient is enumerated; the Gaussian VAE's is not known (its reference sample is
    made for the 64-image batch only), which a variance needs no more than the binary one's."""
    model = {"binary_vae": BinaryVAE(), "gaussian_vae": GaussianVAE()}[name]
    params = _params(model.name, "trained")
    images = model.training_batch()[:num_images]
    exact = None
    if name == "binary_vae":
        with jax.enable_x64(True):
            params64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
            exact = _to_numpy(jax.jit(jax.grad(model.exact_objective))(params64, jnp.asarray(images, jnp.float64)))
    signal = "a cost per image" if per_example else "one cost for the batch"
    return Problem(
        name=name,
        description=f"{model.description.split(',')[0]} on {num_images} training images, {signal}",
        objective=model.objective(images, per_example=per_example),
        params=params,
        exact_grad=exact,
        dataset="digits",
    )
