"""The Experiment protocol: an experiment is one object, and the command line, figures and report dispatch
through the registry (tests/test_registry_contract.py checks the direction of imports)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

from analysis import figures, report
from analysis.load import load_run
from experiments import catalog
from experiments import run as cli
from experiments.engine import options
from experiments.engine.experiment import Experiment, FigureSpec, LinePlot
from experiments.engine.runner import check_estimators, run_sweep
from experiments.engine.settings import MeasurementSettings, RunSettings
from experiments.problems.gaussian_1d import gaussian_test_problem

# --- A new experiment, written as a user would write its module: variance against the Gaussian's scale. ---

@dataclasses.dataclass(frozen=True)
class ScaleConfig(MeasurementSettings):
    scales: Sequence[float] = (0.5, 2.0)
    estimators: Sequence[str] = ("pathwise", "score_function")
    num_samples: Sequence[int] = (4,)
    replicates: int = 64

    def validate(self) -> None:
        check_estimators(self.estimators, self.num_samples)
        super().validate()


def _add_scale_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--scales", type=options.numbers(float), default=[0.5, 2.0])
    options.add_measurement_options(sub, default_replicates=64)


def _scale_config(args: argparse.Namespace, given: Sequence[str]) -> ScaleConfig:
    return ScaleConfig(scales=tuple(args.scales), **options.measurement_settings(args))


def _run_scales(config: ScaleConfig, device=None, progress=True, resume=None) -> Path:
    def problems():
        return [({"sigma": s}, gaussian_test_problem("quadratic", sigma=s)) for s in config.scales]

    return run_sweep("variance_vs_scale", config, problems, "sigma", device, progress, resume)


VARIANCE_VS_SCALE = Experiment(
    name="variance_vs_scale",
    summary="variance against the Gaussian's scale",
    description="Variance of the quadratic's gradient against σ.",
    title="Variance against the scale",
    config=ScaleConfig,
    add_options=_add_scale_options,
    make_config=_scale_config,
    run=_run_scales,
    figures=(FigureSpec("variance_vs_scale", "Variance against σ.",
                        LinePlot(x="sigma", x_label="σ", title="Variance against the scale")),),
)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(catalog._EXPERIMENTS, VARIANCE_VS_SCALE.name, VARIANCE_VS_SCALE)
    return VARIANCE_VS_SCALE


def test_a_new_experiment_is_one_object_the_cli_figures_and_report_serve(registered, tmp_path):
    assert registered.name in catalog.names()
    assert cli.main(["variance_vs_scale", "--scales", "0.5,1,2", "--quiet", "--output-dir", str(tmp_path)]) == 0
    (run_dir,) = (tmp_path / "variance_vs_scale").iterdir()
    run = load_run(run_dir)
    assert sorted(run.metrics["sigma"].unique()) == [0.5, 1.0, 2.0]
    assert (run_dir / "figures" / "variance_vs_scale.png").stat().st_size > 10_000
    text = report.write_report([run_dir], tmp_path / "report").read_text()
    assert "Variance against the scale" in text and "Variance against σ." in text
    assert "figures/variance_vs_scale/variance_vs_scale.png" in text


def test_every_registered_experiment_is_complete():
    assert catalog.names()[0] == "variance_vs_L"
    for name in catalog.names():
        experiment = catalog.get(name)
        assert issubclass(experiment.config, RunSettings), name
        assert experiment.figures, name
        for figure in experiment.figures:
            assert callable(figures.drawer(figure)), (name, figure.name)
            assert figure.caption, (name, figure.name)
        parser = argparse.ArgumentParser()
        experiment.add_options(parser)
        args = parser.parse_args([])
        for option in ("seed", "output_dir", "device", "precision", "no_figures", "quiet", "list"):
            assert hasattr(args, option), (name, option)  # the options the command line reads of every run


def test_unknown_experiments_and_blocks_are_named():
    with pytest.raises(ValueError, match="known experiments: variance_vs_L"):
        catalog.get("variance_vs_l")
    with pytest.raises(ValueError, match="unknown report blocks"):
        dataclasses.replace(VARIANCE_VS_SCALE, report=("figures", "summary"))
    with pytest.raises(ValueError, match="LinePlot"):
        figures.drawer(FigureSpec("nowhere", "no drawer"))
