"""What the report says: its sections, one per run, with their summaries, tables and figures."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures as figure_module
from analysis import tables
from analysis.load import Run
from analysis.report.formatting import format_number, formatted, slug
from experiments import catalog
from experiments.engine.results import PARTIAL_SUFFIX

#: The L of the detailed measured-against-exact table (the closest the run has).
DETAIL_NUM_SAMPLES = 16


@dataclasses.dataclass
class Figure:
    path: Path  #: relative to the report folder
    caption: str


@dataclasses.dataclass
class Table:
    frame: pd.DataFrame  #: already formatted, one string per cell
    caption: str
    csv: Path | None = None  #: the full table, relative to the report folder


@dataclasses.dataclass
class Section:
    title: str
    level: int = 2
    blocks: list = dataclasses.field(default_factory=list)  #: str paragraphs, Figure, Table


def build_sections(runs: list[Run], folder: Path) -> list[Section]:
    """The report's sections; figures and full tables are written under ``folder``."""
    sections = [_runs_section(runs)]
    palette = figure_module.run_palette(*(run.config for run in runs))
    # Each run's figures and tables go in a folder named after its experiment, or after its experiment
    # and run where the report holds several runs of one experiment.
    experiments = [run.config.get("experiment", "variance_vs_L") for run in runs]
    names = [experiment if experiments.count(experiment) == 1 else slug(f"{experiment}-{run.run_id}")
             for experiment, run in zip(experiments, runs)]
    if len(set(names)) < len(names):  # the same run folder twice
        names = [f"{name}-{i + 1}" for i, name in enumerate(names)]
    for run, name in zip(runs, names):
        experiment = catalog.get(run.config.get("experiment", "variance_vs_L"))
        section = Section(f"{experiment.title} (`{run.run_id}`)")
        section.blocks.append(_run_summary(run))
        for block in experiment.report:
            if block == "figures":
                section.blocks += _figure_blocks(run, experiment.name, name, folder, palette)
            else:
                section.blocks += BLOCKS[block](run, name, folder)
        sections.append(section)
    return sections


def _runs_section(runs: list[Run]) -> Section:
    rows = []
    for run in runs:
        env, config = run.env, run.config
        commit = (env.get("git_commit") or "unknown")[:7] + (" (uncommitted changes)" if env.get("git_dirty") else "")
        rows.append(
            {
                "run": f"`{run.run_id}`",
                "experiment": config.get("experiment", "variance_vs_L"),
                "device": f"{env.get('backend', '?')} ({env.get('device_kind', '?')}, "
                f"{len(env.get('devices', []))} device(s))",
                "precision": config.get("precision", "float32"),
                "replicates": format_number(config.get("replicates")),
                "cells": format_number(config.get("cells")),
                "wall time": _duration(config.get("wall_time_s")),
                "commit": commit,
                "started (UTC)": env.get("started_utc", "?"),
            }
        )
    section = Section("Runs")
    section.blocks.append(Table(pd.DataFrame(rows), "The run folders this report was made from."))
    return section


def _duration(seconds) -> str:
    if seconds is None:
        return "—"
    minutes, seconds = divmod(float(seconds), 60)
    return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"


def _run_summary(run: Run) -> str:
    metrics = run.metrics
    problems = ", ".join(f"`{p}`" for p in dict.fromkeys(metrics["problem"]))
    estimators = ", ".join(f"`{e}`" for e in dict.fromkeys(metrics["estimator"]))
    text = f"Problems: {problems}. Estimators: {estimators}."
    if "num_samples" in metrics and run.config.get("experiment") != "training":
        text += f" Samples per estimate L: {', '.join(str(n) for n in sorted(set(metrics['num_samples'])))}."
    if run.path.name.endswith(PARTIAL_SUFFIX):
        text = (f"**An incomplete run** (its folder ends in `{PARTIAL_SUFFIX}`: interrupted or still running): only "
                "the cells it finished. " + text)
    skipped = run.config.get("skipped", [])
    if skipped:
        text += f" {len(skipped)} combinations were not measured (listed with the reason in the run's config.json)."
    return text


def _figure_blocks(run: Run, experiment: str, name: str, folder: Path, palette: dict) -> list:
    blocks = []
    for figure, draw in figure_module.drawings(experiment):
        path = Path("figures") / name / f"{figure.name}.png"
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        try:
            figure_module.save_figure(draw, run.metrics, folder / path, palette)
        except figure_module.NothingToDraw as reason:
            blocks.append(f"*{figure.name}: not drawn, {reason}*")
            continue
        blocks.append(Figure(path, figure.caption))
    return blocks


