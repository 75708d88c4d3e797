"""Strict numerics for the whole suite, a fresh key for each test, and quicker compilation.

Key-reuse checking is on, so an estimator that consumes a key twice fails every test that calls it;
rank promotion raises, so silent broadcasting between mismatched shapes fails too.

The suite compiles with XLA's CPU backend optimization level 0 and without the MLIR fusion emitters
(``--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false``): most of its time is
compiling programs that then run for a fraction of a second, and these options compile them in about
a third of the CPU time of level 1 with the emitters (1,096 s → 305 s of compiling over the suite's
5,600 programs; the whole suite 893 s → 590 s on 2 cores), for programs that run about 3 times slower.
They are the same XLA programs, whose values agree with XLA's defaults' to float32 rounding (64
estimates of each contract case: a median difference of 1e-7 of the largest coordinate, 49% of the
numbers bit for bit; at most 1e-5, where the optimal baseline's ratio of sums amplifies rounding); the
suite checks values, never speed.  Programs that run long set their own level: the benchmark's timed
programs (level 1, or XLA's default in the reference profiles), the ci profile of the variance-bound
check (level 1), the large samples of reference gradients and the benchmark's warm-up chains of stateful
estimators (level 1, ``experiments.engine.measure.UNTIMED_COMPILER_OPTIONS``).  Set ``XLA_FLAGS`` with
another ``--xla_backend_optimization_level`` to test at that level.
"""

import os
import zlib

import jax
import pytest

if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0 "
                               "--xla_cpu_use_fusion_emitters=false").strip()
# The command line caches compiled programs on disk by default; the suite counts compilations, so its
# runs compile everything themselves (tests/test_runner.py checks the cache in subprocesses).
os.environ["MC_GRADIENT_ESTIMATORS_COMPILATION_CACHE"] = "off"
jax.config.update("jax_debug_key_reuse", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key(request):
    """A key derived from the test's id: tests do not share random numbers, and reruns repeat them."""
    return jax.random.key(zlib.crc32(request.node.nodeid.encode()))


#: Files whose module fixtures run for minutes (the ci profile, the device subprocess, the report's runs)
#: are collected first, longest first, so that on two workers (pytest-xdist, a file per worker) they
#: overlap with the rest of the suite instead of ending it.
LONG_FILES = ("test_variance_bounds.py", "test_devices.py", "test_report.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        return LONG_FILES.index(item.path.name) if item.path.name in LONG_FILES else len(LONG_FILES)

    items.sort(key=rank)  # stable: the rest keep their order
