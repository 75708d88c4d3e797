"""The variance_vs_L runner end to end: CLI, run folder, loading back through analysis, and errors."""

from __future__ import annotations

import json
import re
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import analysis
import estimators as est
from experiments import problems
from experiments import run as cli
from experiments.engine import runner
from experiments.engine.results import COORDINATE_METRIC_COLUMNS, METRIC_COLUMNS

SMALL = ["--problems", "gaussian_quadratic,gaussian_quadratic_20d", "--estimators",
         "pathwise,score_function,score_function_loo", "--num-samples", "1,4", "--replicates", "64", "--quiet"]
# Leave-one-out needs L ≥ 2, so its L = 1 cells are not measured: 2 problems × (2 × 2 + 1) cells.
SMALL_CELLS = 10


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("results")
    assert cli.main(["variance_vs_L", *SMALL, "--output-dir", str(output)]) == 0
    (run_dir,) = (output / "variance_vs_L").iterdir()
    return run_dir


def test_cli_writes_a_complete_run_folder(small_run):
    assert not small_run.name.endswith(".partial")
    for name in ("metrics.csv", "metrics_by_coordinate.csv", "config.json", "env.json"):
        assert (small_run / name).stat().st_size > 0
    for figure in ("variance_vs_L.png", "bias_vs_L.png", "mse_vs_L.png"):
        assert (small_run / "figures" / figure).stat().st_size > 10_000


def test_run_loads_back_through_analysis(small_run):
    run = analysis.load_run(small_run)
    assert list(run.metrics.columns) == METRIC_COLUMNS + ["run_id"]
    assert list(run.coordinate_metrics.columns) == COORDINATE_METRIC_COLUMNS + ["run_id"]
    cells = run.metrics.groupby(["problem", "estimator", "num_samples"]).size()
    assert len(cells) == SMALL_CELLS
    metrics = set(run.metrics["metric"])
    assert {"variance", "bias_squared", "mse", "exact_variance", "time_per_estimate_s", "compile_time_s",
            "cost_evaluations", "objective"} <= metrics
    assert run.metrics["value"].notna().all() and (run.metrics["replicates"] == 64).all()
    assert set(run.metrics["parameter"]) == {"loc", "scale", "all"}
    detail = run.coordinate_metrics
    assert detail[detail["problem"] == "gaussian_quadratic_20d"]["coordinate"].max() == 19


def test_run_metrics_are_consistent(small_run):
    wide = analysis.load.wide(analysis.load_run(small_run).metrics)
    gradient_rows = wide[wide["parameter"] != "all"]
    # MSE = variance·(R−1)/R + ‖ḡ − g*‖², and bias² is ‖ḡ − g*‖² − variance/R, so MSE = variance + bias².
    np.testing.assert_allclose(gradient_rows["mse"], gradient_rows["variance"] + gradient_rows["bias_squared"],
                               rtol=1e-9)
    # The whole gradient's variance is the sum of its groups'.
    by_group = gradient_rows.groupby(["problem", "estimator", "num_samples"])["variance"].sum()
    whole = wide[wide["parameter"] == "all"].set_index(["problem", "estimator", "num_samples"])["variance"]
    np.testing.assert_allclose(by_group.sort_index(), whole.sort_index(), rtol=1e-9)
    cost = wide[wide["parameter"] == "all"]
    np.testing.assert_array_equal(cost["cost_evaluations"], cost["num_samples"])


def test_config_and_env_record_what_is_needed_to_rerun(small_run):
    config = json.loads((small_run / "config.json").read_text())
    assert config["problems"] == ["gaussian_quadratic", "gaussian_quadratic_20d"]
    assert config["num_samples"] == [1, 4] and config["replicates"] == 64 and config["seed"] == 0
    assert config["run_id"] == small_run.name and config["cells"] == SMALL_CELLS and config["wall_time_s"] > 0
    env = json.loads((small_run / "env.json").read_text())
    for field in ("git_commit", "git_dirty", "jax_version", "jaxlib_version", "backend", "devices", "x64", "seed"):
        assert field in env
    assert env["backend"] == "cpu" and env["x64"] is False


