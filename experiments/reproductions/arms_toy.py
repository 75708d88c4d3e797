r"""The Bernoulli toy of the ARMS paper: ARMS, DisARM and leave-one-out REINFORCE at equal cost evaluations.

The toy's cost :math:`f(b) = \sum_d (b_d - p_0)^2` with :math:`p_0 = 0.49`, where the gradient is small
against the cost's spread (the ``bernoulli_toy_49`` problem: 5 coordinates, logits spread over [−1, 1]).  For
N cost evaluations per estimate, three unbiased estimators: ARMS with N mutually antithetic samples, DisARM
with N/2 antithetic pairs (N even), and leave-one-out REINFORCE with N independent samples.  Their variances
are exact: ARMS's in closed form (:func:`experiments.problems.bernoulli_exact.arms_separable_variance`),
DisARM's by enumerating its pair's law, leave-one-out's as a U-statistic, each checked against measurement
in the tests; the command below measures them too.

The paper's finding (its figure 1 trains the logit and plots the variance along training): at equal N, ARMS
has the lowest variance, below both DisARM and leave-one-out REINFORCE; at N = 2 ARMS is DisARM.  Here the
comparison is at fixed parameters.

Reference: Dimitriev & Zhou, *ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary Variables*,
ICML 2021, section 5.1.

    python -m experiments.reproductions arms_toy            # the exact table, in a second
    python -m experiments.run variance_vs_L --problems bernoulli_toy_49 --estimators arms,disarm,score_function_loo \
        --num-samples 1,2,3,4,5,6,8,10 --replicates 20000   # measured
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from experiments import problems

PROBLEM = "bernoulli_toy_49"
EVALUATIONS = tuple(range(2, 11))


def variance_table(evaluations=EVALUATIONS, problem_name: str = PROBLEM) -> pd.DataFrame:
    """Exact variance of the whole gradient (trace) per estimator and N cost evaluations per estimate, and
    each one's ratio to ARMS's."""
    problem = problems.get(problem_name)
    trace = lambda name, num_samples: float(np.sum(problem.exact_variance(name, num_samples)["logits"]))
    rows = []
    for n in evaluations:
        row = {"cost_evaluations": n, "arms": trace("arms", n), "score_function_loo": trace("score_function_loo", n),
               "disarm": trace("disarm", n // 2) if n % 2 == 0 else np.nan}
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in ("disarm", "score_function_loo"):
        table[f"{name}_over_arms"] = table[name] / table["arms"]
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.reproductions arms_toy",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-evaluations", type=int, default=EVALUATIONS[-1],
                        help="the largest N (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.max_evaluations < 2:
        parser.error("--max-evaluations must be at least 2")
    table = variance_table(range(2, args.max_evaluations + 1))
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
    return 0
