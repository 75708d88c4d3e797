"""Reference gradients where no exact one is known: the mean of a very large sample of an unbiased
estimator, with its standard error, cached beside the checkpoints.

The M = ``num_chunks × chunk_size`` samples are drawn as ``num_chunks`` estimates of ``chunk_size``
samples each (chunk c with key ``fold_in(key(REFERENCE_SEED), c)``); the reference is the mean of the
chunk means and its standard error their standard deviation over sqrt(num_chunks), both per
coordinate in float64.  The file records the estimator, M, the seed and a fingerprint of the
parameters, and is remade when the parameters change.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

import estimators as est

#: The key stream of reference samples, apart from the seeds experiments use.
REFERENCE_SEED = 2**30 + 7
DEFAULT_NUM_CHUNKS = 1024
DEFAULT_CHUNK_SIZE = 1024


def fingerprint(params) -> str:
    """A hash of the parameters' values, shapes and paths."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        array = np.ascontiguousarray(np.asarray(leaf, np.float32))
        digest.update(jax.tree_util.keystr(path).encode() + str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()[:16]


def sample_reference(objective: est.Objective, params, estimator: str = "pathwise",
                     num_chunks: int = DEFAULT_NUM_CHUNKS, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """(mean, standard error): pytrees like ``params`` of float64 NumPy arrays."""
    if num_chunks < 2:
        raise ValueError(f"A standard error needs at least 2 chunks, got {num_chunks}.")
    gradient = est.grad(objective, estimator, chunk_size)
    chunk_means = jax.jit(lambda p, keys: jax.lax.map(lambda k: gradient(p, k), keys))
    keys = est.sample_keys(jax.random.key(REFERENCE_SEED), num_chunks)
    means = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), chunk_means(params, keys))
    mean = jax.tree_util.tree_map(lambda x: x.mean(axis=0), means)
    se = jax.tree_util.tree_map(lambda x: x.std(axis=0, ddof=1) / np.sqrt(num_chunks), means)
    return mean, se


def cached_reference(file: Path, objective: est.Objective, params, estimator: str = "pathwise",
                     num_chunks: int = DEFAULT_NUM_CHUNKS, chunk_size: int = DEFAULT_CHUNK_SIZE,
                     fallback_dir: Path | None = None):
    """The reference stored in ``file`` if it was made for these parameters and settings; otherwise
    compute it and write it there (or to ``fallback_dir`` where ``file``'s folder is not writable)."""
    settings = {"estimator": estimator, "num_samples": num_chunks * chunk_size, "seed": REFERENCE_SEED,
                "params_fingerprint": fingerprint(params)}
    candidates = [file] + ([fallback_dir / file.name] if fallback_dir else [])
    for candidate in candidates:
        if candidate.exists():
            with np.load(candidate) as stored:
                if all(k in stored and str(stored[k]) == str(v) for k, v in settings.items()):
                    return _unflatten(params, stored, "mean"), _unflatten(params, stored, "se")
    print(f"Computing the reference gradient {file.name} ({settings['num_samples']:,} {estimator} samples; "
          "once, then cached)...", file=sys.stderr, flush=True)
    mean, se = sample_reference(objective, params, estimator, num_chunks, chunk_size)
    arrays = {**settings, **_flatten(mean, "mean"), **_flatten(se, "se")}
    for folder in [c.parent for c in candidates]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".npz", delete=False) as handle:
                np.savez_compressed(handle, **arrays)
            os.chmod(handle.name, 0o644)
            os.replace(handle.name, folder / file.name)
            break
        except OSError:
            continue
    return mean, se


def _flatten(tree, prefix: str) -> dict:
    return {f"{prefix}/{jax.tree_util.keystr(p, simple=True, separator='/')}": np.asarray(x)
            for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def _unflatten(template, stored, prefix: str):
    paths = jax.tree_util.tree_leaves_with_path(template)
    leaves = [np.asarray(stored[f"{prefix}/{jax.tree_util.keystr(p, simple=True, separator='/')}"], np.float64)
              for p, _ in paths]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)