def test_same_seed_reproduces_the_estimates(small_run, tmp_path):
    cli.main(["variance_vs_L", *SMALL, "--output-dir", str(tmp_path), "--no-figures"])
    (again,) = (tmp_path / "variance_vs_L").iterdir()
    first, second = (analysis.load_run(p).metrics for p in (small_run, again))
    # Timings, and compilations (eager helpers compiled by the first run are cached for the second)
    keep = ~first["metric"].isin(["time_per_estimate_s", "compile_time_s", "compilations"])
    pd.testing.assert_series_equal(first[keep]["value"].reset_index(drop=True),
                                   second[keep]["value"].reset_index(drop=True))


def test_an_interrupted_run_keeps_finished_cells_in_a_partial_folder(tmp_path, monkeypatch):
    calls = []
    original = runner.measure_cells

    def measure_then_stop(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(None)
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "measure_cells", measure_then_stop)
    assert cli.main(["variance_vs_L", *SMALL, "--output-dir", str(tmp_path)]) == 130
    (partial,) = (tmp_path / "variance_vs_L").iterdir()
    assert partial.name.endswith(".partial")
    with pytest.raises(ValueError, match="incomplete run"):
        analysis.load_run(partial)
    finished = analysis.load_run(partial, allow_partial=True).metrics
    # Two programs: pathwise and score function, each at both L (separable: one program for the L grid).
    assert finished.groupby(["problem", "estimator", "num_samples"]).ngroups == 4


def _interrupted_run(tmp_path, monkeypatch, after: int):
    calls = []
    original = runner.measure_cells

    def measure_then_stop(*args, **kwargs):
        if len(calls) == after:
            raise KeyboardInterrupt
        calls.append(None)
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "measure_cells", measure_then_stop)
    assert cli.main(["variance_vs_L", *SMALL, "--output-dir", str(tmp_path)]) == 130
    monkeypatch.setattr(runner, "measure_cells", original)
    (partial,) = (tmp_path / "variance_vs_L").iterdir()
    return partial


