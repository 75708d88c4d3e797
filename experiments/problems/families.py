"""One problem per reparameterizable distribution family beyond the Gaussian, with exact gradients."""

from __future__ import annotations

from typing import Callable

from experiments.problems.base import Problem

#: name -> factory; joined into the problem registry.
PROBLEMS: dict[str, Callable[[], Problem]] = {}
