"""The report: built from a small run of every experiment, every figure and table present and readable,
the tables' arithmetic checked on hand-made metrics, and bad input refused without a half-written folder."""

import math
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import estimators as est
from analysis import figures, report, tables
from analysis.load import load_run
from experiments import catalog
from experiments import run as cli
from experiments.catalog import training

ESTIMATORS = "pathwise,score_function,score_function_loo,pathwise_delta,straight_through,gumbel_softmax"


#: A user's module for the compare run: a quadratic under a 3-D Gaussian.
USER_MODEL = """
import jax.numpy as jnp
import estimators as est

def make_objective():
    objective = est.Objective(dist=lambda p: est.Normal(p["loc"], jnp.ones(3)), cost=lambda p, x: jnp.sum(x ** 2))
    return objective, {"loc": jnp.zeros(3)}
"""


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    """One small run of every experiment."""
    out = tmp_path_factory.mktemp("runs")
    common = ["--replicates", "64", "--quiet", "--no-figures", "--output-dir", str(out)]
    commands = [
        ["variance_vs_L", "--problems", "gaussian_quadratic,bernoulli_toy", "--estimators", ESTIMATORS,
         "--num-samples", "2,16"],
        ["variance_vs_mean", "--functions", "quadratic,cosine", "--means=-1,0.5", "--estimators",
         "pathwise,score_function,score_function_loo"],
        ["variance_vs_dimension", "--dimensions", "1,4", "--estimators", "pathwise,score_function"],
        ["bias_vs_temperature", "--problems", "bernoulli_toy", "--temperatures", "0.5,2", "--estimators",
         "gumbel_softmax,straight_through_gumbel,gumbel_rao"],
        ["variance_vs_batch", "--models", "binary_vae", "--batch-sizes", "1,2", "--estimators", "score_function_loo"],
        ["variance_vs_particles", "--models", "linear_gaussian", "--particles", "1,2", "--estimators", "pathwise,dreg"],
        ["discrete", "--problems", "bernoulli_toy", "--estimators", "disarm,score_function_loo,straight_through",
         "--cost-budgets", "4,16"],
    ]
    for command in commands:
        assert cli.main(command + common) == 0
    (out / "report_user_model.py").write_text(USER_MODEL)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(out))
        assert cli.main(["compare", "--objective", "report_user_model:make_objective", "--estimators",
                         "pathwise,score_function", "--num-samples", "2,16", "--budget-seconds", "3", *common]) == 0
    training.run(training.Config(problems=("logistic_regression", "binary_vae"),
                                 estimators=("pathwise", "score_function"), particles=(1, 2), num_samples=2,
                                 budget=200, evaluations=3, output_dir=str(out), figures=False),
                 progress=False)
    return {path.parent.name: path for path in out.glob("*/*")}


def _figure_links(text):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


def _markdown_tables(text):
    """Each table as (header, data rows)."""
    found, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = [line, []]
                found.append(current)
            elif not line.startswith("|---"):
                current[1].append(line)
        else:
            current = None
    return found


def _figure_names(experiment: str) -> list[str]:
    return [figure.name for figure in catalog.get(experiment).figures]


def test_the_report_has_every_figure_and_table_of_every_run(run_dirs, tmp_path):
    assert set(run_dirs) == set(catalog.names())
    properties = load_run(run_dirs["variance_vs_L"]).config["estimator_properties"]
    assert properties["straight_through"] == {"unbiased": False, "stateful": False}
    assert list(properties)[:2] == ["pathwise", "score_function"]  # the order the run measured them
    path = report.write_report(list(run_dirs.values()), tmp_path / "report")
    text = path.read_text()
    links = _figure_links(text)
    expected = {f"figures/{experiment}/{name}.png" for experiment in run_dirs for name in _figure_names(experiment)}
    assert set(links) == expected
    for link in links:
        assert (path.parent / link).stat().st_size > 10_000, link
    for experiment in run_dirs:
        assert f"`{load_run(run_dirs[experiment]).run_id}`" in text
    found = _markdown_tables(text)
    headers = [header for header, _ in found]
    assert all(rows for _, rows in found), "every table has data rows"
    assert sum("best estimator" in h for h in headers) == 2  # the recommendations (variance_vs_L, compare)
    assert sum("| L = 2 | L = 16 |" in h for h in headers) == 2  # and their problem × L grids
    assert sum("max \\|z\\| mean" in h for h in headers) == 6  # agreement: every experiment but training
    # The equal-cost ranking: its problem × budget grid, and each problem's estimators relative to the best.
    assert sum("| 4 evaluations | 16 evaluations |" in h for h in headers) == 2
    assert sum("exact variance" in h for h in headers) == 1  # the detail at L = 16
    assert sum("best τ" in h for h in headers) == 1
    assert sum("held-out −ELBO" in h for h in headers) == 1
    for csv in re.findall(r"\]\((tables/[^)]+\.csv)\)", text):
        assert not pd.read_csv(path.parent / csv).empty, csv
    # The recommendation covers every (problem, L) of each run.
    recommended = [rows for header, rows in found if "best estimator" in header]
    compared = [rows for rows in recommended if all("report_user_model:make_objective" in row for row in rows)]
    assert len(compared) == 1 and len(compared[0]) == 2  # compare: one objective at L = 2 and 16
    (rows,) = [rows for rows in recommended if rows is not compared[0]]
    assert len(rows) == 2 * 2


