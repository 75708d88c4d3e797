"""Expectations under a standard normal by Gauss–Hermite quadrature, in float64 on the host."""

from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial.hermite_e import hermegauss


@functools.cache
def _nodes_and_weights(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = hermegauss(num_nodes)
    return nodes, weights / np.sqrt(2.0 * np.pi)


def standard_normal_expectation(fn, num_nodes: int = 120) -> np.ndarray:
    """E[fn(ε)] for ε ~ N(0, 1).

    Exact for polynomials of degree below 2·num_nodes, and accurate to float64 rounding for the
    smooth, slowly oscillating integrands of the test problems.  ``fn`` maps the vector of nodes to
    values along the last axis (leading axes are kept, so several expectations come out at once).
    """
    nodes, weights = _nodes_and_weights(num_nodes)
    return np.asarray(fn(nodes), dtype=np.float64) @ weights


def standard_normal_expectation_2d(fn, num_nodes: int = 120) -> np.ndarray:
    """E[fn(ε₁, ε₂)] for independent ε₁, ε₂ ~ N(0, 1), on the tensor grid of Gauss–Hermite nodes."""
    nodes, weights = _nodes_and_weights(num_nodes)
    first, second = np.meshgrid(nodes, nodes, indexing="ij")
    return np.asarray(fn(first, second), dtype=np.float64).reshape(-1) @ np.outer(weights, weights).reshape(-1)
