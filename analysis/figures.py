"""Seaborn figures of a run, from its tidy metrics.

Each experiment declares its figures (:class:`~experiments.engine.experiment.FigureSpec`); a figure with a
:class:`~experiments.engine.experiment.LinePlot` is drawn by :func:`line_plot`, any other by the function
of this module named like it (``DRAWERS``).  :func:`drawings` gives an experiment's figures with their
drawing functions.
"""

from __future__ import annotations

import functools
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import estimators as est  # noqa: E402
from analysis.load import load_run, wide  # noqa: E402
from analysis.tables import training_table  # noqa: E402
from experiments import catalog  # noqa: E402
from experiments.engine.experiment import FigureSpec, LinePlot  # noqa: E402

Z_95 = 1.959964  # two-sided 95% normal quantile for the standard-error bands
PANEL_COLUMNS = 4


#: Values below this fraction of a panel's largest are float rounding of an exact estimate (the delta
#: method on a quadratic cost has zero variance: 1e-14 of the largest or less); they are noted on the
#: panel rather than stretching it.  Genuine values span up to 9 decades in one panel (pathwise against
#: the score function on a VAE's encoder), so the cut sits well below them.
RESOLUTION = 1e-12
#: How a swept label column is written on a figure.
SYMBOLS = {"mu": "μ", "dimension": "D", "temperature": "τ", "num_samples": "L", "batch_size": "N",
           "num_particles": "K"}


#: One hue per estimator family (colour-blind safe); an estimator's shade and marker tell it from the other
#: members of its family, so the style of a name is the same in every figure and run.
FAMILY_HUES = dict(zip(est.registry.FAMILIES, [
    (0.004, 0.451, 0.698),  # pathwise: blue
    (0.871, 0.561, 0.020),  # score function: orange
    (0.008, 0.620, 0.451),  # control variates: green
    (0.835, 0.369, 0.000),  # measure-valued: vermillion
    (0.557, 0.267, 0.678),  # relaxations: purple
    (0.800, 0.255, 0.569),  # antithetic: magenta
    (0.090, 0.745, 0.812),  # conditional relaxations: cyan
    (0.737, 0.741, 0.133),  # importance-weighted: olive
]))
#: Names that are no registered estimator (a run made by an older version): greys, in order.
UNKNOWN_SHADES = [(0.25, 0.25, 0.25), (0.5, 0.5, 0.5), (0.1, 0.1, 0.1), (0.65, 0.65, 0.65)]


#: The legend's one entry for the exact values drawn dotted in each estimator's colour.
EXACT_LABEL = "exact value (dotted, in the estimator's colour)"


def estimator_style(name: str) -> tuple[tuple[float, float, float], str]:
    """(colour, marker) of estimator ``name``: its family's hue, darker to lighter through the family's
    members in the registry's order, and the member's own marker."""
    if name not in est.names():
        return UNKNOWN_SHADES[0], MARKERS[0]
    family = est.registry.family(name)
    members = [other for other in est.names() if est.registry.family(other) == family]
    index = members.index(name)
    hue = FAMILY_HUES[family]
    if len(members) == 1:
        return hue, MARKERS[0]
    dark = tuple(0.7 * c for c in hue)
    light = tuple(c + 0.4 * (1 - c) for c in hue)
    shades = sns.blend_palette([dark, hue, light], len(members))
    return tuple(float(c) for c in shades[index]), MARKERS[index % len(MARKERS)]


def estimator_palette(estimators, palette: dict | None = None) -> dict:
    """One colour per estimator: ``palette``'s where it has one (a report passes one palette to every
    figure of every run), else its family style (:func:`estimator_style`); names that are no registered
    estimator get greys."""
    palette = dict(palette or {})
    unknown = iter(UNKNOWN_SHADES * 4)
    for name in dict.fromkeys(estimators):
        if name not in palette:
            palette[name] = estimator_style(name)[0] if name in est.names() else next(unknown)
    return palette


def run_palette(*configs: dict) -> dict:
    """The palette of one or more runs (their config.json): estimators coloured in the order the runs
    list them (the registry's order for a default run), so an estimator has one colour throughout."""
    names = [name for config in configs
             for name in (config.get("estimator_properties") or config.get("estimators") or [])]
    return estimator_palette(names)