def test_figures_have_labelled_axes_and_a_legend(run_dirs):
    for experiment, path in run_dirs.items():
        metrics = load_run(path).metrics
        for figure, draw in figures.drawings(experiment):
            name = figure.name
            fig = draw(metrics, figures.run_palette(load_run(path).config))
            try:
                axes = [ax for ax in fig.axes if ax.get_visible()]
                assert axes, name
                for ax in axes:
                    assert ax.get_xlabel() and ax.get_ylabel(), (name, ax.get_title())
                    assert ax.lines or ax.collections, (name, ax.get_title())
                labels = [text.get_text() for legend in fig.legends for text in legend.get_texts()]
                assert labels, name
                if name == "training_log_likelihood":  # the models with a likelihood: the VAEs
                    assert set(metrics.loc[metrics["metric"] == "held_out_nll", "estimator"]) <= set(labels), name
                elif name != "bias_vs_L":  # which leaves out estimates exact to rounding, and says so
                    assert set(metrics["estimator"]) <= set(labels), name
                assert len(labels) == len(set(labels)) and not any(label.endswith("(exact)") for label in labels), name
                estimators = [label for label in labels if label in est.names()]
                assert estimators == [n for n in est.names() if n in estimators], name  # family by family
                assert fig._suptitle is not None and fig._suptitle.get_text(), name
            finally:
                plt.close(fig)


def test_every_estimator_has_its_own_style_by_family():
    """Hue by family, shade and marker by member: every registered estimator's (colour, marker) differs from
    every other's, members of a family share their hue's marker sequence, and the style of a name does not
    depend on which other estimators a run has."""
    styles = {name: figures.estimator_style(name) for name in est.names()}
    assert len(set(styles.values())) == len(styles)
    for family in est.registry.FAMILIES:
        members = [n for n in est.names() if est.registry.family(n) == family]
        assert len({styles[n][1] for n in members}) == len(members), family  # markers differ within a family
    few = figures.estimator_palette(["relax", "pathwise"])
    assert few["relax"] == figures.estimator_palette(est.names())["relax"] == styles["relax"][0]
    assert figures.estimator_palette(["an_old_name"])["an_old_name"] in figures.UNKNOWN_SHADES


def test_html_report_embeds_every_figure(run_dirs, tmp_path):
    dirs = [run_dirs["variance_vs_L"], run_dirs["training"]]
    path = report.write_report(dirs, tmp_path / "html", fmt="html")
    text = path.read_text()
    assert path.name == "report.html"
    assert text.count("src='data:image/png;base64,") == len(_figure_names("variance_vs_L")) + len(
        _figure_names("training"))
    assert "<table>" in text and "src='figures/" not in text


