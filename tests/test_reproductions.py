"""The published setups' reproductions: what they compute is checked against identities and closed forms."""

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.reproductions import __main__ as reproductions_cli
from experiments.reproductions import arms_toy, reinmax_polynomial


def test_arms_with_two_samples_is_disarm_with_one_pair():
    """Two samples of the Dirichlet copula are u and 1 − u, DisARM's pair, and the debiasing factor is 1/(1 − ρ)
    of the pair: the two estimators are one, so their exact variances agree to rounding."""
    table = arms_toy.variance_table(evaluations=(2,))
    np.testing.assert_allclose(table.loc[0, "arms"], table.loc[0, "disarm"], rtol=1e-9)


def test_the_arms_table_has_every_estimators_exact_variance_falling_with_the_budget():
    table = arms_toy.variance_table(evaluations=(2, 3, 4, 8))
    for column in ("arms", "score_function_loo"):
        assert np.all(np.diff(table[column]) < 0), column
    assert table["disarm"].isna().tolist() == [False, True, False, False]  # DisARM needs an even N


def test_the_polynomial_toys_expected_cost_is_its_mean_over_the_classes():
    logits = jnp.zeros((reinmax_polynomial.NUM_VARIABLES, 2))
    for power in reinmax_polynomial.POWERS:
        expected = 0.5 * 0.55**power + 0.5 * 0.45**power
        np.testing.assert_allclose(float(reinmax_polynomial.expected_cost(logits, power)), expected, rtol=1e-6)
    certain = jnp.tile(jnp.array([[-30.0, 30.0]]), (reinmax_polynomial.NUM_VARIABLES, 1))  # always the second class
    np.testing.assert_allclose(float(reinmax_polynomial.expected_cost(certain, 2.0)), 0.45**2, rtol=1e-6)


def test_training_lowers_the_expected_cost_from_its_start():
    start = 0.5 * 0.55**2 + 0.5 * 0.45**2
    final = reinmax_polynomial.train("reinmax", 2.0, steps=300, seeds=2)
    assert final.shape == (2,) and np.all(final < start - 0.005), final


@pytest.mark.parametrize("argv", [["arms_toy", "--max-evaluations", "4"],
                                  ["reinmax_polynomial", "--steps", "5", "--seeds", "2",
                                   "--estimators", "reinmax,straight_through"]])
def test_the_command_line_prints_the_table(argv, capsys):
    assert reproductions_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert ("arms" in out) and ("disarm" in out) if argv[0] == "arms_toy" else "reinmax" in out


def test_an_unknown_reproduction_is_named(capsys):
    assert reproductions_cli.main(["nowhere"]) == 2
    assert "arms_toy" in capsys.readouterr().err