def _without_exact(frame: pd.DataFrame, column: str, x: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with the values of ``column`` below RESOLUTION × the panel's largest blanked (with their
    ``<column>_se`` and their exact value ``exact_<column>``, whose dotted line would stretch the axis as
    far), so a log axis is not stretched over float rounding and the line breaks there; and
    the estimators that had such values, to be named on the panel by :func:`_note_exact` (with the
    values of ``x`` where they were, unless it was everywhere)."""
    top = frame[column].max()
    if not np.isfinite(top) or top <= 0:
        return frame, []
    below = frame[column] < top * RESOLUTION
    names = []
    for name, rows in frame[below].groupby("estimator"):
        everywhere = x is None or len(rows) == (frame["estimator"] == name).sum()
        where = ", ".join(f"{v:g}" for v in sorted(rows[x])) if not everywhere else ""
        names.append(f"{name} at {SYMBOLS.get(x, x)} = {where}" if where else name)
    blanked = [c for c in (column, f"{column}_se", f"exact_{column}") if c in frame]
    frame = frame.copy()
    frame.loc[below, blanked] = np.nan
    return frame, names


def _note_exact(ax, names: list[str]) -> None:
    """Name, under the panel's x label, the estimators whose values :func:`_without_exact` blanked."""
    if names:
        _note(ax, "≈ 0, exact to rounding (not drawn): " + ", ".join(names))


def _note(ax, text: str) -> None:
    """A small note under the panel's x label."""
    ax.annotate(textwrap.fill(text, width=70), xy=(0.5, 0.0), xycoords=ax.xaxis.label, xytext=(0, -3),
                textcoords="offset points", ha="center", va="top", fontsize=7, color="0.3")


#: Markers by the estimator's place in its family, so that lines of similar colour still differ.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p", "d", "H", "8", "x")


def marker(palette: dict, estimator: str) -> str:
    """The estimator's marker: its place in its family (:func:`estimator_style`), or in ``palette`` for a
    name that is no registered estimator."""
    if estimator in est.names():
        return estimator_style(estimator)[1]
    return MARKERS[list(palette).index(estimator) % len(MARKERS)]


def _line_with_band(ax, x, y, se, palette, estimator) -> None:
    """A measured line with its 95% band (the band's lower edge kept positive for log axes)."""
    color, label = palette[estimator], estimator
    ax.plot(x, y, marker=marker(palette, estimator), ms=4, color=color, label=label)
    ax.fill_between(x, (y - Z_95 * se).clip(lower=y * 1e-3), y + Z_95 * se, color=color, alpha=0.2, linewidth=0)


def _panels(table: pd.DataFrame, problem_order: list[str]):
    """One panel per (problem, parameter group), ``all`` excluded, problems in the run's order; unused
    axes hidden.  Returns the figure and a list of ((problem, parameter), rows, axes)."""
    table = table[table["parameter"] != "all"]
    groups = list(table.groupby(["problem", "parameter"], sort=False))
    order = {name: i for i, name in enumerate(problem_order)}
    groups.sort(key=lambda group: order[group[0][0]])
    return _grid(groups)


