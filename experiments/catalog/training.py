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
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

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
MODELS = {"logistic_regression": LogisticRegression(), "gaussian_vae": GaussianVAE(), "binary_vae": BinaryVAE()}
#: Adam's learning rate and the minibatch size (None: all training examples) of each model.
OPTIMIZATION = {
    "logistic_regression": {"learning_rate": 0.02, "batch_size": None},
    "gaussian_vae": {"learning_rate": 3e-3, "batch_size": 64},
    "binary_vae": {"learning_rate": 3e-3, "batch_size": 64},
}
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
        super().validate()


def plan(config: Config) -> tuple[list[tuple[str, est.GradientEstimator, int]], list[dict]]:
    """(problem, estimator, steps) to train, and the pairs skipped with the reason."""
    runs, skipped = [], []
    for name in config.problems:
        model = MODELS[name]
        objective = _minibatch_objective(model, name)
        dist = objective.distribution(model.init_params(jax.random.key(INIT_SEED)))
        for estimator in map(est.get, config.estimators):
            reason = estimator.applicability(dist, config.num_samples)
            per_step = estimator.cost_evaluations(config.num_samples, dist, batch_ndims=objective.batch_ndims)
            steps = config.budget // per_step if reason is None else 0
            if reason is None and steps < 1:
                reason = f"one step costs more than the budget of {config.budget} cost evaluations"
            passes = config.num_samples * objective_score_rows_per_sample(objective, dist, estimator)
            if reason is None and passes > MAX_BACKWARD_PASSES_PER_STEP:
                reason = (f"{passes} backward passes per step (a score per sample and example), which a budget of "
                          f"cost evaluations does not count; more than {MAX_BACKWARD_PASSES_PER_STEP}")
            if reason is None:
                runs.append((name, estimator, steps))
            else:
                skipped.append({"problem": name, "estimator": estimator.name, "reason": reason})
    if not runs:
        raise ValueError("Nothing to train: " + "; ".join(f"{s['estimator']} on {s['problem']}: {s['reason']}"
                                                          for s in skipped))
    return runs, skipped


def _minibatch_objective(model, name):
    batch_size = OPTIMIZATION[name]["batch_size"]
    batch = model.training_batch()
    batch = batch if batch_size is None else batch[:batch_size]
    return model.objective(batch)


def train_curves(name: str, estimator: est.GradientEstimator, steps: int, config: Config):
    """The rows of the pair's training curves, one per seed, and the compile time (one program serves
    every seed)."""
    model, settings = MODELS[name], OPTIMIZATION[name]
    init_state, gradient = fit.estimator_gradient(estimator, config.num_samples)
    points = min(config.evaluations, steps)
    steps_per_call = steps // points
    init, run = fit.trainer(model, init_state, gradient, optax.adam(settings["learning_rate"]),
                            settings["batch_size"], steps_per_call)
    seeds = [config.seed + i for i in range(config.seeds)]
    states = [init(model.init_params(jax.random.key(INIT_SEED + seed))) for seed in seeds]
    start = time.perf_counter()
    compiled = run.lower(states[0], jax.random.key(seeds[0])).compile()
    compile_time = time.perf_counter() - start
    rows = []
    for seed, state in zip(seeds, states):
        rows += _train_curve(name, estimator, config, model, compiled, state, seed, points, steps_per_call)
    return rows, compile_time


def _train_curve(name, estimator, config, model, compiled, state, seed, points, steps_per_call):
    """The rows of one seed's curve: ``points`` calls of the compiled steps, evaluated after each."""
    key = jax.random.key(seed)
    objective = _minibatch_objective(model, name)
    per_step = estimator.cost_evaluations(config.num_samples, objective.distribution(state.params),
                                          batch_ndims=objective.batch_ndims)
    num_train = len(model.split.train_x)
    eval_key = jax.random.fold_in(key, 2**31 - 1)

    rows, wall_time = [], 0.0
    for point in range(points + 1):
        if point:
            start = time.perf_counter()
            state, _ = jax.block_until_ready(compiled(state, key))
            wall_time += time.perf_counter() - start
        step = point * steps_per_call
        measured = {
            "train_objective": model.evaluate(state.params, model.training_batch(), eval_key, num_train),
            "held_out_objective": model.evaluate(state.params, model.held_out_batch(), eval_key, num_train),
            "wall_time_s": (wall_time, 0.0),
            "cost_evaluations": (float(step * per_step), 0.0),
        }
        rows += [{"problem": name, "estimator": estimator.name, "seed": seed, "step": step,
                  "num_samples": config.num_samples, "parameter": "all", "metric": metric, "value": value,
                  "std_error": se, "replicates": 1}
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
                           label_columns=["seed", "step"])
        folder.update_config(skipped=skipped, device_used=str(device), steps={f"{p}/{e.name}": s for p, e, s in runs},
                             estimator_properties=estimator_properties(e for _, e, _ in runs))
        start = time.perf_counter()
        compile_times = {}
        try:
            bar = tqdm(runs, desc=NAME, unit="run", disable=not progress, dynamic_ncols=True)
            for name, estimator, steps in bar:
                bar.set_postfix_str(f"{name} {estimator.name} {steps} steps x {config.seeds} seeds")
                rows, compile_times[f"{name}/{estimator.name}"] = train_curves(name, estimator, steps, config)
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
    options.add_run_options(sub)


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    config = Config(problems=tuple(args.problems), estimators=tuple(args.estimators or est.names()),
                    num_samples=args.num_samples, budget=args.budget, evaluations=args.evaluations,
                    seeds=args.seeds, **options.run_settings(args))
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
                   "cost evaluations spent (left), held-out against training wall time (right). Lower is better."),
    ),
    report=("training", "figures"),
    resumable=False,
))
