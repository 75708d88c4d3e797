"""The examples (examples/*.py) run as written: each model is ranked, here on a short budget."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, expected", [
    ("gaussian_vae_equinox", {"pathwise", "score_function"}),
    ("binary_latent_model", {"disarm", "score_function_loo"}),
])
def test_example_ranks_its_model(name, expected):
    example = load(name)
    objective, params = example.make_objective()
    assert objective.batch_ndims == 1  # each image's latents are scored by that image's own loss
    result = example.main(budget_seconds=8, estimators=sorted(expected), progress=False)
    measured = result.table[(result.table["parameter"] == "all") & (result.table["error"] == "")]
    assert set(measured["estimator"]) == expected
    assert not result.recommendations.empty and set(result.recommendations["best"]) <= expected
    assert result.wall_time_s < 8 + 10  # within one compilation of its budget