def _grid(groups: list, columns: int = PANEL_COLUMNS):
    """A figure with one panel per (key, rows) group, ``columns`` to a row, unused axes hidden.
    Returns the figure and a list of (key, rows, axes)."""
    columns = min(columns, len(groups))
    rows = math.ceil(len(groups) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    flat_axes = list(axes.flat)
    for ax in flat_axes[len(groups):]:
        ax.set_visible(False)
    return fig, [(name, frame, ax) for (name, frame), ax in zip(groups, flat_axes)]


def _exact_line(ax, x, y, color, label) -> None:
    """The exact value of a measured line, dotted, where every point of it is known."""
    if y.notna().all():
        ax.plot(x, y, ls=":", lw=2, color=color, label=EXACT_LABEL)


def _estimator_lines(ax, frame: pd.DataFrame, x: str, y: str, palette: dict, exact: str | None = None) -> None:
    """One measured line per estimator of ``y`` against ``x`` with its 95% band (``<y>_se``), and the
    ``exact`` column dotted beside it where the run knows it."""
    for estimator, line in frame.groupby("estimator"):
        line = line.sort_values(x)
        _line_with_band(ax, line[x], line[y], line[f"{y}_se"], palette, estimator)
        if exact is not None and exact in line:
            _exact_line(ax, line[x], line[exact], palette[estimator], estimator)


def variance_vs_L(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Variance of the L-sample estimate against L, log-log: a line per estimator with its 95% band,
    the exact variance dotted where known, and a 1/L reference."""
    table = wide(metrics)
    palette = estimator_palette(table["estimator"], palette)
    fig, panels = _panels(table, list(dict.fromkeys(metrics["problem"])))
    for (problem, parameter), frame, ax in panels:
        frame, exact = _without_exact(frame, "variance")
        _estimator_lines(ax, frame, "num_samples", "variance", palette, exact="exact_variance")
        first = frame.sort_values("num_samples").iloc[0]
        reference = frame["num_samples"].drop_duplicates().sort_values()
        ax.plot(reference, first["variance"] * first["num_samples"] / reference, ls="--", color="0.6",
                lw=1, label="∝ 1/L")
        ax.set(xscale="log", yscale="log", title=f"{problem}: ∂/∂{parameter}",
               xlabel="samples per estimate, L", ylabel="variance of the estimate")
        _note_exact(ax, exact)
    return _finish(fig, panels, "Variance of the gradient estimate against the number of samples")


def bias_vs_L(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Squared bias ‖E g − ∇F‖² against L in units of its standard error.

    An unbiased estimator's standardized squared bias stays within ±1.96 (shaded) in 95% of cells;
    a biased one's grows with the number of replicates, since its standard error shrinks (the axis is
    logarithmic beyond ±3).
    """
    table = wide(metrics)
    if "bias_squared" not in table:
        raise NothingToDraw("the run has no bias_squared metric: no problem in it has an exact gradient")
    table = table.dropna(subset=["bias_squared"])
    table = table.assign(bias_z=table["bias_squared"] / table["bias_squared_se"])
    palette = estimator_palette(table["estimator"], palette)
    fig, panels = _panels(table, list(dict.fromkeys(metrics["problem"])))
    for (problem, parameter), frame, ax in panels:
        # A standardized bias means nothing where the estimate is exact up to float rounding.
        exact = frame["variance"] < RESOLUTION * frame["variance"].max()
        if exact.any():
            ax.text(0.02, 0.02, "exact, not shown: " + ", ".join(sorted(set(frame.loc[exact, "estimator"]))),
                    transform=ax.transAxes, fontsize=7, color="0.3", va="bottom")
        for estimator, line in frame[~exact].groupby("estimator"):
            line = line.sort_values("num_samples")
            ax.plot(
                line["num_samples"],
                line["bias_z"],
                marker=marker(palette, estimator),
                ms=4,
                color=palette[estimator],
                label=estimator,
            )
        ax.axhspan(-Z_95, Z_95, color="0.85", zorder=0, label="±1.96: consistent with no bias")
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_yscale("symlog", linthresh=3.0)  # linear inside ±3, logarithmic for clearly biased ones
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, -5.0), max(high, 5.0))
        ax.set(xscale="log", title=f"{problem}: ∂/∂{parameter}", xlabel="samples per estimate, L",
               ylabel="squared bias / its std. error")
    return _finish(fig, panels, "Squared bias of the gradient estimate, in standard errors")


def snr_vs_particles(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Per model (a row) and parameter group (encoder, decoder), the median signal-to-noise ratio over the
    coordinates against the particles K, log-log, a line per estimator with its 95% band; grey, slopes √K
    (dashed) and 1/√K (dash-dot) through the pathwise line's first point (the rates of Rainforth et al.
    2018); dotted, 3/√R, below which the median is pulled down by the estimates' own noise."""
    table = wide(metrics)
    table = table[table["parameter"] != "all"].dropna(subset=["snr_median"])
    palette = estimator_palette(table["estimator"], palette)
    groups = list(table.groupby(["problem", "parameter"], sort=False))
    fig, panels = _grid(groups, columns=max(1, table["parameter"].nunique()))
    for (problem, parameter), frame, ax in panels:
        _estimator_lines(ax, frame[frame["snr_median"] > 0], "num_particles", "snr_median", palette)
        ks = np.array(sorted(frame["num_particles"].unique()), dtype=float)
        anchor = frame[(frame["estimator"] == "pathwise") & (frame["snr_median"] > 0)].sort_values("num_particles")
        if len(anchor):
            k0, snr0 = anchor["num_particles"].iloc[0], anchor["snr_median"].iloc[0]
            for power, style, label in ((0.5, "--", "∝ √K"), (-0.5, "-.", "∝ 1/√K")):
                ax.plot(ks, snr0 * (ks / k0) ** power, ls=style, lw=0.9, color="0.55", label=f"slope {label}")
        resolution = 3 / np.sqrt(frame["replicates"].min())
        ax.axhline(resolution, ls=":", lw=1, color="0.4", label="3/√R: below, biased low")
        ax.set(xscale="log", yscale="log", title=f"{problem}: ∂/∂{parameter}", xlabel="particles K",
               ylabel="median SNR |E g| / sd(g)")
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    return _finish(fig, panels, "Signal-to-noise ratio of the bound's gradient against the particles K")


def _finish(fig: plt.Figure, panels, title: str) -> plt.Figure:
    """One legend for all panels, the title, and a tight layout."""
    fig.suptitle(title)
    _figure_legend(fig, [ax for _, _, ax in panels])
    return fig


