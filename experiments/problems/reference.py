"""Reference gradients where no exact one is known: the mean of a very large sample of an unbiased
estimator, with its standard error, cached beside the checkpoints.

The M = ``num_chunks × chunk_size`` samples are drawn as ``num_chunks`` estimates of ``chunk_size``
samples each (chunk c with key ``fold_in(key(REFERENCE_SEED), c)``); the reference is the mean of the
chunk means and its standard error their standard deviation over sqrt(num_chunks), both per
coordinate in float64.  The file records the estimator, M, the seed, the parameters' paths and shapes
and projections of their values, and is remade when the parameters change beyond float32 rounding.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

import estimators as est
from experiments.problems import stored

#: The key stream of reference samples, apart from the seeds experiments use.
REFERENCE_SEED = 2**30 + 7
DEFAULT_NUM_CHUNKS = 1024
DEFAULT_CHUNK_SIZE = 1024
#: XLA options of the reference's program, which runs for minutes: optimized whatever the process's
#: default (a test suite may compile at level 0, where this program runs about 3 times slower).
REFERENCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def fingerprint(params) -> str:
    """A hash of the parameters' paths, shapes and dtypes: which parameters they are, not their values
    (:func:`params_projections` matches those)."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        digest.update(f"{jax.tree_util.keystr(path)}{np.shape(leaf)}{np.asarray(leaf).dtype}".encode())
    return digest.hexdigest()[:16]


#: The relative tolerance to which stored parameters must match: a tolerance in units of Σ|θ|, far above
#: float32 rounding (another CPU, or another XLA optimization level, computes a random initialization
#: to the last bit differently: up to about 1e-7 of Σ|θ| in a projection) and far below any real change
#: of the parameters (another seed or a training step moves a projection by about Σ|θ| / sqrt(#θ)).
PARAMS_MATCH_TOLERANCE = 1e-5
NUM_PROJECTIONS = 4


def params_projections(params) -> np.ndarray:
    """[Σ|θ|, then Σ sᵢ θᵢ for ``NUM_PROJECTIONS`` fixed random sign vectors s] in float64: the values of
    the parameters summed so that float rounding moves them by at most the rounding of Σ|θ|."""
    values = np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for leaf in jax.tree_util.tree_leaves(params)])
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(NUM_PROJECTIONS, values.size))
    return np.concatenate([[np.sum(np.abs(values))], signs @ values])


def same_params(stored_projections, params) -> bool:
    """Whether ``params`` are the parameters ``stored_projections`` were taken of, to float32 rounding."""
    stored_projections = np.asarray(stored_projections, np.float64)
    projections = params_projections(params)
    if stored_projections.shape != projections.shape:
        return False
    scale = max(projections[0], stored_projections[0], np.finfo(np.float64).tiny)
    return bool(np.all(np.abs(projections - stored_projections) <= PARAMS_MATCH_TOLERANCE * scale))


def sample_reference(objective: est.Objective, params, estimator: str = "pathwise",
                     num_chunks: int = DEFAULT_NUM_CHUNKS, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """(mean, standard error): pytrees like ``params`` of float64 NumPy arrays."""
    if num_chunks < 2:
        raise ValueError(f"A standard error needs at least 2 chunks, got {num_chunks}.")
    gradient = est.grad(objective, estimator, chunk_size)
    chunk_means = jax.jit(lambda p, keys: jax.lax.map(lambda k: gradient(p, k), keys),
                          compiler_options=REFERENCE_COMPILER_OPTIONS)
    keys = est.sample_keys(jax.random.key(REFERENCE_SEED), num_chunks)
    means = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), chunk_means(params, keys))
    mean = jax.tree_util.tree_map(lambda x: x.mean(axis=0), means)
    se = jax.tree_util.tree_map(lambda x: x.std(axis=0, ddof=1) / np.sqrt(num_chunks), means)
    return mean, se


def cached_reference(name: str, objective: est.Objective, params, folders: Sequence[Path],
                     estimator: str = "pathwise", num_chunks: int = DEFAULT_NUM_CHUNKS,
                     chunk_size: int = DEFAULT_CHUNK_SIZE):
    """The reference stored as ``<folder>/<name>.npz`` if it was made for these parameters (to float32
    rounding: :func:`same_params`) and settings; otherwise compute it and write it to the first of
    ``folders`` that can be written."""
    settings = {"estimator": estimator, "num_samples": num_chunks * chunk_size, "seed": REFERENCE_SEED,
                "params_fingerprint": fingerprint(params)}
    for folder in folders:
        file = stored.find(name, [folder])
        if file is None:
            continue
        with np.load(file) as arrays:
            if (all(k in arrays and str(arrays[k]) == str(v) for k, v in settings.items())
                    and "params_projections" in arrays and same_params(arrays["params_projections"], params)):
                return _as_float64(stored.unflatten(params, arrays, "mean")), _as_float64(
                    stored.unflatten(params, arrays, "se")
                )
    print(f"Computing the reference gradient {name} ({settings['num_samples']:,} {estimator} samples; "
          "once, then cached)...", file=sys.stderr, flush=True)
    mean, se = sample_reference(objective, params, estimator, num_chunks, chunk_size)
    try:
        stored.write(name, {**settings, "params_projections": params_projections(params),
                            **stored.flatten(mean, "mean"), **stored.flatten(se, "se")}, folders)
    except OSError as error:  # the answer is still right; it is only not cached
        print(f"Not cached: {error}", file=sys.stderr, flush=True)
    return mean, se


def _as_float64(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)
