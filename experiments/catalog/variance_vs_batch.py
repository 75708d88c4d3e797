r"""Encoder-gradient variance of the score-function family against the minibatch size N, with each image's
own cost as its latents' learning signal, and with one cost for the whole batch.

A VAE's objective on N images is :math:`F = \frac1N \sum_n E_q[f_n]`.  With per-example signals
(``batch_ndims=1``) image n's score is weighted by :math:`f_n / N`: the N terms are independent, so the
encoder gradient's variance falls like 1/N, as for any average of independent examples.  With the
batch-level signal (``batch_ndims=0``, the cost :math:`\frac1N\sum_m f_m` for every image's latents)
image n's score is weighted by every image's cost: the other N − 1 terms are independent of image n's
latents, add nothing in expectation and add their noise, so the variance stops falling (with a good
baseline) or grows (without).  The ratio between the two is the answer to "why does my REINFORCE VAE not
train": it is N-fold and more at the minibatch sizes people use.

For every model (``binary_vae``, ``gaussian_vae``: their trained checkpoints, on the first N training
images), every N, both signals and every estimator of the family, R replicate L-sample estimates are
drawn; the rows carry ``batch_size`` and ``signal`` (``per_example`` or ``batch``) columns.  The
pathwise estimator (Gaussian latents), whose estimate does not depend on the signal, is the floor.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax

import estimators as est
from experiments import catalog
from experiments.engine import options
from experiments.engine.experiment import Experiment, FigureSpec
from experiments.engine.measure import score_rows_per_sample
from experiments.engine.runner import as_json, check_estimators, run_cells, sweep_cells
from experiments.engine.settings import MeasurementSettings
from experiments.problems import real_data

NAME = "variance_vs_batch"
MODELS = ("binary_vae", "gaussian_vae")
SIGNALS = ("per_example", "batch")
DEFAULT_BATCH_SIZES = (1, 4, 16, 64, 256)
DEFAULT_NUM_SAMPLES = (16,)
DEFAULT_REPLICATES = 500
#: The score-function family: every estimator whose learning signal is the cost, and pathwise as the floor.
DEFAULT_ESTIMATORS = ("score_function", "score_function_ema", "score_function_loo", "score_function_optimal",
                      "score_function_delta", "arm", "disarm", "rebar", "relax", "pathwise")
#: Cells whose one estimate takes more backward passes than this (the optimal baseline's score per sample
#: and image: L·N) are skipped, with the reason: at L = 16, N = 64 (1,024 passes) one cell of 500
#: estimates takes over ten minutes on two CPU cores.
MAX_BACKWARD_PASSES = 256
#: Cells whose one estimate evaluates the cost more often than this are skipped too: the delta method's
#: Hessian of one batch-level cost in all N·K latents (about 1,000 evaluations at N = 256; a cell did not
#: finish in 20 minutes), where the per-example Hessian takes 22.
MAX_COST_EVALUATIONS = 512


@dataclasses.dataclass(frozen=True)
class Config(MeasurementSettings):
    """Everything that defines a run; written to config.json."""

    models: Sequence[str] = MODELS
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    signals: Sequence[str] = SIGNALS
    estimators: Sequence[str] = DEFAULT_ESTIMATORS
    num_samples: Sequence[int] = DEFAULT_NUM_SAMPLES
    replicates: int = DEFAULT_REPLICATES

    def validate(self) -> None:
        options.check_choices(self.models, MODELS, "--models", "models")
        options.check_choices(self.signals, SIGNALS, "--signals", "signals")
        available = real_data.num_training_images()
        bad = [n for n in self.batch_sizes if int(n) != n or not 1 <= n <= available]
        if bad or not self.batch_sizes:
            raise ValueError(f"--batch-sizes must be integers from 1 to {available} (the training images), got "
                             f"{list(self.batch_sizes)}.")
        check_estimators(self.estimators, self.num_samples)
        super().validate()


def plan(config: Config):
    """The cells and the skipped combinations, with why."""
    labelled = [({"batch_size": int(n), "signal": signal},
                 real_data.vae_on_images(model, int(n), per_example=signal == "per_example"))
                for model in config.models for n in sorted(set(config.batch_sizes)) for signal in config.signals]
    cells, skipped = sweep_cells(labelled, [est.get(name) for name in config.estimators], config.num_samples)
    kept = []
    for cell in cells:
        passes = cell.num_samples * score_rows_per_sample(cell.problem, cell.estimator)
        evaluations = cell.problem.cost_evaluations(cell.estimator, cell.num_samples)
        if passes > MAX_BACKWARD_PASSES:
            reason = (
                f"{passes} backward passes per estimate (a score per sample and image; more than {MAX_BACKWARD_PASSES})"
            )
        elif evaluations > MAX_COST_EVALUATIONS:
            reason = f"{evaluations} cost evaluations per estimate (more than {MAX_COST_EVALUATIONS})"
        else:
            kept.append(cell)
            continue
        skipped.append({"problem": cell.problem.name, "estimator": cell.estimator.name, **cell.labels,
                        "num_samples": cell.num_samples, "reason": reason})
    return kept, skipped


def run(config: Config, device: jax.Device | None = None, progress: bool = True, resume=None) -> Path:
    """Measure every (model, N, signal, estimator, L) cell and write the run folder; return its path."""
    config.validate()
    device = device or jax.devices()[0]
    with jax.default_device(device):
        cells, skipped = plan(config)
        return run_cells(NAME, config, as_json(config), cells, skipped, device, progress,
                         label_columns=["batch_size", "signal"], resume=resume)


def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--models", type=options.comma_list, default=list(MODELS), metavar="NAMES",
                     help="comma-separated models (default: %(default)s)")
    sub.add_argument("--batch-sizes", type=options.numbers(int), default=list(DEFAULT_BATCH_SIZES),
                     metavar="NS", help="comma-separated minibatch sizes N (default: %(default)s)")
    sub.add_argument("--signals", type=options.comma_list, default=list(SIGNALS), metavar="NAMES",
                     help="per_example, batch or both (default: %(default)s)")
    sub.add_argument("--estimators", type=options.comma_list, default=None, metavar="NAMES",
                     help=f"comma-separated estimator names (default: {','.join(DEFAULT_ESTIMATORS)})")
    sub.add_argument("--num-samples", type=options.numbers(int), default=list(DEFAULT_NUM_SAMPLES),
                     metavar="LS", help="comma-separated sample counts L (default: %(default)s)")
    options.add_measurement_options(sub, default_replicates=DEFAULT_REPLICATES)


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    return Config(models=tuple(args.models), batch_sizes=tuple(args.batch_sizes), signals=tuple(args.signals),
                  estimators=tuple(args.estimators or DEFAULT_ESTIMATORS), num_samples=tuple(args.num_samples),
                  **options.measurement_settings(args))


EXPERIMENT = catalog.register(Experiment(
    name=NAME,
    summary="encoder-gradient variance of the score-function family against the VAE's minibatch size, "
    "per-example against batch-level learning signals",
    description="For each VAE (trained checkpoint) on its first N training images, sweep N and report the "
    "variance of the score-function family's gradient with each image's own cost as its latents' "
    "learning signal (per_example) and with one cost for the whole batch (batch).",
    title="Per-example against batch-level learning signals, against the minibatch size",
    config=Config,
    add_options=add_options,
    make_config=make_config,
    run=run,
    figures=(
        FigureSpec("variance_vs_batch", "Variance (trace) of the encoder gradient of each VAE on its first N "
                   "training images, against N, with each image's own cost as the learning signal of its latents "
                   "(solid) and one cost for the whole batch (dashed), with 95% bands (left); the ratio of the two, "
                   "with 95% error bars (right). The objective is the mean over images, so with per-example signals "
                   "the variance falls like 1/N; the batch-level signal adds the other images' noise to every "
                   "image's score, and the ratio grows with N."),
    ),
))