def test_a_second_report_replaces_the_first_whole(run_dirs, tmp_path):
    out = tmp_path / "report"
    report.write_report([run_dirs["variance_vs_dimension"]], out)
    report.write_report([run_dirs["variance_vs_mean"]], out)
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["variance_vs_mean"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # nothing staged or retired is left


def test_a_failure_leaves_the_previous_report_untouched(run_dirs, tmp_path, monkeypatch):
    out = tmp_path / "report"
    report.write_report([run_dirs["variance_vs_dimension"]], out)
    before = (out / "report.md").read_text()

    def broken(metrics, palette=None):
        raise RuntimeError("drawing failed")

    monkeypatch.setitem(figures.DRAWERS, "variance_vs_dimension", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        report.write_report([run_dirs["variance_vs_dimension"]], out)
    assert (out / "report.md").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


@pytest.mark.parametrize("case, message", [
    ("missing", r"No run folder at"),
    ("partial", r"is an incomplete run"),
    ("not_a_run", r"is not a run folder: it lacks metrics.csv"),
    ("occupied_output", r"exists and is not a report folder"),
])
def test_bad_input_is_refused_and_writes_nothing(case, message, run_dirs, tmp_path, capsys):
    out = tmp_path / "report"
    run_dir = str(run_dirs["variance_vs_dimension"])
    if case == "missing":
        run_dir = str(tmp_path / "results" / "variance_vs_L" / "nope")
    elif case == "partial":
        partial = tmp_path / "x.partial"
        partial.mkdir()
        run_dir = str(partial)
    elif case == "not_a_run":
        (tmp_path / "empty").mkdir()
        run_dir = str(tmp_path / "empty")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):
        report.main([run_dir, "--output", str(out)])
    assert re.search(message, capsys.readouterr().err)
    if case == "occupied_output":
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]


# ------------------------------------------------------------------------------------------------
# The tables' arithmetic, on hand-made metrics


def _rows(problem, estimator, num_samples, parameter, **metrics):
    return [{"problem": problem, "estimator": estimator, "num_samples": num_samples, "parameter": parameter,
             "metric": name, "value": value, "std_error": se, "replicates": 1000}
            for name, (value, se) in metrics.items()]


def test_the_recommendation_is_the_lowest_mse_times_time_with_its_margin():
    metrics = pd.DataFrame(
        _rows("p", "fast_noisy", 4, "all", mse=(2.0, 0.01), time_per_estimate_s=(1.0, 0.0))
        + _rows("p", "slow_precise", 4, "all", mse=(0.5, 0.01), time_per_estimate_s=(3.0, 0.0))
        + _rows("p", "tied", 4, "all", mse=(1.52, 0.5), time_per_estimate_s=(1.0, 0.0))
        + _rows("p", "exact", 8, "all", mse=(1e-30, 0.0), time_per_estimate_s=(5.0, 0.0))
        + _rows("p", "fast_noisy", 8, "all", mse=(1.0, 0.01), time_per_estimate_s=(1.0, 0.0)))
    table = tables.recommendations(metrics).set_index("num_samples")
    best = table.loc[4]
    assert best["best"] == "slow_precise" and best["runner_up"] == "tied"
    assert best["margin"] == pytest.approx(1.52 / 1.5)
    assert best["margin_z"] == pytest.approx(0.02 / math.hypot(0.03, 0.5)) and not best["clear"]
    assert table.loc[8, "best"] == "exact" and table.loc[8, "exact"] and table.loc[8, "margin"] == math.inf


