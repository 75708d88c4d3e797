"""JAX's persistent compilation cache, so that a second run of the same cells loads its programs from disk
instead of compiling them again.

The cache is keyed by the compiled program (its HLO, the compiler options and the JAX version), so a
program is reused only where it is the same; results do not depend on it, but a run that finds its
programs there records no compilations and no compile time.  The command line turns it on by default in
``default_directory()``: the ``MC_GRADIENT_ESTIMATORS_COMPILATION_CACHE`` environment variable where set
(``off`` for none; the test suite sets it so that it counts compilations), else
``~/.cache/mc-gradient-estimators/jax``; ``--compilation-cache DIR`` or ``off`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENVIRONMENT_VARIABLE = "MC_GRADIENT_ESTIMATORS_COMPILATION_CACHE"


def default_directory() -> str:
    """The command line's default: the environment variable where set, else the user's cache folder."""
    home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return os.environ.get(ENVIRONMENT_VARIABLE) or str(home_cache / "mc-gradient-estimators" / "jax")


def enable(directory: str | Path) -> Path:
    """Cache every compiled program of this process in ``directory`` (created if missing), however quick
    it was to compile, and reuse the programs found there."""
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return directory
