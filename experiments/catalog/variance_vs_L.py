"""The headline experiment: bias, variance, MSE and cost of each estimator against the sample count L.

For every applicable (problem, estimator) pair and every L of the grid, R replicate L-sample estimates
are drawn (replicate r with key ``fold_in(seed_key, r)``, sample i with ``fold_in(replicate_key, i)``,
so all cells share common random numbers), summarized on the host in float64, and written as tidy rows.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax

import estimators as est
from experiments import catalog
from experiments import problems as problem_registry
from experiments.engine import options
from experiments.engine.experiment import Experiment, FigureSpec
from experiments.engine.measure import score_rows_per_sample
from experiments.engine.runner import Cell, applicable_pairs, as_json, check_names, run_cells
from experiments.engine.settings import MeasurementSettings

NAME = "variance_vs_L"
#: The headline problems: the Gaussian test functions, the 20-D quadratic, the discrete toys (the
#: Bernoulli toy at t = 0.45 and at t = 0.499, where the gradient is 10⁻³ of the cost, and the
#: categorical toy) and the real-data models at their trained checkpoints, with every estimator that
#: applies.  ``--problems all`` adds the other registered problems (one per distribution family, the
#: real-data models at their initial parameters).
DEFAULT_PROBLEMS = (
    "gaussian_quadratic",
    "gaussian_exp",
    "gaussian_cosine",
    "gaussian_quadratic_20d",
    "bernoulli_toy",
    "bernoulli_toy_499",
    "categorical_toy",
    "logistic_regression",
    "gaussian_vae",
    "binary_vae",
)
#: The problems of a full (``--no-quick``) run: the headline ones and the real-data models at their
#: initial parameters too.
FULL_PROBLEMS = DEFAULT_PROBLEMS + ("logistic_regression_init", "gaussian_vae_init", "binary_vae_init")
#: The default run's L grid: three decades, in three points (an estimator with per-sample statistics
#: serves the grid from one program; relax, and leave-one-out with a plate,
#: compile one per L).
DEFAULT_NUM_SAMPLES = (1, 32, 1024)
#: The default run's R, and its evaluation budget per cell: R = 1000 up to L = 1024 for an estimator of up
#: to four cost evaluations per sample (the variance's relative standard error is then about 4.5% for
#: Gaussian-like estimates), fewer (at least ``min_replicates``) for the costlier cells (the
#: measure-valued estimator); the cells of one shared program take the R of its largest L.
DEFAULT_REPLICATES = 1_000
DEFAULT_MAX_COST_EVALUATIONS = 2**22
#: The default run's time budget per program (a cell, or the cells of a shared L grid), compilation excluded:
#: the cells whose cost the evaluation budget does not see (RODEO runs a network on every pair of samples,
#: about 24 ms per estimate on the binary VAE at L = 32 on 2 CPU cores; Gumbel-Rao's K relaxed backward
#: passes per sample) stop after the rounds of about 200 replicates that fit in it.  A program always runs
#: one round, so a cell slower than 1.5 s per round (RODEO's: about 5 s) takes one round's time.  The
#: profiles have none: their R does not depend on the machine.
DEFAULT_MAX_SECONDS_PER_CELL = 1.5

#: A quick run (the default) measures the real-data problems, whose every cost evaluation runs a
#: model on its data, at fewer replicates, at L up to ``max_num_samples``, and without the cells whose
#: one estimate evaluates the cost, or takes a backward pass, more than ``max_cost_evaluations_per_estimate``
#: times (the measure-valued estimator on a VAE at L = 128: 4 evaluations per latent of an image, 17 per
#: sample; the optimal baseline's score per sample and image).  With per-example costs the delta method
#: and the measure-valued estimator treat an image's latents, not the batch's, as their coordinates, so
#: they are measured on the VAEs up to L = 16 or more.  ``quick=False`` (``--no-quick``) measures every
#: cell like the synthetic problems.
QUICK_REAL_DATA = {"replicates": 500, "max_num_samples": 128, "max_cost_evaluations_per_estimate": 512}

#: Named sets of cells (``--profile``).  ``ci``: the cells of the variance-bound regression check
#: (:mod:`experiments.bounds`): every estimator on the problems below, at L = 2 and 16, 50,000
#: replicates each, in about three and a half minutes on 2 CPU cores.  The cosine is a smooth non-polynomial cost
#: (no estimator is exact on it), the ELBO's cost depends on the parameters (the direct term), the two
#: toys cover the discrete estimators, and the two plate toys every estimator with per-example costs
#: and parameters shared across examples.  Each replicate of a stateful estimator runs its own
#: warm-up chain, so that its variance includes the warm state's noise and does not depend on the
#: seed (a shared warm state moves it by several percent from one seed to the next, more than the
#: band); they are measured at L = 16 only, where that chain is least noisy, after 10 warm-up steps
#: (RELAX's chain trains a network with second derivatives: 50 steps per replicate would make it
#: the most of the check's time).
#: The ci profile's importance-weighted bounds and the estimators checked on each: the bounds' own estimators
#: and a comparator.  The score function's baselines serve them as any objective (the other problems check
#: those), so they are left out.
IMPORTANCE_WEIGHTED_CI = {
    "bernoulli_iw3": ("score_function", "vimco"),
    "linear_gaussian_iw2": ("pathwise", "dreg"),
    "linear_gaussian_elbo": ("stl",),
}
PROFILES = {
    # The reference sweep: four L values, ten times the replicates, 32 times the evaluation budget.
    "full": {
        "problems": DEFAULT_PROBLEMS,
        "num_samples": (1, 16, 128, 1024),
        "replicates": 10_000,
        "max_cost_evaluations": 2**25,
        "xla_optimization_level": None,  # times per estimate as XLA's default compiles them
        "max_seconds_per_cell": None,
    },
    "ci": {
        "problems": ("gaussian_cosine", "gaussian_elbo", "bernoulli_toy", "categorical_toy", "bernoulli_plate",
                     "gaussian_plate", *IMPORTANCE_WEIGHTED_CI),
        # The Gaussian plate's cost is quadratic, so the delta method returns the exact gradient from every
        # sample: a variance of float rounding has no band (tests/test_plates.py checks that exactness); so
        # do the measure-valued estimator and IndeCateR on the toys' separable costs
        # (tests/test_bernoulli_measure_valued.py, tests/test_indecater.py).
        "exclude": (("gaussian_plate", "pathwise_delta"), ("gaussian_plate", "score_function_delta"),
                    ("bernoulli_toy", "measure_valued"), ("bernoulli_toy", "indecater"),
                    ("categorical_toy", "indecater"),
                    # RODEO's per-replicate warm-up chain trains its 100-unit network on every pair of samples
                    # (about 1.4 ms per step on the plate toy): 50,000 chains would take some 18 minutes.  Its
                    # exact mean, variance and control gradient at fixed states are checked by enumeration
                    # instead (tests/test_rodeo.py).
                    ("bernoulli_toy", "rodeo"), ("bernoulli_plate", "rodeo"),
                    *((problem, name) for problem, names in IMPORTANCE_WEIGHTED_CI.items()
                      for name in est.names() if name not in names)),
        "num_samples": (2, 16),
        "replicates": 50_000,
        "stateful_min_num_samples": 16,
        "warmup_steps": 10,
        "warmup": "per_replicate",
        "max_cost_evaluations": 2**40,  # never fewer replicates than the bounds were made for
        # The check reads values, not times: compiled at level 1 and without the CPU fusion emitters (the same
        # values to float32 rounding as XLA's default; the check's 2,683 statistics came out identical with
        # and without the emitters), which compiles its 186 programs in 60% of the time they take with the emitters.
        "xla_optimization_level": 1,
        "xla_fusion_emitters": False,
        "max_seconds_per_cell": None,
    },
}


@dataclasses.dataclass(frozen=True)
class Config(MeasurementSettings):
    """Everything that defines a run; written to config.json."""

    problems: Sequence[str] = DEFAULT_PROBLEMS
    estimators: Sequence[str] = tuple(est.names())
    num_samples: Sequence[int] = DEFAULT_NUM_SAMPLES
    replicates: int = DEFAULT_REPLICATES
    max_cost_evaluations: int = DEFAULT_MAX_COST_EVALUATIONS
    max_seconds_per_cell: float | None = DEFAULT_MAX_SECONDS_PER_CELL
    #: The smallest L at which stateful estimators are measured (their replicates share a warm state).
    stateful_min_num_samples: int = 1
    #: (problem, estimator) pairs not measured, though the estimator applies.
    exclude: Sequence[tuple[str, str]] = ()
    #: The ``PROFILES`` entry the run was made from, or None.
    profile: str | None = None
    #: Measure the real-data problems in the cheaper way of ``QUICK_REAL_DATA``.
    quick: bool = True

    @classmethod
    def from_profile(cls, name: str, **settings) -> Config:
        """The run of profile ``name``; ``settings`` (seed, output_dir, ...) may not redefine its cells."""
        if name not in PROFILES:
            raise ValueError(f"Unknown profile {name!r}; known profiles: {', '.join(PROFILES)}.")
        clash = sorted(set(settings) & set(PROFILES[name]))
        if clash:
            raise ValueError(f"The {name} profile fixes {', '.join(clash)}; drop them or drop --profile.")
        return cls(**PROFILES[name], profile=name, **settings)

    def validate(self) -> None:
        check_names(self.problems, self.estimators, self.num_samples)
        if self.stateful_min_num_samples < 1:
            raise ValueError(f"stateful_min_num_samples must be positive, got {self.stateful_min_num_samples}.")
        super().validate()


def plan(config: Config) -> tuple[list[Cell], list[dict]]:
    """The cells ``config`` measures, and the (problem, estimator[, L]) combinations it skips, with why."""
    pairs, skipped = applicable_pairs(config.problems, [est.get(name) for name in config.estimators])
    excluded = {tuple(pair) for pair in config.exclude}
    skipped += [{"problem": p.name, "estimator": e.name, "reason": f"excluded by the {config.profile} profile"}
                for p, e in pairs if (p.name, e.name) in excluded]
    pairs = [(p, e) for p, e in pairs if (p.name, e.name) not in excluded]
    cells = []
    for problem, estimator in pairs:
        quick = config.quick and problem.dataset is not None
        dist = problem.distribution()  # once per pair: on the real-data problems it evaluates an encoder
        for n in sorted(set(config.num_samples)):
            reason = (estimator.applicability(dist, n, problem.objective.batch_ndims)
                      or skip_reason(config, estimator, n)
                      or (quick_skip_reason(problem, estimator, n) if quick else None))
            if reason is None:
                cells.append(Cell(problem, estimator, n, {}, QUICK_REAL_DATA["replicates"] if quick else None))
            else:
                skipped.append({"problem": problem.name, "estimator": estimator.name, "num_samples": n,
                                "reason": reason})
    return cells, skipped


def run(config: Config, device: jax.Device | None = None, progress: bool = True, resume=None) -> Path:
    """Measure every cell of ``config`` and write the run folder; return its path.  ``resume``: the
    ``.partial`` folder of an interrupted run of the same config, to be continued."""
    config.validate()
    device = device or jax.devices()[0]
    with jax.default_device(device):
        cells, skipped = plan(config)
        return run_cells(NAME, config, as_json(config), cells, skipped, device, progress, resume=resume)


def skip_reason(config: Config, estimator: est.GradientEstimator, num_samples: int) -> str | None:
    """Why the run does not measure ``estimator`` at L = ``num_samples`` although it applies, or None."""
    if estimator.stateful and num_samples < config.stateful_min_num_samples:
        return f"stateful estimators are measured at L >= {config.stateful_min_num_samples} in this run"
    return None


def quick_skip_reason(problem, estimator: est.GradientEstimator, num_samples: int) -> str | None:
    """Why a quick run does not measure this cell of a real-data problem, or None if it does."""
    if num_samples > QUICK_REAL_DATA["max_num_samples"]:
        return f"quick run: real-data problems at L <= {QUICK_REAL_DATA['max_num_samples']}; --no-quick measures it"
    evaluations = problem.cost_evaluations(estimator, num_samples)
    if evaluations > QUICK_REAL_DATA["max_cost_evaluations_per_estimate"]:
        return (f"quick run: {evaluations} cost evaluations per estimate on a real-data problem (more than "
                f"{QUICK_REAL_DATA['max_cost_evaluations_per_estimate']}); --no-quick measures it")
    score_rows = num_samples * score_rows_per_sample(problem, estimator)
    if score_rows > QUICK_REAL_DATA["max_cost_evaluations_per_estimate"]:
        return (f"quick run: {score_rows} backward passes per estimate on a real-data problem (a score per sample "
                f"and example; more than {QUICK_REAL_DATA['max_cost_evaluations_per_estimate']}); --no-quick "
                "measures it")
    return None


def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--problems", type=options.comma_list, default=None, metavar="NAMES",
                     help="comma-separated problem names, or 'all' for every registered problem "
                     f"(default: {','.join(DEFAULT_PROBLEMS)}; with --no-quick also "
                     "the real-data models at their initial parameters; --list shows them all)")
    sub.add_argument("--quick", action=argparse.BooleanOptionalAction, default=True,
                     help="measure the real-data problems (logistic regression, VAEs) at "
                     f"{QUICK_REAL_DATA['replicates']} replicates and L <= "
                     f"{QUICK_REAL_DATA['max_num_samples']}, without the estimators that evaluate "
                     f"the cost more than {QUICK_REAL_DATA['max_cost_evaluations_per_estimate']} "
                     "times per estimate; --no-quick measures them like the other problems (default: quick)")
    options.add_estimator_options(sub, DEFAULT_NUM_SAMPLES)
    sub.add_argument("--profile", choices=sorted(PROFILES), default=None,
                     help="a named set of cells, which fixes problems, estimators, L and replicates: 'full' "
                     "is the reference sweep (L = 1, 16, 128, 1024, 10,000 replicates, an evaluation budget of "
                     "2^25 per cell; about half an hour on 2 CPU cores), 'ci' the variance-bound regression "
                     "check's (python -m experiments.bounds)")
    options.add_measurement_options(sub, default_replicates=DEFAULT_REPLICATES,
                                    default_max_cost_evaluations=DEFAULT_MAX_COST_EVALUATIONS)


#: The options a profile fixes.
PROFILE_FIXES = ("--problems", "--estimators", "--num-samples", "--replicates", "--max-cost-evaluations", "--quick",
                 "--no-quick", "--xla-optimization-level", "--max-seconds-per-cell")


def make_config(args: argparse.Namespace, given: Sequence[str]) -> Config:
    settings = options.measurement_settings(args)
    if args.profile:
        clash = sorted(option for option in PROFILE_FIXES if option in given)
        if clash:
            raise ValueError(f"--profile {args.profile} fixes the cells it measures; drop {', '.join(clash)}.")
        fixed = ("replicates", "max_cost_evaluations")
        return Config.from_profile(args.profile, **{k: v for k, v in settings.items() if k not in fixed})
    if args.problems == ["all"]:
        problems = problem_registry.names()
    else:
        problems = args.problems or (DEFAULT_PROBLEMS if args.quick else FULL_PROBLEMS)
    return Config(problems=tuple(problems), estimators=tuple(args.estimators or est.names()),
                  num_samples=tuple(args.num_samples), quick=args.quick, **settings)


EXPERIMENT = catalog.register(Experiment(
    name=NAME,
    summary="bias, variance, MSE and cost of each estimator against the sample count L",
    description="For every (problem, estimator) pair that applies and every L, draw R replicate "
    "L-sample gradient estimates and report mean, bias², variance, MSE (with standard errors), "
    "wall time per estimate and cost in function evaluations.",
    title="Bias, variance, MSE and cost against the number of samples L",
    config=Config,
    add_options=add_options,
    make_config=make_config,
    run=run,
    figures=(
        FigureSpec("variance_vs_L", "Variance (trace of the covariance) of the L-sample gradient estimate against "
                   "L, per problem and parameter group, with 95% bands; dotted: the exact variance where the problem "
                   "knows it; dashed grey: a 1/L line. Unbiased estimators of i.i.d. samples fall as 1/L, parallel "
                   "to it; the vertical gaps are the variance ratios between estimators."),
        FigureSpec("bias_vs_L", "Squared bias of each estimator in units of its standard error, against L. Unbiased "
                   "estimators stay in the grey ±1.96 band (95% of cells); biased ones leave it and grow with the "
                   "number of replicates (logarithmic beyond ±3)."),
        FigureSpec("mse_vs_L", "Mean squared error of the whole gradient against L, biased and unbiased estimators "
                   "together, with 95% bands; dotted: a biased estimator's exact squared bias, the floor its MSE "
                   "flattens onto. Where an unbiased line crosses below a biased one, extra samples have made the "
                   "unbiased estimator the better."),
        FigureSpec("efficiency_vs_L", "Cost-normalized variance: variance of the whole gradient × wall time per "
                   "estimate, against L. Lower is better: it is the variance an estimator reaches in a fixed time by "
                   "averaging independent estimates, so it ranks unbiased estimators by value for time."),
    ),
    report=("recommendation", "figures", "agreement"),
))
