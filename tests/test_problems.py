"""The problem registry and the shape of every problem's exact answers."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from experiments import problems


@pytest.mark.parametrize("name", problems.names())
def test_exact_answers_have_the_structure_of_the_params(name):
    problem = problems.get(name)
    assert problem.name == name and problem.description
    structure = jax.tree_util.tree_structure(problem.params)
    assert jax.tree_util.tree_structure(problem.exact_grad) == structure
    # The measure-valued estimator differentiates the Bernoulli toys' separable cost exactly: variance 0.
    # So do IndeCateR there and on the categorical toy.
    exact_estimators = ({"measure_valued", "indecater"} if name.startswith("bernoulli_toy")
                        else {"indecater"} if name == "categorical_toy" else set())
    for estimator in problem.exact_variances:
        for num_samples in (2, 7):
            variance = problem.exact_variance(estimator, num_samples)
            assert jax.tree_util.tree_structure(variance) == structure
            for leaf, param in zip(jax.tree_util.tree_leaves(variance), jax.tree_util.tree_leaves(problem.params)):
                # Zero only where nothing varies (weights of pixels that are 0 in every image of a VAE's batch).
                assert np.shape(leaf) == np.shape(param) and np.all(np.asarray(leaf) >= 0)
                if getattr(estimator, "name", estimator) in exact_estimators:
                    assert np.max(np.asarray(leaf)) < 1e-30
                else:
                    assert np.mean(np.asarray(leaf) > 0) > 0.5
    assert problem.exact_variance("score_function_grpo", 2) is None  # no exact variance is known for it


def test_sized_family_by_name():
    problem = problems.get("gaussian_quadratic_100d")
    assert problem.name == "gaussian_quadratic_100d" and problem.params["loc"].shape == (100,)
    assert "gaussian_quadratic_100d" not in problems.names()


@pytest.mark.parametrize("name", ["gaussian_quadratc", "gaussian_quadratic_0d", "quadratic_5"])
def test_unknown_problem_lists_the_known_ones(name):
    with pytest.raises(ValueError, match=r"Unknown problem .*Known problems: gaussian_quadratic, .*<D>d"):
        problems.get(name)


def test_every_registered_problem_is_described_without_building_as_it_is_built():
    # ``--list`` prints problems.describe(name), a copy kept beside the factories so that nothing is built.
    stale = {name: (problems.describe(name), problems.get(name).description) for name in problems.names()}
    stale = {name: pair for name, pair in stale.items() if pair[0] != pair[1]}
    assert not stale, f"update _DESCRIPTIONS in experiments/problems/__init__.py: {stale}"