def test_a_partial_run_is_reported_only_when_asked_and_marked_incomplete(tmp_path, monkeypatch, capsys):
    from analysis.report import cli as report_cli

    partial = _interrupted_run(tmp_path, monkeypatch, after=1)
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exit_info:
        report_cli.main([str(partial), "-o", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "is an incomplete run" in err and "--allow-partial (python -m analysis.report)" in err
    assert not out.exists()
    assert report_cli.main([str(partial), "-o", str(out), "--allow-partial"]) == 0
    assert "**An incomplete run**" in (out / "report.md").read_text()


def test_bounds_check_names_a_folder_it_cannot_check_without_a_traceback(small_run, tmp_path, capsys):
    from experiments import bounds

    for folder, message in [(tmp_path, "is not a run folder: it lacks"),
                            (small_run, "is a variance_vs_L run; the bounds check reads a `python -m experiments.run "
                                        "variance_vs_L --profile ci` run")]:
        with pytest.raises(SystemExit) as exit_info:
            bounds.main(["check", str(folder)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("usage: python -m experiments.bounds check") and message in err


def test_the_checkpoint_command_runs_without_a_double_import_warning():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "experiments.problems.checkpoints",
                             "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr and "usage:" in result.stdout


def test_a_resumed_run_matches_an_uninterrupted_one(small_run, tmp_path, monkeypatch, capsys):
    partial = _interrupted_run(tmp_path, monkeypatch, after=3)
    assert "--resume" in capsys.readouterr().out  # the message says how to continue
    # A cell being written when the run stopped leaves only a temporary file, never read as a result.
    (partial / "cells" / "00005.csv.tmp").write_text("problem,estim")
    measured = []
    original = runner.measure_cells
    monkeypatch.setattr(runner, "measure_cells", lambda *a, **k: measured.append(a[2]) or original(*a, **k))
    assert cli.main(["variance_vs_L", "--resume", str(partial), "--quiet", "--no-figures"]) == 0
    # Three programs (pathwise and score function at L = 1 and 4, leave-one-out at 4) made the first problem's
    # five cells; the second problem's are measured, and the finished ones not again.
    assert measured == [[1, 4], [1, 4], [4]]
    resumed = partial.with_name(partial.name[: -len(".partial")])
    assert resumed.is_dir() and not partial.exists() and not (resumed / "cells").exists()
    first, second = (analysis.load_run(p) for p in (small_run, resumed))
    assert second.config["resumed"][0]["cells_already_done"] == 5
    for frame in ("metrics", "coordinate_metrics"):
        a, b = getattr(first, frame), getattr(second, frame)
        keep = lambda m: m[~m["metric"].isin(["time_per_estimate_s", "compile_time_s", "compilations"])].drop(
            columns="run_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(keep(a), keep(b))


@pytest.mark.parametrize("case, message", [
    ("other_options", r"--resume continues a run with the settings in its config.json; drop --replicates"),
    ("complete_run", r"is not an interrupted run"),
    ("changed_plan", r"finished cell 0 is .*gaussian_quadratic'.*, but this run plans .*gaussian_quadratic_20d"),
    ("other_experiment", r"that is a variance_vs_L run, not bias_vs_temperature"),
])
def test_resume_refuses_what_it_cannot_continue(case, message, small_run, tmp_path, monkeypatch, capsys):
    partial = _interrupted_run(tmp_path, monkeypatch, after=1)
    experiment, extra, target = "variance_vs_L", [], partial
    if case == "other_options":
        extra = ["--replicates", "5"]
    elif case == "complete_run":
        target = small_run
    elif case == "changed_plan":  # as if the code now planned the cells in another order
        config = json.loads((partial / "config.json").read_text())
        config["problems"] = config["problems"][::-1]
        (partial / "config.json").write_text(json.dumps(config))
    else:
        experiment = "bias_vs_temperature"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main([experiment, "--resume", str(target), "--quiet", *extra])
    assert re.search(message, capsys.readouterr().err)
    # Left as it was: the first program's two cells (pathwise at L = 1 and 4), two files each.
    assert partial.exists() and len(list((partial / "cells").glob("*.csv"))) == 4


@pytest.mark.parametrize("argv, message", [
    (["--problems", "gaussian_quadratc"], r"Unknown problem 'gaussian_quadratc'. Did you mean 'gaussian_quadratic'"),
    (["--estimators", "reinforce"], r"Unknown estimator 'reinforce'"),
    (["--num-samples", "0,4"], r"--num-samples must be positive integers, got \[0\]"),
    (["--num-samples", "1,x"], r"expected comma-separated numbers"),
    (["--replicates", "1"], r"--replicates must be at least 3"),
    (["--replicates", "2"], r"--replicates must be at least 3 to give a variance a standard error"),
    (["--problems", ""], r"--problems: expected at least one comma-separated value, got ''; leave the option out"),
    (["--estimators", " , "], r"--estimators: expected at least one comma-separated value"),
    (["--max-seconds-per-cell", "0"], r"--max-seconds-per-cell: expected a positive number of seconds or 'none'"),
    (["--max-seconds-per-cell", "soon"], r"--max-seconds-per-cell: expected a number of seconds or 'none', got 'soon'"),
])
def test_cli_errors_name_the_option(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["variance_vs_L", *argv, "--output-dir", str(tmp_path), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err)
    assert err.startswith("usage: python -m experiments.run variance_vs_L")  # the experiment's own usage
    assert not (tmp_path / "variance_vs_L").exists()  # nothing half-written


@pytest.mark.parametrize("inside", [False, True], ids=["a_file", "under_a_file"])
def test_cli_output_dir_that_cannot_hold_runs_is_refused_before_anything_runs(inside, tmp_path, capsys):
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a directory")
    target = blocker / "runs" if inside else blocker
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["variance_vs_L", *SMALL, "--output-dir", str(target), "--quiet"])
    assert exit_info.value.code == 2
    assert re.search(r"--output-dir .*: (that|.*results.txt) is a file, not a directory", capsys.readouterr().err)


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    """``timeout`` or Slurm's SIGTERM: the finished cells stay in the .partial folder, the command to resume
    it is printed, and the exit status is 128 + 15."""
    import os
    import signal

    calls = []
    original = runner.measure_cells

    def measure_then_terminate(*args, **kwargs):
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        calls.append(None)
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "measure_cells", measure_then_terminate)
    handler = signal.getsignal(signal.SIGTERM)
    assert cli.main(["variance_vs_L", *SMALL, "--output-dir", str(tmp_path)]) == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is handler  # restored
    (partial,) = (tmp_path / "variance_vs_L").iterdir()
    assert partial.name.endswith(".partial")
    assert f"--resume {partial} continues it" in capsys.readouterr().out
    assert len(analysis.load_run(partial, allow_partial=True).metrics) > 0


@pytest.mark.skipif(any(d.platform == "gpu" for d in jax.devices()), reason="a GPU is present")
def test_cli_gpu_request_without_a_gpu_says_how_to_fix(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["variance_vs_L", "--device", "gpu", "--output-dir", str(tmp_path), "--quiet"])
    assert "JAX sees no GPU here" in capsys.readouterr().err


def test_cli_list_and_help(capsys, monkeypatch):
    # The listing builds no problem (building the real-data ones computes their exact answers).
    def no_building(name):
        raise AssertionError(f"--list built {name}")

    monkeypatch.setattr(problems, "get", no_building)
    assert cli.main(["variance_vs_L", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "gaussian_quadratic_20d" in listing and "score_function" in listing
    assert all(name in listing for name in problems.names())
    monkeypatch.undo()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["variance_vs_L", "--help"])
    assert exit_info.value.code == 0
    assert "--num-samples" in capsys.readouterr().out


def test_load_run_rejects_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a run folder: it lacks metrics.csv"):
        analysis.load_run(tmp_path)


def test_float64_run_in_a_fresh_process(tmp_path):
    # The x64 flag is global to a process, so the float64 path runs in its own.
    import subprocess
    import sys

    command = [sys.executable, "-m", "experiments.run", "variance_vs_L", "--problems", "gaussian_quadratic",
               "--num-samples", "1,2", "--replicates", "16", "--precision", "float64", "--no-figures", "--quiet",
               "--output-dir", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (run_dir,) = (tmp_path / "variance_vs_L").iterdir()
    run = analysis.load_run(run_dir)
    assert run.env["x64"] is True and run.config["precision"] == "float64"
    exact = run.coordinate_metrics.query("metric == 'exact_grad'")["value"]
    np.testing.assert_allclose(exact, 2.0)


def test_bias_vs_temperature_run(tmp_path):
    argv = ["bias_vs_temperature", "--problems", "bernoulli_toy", "--temperatures", "0.5,1", "--replicates", "64",
            "--estimators", "gumbel_softmax,straight_through_gumbel,gumbel_rao,rebar", "--quiet",
            "--output-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    (run_dir,) = (tmp_path / "bias_vs_temperature").iterdir()
    run = analysis.load_run(run_dir)
    assert list(run.metrics.columns[:3]) == ["problem", "estimator", "temperature"]
    assert set(run.metrics["temperature"]) == {0.5, 1.0}
    assert set(run.metrics["estimator"]) == {"gumbel_softmax", "straight_through_gumbel", "gumbel_rao", "rebar"}
    # The three biased estimators have an exact bias at each temperature; REBAR is unbiased at any.
    exact = run.metrics.query("metric == 'exact_bias_squared' and parameter == 'all'")
    biased = exact[exact["estimator"] != "rebar"]
    assert len(biased) == 6 and (biased["value"] > 0).all()
    assert (exact.loc[exact["estimator"] == "rebar", "value"] == 0).all()
    assert (run_dir / "figures" / "bias_vs_temperature.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--estimators", "pathwise"],
            r"pathwise has no temperature; choose from decoupled_straight_through, gapped_straight_through, reinmax, "
            r"gumbel_softmax, "
            r"straight_through_gumbel, gumbel_rao, rebar, relax",
        ),
        (["--temperatures", "0,1"], r"--temperatures must be positive numbers, got \[0.0, 1.0\]"),
        (["--problems", "gaussian_quadratic"], r"No selected estimator applies to any selected problem"),
    ],
)
def test_bias_vs_temperature_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["bias_vs_temperature", *argv, "--replicates", "8", "--quiet", "--output-dir", str(tmp_path)])
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "bias_vs_temperature").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["variance_vs_mean", "--functions", "sine"],
            r"--functions: unknown test functions \['sine'\]; choose from quadratic, exp, cosine",
        ),
        (["variance_vs_mean", "--scale", "0"], r"--scale must be a positive number, got 0.0"),
        (
            ["variance_vs_mean", "--estimators", "straight_through"],
            r"No selected estimator applies to any selected problem",
        ),
        (["variance_vs_dimension", "--dimensions", "0,4"], r"--dimensions must be positive integers, got \[0, 4\]"),
        (["variance_vs_dimension", "--num-samples", "0"], r"--num-samples must be positive integers, got \[0\]"),
    ],
)
def test_sweep_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main([*argv, "--replicates", "8", "--quiet", "--output-dir", str(tmp_path)])
    assert re.search(message, capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


def test_sweep_rows_carry_their_setting(tmp_path):
    argv = ["variance_vs_dimension", "--dimensions", "3,1", "--estimators", "pathwise", "--num-samples", "4",
            "--replicates", "32", "--quiet", "--no-figures", "--output-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    (run_dir,) = (tmp_path / "variance_vs_dimension").iterdir()
    run = analysis.load_run(run_dir)
    assert list(run.metrics.columns[:3]) == ["problem", "estimator", "dimension"]
    problems = run.metrics.drop_duplicates("dimension").set_index("dimension")["problem"]
    assert problems.to_dict() == {1: "gaussian_quadratic_1d", 3: "gaussian_quadratic_3d"}
    exact = run.metrics.query("metric == 'exact_variance' and parameter == 'loc'").set_index("dimension")["value"]
    np.testing.assert_allclose(exact.loc[1], 4 * 1.0**2 / 4)  # 4σ² per coordinate, σ = 1 at D = 1, L = 4


def test_resume_through_the_api_refuses_other_settings(tmp_path, monkeypatch):
    from experiments.catalog import variance_vs_L
    from experiments.engine.results import ResumeError

    partial = _interrupted_run(tmp_path, monkeypatch, after=1)
    config = json.loads((partial / "config.json").read_text())
    other = variance_vs_L.Config(problems=tuple(config["problems"]), estimators=tuple(config["estimators"]),
                                 num_samples=tuple(config["num_samples"]), replicates=65, output_dir=str(tmp_path))
    with pytest.raises(ResumeError, match=r"was started with other settings \(replicates\)"):
        variance_vs_L.run(other, progress=False, resume=partial)


def test_cells_that_differ_only_in_values_share_one_program():
    """A program compiled at one mean is reused at another (no compilation), and gives exactly what a
    program compiled for that mean gives; another temperature reuses its program too; another
    estimator, or another L, compiles its own."""
    from experiments.engine.measure import measure_cell
    from experiments.problems.gaussian_1d import gaussian_test_problem

    key = jax.random.key(3)
    jax.clear_caches()
    at = {mu: gaussian_test_problem("cosine", mu=mu) for mu in (1.0, -2.0)}
    first = measure_cell(at[1.0], est.get("pathwise"), 8, 64, key)
    reused = measure_cell(at[-2.0], est.get("pathwise"), 8, 64, key)
    jax.clear_caches()
    fresh = measure_cell(at[-2.0], est.get("pathwise"), 8, 64, key)
    assert reused.compilations == 0 and first.compilations >= 1 and fresh.compilations >= 1
    assert reused.compile_time_s == 0.0
    for a, b in zip(jax.tree_util.tree_leaves(reused.grads), jax.tree_util.tree_leaves(fresh.grads)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.values, reused.values)  # the reused program did read the new mean
    assert measure_cell(at[-2.0], est.get("score_function"), 8, 64, key).compilations >= 1
    assert measure_cell(at[-2.0], est.get("pathwise"), 4, 64, key).compilations >= 1

    toy = problems.get("bernoulli_toy")
    hot = measure_cell(toy, est.get("gumbel_softmax", temperature=2.0), 4, 64, key)
    cold = measure_cell(toy, est.get("gumbel_softmax", temperature=0.3), 4, 64, key)
    assert hot.compilations >= 1 and cold.compilations == 0
    assert not np.array_equal(hot.grads["logits"], cold.grads["logits"])  # the temperature was read


def test_a_second_run_loads_its_programs_from_the_compilation_cache(tmp_path):
    """Two identical runs in fresh processes with one cache folder: the second compiles nothing and
    measures the same numbers."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    env = {**os.environ, "MC_GRADIENT_ESTIMATORS_COMPILATION_CACHE": str(cache)}
    command = [sys.executable, "-m", "experiments.run", "variance_vs_L", "--problems", "gaussian_quadratic",
               "--estimators", "pathwise,score_function_loo", "--num-samples", "2,8", "--replicates", "64",
               "--quiet", "--no-figures"]
    runs = []
    for name in ("first", "second"):
        subprocess.run([*command, "--output-dir", str(tmp_path / name)], env=env, check=True, capture_output=True)
        (run_dir,) = (tmp_path / name / "variance_vs_L").iterdir()
        runs.append(analysis.load_run(run_dir))
    first, second = runs
    assert first.env["compilation_cache"] == str(cache) and any(cache.iterdir())
    # A program each for pathwise and leave-one-out, both serving L = 2 and 8.
    assert first.config["compilations"] >= 2 and second.config["compilations"] == 0
    timing = first.metrics["metric"].isin(["time_per_estimate_s", "compile_time_s", "compilations"])
    pd.testing.assert_frame_equal(first.metrics[~timing].drop(columns="run_id").reset_index(drop=True),
                                  second.metrics[~timing].drop(columns="run_id").reset_index(drop=True))


def test_an_estimator_with_per_sample_statistics_serves_the_whole_L_grid_from_one_program(tmp_path):
    """A run's cells of a separable estimator, of the score function with a leave-one-out baseline, or with
    a moving average (stateful: its warm-up chains at every L run as one program too) share one program
    over the L grid and give the estimates that a program per L gives (``share_programs=False``, which
    compiles one per L, and a warm-up chain per L), replicate for replicate."""
    from experiments.catalog import variance_vs_L

    runs = {}
    for shared in (True, False):
        jax.clear_caches()
        config = variance_vs_L.Config(problems=("bernoulli_toy",),
                                      estimators=("disarm", "score_function_loo", "score_function_ema"),
                                      num_samples=(2, 8), replicates=64, share_programs=shared,
                                      output_dir=str(tmp_path / str(shared)), figures=False)
        runs[shared] = analysis.load_run(variance_vs_L.run(config, progress=False))
    compilations = {shared: run.metrics[run.metrics.metric == "compilations"].groupby("estimator")["value"].sum()
                    for shared, run in runs.items()}
    assert compilations[True]["disarm"] == compilations[True]["score_function_loo"] == 1
    assert compilations[False]["disarm"] == compilations[False]["score_function_loo"] == 2
    # The moving average: one warm-up program (from the initial state) for every L and one measurement,
    # against a warm-up program and a measurement per L.
    assert compilations[True]["score_function_ema"] == 2 and compilations[False]["score_function_ema"] == 4
    for shared, run in runs.items():
        programs = run.metrics[run.metrics.metric == "program_num_samples"].groupby("estimator")["value"].apply(list)
        assert all(p == ([8, 8] if shared else [2, 8]) for p in programs)
    statistics = lambda run: run.coordinate_metrics.query("metric in ['mean', 'variance']").drop(columns="run_id")
    pd.testing.assert_frame_equal(statistics(runs[True]).reset_index(drop=True),
                                  statistics(runs[False]).reset_index(drop=True), rtol=1e-5)


def test_the_moving_average_with_a_plate_serves_the_L_grid_from_one_program(tmp_path):
    """With per-example costs the moving average's baseline is one value for every example, so a sample's
    statistics are two parameter-sized sums (Σ_n f_n ∇log q_n, Σ_n ∇log q_n): one warm-up program and one
    measurement serve the L grid and give the estimates of a program per L, replicate for replicate."""
    from experiments.catalog import variance_vs_L

    runs = {}
    for shared in (True, False):
        jax.clear_caches()
        config = variance_vs_L.Config(problems=("bernoulli_plate",), estimators=("score_function_ema",),
                                      num_samples=(2, 8), replicates=64, share_programs=shared,
                                      output_dir=str(tmp_path / str(shared)), figures=False)
        runs[shared] = analysis.load_run(variance_vs_L.run(config, progress=False))
    compilations = {shared: run.metrics.query("metric == 'compilations'")["value"].sum()
                    for shared, run in runs.items()}
    assert compilations == {True: 2, False: 4}
    statistics = lambda run: run.coordinate_metrics.query("metric in ['mean', 'variance']").drop(columns="run_id")
    pd.testing.assert_frame_equal(statistics(runs[True]).reset_index(drop=True),
                                  statistics(runs[False]).reset_index(drop=True), rtol=1e-5,
                                  atol=1e-6)  # float32 rounding of means near zero, estimates of order 0.1


def test_a_shared_program_refuses_an_L_its_estimator_cannot_serve():
    from experiments.engine.measure import measure_grid

    with pytest.raises(ValueError, match="at L = 1: needs L >= 2"):
        measure_grid(problems.get("bernoulli_toy"), est.get("score_function_loo"), (1, 4), 8, jax.random.key(0))


def test_a_shared_program_takes_raw_keys_as_it_takes_typed_ones():
    # Its replicates' sample keys are flattened into one batch: a raw uint32 key keeps its last axis.
    from experiments.engine.measure import measure_grid

    problem, estimator = problems.get("bernoulli_toy"), est.get("score_function_loo")
    typed = measure_grid(problem, estimator, (2, 8), 24, jax.random.key(3))
    raw = measure_grid(problem, estimator, (2, 8), 24, jax.random.key_data(jax.random.key(3)))
    for n in (2, 8):
        np.testing.assert_array_equal(typed[n].values, raw[n].values)
        np.testing.assert_array_equal(typed[n].grads["logits"], raw[n].grads["logits"])


def test_the_xla_optimization_level_reaches_the_timed_programs_and_leaves_the_estimates(tmp_path):
    """The default run compiles its timed programs at XLA's backend level 1, the profiles and
    ``--xla-optimization-level default`` at XLA's own; the estimates at levels 1 and 3 (each given
    explicitly, over the suite's XLA_FLAGS) agree to float32 rounding, and the level is part of config.json."""
    from experiments.catalog import variance_vs_L
    from experiments.engine import measure

    levels = []
    original = measure._compile

    def recording(*args, **kwargs):
        levels.append(args[5] if len(args) > 5 else kwargs.get("compiler_options"))
        return original(*args, **kwargs)

    runs = {}
    for level in (1, 3):
        jax.clear_caches()
        config = variance_vs_L.Config(problems=("bernoulli_toy",), estimators=("disarm", "score_function_loo"),
                                      num_samples=(2, 8), replicates=64, xla_optimization_level=level,
                                      output_dir=str(tmp_path / str(level)), figures=False)
        with mock.patch.object(measure, "_compile", recording):
            runs[level] = analysis.load_run(variance_vs_L.run(config, progress=False))
        assert runs[level].config["xla_optimization_level"] == level
    assert levels == [{"xla_backend_optimization_level": 1}] * 2 + [{"xla_backend_optimization_level": 3}] * 2
    statistics = lambda run: run.coordinate_metrics.query("metric in ['mean', 'variance']").drop(columns="run_id")
    pd.testing.assert_frame_equal(statistics(runs[1]).reset_index(drop=True),
                                  statistics(runs[3]).reset_index(drop=True), rtol=1e-5)
    assert variance_vs_L.Config().xla_optimization_level == 1
    assert variance_vs_L.Config.from_profile("full").xla_optimization_level is None
    with pytest.raises(ValueError, match="xla-optimization-level must be 0, 1, 2, 3 or default"):
        variance_vs_L.Config(xla_optimization_level=5).validate()
    for given, expected in ((["--xla-optimization-level", "default"], None), (["--xla-optimization-level", "0"], 0),
                            ([], 1)):
        args = cli.build_parser().parse_args(["variance_vs_L", *given])
        assert variance_vs_L.make_config(args, given[:1]).xla_optimization_level == expected
    args = cli.build_parser().parse_args(["variance_vs_L", "--profile", "full", "--xla-optimization-level", "1"])
    with pytest.raises(ValueError, match="drop --xla-optimization-level"):
        variance_vs_L.make_config(args, ["--profile", "--xla-optimization-level"])


@pytest.mark.parametrize("grid", [(1, 4), (4,)], ids=["shared_program", "one_L"])
def test_rounds_within_a_time_budget_are_the_first_estimates_of_one_program(grid):
    """A program run in rounds (replicates 0-17, 18-35, ...) gives the estimates of one program for all R,
    replicate for replicate (the same chunks, the same keys); a budget too small for a second round keeps
    the first round's, which are the first estimates of the same replicates."""
    from experiments.engine.measure import measure_cell, measure_grid

    problem, estimator, key = problems.get("bernoulli_toy"), est.get("score_function_ema"), jax.random.key(5)

    def measure(**budget):
        if len(grid) > 1:
            return measure_grid(problem, estimator, grid, 48, key, **budget)
        return {grid[0]: measure_cell(problem, estimator, grid[0], 48, key, **budget)}

    whole = measure()
    rounds = measure(max_seconds=1e9, min_replicates=16)
    first_round = measure(max_seconds=1e-9, min_replicates=16)
    for n in grid:
        assert whole[n].values.shape == rounds[n].values.shape == (48,)
        np.testing.assert_allclose(rounds[n].values, whole[n].values, rtol=1e-6)
        np.testing.assert_allclose(rounds[n].grads["logits"], whole[n].grads["logits"], rtol=1e-6, atol=1e-7)
        # Rounds of whole chunks: 3 replicates per chunk at R = 48, so 18 cover the 16 asked for.
        kept = first_round[n].values.shape[0]
        assert kept == 18
        np.testing.assert_allclose(first_round[n].grads["logits"], whole[n].grads["logits"][:kept], rtol=1e-6,
                                   atol=1e-7)
        assert first_round[n].run_time_s > 0


@pytest.mark.parametrize("seconds, rounds", [(0.5, 1), (2.5, 2), (3.0, 3), (100.0, 3)])
def test_the_time_budget_stops_before_the_round_that_would_pass_it(seconds, rounds):
    """Rounds of 4 replicates that take 1 s each, 10 replicates asked for: a round starts only if the rounds'
    mean time says it ends within the budget (always the first), the rounds stop at the 3 that cover R, and
    the run time is that of the estimates kept (10 of the 12 the third round leaves)."""
    from experiments.engine.measure import CellMeasurement, CompiledCell

    def one_second_round(self, key, first_replicate=0):
        replicates = np.arange(first_replicate, first_replicate + self.num_replicates, dtype=np.float64)
        return CellMeasurement(grads={"x": replicates[:, None]}, values=replicates, compile_time_s=0.0,
                               run_time_s=1.0, chunk_size=2)

    cell = CompiledCell(problem=None, estimator=None, layout=None, num_replicates=4, state=None, compiled=None,
                        compile_time_s=0.0, compilations=1)
    with mock.patch.object(CompiledCell, "run", one_second_round):
        measured = cell.run_within(jax.random.key(0), max_replicates=10, seconds=seconds)
    kept = min(4 * rounds, 10)
    np.testing.assert_array_equal(measured.values, np.arange(kept))
    np.testing.assert_array_equal(measured.grads["x"][:, 0], np.arange(kept))
    assert measured.run_time_s == pytest.approx(rounds * kept / (4 * rounds))


def test_the_time_budget_records_the_replicates_each_cell_used(tmp_path):
    """With a budget no round fits in, every program stops after its first round of about ``min_replicates``
    (here 200 of the 400 asked for) and each row says so; without one (the profiles, or 'none' on the command
    line) every cell has all 400."""
    from experiments.catalog import variance_vs_L

    counts = {}
    for seconds in (1e-9, None):
        config = variance_vs_L.Config(problems=("gaussian_quadratic",), estimators=("pathwise", "score_function_loo"),
                                      num_samples=(2, 8), replicates=400, max_seconds_per_cell=seconds,
                                      output_dir=str(tmp_path / str(seconds)), figures=False)
        run = analysis.load_run(variance_vs_L.run(config, progress=False))
        counts[seconds] = set(run.metrics["replicates"])
        assert run.config["max_seconds_per_cell"] == seconds
    assert counts == {1e-9: {200}, None: {400}}
    assert variance_vs_L.Config().max_seconds_per_cell == variance_vs_L.DEFAULT_MAX_SECONDS_PER_CELL
    assert all(variance_vs_L.Config.from_profile(name).max_seconds_per_cell is None for name in ("full", "ci"))
    with pytest.raises(ValueError, match="must be positive"):
        variance_vs_L.Config(max_seconds_per_cell=0.0).validate()


def test_a_stateful_estimators_warm_up_chain_is_not_timed_as_its_estimates():
    """Dispatch is asynchronous: the shared warm-up chain must have finished before the timed program starts,
    or its run time lands in the estimates' (RODEO's 50-step chain on the binary VAE once made its time per
    estimate four times too large).  Here the chain's state passes, unchanged, through matrix products sized to take
    1.5 s on this machine (timed first), after the chain is dispatched; the 32 estimates take milliseconds."""
    from experiments.engine import measure

    product = lambda _, a: jnp.tanh(a @ a)
    busy = jax.jit(lambda n: jax.lax.fori_loop(0, n, product, jnp.full((500, 500), 1e-3, jnp.float32)))
    jax.block_until_ready(busy(1))
    start = time.perf_counter()
    jax.block_until_ready(busy(20))
    steps = max(20, round(1.5 / ((time.perf_counter() - start) / 20)))

    @jax.jit
    def slow(state):
        return state + (busy(steps)[0, 0] > 2.0).astype(state.dtype)  # tanh < 1: adds 0, once the products are done

    original = measure._untimed

    def untimed_then_slow(*args, **static):
        return jax.tree_util.tree_map(slow, original(*args, **static))

    problem = problems.get("bernoulli_toy")
    with mock.patch.object(measure, "_untimed", untimed_then_slow):
        measured = measure.measure_cell(problem, est.get("score_function_ema"), 4, 32, jax.random.key(0),
                                        warmup_steps=2)
    assert measured.run_time_s < 0.5