def test_measured_against_exact_judges_the_median_of_means_and_shows_the_z_scores():
    # R = 1000: k = 20 blocks of b = 50.  pathwise's median of means is 0.5 = 3.5σ/√b from its expectation
    # (σ² = 1): a block misses by that much with probability q ≤ 1/(50 · 0.25) = 0.08 (Chebyshev), the median
    # only if 10 of 20 blocks do: p ≤ P(Bin(20, 0.08) ≥ 10), below 0.05 / 3.  score_function's is 0.1 off.
    metrics = pd.DataFrame(
        _rows("p", "pathwise", 16, "loc", variance=(1.1, 0.05), exact_variance=(1.0, 0.0),
              bias_squared=(0.0, 0.001), exact_bias_squared=(0.0, 0.0))
        + _rows("p", "score_function", 16, "loc", variance=(3.0, 0.1), exact_variance=(2.0, 0.0),
                bias_squared=(0.0, 0.001), exact_bias_squared=(0.0, 0.0))
        + _rows("p", "straight_through", 16, "loc", variance=(0.5, 0.01), exact_variance=(0.5, 0.0),
                bias_squared=(0.26, 0.02), exact_bias_squared=(0.25, 0.0))
        + _rows("p", "relax", 16, "loc", variance=(0.5, 0.01), bias_squared=(0.0, 0.01)))
    coordinates = pd.DataFrame([
        {**row, "coordinate": 0} for row in
        _rows("p", "pathwise", 16, "loc", mean=(2.03, 0.01), exact_grad=(2.0, 0.0), bias=(0.03, 0.01),
              exact_variance=(1.0, 0.0), median_of_means=(2.5, np.nan))
        + _rows("p", "score_function", 16, "loc", mean=(2.0, 0.02), exact_grad=(2.0, 0.0), bias=(0.0, 0.02),
                exact_variance=(2.0, 0.0), median_of_means=(2.1, np.nan))
        + _rows("p", "straight_through", 16, "loc", mean=(2.5, 0.01), exact_grad=(2.0, 0.0), bias=(0.5, 0.01),
                exact_variance=(0.5, 0.0), exact_expectation=(2.5, 0.0), median_of_means=(2.51, np.nan))
        + _rows("p", "relax", 16, "loc", mean=(2.0, 0.01), exact_grad=(2.0, 0.0), bias=(0.0, 0.01),
                median_of_means=(2.0, np.nan))])
    unbiased = {"pathwise": True, "score_function": True, "straight_through": False, "relax": True}
    table = tables.measured_vs_exact(metrics, coordinates, unbiased, false_alarm_rate=0.05).set_index("estimator")
    # The three coordinates with an exact variance are judged; relax's (no exact variance) is not.
    assert table.attrs["comparisons"] == 3
    assert table.attrs["threshold"] == pytest.approx(2.394, abs=1e-3)  # Φ⁻¹(1 − 0.05 / 6)
    binomial_tail = lambda q: sum(math.comb(20, j) * q**j * (1 - q) ** (20 - j) for j in range(10, 21))
    assert table.loc["pathwise", "mean_p"] == pytest.approx(binomial_tail(1 / (50 * 0.25)), rel=1e-9)
    assert table.loc["pathwise", "mean_z"] == pytest.approx(0.03 / math.sqrt(1.0 / 1000))  # with the exact σ
    assert table.loc["pathwise", "verdict"] == "differs: mean"
    assert table.loc["score_function", "mean_p"] == pytest.approx(binomial_tail(1.0), rel=1e-9)  # q = 4 > 1
    assert table.loc["score_function", "verdict"] == "agrees"
    # The variance's z is shown on the log scale, with ρ̂ = se √R / variance; it is not judged.
    rho = 0.1 * math.sqrt(1000) / 3.0
    assert table.loc["score_function", "variance_z"] == pytest.approx(math.log(1.5) * math.sqrt(1000) / rho)
    # A biased estimator is judged against its own exact expectation.
    assert table.loc["straight_through", "verdict"] == "biased, as its exact expectation says"
    assert table.loc["straight_through", "bias_squared_z"] == pytest.approx(0.5)
    assert table.loc["relax", "verdict"] == "not judged (no exact variance)"
    assert tables.bonferroni_threshold(1, 0.05) == pytest.approx(1.959964, abs=1e-6)


def test_what_the_verdict_cannot_test_is_never_called_agreement():
    def cell(estimator, variance, coordinates, **group):
        metrics = _rows("p", estimator, 4, "loc", variance=(variance, 0.0), bias_squared=(0.0, 0.1), **group)
        rows = [{**row, "coordinate": c} for c, values in enumerate(coordinates) for row in
                _rows("p", estimator, 4, "loc", **values)]
        return metrics, rows

    deterministic = dict(exact_grad=(2.0, 0.0))
    cells = [
        # No exact variance and no spread, the first coordinate off by 1: not "exact", whichever coordinate is last.
        cell("wrong_deterministic", 0.0, [dict(mean=(3.0, 0.0), bias=(1.0, 0.0), **deterministic),
                                           dict(mean=(2.0, 0.0), bias=(0.0, 0.0), **deterministic)]),
        # An exact variance of 0 is a test (of rounding's size): off by 1e-3 of the gradient is flagged.
        cell("zero_variance", 0.0, [dict(mean=(2.002, 0.0), bias=(0.002, 0.0), exact_variance=(0.0, 0.0),
                                         median_of_means=(2.002, np.nan), **deterministic)]),
        # A NaN estimate is flagged however it spreads.
        cell("nan", 1.0, [dict(mean=(np.nan, np.nan), bias=(np.nan, np.nan), exact_variance=(1.0, 0.0),
                               median_of_means=(np.nan, np.nan), exact_grad=(2.0, 0.0))]),
        # A group without per-coordinate rows (over 256 coordinates) says so.
        cell("large_group", 1.0, [], exact_variance=(1.0, 0.0)),
    ]
    metrics = pd.DataFrame([row for group, _ in cells for row in group])
    coordinates = pd.DataFrame([row for _, rows in cells for row in rows])
    verdicts = tables.measured_vs_exact(metrics, coordinates).set_index("estimator")["verdict"]
    assert verdicts["wrong_deterministic"] == "not judged (no exact variance)"
    assert verdicts["zero_variance"] == "differs: mean"
    assert verdicts["nan"] == "differs: not finite"
    assert verdicts["large_group"] == "not judged (no per-coordinate rows)"