def _write_csv(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    path = Path("tables") / f"{name}.csv"  # name: "<run folder name>/<table>"
    (folder / path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / path, index=False)
    return path


def _recommendation_blocks(run: Run, name: str, folder: Path) -> list:
    table = tables.recommendations(run.metrics)
    if table.empty:
        return []
    csv = _write_csv(table, folder, f"{name}/recommendations")
    shown = table.assign(
        best=np.where(table["exact"], table["best"] + " (exact)", table["best"]),
        margin_text=[_margin_text(exact, margin, clear)
                     for exact, margin, clear in zip(table["exact"], table["margin"], table["clear"])],
    )
    columns = {"problem": "problem", **{c: c for c in tables.label_columns(run.metrics) if c in shown},
               "num_samples": "L", "best": "best estimator", "mse": "its MSE",
               "time_per_estimate_s": "s / estimate", "runner_up": "runner-up", "margin_text": "margin",
               "candidates": "estimators compared"}
    glance = _at_a_glance(shown, tables.label_columns(run.metrics))
    caption = ("Recommendation: for each problem and sample budget L, the estimator with the lowest MSE × wall "
               "time per estimate (the MSE reached per unit of time by averaging independent estimates), and "
               "the runner-up's product over the best one's. A margin within two standard errors of the "
               "MSEs is marked within noise; timings are single measurements on this run's device and are "
               "noisy below a millisecond.")
    return [Table(glance, "At a glance: the estimator of lowest MSE × time per estimate, per problem (rows) and "
                  "sample budget L (columns), with the runner-up's margin; details below.", csv),
            Table(formatted(shown, columns), caption, csv)]


def _at_a_glance(shown: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """The recommendation as a problem × L grid of "best (margin)"."""
    rows = [c for c in ["problem", *labels] if c in shown]
    def describe(row) -> str:
        if row.exact:
            return f"{row.best}"  # already marked (exact)
        if pd.isna(row.margin):
            return row.best
        return f"{row.best} ({_ratio(row.margin)}{'' if row.clear else ', within noise'})"

    entry = shown.assign(entry=[describe(row) for row in shown.itertuples()])
    grid = entry.pivot_table(index=rows, columns="num_samples", values="entry", aggfunc="first", sort=False)
    grid = grid.reindex(columns=sorted(grid.columns)).fillna("—")
    grid.columns = [f"L = {n}" for n in grid.columns]
    return grid.reset_index().astype(str)


def _margin_text(exact: bool, margin: float, clear: bool) -> str:
    if exact:
        return "exact: no error"
    if pd.isna(margin):
        return "—"
    return _ratio(margin) if clear else f"{_ratio(margin)} (within noise)"


def _ratio(margin: float) -> str:
    return f"×{margin:.3g}" if margin >= 10 else f"×{margin:.2f}"


def _agreement_blocks(run: Run, name: str, folder: Path) -> list:
    unbiased = {name: properties["unbiased"] for name, properties in run.config.get("estimator_properties", {}).items()}
    table = tables.measured_vs_exact(run.metrics, run.coordinate_metrics, unbiased)
    if table.empty:
        return ["No problem in this run has an exact or reference gradient to compare with."]
    csv = _write_csv(table, folder, f"{name}/measured_vs_exact")
    attrs = table.attrs
    counts = table["verdict"].value_counts()
    differ = table[table["verdict"].str.startswith("differs")]
    level = attrs["false_alarm_rate"] / max(attrs["comparisons"], 1)
    typical = int(table["replicates"].median())
    text = (f"Measured against exact: {len(table)} (cell, parameter group) rows. The verdict judges each gradient "
            f"coordinate's mean against the estimator's exact expectation where the exact variance σ² of its "
            f"estimates is known ({attrs['comparisons']} comparisons), by the median of the means of 20 blocks of "
            f"replicates (fewer below R = 20) and Chebyshev's inequality: a test that holds at any R whatever the "
            f"estimates' tails, at the price of power (at R = {typical} it sees a bias of "
            f"{tables.median_of_means_detectable_bias(typical, level):.2g} σ, where a normal test would see "
            f"{tables.bonferroni_threshold(attrs['comparisons'], attrs['false_alarm_rate']) / math.sqrt(typical):.2g} σ"
            f"). A comparison is flagged where its p-value is below the Bonferroni level for a "
            f"{attrs['false_alarm_rate']:.0%} family-wise false-alarm rate. Estimates whose exact variance is not "
            f"known are not judged: their sample standard error can be far too small for skewed or heavy-tailed "
            f"estimates. The z-scores of the variance and squared bias are shown, not judged (their distribution "
            f"rests on the estimates' unknown fourth moments; `python -m experiments.bounds check` is the variance's "
            f"check). " + ", ".join(f"{count} {verdict}" for verdict, count in counts.items()) + ".")
    smallest = int(table["replicates"].min())
    if smallest < 100:
        text += (f" This run has as few as R = {smallest} replicates per cell: the verdicts hold their rate, but "
                 f"see only gross errors (a bias of {tables.median_of_means_detectable_bias(smallest, level):.2g} σ "
                 f"at R = {smallest}); "
                 "the z-scores and standard errors are themselves rough below R = 100.")
    if len(differ):
        text += (
            " Rows that differ: "
            + "; ".join(
                f"`{r.problem}` `{r.estimator}` L={r.num_samples} {r.parameter} ({r.verdict})"
                for r in differ.head(20).itertuples()
            )
            + ("" if len(differ) <= 20 else f"; and {len(differ) - 20} more (see the CSV).")
        )
    blocks = [text]

    summary = tables.agreement_summary(table)
    blocks.append(
        Table(
            formatted(
                summary,
                {
                    "problem": "problem",
                    "estimator": "estimator",
                    "rows": "rows",
                    "max_abs_mean_z": "max |z| mean",
                    "max_abs_variance_z": "max |z| variance",
                    "max_abs_bias_squared_z": "max |z| bias²",
                    "differ": "rows that differ",
                    "not_judged": "rows not judged",
                },
            ),
            "Measured against exact, per problem and estimator, over every L, setting and parameter group: the "
            "largest |z| of the mean gradient against the estimator's exact expectation (per coordinate), of the log "
            "variance against the exact one, and of a biased estimator's squared bias against its exact value; "
            "the rows whose mean differs by the median-of-means test, and those not judged. — : nothing exact to "
            "compare.",
            csv,
        )
    )

    detail_L = _closest(sorted(set(table["num_samples"])), DETAIL_NUM_SAMPLES)
    detail = table[(table["num_samples"] == detail_L) & table["exact_variance"].notna()]
    if not detail.empty and run.config.get("experiment") == "variance_vs_L":
        detail = detail.assign(
            mean_text=[
                f"{format_number(m)} ± {format_number(s)}" if pd.notna(m) else f"{format_number(c)} coords"
                for m, s, c in zip(detail["mean"], detail["mean_se"], detail["coordinates"])
            ],
            variance_text=[
                f"{format_number(v)} ± {format_number(s)}" for v, s in zip(detail["variance"], detail["variance_se"])
            ],
        )
        blocks.append(Table(formatted(detail, {
            "problem": "problem", "estimator": "estimator", "parameter": "parameter", "mean_text": "mean ± se",
            "exact_mean": "exact mean", "mean_z": "z (mean)", "variance_text": "variance ± se",
            "exact_variance": "exact variance", "variance_z": "z (variance)", "verdict": "verdict",
        }), f"Measured against exact at L = {detail_L}, for the cells whose exact variance is known. For groups "
            "of several coordinates, z (mean) is that of the coordinate the verdict rests on (the smallest "
            "median-of-means p-value); z (variance) is on the log scale. Both are for reading: only the mean is "
            "judged.", csv))
    return blocks


def _closest(values: list, target):
    return min(values, key=lambda v: (abs(math.log(v / target)) if v > 0 else math.inf, v))


def _temperature_blocks(run: Run, name: str, folder: Path) -> list:
    table = tables.best_temperatures(run.metrics)
    csv = _write_csv(table, folder, f"{name}/best_temperatures")
    return [Table(formatted(table, {
        "problem": "problem", "estimator": "estimator", "num_samples": "L", "temperature": "best τ",
        "mse": "MSE", "mse_se": "± se", "bias_squared": "bias²", "variance": "variance",
    }), "The temperature of lowest MSE of the whole gradient, per problem, estimator and L, among those swept.", csv)]


def _training_blocks(run: Run, name: str, folder: Path) -> list:
    table = tables.final_objectives(run.metrics)
    csv = _write_csv(table, folder, f"{name}/final_objectives")
    seeds = int(table["seeds"].max())
    columns = {"problem": "problem", "objective": "trained by", "estimator": "estimator"}
    likelihood = table["held_out_nll"].notna().any()
    if likelihood:
        columns.update(held_out_nll="held-out −log p(x)", held_out_nll_se="± se (−log p)")
    else:
        table = table.drop(columns=["held_out_nll", "held_out_nll_se"])
    columns.update(held_out_objective="held-out −ELBO", held_out_objective_se="± se", held_out_min="best seed",
                   held_out_max="worst seed", train_objective="training −ELBO")
    if set(table["objective"]) == {"elbo"}:
        del columns["objective"]
        table = table.drop(columns="objective")
    columns.update(step="steps", cost_evaluations="cost evaluations", wall_time_s="wall time (s)")
    ranked = ("best held-out −log p(x) first within each problem where the model has one (the measure that "
              "compares models trained by different objectives: the ELBO flatters a model trained by it), else "
              "best held-out objective" if likelihood else "best held-out objective first within each problem")
    return [Table(formatted(table, columns),
        f"The end of each training curve, mean over {seeds} seed{'s' if seeds > 1 else ''} (initialization, "
        f"minibatches and samples), {ranked} (per example; lower is better). ± se is the standard error of that "
        "mean across seeds; the best and worst seeds show the spread. Every estimator spent the same budget of cost "
        "evaluations (a K-particle bound: K per estimate); those that evaluate the cost more often per step took "
        "fewer steps. \"trained by\": elbo, the model's negative ELBO at the run's L; bound_kK, the K-particle "
        "importance-weighted bound, one per image per step.", csv)]


def _equal_cost_blocks(run: Run, name: str, folder: Path) -> list:
    budgets = run.config.get("cost_budgets") or sorted(set(run.metrics.loc[run.metrics["metric"] == "cost_evaluations",
                                                                          "value"].astype(int)))
    table = tables.equal_cost(run.metrics, budgets, run.config.get("skipped", []))
    if table.empty or table["mse"].isna().all():
        return ["No cell of this run has an MSE (an exact or reference gradient) to rank at equal cost."]
    csv = _write_csv(table, folder, f"{name}/equal_cost")
    ranking = tables.equal_cost_ranking(table)

    def entry(row) -> str:
        text = f"exact: {row.exact}; then " if row.exact else ""
        if pd.isna(row.best):  # every estimator exact here
            return text.removesuffix("; then ") or "—"
        text += f"{row.best} (L = {int(row.num_samples)}"
        if not pd.isna(row.runner_up):
            text += f"; {_ratio(row.margin)} to {row.runner_up}{'' if row.clear else ', within noise'}"
        return text + ")"

    glance = ranking.assign(entry=[entry(row) for row in ranking.itertuples()]).pivot_table(
        index="problem", columns="cost_budget", values="entry", aggfunc="first", sort=False)
    glance = glance.reindex(columns=sorted(glance.columns)).fillna("—")
    glance.columns = [f"{b} evaluations" for b in glance.columns]
    blocks = [Table(glance.reset_index().astype(str),
                    "At equal cost: for each problem (rows) and budget of cost evaluations per estimate (columns), "
                    "the estimators exact to float rounding there, if any (IndeCateR and the measure-valued "
                    "estimator on a separable cost), then the estimator of lowest MSE of the whole gradient among "
                    "the others, the L the budget buys it, and the runner-up's MSE over its own (within noise: "
                    "less than two standard errors apart).", csv)]
    unbiased = {n: p["unbiased"] for n, p in run.config.get("estimator_properties", {}).items()}
    reference = table["mse"].where(~table["exact"]).groupby([table["problem"], table["cost_budget"]]).transform("min")
    relative = table.assign(ratio=(table["mse"] / reference).where(~table["exact"], 0.0))
    for problem, frame in relative.groupby("problem", sort=False):
        grid = frame.pivot_table(index="estimator", columns="cost_budget", values="ratio", aggfunc="first")
        grid = grid.reindex(columns=sorted(grid.columns))
        grid = grid.loc[grid[grid.columns[-1]].sort_values(na_position="last").index]
        shown = grid.map(lambda r: "—" if pd.isna(r) else "exact" if r == 0 else "best" if r == 1 else _ratio(r))
        shown.index = [f"{e}" + ("" if unbiased.get(e, True) else " (biased)") for e in shown.index]
        shown.columns = [f"{b} evaluations" for b in shown.columns]
        blocks.append(Table(shown.reset_index(names="estimator").astype(str),
                            f"`{problem}`: each estimator's MSE over the best inexact one's at each budget of cost "
                            "evaluations per estimate (exact: no error but float rounding; — where one estimate "
                            "costs more), ordered by the largest budget. The full table, with L, MSE ± se, bias², "
                            "variance and time per estimate, is in the CSV.", csv))
    return blocks


#: The functions that write the report blocks an experiment names (``Experiment.report``), besides its figures.
BLOCKS = {"recommendation": _recommendation_blocks, "equal_cost": _equal_cost_blocks,
          "temperature": _temperature_blocks, "training": _training_blocks, "agreement": _agreement_blocks}