LEGEND_ROW_INCHES = 0.28
LEGEND_COLUMN_INCHES = 2.4
#: The band kept above the panels for the figure's title (tight_layout leaves it out of its layout).
TITLE_INCHES = 0.45


def _figure_legend(fig: plt.Figure, axes) -> None:
    """One legend below all panels (each label once), in as many columns as the figure is wide, with
    the panels laid out between it and the title so that neither covers an axis label or a panel's
    title.  Figures are saved with ``bbox_inches="tight"``, which widens the image for a title or a
    legend row wider than the panels."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    # Estimators family by family (the registry's order), then the other entries; one neutral entry for every
    # estimator's dotted exact line, last.
    order = {name: i for i, name in enumerate(est.names())}
    handles = dict(sorted(handles.items(), key=lambda item: order.get(item[0], len(order))))
    if EXACT_LABEL in handles:
        del handles[EXACT_LABEL]
        handles[EXACT_LABEL] = Line2D([], [], ls=":", lw=2, color="0.3")
    width, height = fig.get_size_inches()
    columns = max(1, min(len(handles), int(width // LEGEND_COLUMN_INCHES)))
    rows = math.ceil(len(handles) / columns)
    legend_height = rows * LEGEND_ROW_INCHES + 0.15
    title_height = TITLE_INCHES if fig.get_suptitle() else 0.0
    total = height + legend_height + title_height
    fig.set_size_inches(width, total)  # the panels keep their height
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=columns, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    if title_height:
        fig.suptitle(fig.get_suptitle(), y=1 - 0.12 / total, va="top")
    fig.tight_layout(rect=(0, legend_height / total, 1, 1 - title_height / total))


def mse_vs_L(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Mean squared error of the whole gradient against L, log-log, all estimators together: an
    unbiased estimator's MSE falls as 1/L, a biased one's flattens at its squared bias (dotted where
    the exact bias is known), so the crossing shows the sample budget where bias starts to dominate."""
    return _mse_against(metrics, palette, "num_samples", "samples per estimate, L",
                        "Mean squared error of the gradient estimate: variance falls with L, bias does not")


