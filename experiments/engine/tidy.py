"""A measured cell as tidy rows: per parameter group, and per gradient coordinate."""

from __future__ import annotations

import jax
import numpy as np

import estimators as est
from experiments.engine.measure import CellMeasurement
from experiments.engine.statistics import coordinate_summary, group_summary, signal_to_noise
from experiments.problems import Problem

#: The ``parameter`` of rows that describe the whole gradient (all parameter groups together) and the
#: cell's cost metrics.
ALL_PARAMETERS = "all"
#: Parameter groups with more coordinates than this (a VAE's encoder) get no per-coordinate rows in
#: metrics_by_coordinate.csv; their group rows in metrics.csv are complete.
MAX_COORDINATE_ROWS = 256


def parameter_groups(params) -> list[tuple[str, list[int]]]:
    """(name, leaf indices): one group per top-level entry of the params pytree (``loc``, or a VAE's
    ``encoder`` with all its layers), and ``all`` for every leaf."""
    groups: dict[str, list[int]] = {}
    for i, (path, _) in enumerate(jax.tree_util.tree_leaves_with_path(params)):
        groups.setdefault(jax.tree_util.keystr(path[:1], simple=True, separator="/"), []).append(i)
    return list(groups.items()) + [(ALL_PARAMETERS, [i for leaves in groups.values() for i in leaves])]


def cell_rows(problem: Problem, estimator: est.GradientEstimator, num_samples: int, m: CellMeasurement,
              labels: dict | None = None, snr: bool = False):
    """The tidy rows of one cell, ``labels`` (such as the temperature) added as columns; with ``snr``, each
    parameter group's signal-to-noise ratios too (:func:`~experiments.engine.statistics.signal_to_noise`)."""
    grads = jax.tree_util.tree_leaves(m.grads)
    num_replicates = grads[0].shape[0]
    flat = lambda leaves: np.concatenate([x.reshape(num_replicates, -1) for x in leaves], axis=1)
    flat_exact = lambda leaves: np.concatenate([np.ravel(x) for x in leaves])
    leaves_or_none = lambda tree: None if tree is None else jax.tree_util.tree_leaves(tree)
    exact = leaves_or_none(problem.exact_grad)
    exact_se = leaves_or_none(problem.exact_grad_se)
    exact_variance = leaves_or_none(problem.exact_variance(estimator, num_samples))
    exact_mean = leaves_or_none(problem.exact_mean(estimator))

    key = {"problem": problem.name, "estimator": estimator.name, **(labels or {}), "num_samples": num_samples}
    rows, coordinate_rows = [], []

    def row(parameter, metric, value, std_error, **extra):
        return {**key, "parameter": parameter, **extra, "metric": metric, "value": value,
                "std_error": std_error, "replicates": num_replicates}

    for parameter, leaves in parameter_groups(problem.params):
        group = flat([grads[i] for i in leaves])
        group_exact = None if exact is None else flat_exact([exact[i] for i in leaves])
        group_exact_se = None if exact_se is None else flat_exact([exact_se[i] for i in leaves])
        for metric, (value, se) in group_summary(group, group_exact, group_exact_se).items():
            rows.append(row(parameter, metric, value, se))
        if snr:
            rows.extend(row(parameter, metric, value, se) for metric, (value, se) in signal_to_noise(group).items())
        if exact_variance is not None:
            trace = flat_exact([exact_variance[i] for i in leaves]).sum()
            rows.append(row(parameter, "exact_variance", float(trace), 0.0))
        if exact_mean is not None and exact is not None:
            bias = flat_exact([exact_mean[i] for i in leaves]) - group_exact
            rows.append(row(parameter, "exact_bias_squared", float(bias @ bias), 0.0))
        if parameter == ALL_PARAMETERS or group.shape[1] > MAX_COORDINATE_ROWS:
            continue
        coordinates = coordinate_summary(group, group_exact, group_exact_se)
        if group_exact is not None:
            reference_se = np.zeros_like(group_exact) if group_exact_se is None else group_exact_se
            coordinates["exact_grad"] = (group_exact, reference_se)
        if exact_variance is not None:
            values = flat_exact([exact_variance[i] for i in leaves])
            coordinates["exact_variance"] = (values, np.zeros_like(values))
        if exact_mean is not None and not estimator.unbiased:
            values = flat_exact([exact_mean[i] for i in leaves])
            coordinates["exact_expectation"] = (values, np.zeros_like(values))
        for metric, (values, ses) in coordinates.items():
            for coordinate, (value, se) in enumerate(zip(values, ses)):
                coordinate_rows.append(row(parameter, metric, float(value), float(se), coordinate=coordinate))

    cost = {
        "objective": (float(m.values.mean()), float(m.values.std(ddof=1) / np.sqrt(num_replicates))),
        "time_per_estimate_s": (m.run_time_s / num_replicates, 0.0),
        "compile_time_s": (m.compile_time_s, 0.0),
        "compilations": (float(m.compilations), 0.0),
        "cost_evaluations": (float(problem.cost_evaluations(estimator, num_samples)), 0.0),
        "program_num_samples": (float(m.program_num_samples or num_samples), 0.0),
    }
    rows.extend(row(ALL_PARAMETERS, metric, value, se) for metric, (value, se) in cost.items())
    return rows, coordinate_rows
