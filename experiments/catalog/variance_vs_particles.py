r"""Signal-to-noise ratio and variance of the encoder's and the decoder's gradient against the particles K
of the importance-weighted bound.

The K-particle bound :math:`\mathbb{E}[\log \frac1K \sum_k w_k]` tightens with K, but its gradient's
signal-to-noise ratio in the proposal's (encoder's) parameters falls like :math:`1/\sqrt K` for the IWAE
(pathwise) estimator, while the model's (decoder's) rises like :math:`\sqrt K` (Rainforth et al.,
*Tighter Variational Bounds are Not Necessarily Better*, ICML 2018).  DReG (Tucker et al. 2019) removes
the score term that makes the encoder's fall; STL (Roeder et al. 2017) does so at K = 1; VIMCO (Mnih &
Rezende 2016) is the score-function estimator with a per-particle leave-one-out signal, for discrete
latents too.

For every model (``linear_gaussian``: the amortized 20-D linear-Gaussian model of Rainforth et al. near its
optimum; ``gaussian_vae``, ``binary_vae``: the trained checkpoints on their first N training images, one
bound per image), every K and every estimator that applies, R replicate estimates of L K-particle samples
are drawn.  Each parameter group (``encoder``, ``decoder``) gets its variance (trace) and its signal-to-noise
ratio |E g_i| / sd(g_i) summarized over its coordinates, by the root mean square (``snr``) and the median
(``snr_median``, the figure's) (:func:`~experiments.engine.statistics.signal_to_noise`).  The rows carry a
``num_particles`` column.
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
from experiments.engine.experiment import Experiment, FigureSpec, LinePlot
from experiments.engine.runner import as_json, check_estimators, run_cells, sweep_cells
from experiments.engine.settings import MeasurementSettings
from experiments.problems import Problem, real_data
from experiments.problems.importance_weighted import amortized_linear_gaussian
from experiments.problems.vae import BinaryVAE, GaussianVAE

NAME = "variance_vs_particles"
MODELS = ("linear_gaussian", "gaussian_vae", "binary_vae")
DEFAULT_PARTICLES = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_ESTIMATORS = ("pathwise", "dreg", "stl", "score_function", "vimco")
#: L: one K-particle estimate per example, as the bound is trained.
DEFAULT_NUM_SAMPLES = (1,)
#: R: a coordinate's signal-to-noise ratio is then estimated to about ±0.022 (1 + SNR²/2)^½ (Gaussian-like
#: estimates); the median over the coordinates resolves ratios down to about 3/√R ≈ 0.07, the RMS lower.
DEFAULT_REPLICATES = 2_000
#: The VAEs' bounds are of their first N training images.
DEFAULT_IMAGES = 16


@dataclasses.dataclass(frozen=True)
class Config(MeasurementSettings):
    """Everything that defines a run; written to config.json."""

    models: Sequence[str] = MODELS
    particles: Sequence[int] = DEFAULT_PARTICLES
    estimators: Sequence[str] = DEFAULT_ESTIMATORS
    num_samples: Sequence[int] = DEFAULT_NUM_SAMPLES
    replicates: int = DEFAULT_REPLICATES
    images: int = DEFAULT_IMAGES

    def validate(self) -> None:
        options.check_choices(self.models, MODELS, "--models", "models")
        bad = [k for k in self.particles if int(k) != k or k < 1]
        if bad or not self.particles:
            raise ValueError(f"--particles must be positive integers, got {list(self.particles)}.")
        available = real_data.num_training_images()
        if int(self.images) != self.images or not 1 <= self.images <= available:
            raise ValueError(f"--images must be an integer from 1 to {available} (the training images), got "
                             f"{self.images}.")
        check_estimators(self.estimators, self.num_samples)
        super().validate()


def bound_problem(model: str, num_particles: int, images: int = DEFAULT_IMAGES) -> Problem:
    """``model``'s K-particle bound: the amortized linear-Gaussian model, or a VAE's trained checkpoint on its
    first ``images`` training images (one bound per image); no exact gradient."""
    if model == "linear_gaussian":
        return amortized_linear_gaussian(num_particles)
    vae = {"gaussian_vae": GaussianVAE(), "binary_vae": BinaryVAE()}[model]
    return Problem(
        name=f"{model}_bound",
        description=f"{vae.description.split(',')[0]}: importance-weighted bound, K = {num_particles}, per image of "
        f"its first {images} training images, trained parameters",
        objective=vae.bound_objective(vae.training_batch()[:images], num_particles),
        params=real_data.trained_params(model),
        exact_grad=None,
        dataset="digits",
    )


def run(config: Config, device: jax.Device | None = None, progress: bool = True, resume=None) -> Path:
    """Measure every (model, K, estimator, L) cell and write the run folder; return its path."""
    config.validate()
    device = device or jax.devices()[0]
    with jax.default_device(device):
        labelled = [({"num_particles": int(k)}, bound_problem(model, int(k), int(config.images)))
                    for model in config.models for k in sorted(set(config.particles))]
        cells, skipped = sweep_cells(labelled, [est.get(name) for name in config.estimators], config.num_samples)
        return run_cells(NAME, config, as_json(config), cells, skipped, device, progress,
                         label_columns=["num_particles"], resume=resume, snr=True)


def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--models", type=options.comma_list, default=list(MODELS), metavar="NAMES",
                     help="comma-separated models (default: %(default)s)")
    sub.add_argument("--particles", type=options.numbers(int), default=list(DEFAULT_PARTICLES), metavar="KS",
                     help="comma-separated particle counts K (default: %(default)s)")
    sub.add_argument("--images", type=int, default=DEFAULT_IMAGES, metavar="N",
                     help="training images of the VAEs' bounds (default: %(default)s)")
    sub.add_argument("--estimators", type=options.comma_list, default=None, metavar="NAMES",
                     help=f"comma-separated estimator names (default: {','.join(DEFAULT_ESTIMATORS)})")
    sub.add_argument("--num-samples", type=options.numbers(int), default=list(DEFAULT_NUM_SAMPLES),
                     metavar="LS", help="comma-separated sample counts L, each of K particles (default: %(default)s)")
    options.add_measurement_options(sub, default_replicates=DEFAULT_REPLICATES)


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    return Config(models=tuple(args.models), particles=tuple(args.particles), images=args.images,
                  estimators=tuple(args.estimators or DEFAULT_ESTIMATORS), num_samples=tuple(args.num_samples),
                  **options.measurement_settings(args))


EXPERIMENT = catalog.register(Experiment(
    name=NAME,
    summary="signal-to-noise ratio and variance of the encoder's and decoder's gradient of the "
    "importance-weighted bound against the particles K",
    description="For the amortized linear-Gaussian model and both VAEs (trained checkpoints), sweep the "
    "particles K of the importance-weighted bound and report, for the encoder's and the decoder's "
    "parameters, each estimator's gradient variance and signal-to-noise ratio.",
    title="The importance-weighted bound: signal-to-noise ratio against the particles",
    config=Config,
    add_options=add_options,
    make_config=make_config,
    run=run,
    report=("figures",),  # no exact gradient to set the measurements against
    figures=(
        FigureSpec("snr_vs_particles",
                   "Signal-to-noise ratio |E g| / sd(g) of the decoder's (left) and the encoder's (right) gradient of "
                   "the K-particle bound against K: the median over the coordinates (snr_median), with 95% bands "
                   "(jackknife, conservative); grey, slopes √K (dashed) and 1/√K (dash-dot) through pathwise at the "
                   "smallest K; "
                   "dotted, 3/√R, below which the median is pulled down by the estimates' own noise (the root mean "
                   "square, snr, is not). The IWAE (pathwise) encoder's ratio falls like 1/√K and the "
                   "decoder's rises like √K (Rainforth et al. 2018); DReG's encoder ratio does not fall. A ratio "
                   "indistinguishable from zero (plain score function on the encoder) has no point."),
        FigureSpec("variance_vs_particles", "Variance (trace) of each parameter group's gradient against K, with 95% "
                   "bands.", LinePlot(x="num_particles", exact=None, x_label="particles K",
                                      y_label="variance of the estimate (trace)",
                                      title="Variance of the bound's gradient against the particles K")),
    ),
))
