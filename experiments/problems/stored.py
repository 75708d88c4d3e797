"""Pytrees stored as ``.npz`` files: flattened by their paths, looked up in a list of folders (the
package's, then the user cache), and written atomically to the first folder that accepts them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np


def flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"<prefix>/<path>": array}`` for each leaf, the path as ``encoder/hidden/w``."""
    return {key: np.asarray(leaf) for key, leaf in leaves_by_key(tree, prefix).items()}


def leaves_by_key(tree, prefix: str = "") -> dict:
    """The leaves of ``tree`` (arrays, or shapes from :func:`jax.eval_shape`) under the keys of :func:`flatten`."""
    head = f"{prefix}/" if prefix else ""
    return {head + jax.tree_util.keystr(path, simple=True, separator="/"): leaf
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def unflatten(template, arrays, prefix: str = ""):
    """The pytree of ``template``'s structure (arrays or shapes) whose leaves are ``arrays`` under the keys of
    :func:`flatten`."""
    leaves = [np.asarray(arrays[key]) for key in leaves_by_key(template, prefix)]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def find(name: str, folders: Sequence[Path]) -> Path | None:
    """The first ``<folder>/<name>.npz`` that exists, or None."""
    return next((folder / f"{name}.npz" for folder in folders if (folder / f"{name}.npz").exists()), None)


def write(name: str, arrays: dict, folders: Sequence[Path]) -> Path:
    """Write ``<folder>/<name>.npz`` atomically (a temporary file renamed into place, readable by all) in
    the first of ``folders`` that can be written; return it, or raise OSError naming them all."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".npz", delete=False) as handle:
                np.savez_compressed(handle, **arrays)
            os.chmod(handle.name, 0o644)
            os.replace(handle.name, folder / f"{name}.npz")
            return folder / f"{name}.npz"
        except OSError:
            continue
    raise OSError(f"Could not write {name}.npz to any of {', '.join(map(str, folders))}.")