def _verdict_metrics(estimates: dict, exact: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy metrics of a run whose cells' replicate estimates (one coordinate each) are ``estimates``
    and whose exact (mean, variance) are ``exact``, summarized as the runner does."""
    from experiments.engine.statistics import coordinate_summary, group_summary

    rows, coordinate_rows = [], []
    for name, g in estimates.items():
        mean, variance = exact[name]
        key = {"problem": name, "estimator": "score_function", "num_samples": 1, "parameter": "loc",
               "replicates": len(g)}
        group = group_summary(g[:, None], [mean])
        group["exact_variance"] = (variance, 0.0)
        rows += [{**key, "metric": m, "value": v, "std_error": se} for m, (v, se) in group.items()]
        summary = coordinate_summary(g[:, None], [mean])
        summary.update(exact_grad=(np.array([mean]), np.zeros(1)), exact_variance=(np.array([variance]), np.zeros(1)))
        coordinate_rows += [{**key, "coordinate": 0, "metric": m, "value": float(v[0]), "std_error": float(se[0])}
                            for m, (v, se) in summary.items()]
    return pd.DataFrame(rows), pd.DataFrame(coordinate_rows)


def _gaussian_moment(power: int) -> float:
    return 0.0 if power % 2 else float(math.prod(range(power - 1, 0, -2)))


@pytest.fixture(scope="module")
def heavy_tailed_cells():
    """Estimators' estimates of the kinds that misled a normal test at small R, with exact means and variances:
    the score function of E[x²], x ~ N(μ, σ²), in σ (a polynomial of degree 4 in ε: kurtosis in the
    hundreds), a rare event (a category drawn once in 200 draws), and a lognormal."""
    mu, sigma = 1.0, 1.0
    # g = (μ + σε)² (ε² − 1) / σ: expand in ε and take the Gaussian moments for E g and E g².
    polynomial = np.polynomial.Polynomial([mu, sigma]) ** 2 * np.polynomial.Polynomial([-1.0, 0.0, 1.0]) / sigma
    expectation = lambda poly: sum(c * _gaussian_moment(k) for k, c in enumerate(poly.coef))
    score_mean = expectation(polynomial)
    assert score_mean == pytest.approx(2 * sigma)  # ∂/∂σ E[x²] = ∂/∂σ (μ² + σ²)
    rare, s = 0.005, 1.5
    exact = {"score_function_scale": (score_mean, expectation(polynomial**2) - score_mean**2),
             "rare_event": (1.0, (1 - rare) / rare),
             "lognormal": (math.exp(s**2 / 2), (math.exp(s**2) - 1) * math.exp(s**2))}
    draw = {"score_function_scale": lambda rng, n: polynomial(rng.standard_normal(n)),
            "rare_event": lambda rng, n: (rng.random(n) < rare) / rare,
            "lognormal": lambda rng, n: np.exp(s * rng.standard_normal(n))}
    return exact, draw


#: Seeds per replicate count in the false-alarm test; a verdict at its stated 1% family-wise rate flags 3 or
#: more of 40 seeds with probability 1 − P(Bin(40, 0.01) ≤ 2) = 0.0075, the test's own false-alarm rate.
VERDICT_SEEDS = 40


@pytest.mark.parametrize("replicates", [5, 50, 500])
def test_the_verdicts_false_alarm_rate_holds_at_any_replicate_count(heavy_tailed_cells, replicates):
    # The stated family-wise rate is 1%; over 40 independent runs of three heavy-tailed estimators with
    # exactly known means and variances, at most 2 may raise any flag (a normal test on the sample's
    # standard error flags most of them at R = 5 and 50).
    exact, draw = heavy_tailed_cells
    rng = np.random.default_rng(20261203 + replicates)
    flagged = 0
    for _ in range(VERDICT_SEEDS):
        estimates = {name: sample(rng, replicates) for name, sample in draw.items()}
        table = tables.measured_vs_exact(*_verdict_metrics(estimates, exact))
        assert table.attrs["comparisons"] == 3 and table.attrs["false_alarm_rate"] == tables.FALSE_ALARM_RATE
        flagged += bool(table["verdict"].str.startswith("differs").any())
    assert flagged <= 2, f"{flagged} of {VERDICT_SEEDS} runs flagged an estimator whose mean is exact"


def test_the_verdict_sees_a_bias_of_one_and_a_half_standard_deviations_at_500_replicates():
    # Its power: estimates 1.5 σ off their stated expectation are flagged in every run (the median of 20
    # block means of 25 is 1.5 σ ± 0.06 σ off; q ≤ 1 / (25 · 1.5²) = 0.018, p ≤ P(Bin(20, 0.018) ≥ 10) ≈ 1e-12).
    rng = np.random.default_rng(7)
    for _ in range(5):
        table = tables.measured_vs_exact(*_verdict_metrics({"gaussian": rng.standard_normal(500) + 1.5},
                                                           {"gaussian": (0.0, 1.0)}))
        assert table["verdict"].tolist() == ["differs: mean"]


def test_an_estimate_exact_to_float_rounding_is_not_flagged():
    metrics = pd.DataFrame(_rows("p", "pathwise_delta", 16, "loc", variance=(1e-15, 1e-16), bias_squared=(0.0, 1e-17)))
    coordinates = pd.DataFrame([{**row, "coordinate": 0} for row in _rows(
        "p", "pathwise_delta", 16, "loc", mean=(2.0000001, 1e-9), exact_grad=(2.0, 0.0), bias=(1e-7, 1e-9))])
    (row,) = tables.measured_vs_exact(metrics, coordinates).itertuples()
    assert row.verdict == "exact (to float rounding)"


def test_numbers_are_formatted_for_reading():
    assert [report.format_number(v) for v in (np.nan, 3, 2.0, 0.012345, 1.5e-7, 123456.0, math.inf, True)] == [
        "—", "3", "2", "0.0123", "1.50e-07", "123456", "∞", "yes"]


def test_the_command_line_writes_the_report(run_dirs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert report.main([str(run_dirs["bias_vs_temperature"]), "-o", str(out)]) == 0
    assert f"report: wrote {out / 'report.md'}" in capsys.readouterr().out
    assert Path(out / "figures" / "bias_vs_temperature" / "bias_vs_temperature.png").is_file()


@pytest.mark.parametrize("draw", [figures.mse_vs_L, figures.mse_vs_cost])
def test_the_rounding_of_an_exact_estimators_bias_does_not_stretch_the_mse_axis(draw):
    """An unbiased estimator exact on the problem has an 'exact bias²' of float rounding (1e-34): it is not
    drawn as a bias floor, so the axis spans the measured MSEs."""
    rows = []
    for estimator, mse, bias in (("exact_one", 1e-35, 1e-34), ("biased_one", 1e-2, 1e-3)):
        for num_samples in (1, 16):
            key = {"problem": "toy", "estimator": estimator, "num_samples": num_samples, "parameter": "all"}
            rows += [{**key, "metric": "mse", "value": mse / num_samples, "std_error": mse / 100},
                     {**key, "metric": "exact_bias_squared", "value": bias, "std_error": math.nan},
                     {**key, "metric": "cost_evaluations", "value": num_samples, "std_error": math.nan}]
    fig = draw(pd.DataFrame(rows).assign(replicates=100))
    assert fig.axes[0].get_ylim()[0] > 1e-20
    plt.close(fig)


def test_an_estimate_exact_to_rounding_does_not_stretch_the_variance_axis():
    """An estimator whose variance and exact variance are ~0 (exact to float rounding) is named under the
    panel, and neither its measured line nor its dotted exact line pulls the log axis down to 1e-35."""
    rows = []
    for estimator, variance in (("score_function", 2.0), ("pathwise", 0.5), ("indecater", 1e-35)):
        for num_samples in (1, 32):
            for metric, value in (("variance", variance / num_samples), ("exact_variance", variance / num_samples)):
                rows.append({"problem": "toy", "estimator": estimator, "num_samples": num_samples,
                             "parameter": "logits", "metric": metric, "value": value, "std_error": 0.01 * value,
                             "replicates": 1000})
    fig = figures.variance_vs_L(pd.DataFrame(rows))
    try:
        (ax,) = [ax for ax in fig.axes if ax.get_visible()]
        assert ax.get_ylim()[0] > 1e-6
        assert any("indecater" in text.get_text() for text in ax.texts)
    finally:
        plt.close(fig)