def mse_vs_cost(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Mean squared error of the whole gradient against the cost evaluations of one estimate, log-log, one
    panel per problem: at any vertical line every estimator has spent the same budget.  A biased
    estimator's exact squared bias is dotted where known, the floor its MSE flattens onto."""
    return _mse_against(metrics, palette, "cost_evaluations", "cost evaluations per estimate",
                        "Mean squared error of the gradient estimate at equal cost evaluations",
                        exact_x="cost_evaluations")


def _mse_against(metrics: pd.DataFrame, palette: dict | None, x: str, x_label: str, title: str,
                 exact_x: str | None = None) -> plt.Figure:
    """MSE of the whole gradient against ``x``, one panel per problem, with each biased estimator's exact
    squared bias dotted (not an unbiased one's float rounding); ``exact_x`` names the x values of the
    estimators :func:`_without_exact` blanks, where they are not blanked everywhere."""
    table = wide(metrics)
    table = table[table["parameter"] == "all"].dropna(subset=[x]).assign(parameter="whole gradient")
    palette = estimator_palette(table["estimator"], palette)
    fig, panels = _panels(table, list(dict.fromkeys(metrics["problem"])))
    for (problem, _), frame, ax in panels:
        floor = frame["mse"].max() * RESOLUTION  # an exact bias² below it is the rounding of an unbiased one
        frame, exact = _without_exact(frame, "mse", x=exact_x)
        for estimator, line in frame.groupby("estimator"):
            line = line.sort_values(x)
            _line_with_band(ax, line[x], line["mse"], line["mse_se"], palette, estimator)
            if "exact_bias_squared" in line and (line["exact_bias_squared"] > floor).all():
                ax.plot(line[x], line["exact_bias_squared"], ls=":", lw=2, color=palette[estimator], label=EXACT_LABEL)
        ax.set(xscale="log", yscale="log", title=problem, xlabel=x_label, ylabel="mean squared error")
        _note_exact(ax, exact)
    return _finish(fig, panels, title)


def efficiency_vs_L(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Cost-normalized variance, the variance of the whole gradient times the wall time of one estimate,
    against L, log-log.  Averaging n independent estimates divides the variance by n and multiplies the
    time by n, so this product is what an estimator's variance costs in time: of two unbiased estimators,
    the one with the lower product gives the lower variance for any fixed time budget."""
    table = wide(metrics)
    table = table[table["parameter"] == "all"].dropna(subset=["time_per_estimate_s"])
    table = table.assign(parameter="whole gradient", work=table["variance"] * table["time_per_estimate_s"],
                         work_se=table["variance_se"] * table["time_per_estimate_s"])
    palette = estimator_palette(table["estimator"], palette)
    fig, panels = _panels(table, list(dict.fromkeys(metrics["problem"])))
    for (problem, _), frame, ax in panels:
        frame, exact = _without_exact(frame, "work")
        _estimator_lines(ax, frame, "num_samples", "work", palette)
        ax.set(xscale="log", yscale="log", title=problem, xlabel="samples per estimate, L",
               ylabel="variance × seconds per estimate")
        _note_exact(ax, exact)
    return _finish(fig, panels, "Cost-normalized variance: variance × wall time per estimate (lower is better)")


def line_plot(plot: LinePlot, metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """The figure a :class:`LinePlot` declares: one panel per value of ``plot.panels`` (one row per value of
    the first), a measured line per estimator of ``plot.y`` against ``plot.x`` with its 95% band, and the
    exact value dotted where the run knows it."""
    table = wide(metrics)
    table = table[table["parameter"] != "all"]
    palette = estimator_palette(table["estimator"], palette)
    groups = list(table.groupby(list(plot.panels), sort=False))
    columns = math.prod(table[column].nunique() for column in plot.panels[1:]) if len(plot.panels) > 1 else None
    fig, panels = _grid(groups, columns=columns or PANEL_COLUMNS)
    for key, frame, ax in panels:
        frame, exact = _without_exact(frame, plot.y, x=plot.x)
        _estimator_lines(ax, frame, plot.x, plot.y, palette, exact=plot.exact)
        ax.set(xscale="log" if plot.log_x else "linear", yscale="log" if plot.log_y else "linear",
               title=_panel_title(dict(zip(plot.panels, key))), xlabel=plot.x_label or SYMBOLS.get(plot.x, plot.x),
               ylabel=plot.y_label)
        _note_exact(ax, exact)
    return _finish(fig, panels, plot.title)


def _panel_title(values: dict) -> str:
    """``problem: ∂/∂parameter, L = 16``: the panel's problem, its parameter group and its other labels."""
    parts = [f"∂/∂{values['parameter']}"] if "parameter" in values else []
    parts += [f"{SYMBOLS.get(column, column)} = {value}" for column, value in values.items()
              if column not in ("problem", "parameter")]
    text = ", ".join(parts)
    return f"{values['problem']}: {text}" if "problem" in values else text


def variance_vs_dimension(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Variance per coordinate (the trace divided by D) against the dimension D, log-log, exact values
    dotted: flat for the pathwise estimator, growing with D for the score function."""
    table = wide(metrics)
    table = table[table["parameter"] != "all"]
    per_coordinate = {column: table[column] / table["dimension"]
                      for column in ("variance", "variance_se", "exact_variance") if column in table}
    table = table.assign(**per_coordinate)
    palette = estimator_palette(table["estimator"], palette)
    groups = list(table.groupby(["parameter", "num_samples"], sort=False))
    fig, panels = _grid(groups)
    for (parameter, num_samples), frame, ax in panels:
        frame, exact = _without_exact(frame, "variance")
        _estimator_lines(ax, frame, "dimension", "variance", palette, exact="exact_variance")
        ax.set(xscale="log", yscale="log", title=f"∂/∂{parameter}, L = {num_samples}", xlabel="dimension D",
               ylabel="variance per coordinate")
        _note_exact(ax, exact)
    return _finish(fig, panels, "Variance per gradient coordinate against the dimension, f(x) = ‖x − k‖²")


#: How a learning signal of variance_vs_batch is drawn and named.
SIGNAL_STYLES = {"per_example": ("-", "each image's own cost"), "batch": ("--", "one cost for the batch")}


def variance_vs_batch(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Per model, the encoder gradient's variance against the minibatch size N, log-log, with each image's
    own cost as its learning signal (solid) and one cost for the batch (dashed), 95% bands; and the ratio
    of the two per estimator (how much the batch-level signal costs)."""
    table = wide(metrics)
    table = table[table["parameter"] == "encoder"]
    palette = estimator_palette(table["estimator"], palette)
    problems = list(dict.fromkeys(table["problem"]))
    fig, axes = plt.subplots(len(problems), 2, figsize=(10, 3.8 * len(problems)), squeeze=False)
    for (left, right), problem in zip(axes, problems):
        frame = table[table["problem"] == problem]
        for (estimator, signal), line in frame.groupby(["estimator", "signal"]):
            line = line.sort_values("batch_size")
            style, _ = SIGNAL_STYLES[signal]
            color = palette[estimator]
            left.plot(line["batch_size"], line["variance"], ls=style, marker=marker(palette, estimator), ms=4,
                      color=color, label=estimator if style == "-" or len(frame["signal"].unique()) == 1 else None)
            low = (line["variance"] - Z_95 * line["variance_se"]).clip(lower=line["variance"] * 1e-3)
            left.fill_between(line["batch_size"], low, line["variance"] + Z_95 * line["variance_se"], color=color,
                              alpha=0.15, linewidth=0)
        for estimator, rows in frame.groupby("estimator"):
            both = rows.pivot_table(index="batch_size", columns="signal", values=["variance", "variance_se"])
            if ("variance", "batch") not in both or ("variance", "per_example") not in both:
                continue
            ratio = both["variance", "batch"] / both["variance", "per_example"]
            # Relative standard errors add in quadrature for a ratio of independent estimates.
            relative = np.hypot(both["variance_se", "batch"] / both["variance", "batch"],
                                both["variance_se", "per_example"] / both["variance", "per_example"])
            ratio = ratio.dropna()
            right.errorbar(ratio.index, ratio, yerr=Z_95 * (ratio * relative.loc[ratio.index]), capsize=2,
                           marker=marker(palette, estimator), ms=4, color=palette[estimator], label=estimator)
        right.axhline(1.0, color="0.3", lw=0.8)
        for style, name in SIGNAL_STYLES.values():
            left.plot([], [], ls=style, color="0.3", label=f"{'solid' if style == '-' else 'dashed'}: {name}")
        left.set(xscale="log", yscale="log", title=f"{problem}: ∂/∂encoder", xlabel="images in the minibatch, N",
                 ylabel="variance of the estimate")
        right.set(xscale="log", yscale="log", title=f"{problem}: batch-level / per-example variance",
                  xlabel="images in the minibatch, N", ylabel="variance ratio")
    fig.suptitle("Encoder-gradient variance against the minibatch size: per-example against batch-level signals")
    _figure_legend(fig, axes.flat)
    return fig


def bias_vs_temperature(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """Squared bias, variance and MSE of the whole gradient against the temperature τ, one column per
    (problem, L), one line per estimator, exact squared bias dotted where known.  The squared bias is
    estimated without the upward bias of ‖ḡ − g*‖², so an unbiased estimator's scatters around zero, below
    it half the time: its row has a symmetric-log axis (linear within 1.96 times the panel's median
    standard error), and estimates within 1.96 standard errors of zero are drawn hollow ("zero within noise");
    estimators with no bias estimate in a panel are named under it ("not measured")."""
    table = wide(metrics)
    table = table[table["parameter"] == "all"]
    palette = estimator_palette(table["estimator"], palette)
    groups = list(table.groupby(["problem", "num_samples"], sort=False))
    rows = ("bias_squared", "variance", "mse")
    fig, axes = plt.subplots(len(rows), len(groups), figsize=(4.2 * len(groups), 3.2 * len(rows)), squeeze=False)
    for column, ((problem, num_samples), frame) in enumerate(groups):
        for row, metric in enumerate(rows):
            ax = axes[row, column]
            bias_row = metric == "bias_squared"
            not_measured = []
            for estimator, line in frame.groupby("estimator"):
                line = line.sort_values("temperature")
                # Log rows: a value at or below zero has no place; the bias row shows every estimate.
                shown = line[line[metric].notna()] if bias_row else line[line[metric] > 0]
                if shown.empty:
                    not_measured.append(estimator)
                    continue
                color = palette[estimator]
                errors = Z_95 * shown[f"{metric}_se"]
                low = shown[metric] - errors if bias_row else (shown[metric] - errors).clip(lower=shown[metric] * 1e-2)
                ax.errorbar(shown["temperature"], shown[metric], yerr=[shown[metric] - low, errors], color=color,
                            marker=marker(palette, estimator), ms=3, capsize=2, label=estimator)
                if bias_row:  # hollow where zero is within the 95% interval
                    noise = shown[shown[metric].abs() <= errors]
                    ax.plot(noise["temperature"], noise[metric], ls="none", marker=marker(palette, estimator), ms=5,
                            mfc="white", color=color)
                if bias_row and "exact_bias_squared" in line and line["exact_bias_squared"].notna().all():
                    ax.plot(line["temperature"], line["exact_bias_squared"], ls=":", lw=2, color=color,
                            label=EXACT_LABEL)
            ax.set(xscale="log", yscale="log", xlabel="temperature τ", ylabel=metric.replace("_", " "))
            if bias_row:
                errors = frame[f"{metric}_se"][frame[f"{metric}_se"] > 0]  # linear where the noise is
                ax.set_yscale("symlog", linthresh=float(Z_95 * errors.median()) if len(errors) else 1e-12)
                ax.axhline(0, color="0.6", lw=0.8, zorder=0)
                ax.set_ylabel("squared bias (hollow: zero within noise)")
            if not_measured:
                _note(ax, "not measured: " + ", ".join(not_measured))
            if row == 0:
                ax.set_title(f"{problem}, L = {num_samples}")
    fig.suptitle("Gumbel-Softmax family against the temperature: bias², variance and MSE of the gradient")
    _figure_legend(fig, axes.flat)
    return fig


def training_curves(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """One row per problem and training objective: the held-out objective (solid, the range over seeds
    shaded) and the training objective (dashed), means over the seeds, against cost evaluations spent; and
    the held-out objective against training wall time; a line per estimator."""
    table = training_table(metrics).groupby(["problem", "objective", "estimator", "step"], sort=False).agg(
        held_out=("held_out_objective", "mean"), held_out_min=("held_out_objective", "min"),
        held_out_max=("held_out_objective", "max"), train=("train_objective", "mean"),
        cost_evaluations=("cost_evaluations", "mean"), wall_time_s=("wall_time_s", "mean")).reset_index()
    palette = estimator_palette(table["estimator"], palette)
    problems = {problem: i for i, problem in enumerate(dict.fromkeys(metrics["problem"]))}
    rows = sorted(dict.fromkeys(zip(table["problem"], table["objective"])),
                  key=lambda row: (problems[row[0]], _objective_rank(row[1])))
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.6 * len(rows)), squeeze=False)
    for (left, right), (problem, objective) in zip(axes, rows):
        frame = table[(table["problem"] == problem) & (table["objective"] == objective)]
        for estimator, line in frame.groupby("estimator"):
            line = line.sort_values("step")
            color = palette[estimator]
            for ax, x in ((left, line["cost_evaluations"]), (right, line["wall_time_s"])):
                ax.plot(x, line["held_out"], color=color, marker=marker(palette, estimator), ms=2, label=estimator)
                ax.fill_between(x, line["held_out_min"], line["held_out_max"], color=color, alpha=0.15, linewidth=0)
            left.plot(line["cost_evaluations"], line["train"], color=color, ls="--", lw=1)
        _zoom_on_training(frame, (left, right))
        for ax in (left, right):
            ax.set_ylabel("negative ELBO per example")
        trained = "" if objective == "elbo" else f", trained by {_objective_label(objective)}"
        left.set(title=f"{problem}{trained}: held-out (solid), training (dashed)", xlabel="cost evaluations spent")
        right.set(title=f"{problem}{trained}: held-out", xlabel="training wall time (s)")
    seeds = metrics["seed"].nunique() if "seed" in metrics else 1
    fig.suptitle("Training with each estimator at the same budget of cost evaluations (Adam; mean and range "
                 f"over {seeds} seed{'s' if seeds > 1 else ''})")
    _figure_legend(fig, axes.flat)
    return fig


def _zoom_on_training(frame: pd.DataFrame, axes) -> None:
    """Leave out the first steps' fall: the y range from the best value to the worst starting one."""
    start = frame.loc[frame["step"] == 0, "held_out_max"].max()
    finish = frame[["held_out_min", "train"]].min().min()
    if np.isfinite(start) and np.isfinite(finish) and start > finish:
        for ax in axes:
            ax.set_ylim(finish - 0.05 * (start - finish), start + 0.05 * (start - finish))


def _objective_rank(objective: str) -> int:
    """The ELBO first, then the bounds by K."""
    return -1 if objective == "elbo" else int(objective.removeprefix("bound_k"))


def _objective_label(objective: str) -> str:
    """``elbo`` → "ELBO", ``bound_k8`` → "K = 8 bound"."""
    return "ELBO" if objective == "elbo" else f"K = {objective.removeprefix('bound_k')} bound"


#: Line styles of the training objectives in :func:`training_log_likelihood`: the ELBO solid, bounds by K.
OBJECTIVE_DASHES = ("-", "--", ":", "-.")


def training_log_likelihood(metrics: pd.DataFrame, palette: dict | None = None) -> plt.Figure:
    """One panel per model with a held-out log-likelihood: its negative, mean over the seeds, against cost
    evaluations spent, a colour per estimator and a line style per training objective (the ELBO, each
    K-particle bound), so that the objectives are compared by the measure none of them flatters."""
    table = training_table(metrics)
    if "held_out_nll" not in table or table["held_out_nll"].isna().all():
        raise NothingToDraw("the run has no held-out log-likelihood: no VAE was trained in it")
    table = table[table["held_out_nll"].notna()]
    table = table.groupby(["problem", "objective", "estimator", "step"], sort=False).agg(
        nll=("held_out_nll", "mean"), cost_evaluations=("cost_evaluations", "mean")).reset_index()
    palette = estimator_palette(table["estimator"], palette)
    objectives = sorted(dict.fromkeys(table["objective"]), key=_objective_rank)
    dashes = {objective: OBJECTIVE_DASHES[i % len(OBJECTIVE_DASHES)] for i, objective in enumerate(objectives)}
    problems = [problem for problem in dict.fromkeys(metrics["problem"]) if problem in set(table["problem"])]
    fig, axes = plt.subplots(1, len(problems), figsize=(5.5 * len(problems), 4.2), squeeze=False)
    for ax, problem in zip(axes.flat, problems):
        frame = table[table["problem"] == problem]
        for (objective, estimator), line in frame.groupby(["objective", "estimator"], sort=False):
            line = line.sort_values("step")
            ax.plot(line["cost_evaluations"], line["nll"], color=palette[estimator], ls=dashes[objective], lw=1.3,
                    marker=marker(palette, estimator), ms=2)
        start = frame.loc[frame["step"] == 0, "nll"].max()
        finish = frame["nll"].min()
        if np.isfinite(start) and np.isfinite(finish) and start > finish:
            span = start - finish
            ax.set_ylim(finish - 0.05 * span, finish + 0.5 * span)  # the end of training, where they differ
        ax.set(title=f"{problem}: held-out", xlabel="cost evaluations spent (a particle: one)",
               ylabel="negative log-likelihood per example")
    # The legend's key, once: a colour (and marker) per estimator, then a line style per objective.
    for estimator in dict.fromkeys(table["estimator"]):
        axes.flat[0].plot([], [], color=palette[estimator], marker=marker(palette, estimator), ms=3, label=estimator)
    for objective in objectives:
        axes.flat[0].plot([], [], color="0.3", ls=dashes[objective], label=f"trained by {_objective_label(objective)}")
    seeds = metrics["seed"].nunique() if "seed" in metrics else 1
    fig.suptitle("Held-out −log p(x) while training by the ELBO or a K-particle bound, each estimator at the same "
                 f"budget (mean over {seeds} seed{'s' if seeds > 1 else ''}; lower is better)")
    _figure_legend(fig, axes.flat)
    return fig


#: The figures drawn by a function of their own, by name.
DRAWERS = {draw.__name__: draw for draw in (variance_vs_L, bias_vs_L, mse_vs_L, mse_vs_cost, efficiency_vs_L,
                                             variance_vs_dimension,
                                             variance_vs_batch, bias_vs_temperature, training_curves,
                                             training_log_likelihood,
                                             snr_vs_particles)}


def drawer(figure: FigureSpec):
    """The function ``draw(metrics, palette)`` that draws ``figure``."""
    if figure.plot is not None:
        return functools.partial(line_plot, figure.plot)
    if figure.name not in DRAWERS:
        raise ValueError(f"Figure {figure.name!r} has neither a LinePlot nor a drawing function in analysis.figures "
                         f"(known: {', '.join(DRAWERS)}); give its FigureSpec a LinePlot.")
    return DRAWERS[figure.name]


def drawings(experiment: str) -> list[tuple[FigureSpec, object]]:
    """``experiment``'s figures, each with the function that draws it."""
    return [(figure, drawer(figure)) for figure in catalog.get(experiment).figures]


class NothingToDraw(ValueError):
    """A run has nothing for this figure (no exact gradient for a bias figure, say)."""


def save_figure(draw, metrics: pd.DataFrame, path: str | Path, palette: dict | None = None) -> Path:
    """Draw ``draw(metrics, palette)`` in the house style, save it as a PNG at ``path`` and close it."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig = draw(metrics, palette)
        try:
            fig.savefig(path, dpi=120, bbox_inches="tight")
        finally:
            plt.close(fig)
    return Path(path)


def save_run_figures(run_dir: str | Path) -> list[Path]:
    """Draw every figure of a run into ``<run_dir>/figures/`` (partial runs included); return the paths."""
    run = load_run(run_dir, allow_partial=True)
    out = Path(run_dir) / "figures"
    out.mkdir(exist_ok=True)
    written = []
    for figure, draw in drawings(run.config.get("experiment", "variance_vs_L")):
        try:
            written.append(save_figure(draw, run.metrics, out / f"{figure.name}.png", run_palette(run.config)))
        except NothingToDraw:
            continue
    return written
