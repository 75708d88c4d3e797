"""Strict numerics for the whole suite, and a fresh key for each test.

Key-reuse checking is on, so an estimator that consumes a key twice fails every test that calls it;
rank promotion raises, so silent broadcasting between mismatched shapes fails too.
"""

import zlib

import jax
import pytest

jax.config.update("jax_debug_key_reuse", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key(request):
    """A key derived from the test's id: tests do not share random numbers, and reruns repeat them."""
    return jax.random.key(zlib.crc32(request.node.nodeid.encode()))
