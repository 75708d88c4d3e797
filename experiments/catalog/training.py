"""Training curves: each real-data model optimized with each applicable estimator at the same budget of
cost evaluations.

Every (model, estimator) pair is trained from ``seeds`` initializations (seed s: the model's initial
parameters from ``INIT_SEED + s``, minibatches and samples from ``key(s)``; s = 0 starts from the
``_init`` checkpoint) by Adam steps on minibatches (the same minibatch sequence for every estimator at a
seed: step t draws from ``fold_in(key, t)``) with L samples per step, each model's latents weighted by
their own example's cost (``batch_ndims=1``), until it has spent ``budget`` cost evaluations: an
estimator that evaluates the cost more often per step (the measure-valued one: 4 per latent coordinate;
the delta method: a Hessian) takes fewer steps.  At ``evaluations`` evenly spaced points the objective
is computed on all training and all held-out examples (exactly where the model allows, else from many samples), with the
steps, cost evaluations and training wall time (compilation and evaluation excluded) so far.  The rows
carry ``seed`` and ``step`` columns; figures and tables show the spread across seeds.

The VAEs are also trained by their K-particle importance-weighted bound (Burda et al. 2016) for each K of
``particles`` (1 and 8 by default): one K-particle bound per image per step (L = 1, as IWAE, VIMCO and DReG
are trained), maximized (the negative bound per image is minimized), with the estimators that serve a
bound (pathwise, the score function and its baselines, ``dreg``, ``stl`` at K = 1, ``vimco`` at K ≥ 2).  The
budget counts log-joint evaluations of one particle: a K-particle estimate spends K of the budget, so K = 8
takes an eighth of K = 1's steps.  The rows' ``objective`` column says what was trained: ``elbo`` (the
model's objective above, with its closed-form KL where it has one) or ``bound_k<K>``.  The ELBO flatters a
model trained by it and understates one trained by a bound, so every VAE run is also measured by its
held-out negative log-likelihood (``held_out_nll``: exact for the binary VAE; for the Gaussian VAE
importance-sampled with 1,024 particles per image, the same key for every run).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import optax
from tqdm.auto import tqdm

import estimators as est
from experiments import catalog
from experiments.engine import fit, options
from experiments.engine.experiment import Experiment, FigureSpec
from experiments.engine.measure import objective_score_rows_per_sample
from experiments.engine.results import RunFolder, environment, estimator_properties
from experiments.engine.settings import RunSettings
from experiments.problems.checkpoints import INIT_SEED
from experiments.problems.logistic_regression import LogisticRegression
from experiments.problems.vae import BinaryVAE, GaussianVAE

NAME = "training"
#: The columns that tell a training curve's rows apart besides problem, estimator and L.
LABEL_COLUMNS = ["objective", "seed", "step"]
MODELS = {"logistic_regression": LogisticRegression(), "gaussian_vae": GaussianVAE(), "binary_vae": BinaryVAE()}
#: Adam's learning rate and the minibatch size (None: all training examples) of each model.
OPTIMIZATION = {
    "logistic_regression": {"learning_rate": 0.02, "batch_size": None},
    "gaussian_vae": {"learning_rate": 3e-3, "batch_size": 64},
    "binary_vae": {"learning_rate": 3e-3, "batch_size": 64},
}
#: The models trained by their K-particle bound too (``bound_objective``), and the samples per step of a
#: bound training: one K-particle bound per image.
BOUND_MODELS = ("gaussian_vae", "binary_vae")
BOUND_NUM_SAMPLES = 1
#: Pairs whose one step takes more backward passes than this are skipped, with the reason: the budget
#: counts cost evaluations, and the optimal baseline on a minibatch needs a score per sample and example
#: (L·N = 256 on the VAEs, a step about 30 times a leave-one-out step's time).
MAX_BACKWARD_PASSES_PER_STEP = 64


@dataclasses.dataclass(frozen=True)
class Config(RunSettings):
    """Everything that defines a training run; written to config.json."""

    problems: Sequence[str] = tuple(MODELS)
    estimators: Sequence[str] = tuple(est.names())
    num_samples: int = 4
    #: Cost evaluations each (model, estimator) may spend; with L = 4, 4,000 steps of a plain estimator.
    budget: int = 16_000
    evaluations: int = 20
    #: Independent trainings per (model, estimator): seeds ``seed``, ``seed + 1``, ...
    seeds: int = 3
    #: The K of the importance-weighted bounds the VAEs are also trained by (empty: the ELBO alone).
    particles: Sequence[int] = (1, 8)

    def validate(self) -> None:
        options.check_choices(self.problems, MODELS, "training", "problems")
        for name in self.estimators:
            est.get(name)  # raises, naming the known estimators
        if not self.estimators:
            raise ValueError("--estimators needs at least one name.")
        if self.num_samples < 1:
            raise ValueError(f"--num-samples must be a positive integer, got {self.num_samples}.")
        if self.budget < 1 or self.evaluations < 1:
            raise ValueError(f"--budget and --evaluations must be positive, got {self.budget} and {self.evaluations}.")
        if self.seeds < 1:
            raise ValueError(f"--seeds must be a positive number of trainings per pair, got {self.seeds}.")
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.particles):
            raise ValueError(f"--particles must be positive integers (K particles per bound), got "
                             f"{list(self.particles)}.")
        super().validate()


@dataclasses.dataclass(frozen=True)
class BoundTraining:
    """A VAE seen by the trainer through its K-particle bound: ``objective(batch)`` is the bound of each
    image of the minibatch (to maximize; :func:`descent_on_bound` turns its gradient into the negative
    bound per image's)."""

    model: Any
    num_particles: int

    def training_batch(self):
        return self.model.training_batch()

    def objective(self, images, num_examples: int | None = None) -> est.ImportanceWeightedObjective:
        del num_examples
        return self.model.bound_objective(images, self.num_particles)


@dataclasses.dataclass(frozen=True)
class Training:
    """One (model, training objective, estimator) to train for ``steps`` steps of L = ``num_samples``."""

    problem: str
    objective: str
    estimator: est.GradientEstimator
    steps: int
    num_samples: int
    num_particles: int | None = None

    @property
    def name(self) -> str:
        """The key of config.json's ``steps`` and ``compile_time_s``."""
        parts = (self.problem, self.estimator.name) if self.objective == "elbo" else (
            self.problem, self.objective, self.estimator.name)
        return "/".join(parts)

    def trained_model(self):
        model = MODELS[self.problem]
        return model if self.num_particles is None else BoundTraining(model, self.num_particles)

    def evaluations_per_step(self, objective: est.Objective, params) -> int:
        """Cost evaluations of one step: the estimator's per estimate, times K for a K-particle bound."""
        dist = objective.distribution(params)
        per_estimate = self.estimator.cost_evaluations(self.num_samples, dist, batch_ndims=objective.batch_ndims)
        return per_estimate * (self.num_particles or 1)


def plan(config: Config) -> tuple[list[Training], list[dict]]:
    """What to train (every applicable pair, on the ELBO and on each bound), and what was skipped with the
    reason."""
    runs, skipped = [], []
    for name in config.problems:
        objectives = [("elbo", config.num_samples, None)]
        if name in BOUND_MODELS:
            objectives += [(f"bound_k{k}", BOUND_NUM_SAMPLES, k) for k in dict.fromkeys(config.particles)]
        params = MODELS[name].init_params(jax.random.key(INIT_SEED))
        for objective_name, num_samples, num_particles in objectives:
            trainings = [Training(name, objective_name, estimator, 0, num_samples, num_particles)
                         for estimator in map(est.get, config.estimators)]
            objective = _minibatch_objective(trainings[0].trained_model(), name)
            for training in trainings:
                reason, steps = _steps_or_reason(training, objective, params, config.budget)
                if reason is None:
                    runs.append(dataclasses.replace(training, steps=steps))
                else:
                    skipped.append({"problem": name, "objective": objective_name,
                                    "estimator": training.estimator.name, "reason": reason})
    if not runs:
        raise ValueError("Nothing to train: " + "; ".join(
            f"{s['estimator']} on {s['problem']} ({s['objective']}): {s['reason']}" for s in skipped))
    return runs, skipped


def _steps_or_reason(training: Training, objective: est.Objective, params, budget: int) -> tuple[str | None, int]:
    """Steps within ``budget`` on the model's minibatch ``objective`` at its initial ``params``, or why none."""
    dist = objective.distribution(params)
    estimator, num_samples = training.estimator, training.num_samples
    reason = estimator.applicability(dist, num_samples, objective.batch_ndims)
    if reason is not None:
        return reason, 0
    steps = budget // training.evaluations_per_step(objective, params)
    if steps < 1:
        return f"one step costs more than the budget of {budget} cost evaluations", 0
    passes = num_samples * objective_score_rows_per_sample(objective, dist, estimator)
    if passes > MAX_BACKWARD_PASSES_PER_STEP:
        return (f"{passes} backward passes per step (a score per sample and example), which a budget of "
                f"cost evaluations does not count; more than {MAX_BACKWARD_PASSES_PER_STEP}"), 0
    return None, steps


def _minibatch_objective(model, name):
    batch_size = OPTIMIZATION[name]["batch_size"]
    batch = model.training_batch()
    batch = batch if batch_size is None else batch[:batch_size]
    return model.objective(batch)


def descent_on_bound(gradient: fit.Gradient) -> fit.Gradient:
    """The gradient of the negative bound per image from ``gradient``, a bound's (summed over the images):
    the bound is maximized, and dividing by the minibatch's size N puts it on the ELBO's per-image scale."""

    def negated(objective, batch, params, key, state):
        value, grads, state = gradient(objective, batch, params, key, state)
        scale = -1.0 / batch.shape[0]
        return value * scale, jax.tree_util.tree_map(lambda g: g * scale, grads), state

    return negated


def train_curves(training: Training, config: Config):
    """The rows of one training's curves, one per seed, and the compile time (one program serves every
    seed)."""
    name, settings = training.problem, OPTIMIZATION[training.problem]
    model = MODELS[name]
    init_state, gradient = fit.estimator_gradient(training.estimator, training.num_samples)
    if training.num_particles is not None:
        gradient = descent_on_bound(gradient)
    steps = training.steps
    points = min(config.evaluations, steps)
    steps_per_call = steps // points
    init, run = fit.trainer(training.trained_model(), init_state, gradient, optax.adam(settings["learning_rate"]),
                            settings["batch_size"], steps_per_call)
    seeds = [config.seed + i for i in range(config.seeds)]
    states = [init(model.init_params(jax.random.key(INIT_SEED + seed))) for seed in seeds]
    start = time.perf_counter()
    compiled = run.lower(states[0], jax.random.key(seeds[0])).compile()
    compile_time = time.perf_counter() - start
    # The first call of a compiled program carries one-time work (its buffers, the runtime's first
    # dispatch: about 0.15 s on CPU) that no later call repeats; one untimed call keeps it out of the
    # first segment of every curve's wall time.
    jax.block_until_ready(compiled(states[0], jax.random.key(seeds[0])))
    rows = []
    for seed, state in zip(seeds, states):
        rows += _train_curve(training, model, compiled, state, seed, points, steps_per_call)
    return rows, compile_time


def _train_curve(training: Training, model, compiled, state, seed, points, steps_per_call):
    """The rows of one seed's curve: ``points`` calls of the compiled steps, evaluated after each."""
    key = jax.random.key(seed)
    per_step = training.evaluations_per_step(
        _minibatch_objective(training.trained_model(), training.problem), state.params)
    num_train = len(model.split.train_x)
    # Every point of the curve (training and held-out) is evaluated with the same noise, and every run's
    # log-likelihood with the same particles: curves and runs are compared with common random numbers.
    eval_key = jax.random.fold_in(key, 2**31 - 1)
    likelihood_key = jax.random.key(2**31 - 1)

    rows, wall_time = [], 0.0
    for point in range(points + 1):
        if point:
            start = time.perf_counter()
            state, _ = jax.block_until_ready(compiled(state, key))
            wall_time += time.perf_counter() - start
        step = point * steps_per_call
        measured = {
            "train_objective": model.evaluate(state.params, model.training_batch(), jax.random.clone(eval_key),
                                              num_train),
            "held_out_objective": model.evaluate(state.params, model.held_out_batch(), jax.random.clone(eval_key),
                                                 num_train),
            "wall_time_s": (wall_time, 0.0),
            "cost_evaluations": (float(step * per_step), 0.0),
        }
        if hasattr(model, "negative_log_likelihood"):
            measured["held_out_nll"] = model.negative_log_likelihood(state.params, model.held_out_batch(),
                                                                     jax.random.clone(likelihood_key))
        rows += [{"problem": training.problem, "estimator": training.estimator.name, "objective": training.objective,
                  "seed": seed, "step": step, "num_samples": training.num_samples, "parameter": "all",
                  "metric": metric, "value": value, "std_error": se, "replicates": 1}
                 for metric, (value, se) in measured.items()]
    return rows


def run(config: Config, device: jax.Device | None = None, progress: bool = True, resume=None) -> Path:
    """Train every applicable (model, estimator) pair and write the run folder; return its path."""
    if resume is not None:
        raise ValueError("training runs cannot be resumed; start a new run.")
    config.validate()
    device = device or jax.devices()[0]
    payload = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    with jax.default_device(device):
        runs, skipped = plan(config)
        folder = RunFolder(config.output_dir, NAME, {**payload, "optimization": OPTIMIZATION}, environment(config.seed),
                           label_columns=LABEL_COLUMNS)
        folder.update_config(skipped=skipped, device_used=str(device), steps={t.name: t.steps for t in runs},
                             estimator_properties=estimator_properties(t.estimator for t in runs))
        start = time.perf_counter()
        compile_times = {}
        try:
            bar = tqdm(runs, desc=NAME, unit="run", disable=not progress, dynamic_ncols=True)
            for training in bar:
                bar.set_postfix_str(f"{training.name} {training.steps} steps x {config.seeds} seeds")
                rows, compile_times[training.name] = train_curves(training, config)
                folder.append(rows, [])
            bar.close()
            folder.update_config(wall_time_s=round(time.perf_counter() - start, 3),
                                 compile_time_s={k: round(v, 3) for k, v in compile_times.items()})
        except BaseException:
            print(f"\n{NAME}: stopped before the end; the finished curves are in {folder.path}", flush=True)
            raise
        return folder.finish()



def add_options(sub: argparse.ArgumentParser) -> None:
    defaults = Config()
    sub.add_argument("--problems", type=options.comma_list, default=list(defaults.problems), metavar="NAMES",
                     help="comma-separated models (default: %(default)s)")
    sub.add_argument("--estimators", type=options.comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: every registered estimator that applies)")
    sub.add_argument("--num-samples", type=int, default=defaults.num_samples, metavar="L",
                     help="samples per gradient estimate (default: %(default)s)")
    sub.add_argument("--budget", type=int, default=defaults.budget, metavar="N",
                     help="cost evaluations each (model, estimator) pair may spend (default: %(default)s)")
    sub.add_argument("--evaluations", type=int, default=defaults.evaluations, metavar="K",
                     help="points on each curve where the objective is computed (default: %(default)s)")
    sub.add_argument("--seeds", type=int, default=defaults.seeds, metavar="S",
                     help="independent trainings per (model, estimator), seeds SEED to SEED + S - 1 "
                     "(default: %(default)s)")
    sub.add_argument("--particles", type=_particles, default=list(defaults.particles), metavar="KS",
                     help="comma-separated K: the VAEs are also trained by their K-particle bound, one bound per "
                     "image per step, each particle one cost evaluation; 'none' for the ELBO alone "
                     "(default: %(default)s)")
    options.add_run_options(sub)


def _particles(text: str) -> list[int]:
    return [] if text.strip().lower() == "none" else options.numbers(int)(text)


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    config = Config(problems=tuple(args.problems), estimators=tuple(args.estimators or est.names()),
                    num_samples=args.num_samples, budget=args.budget, evaluations=args.evaluations,
                    seeds=args.seeds, particles=tuple(args.particles), **options.run_settings(args))
    config.validate()
    plan(config)  # nothing applicable is a usage error
    return config


EXPERIMENT = catalog.register(Experiment(
    name=NAME,
    summary="training curves of the real-data models with each estimator at the same budget of cost evaluations",
    description="Optimize each real-data model (Bayesian logistic regression, Gaussian and binary VAEs) "
    "with each applicable estimator by Adam, every estimator spending the same number of cost "
    "evaluations, and record the training and held-out objective against steps and wall time.",
    title="Training with each estimator at the same budget",
    config=Config,
    add_options=add_options,
    make_config=make_config,
    run=run,
    figures=(
        FigureSpec("training_curves", "Negative ELBO per example while training each model with each estimator "
                   "(Adam, the same minibatches and the same budget of cost evaluations), mean over the seeds with "
                   "the range from the best to the worst seed shaded: held-out (solid) and training (dashed) against "
                   "cost evaluations spent (left), held-out against training wall time (right); a row per model and "
                   "training objective (the ELBO, each K-particle bound). Lower is better."),
        FigureSpec("training_log_likelihood", "Held-out negative log-likelihood per example (exact for the binary "
                   "VAE, importance-sampled with 1,024 particles per image for the Gaussian VAE) while training each "
                   "VAE by its ELBO (solid) or a K-particle bound (dashed, dotted), mean over the seeds, against cost "
                   "evaluations spent (each particle of a bound one evaluation). The ELBO would flatter the models "
                   "trained by it; the log-likelihood is what every objective bounds. Lower is better."),
    ),
    report=("training", "figures"),
    resumable=False,
))
