"""The command line: ``python -m experiments.run EXPERIMENT [options]``.

    python -m experiments.run variance_vs_L                       # the default run, about a minute
    python -m experiments.run variance_vs_L --problems gaussian_quadratic --num-samples 1,10,100
    python -m experiments.run variance_vs_L --list                # what can be measured
    python -m experiments.run bias_vs_temperature                 # the Gumbel-Softmax family against τ
    python -m experiments.run variance_vs_L --profile ci          # the cells of the variance-bound check
    python -m experiments.run training                            # training curves of the real-data models
    python -m experiments.run variance_vs_mean                    # the Gaussian test functions against μ
    python -m experiments.run variance_vs_dimension               # the quadratic against the dimension D
    python -m experiments.run variance_vs_batch                   # per-example against batch-level signals
    python -m analysis.report results/*/*                         # one report from run folders
"""

from __future__ import annotations

import argparse
import sys

EXPERIMENTS = {
    "variance_vs_L": "bias, variance, MSE and cost of each estimator against the sample count L",
    "bias_vs_temperature": "bias, variance and MSE of the Gumbel-Softmax family against the temperature",
    "variance_vs_mean": "variance of each estimator on the Gaussian test functions against the mean μ",
    "variance_vs_dimension": "variance of each estimator on the D-dimensional Gaussian quadratic against D",
    "variance_vs_batch": "encoder-gradient variance of the score-function family against the VAE's minibatch size, "
                         "per-example against batch-level learning signals",
    "training": "training curves of the real-data models with each estimator at the same budget of cost evaluations",
}


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _numbers(kind):
    def parse(text: str):
        try:
            return [kind(item) for item in _comma_list(text)]
        except ValueError:
            example = "1,4,16" if kind is int else "0.5,1,2"
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers such as {example}, got {text!r}") from None

    return parse


def _add_run_options(sub, default_replicates: int) -> None:
    sub.add_argument("--replicates", type=int, default=default_replicates, metavar="R",
                     help="independent estimates per cell; the variance's relative standard error is "
                     "about sqrt(2/R) for Gaussian-like estimates (default: %(default)s)")
    sub.add_argument("--max-cost-evaluations", type=int, default=2**25, metavar="N",
                     help="a cell whose R estimates would evaluate the cost more than N times uses fewer "
                     "replicates (at least 200; recorded per row) (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the base key (default: %(default)s)")
    sub.add_argument("--output-dir", default="results", metavar="DIR",
                     help="where run folders go (default: %(default)s)")
    sub.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                     help="where to compute; auto is JAX's default backend (default: %(default)s)")
    sub.add_argument("--num-devices", type=int, default=None, metavar="N",
                     help="split the replicates across the first N devices of the chosen platform "
                     "(default: all of them, on every host; results do not depend on N)")
    sub.add_argument("--precision", choices=("float32", "float64"), default="float32",
                     help="device precision; statistics are float64 on the host either way "
                     "(default: %(default)s)")
    sub.add_argument("--no-figures", action="store_true", help="skip drawing figures at the end")
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_argument("--list", action="store_true", help="list problems and estimators, then exit")
    sub.add_argument("--resume", metavar="RUN_DIR", default=None,
                     help="continue the interrupted run in RUN_DIR (a results/<experiment>/<run_id>.partial folder) "
                     "with the settings in its config.json, skipping the cells it finished; only --device, "
                     "--num-devices, --no-figures and --quiet may be given with it")


#: The options that may accompany --resume: they change how, not what, a run measures.
RESUME_OPTIONS = {"--resume", "--device", "--num-devices", "--no-figures", "--quiet"}


def _resumed_config(experiment, path: str, argv: list[str], **execution):
    """The Config of the interrupted run at ``path``, from its config.json; a ValueError where the
    folder is another experiment's or other options would redefine its cells."""
    import dataclasses
    import json
    from pathlib import Path

    given = sorted({token.split("=")[0] for token in argv if token.startswith("--")} - RESUME_OPTIONS)
    if given:
        raise ValueError(f"--resume continues a run with the settings in its config.json; drop {', '.join(given)}.")
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise ValueError(f"--resume {path}: no run folder there (it has no config.json).")
    stored = json.loads(config_file.read_text())
    if stored.get("experiment") != experiment.NAME:
        raise ValueError(f"--resume {path}: that is a {stored.get('experiment')} run, not {experiment.NAME}.")
    fields = {f.name for f in dataclasses.fields(experiment.Config)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields}
    return experiment.Config(**{**values, **execution})


def _add_estimator_options(sub, default_num_samples) -> None:
    sub.add_argument("--estimators", type=_comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: every registered estimator that applies)")
    sub.add_argument("--num-samples", type=_numbers(int), default=list(default_num_samples),
                     metavar="LS", help="comma-separated sample counts L (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from experiments import bias_vs_temperature, variance_vs_L

    parser = argparse.ArgumentParser(
        prog="python -m experiments.run",
        description="Measure Monte Carlo gradient estimators on problems with exact answers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Results go to OUTPUT_DIR/EXPERIMENT/RUN_ID/ (metrics.csv, metrics_by_coordinate.csv, "
        "config.json, env.json, figures/); see results/README.md for the layout.",
    )
    experiments = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    sub = experiments.add_parser(
        "variance_vs_L",
        help=EXPERIMENTS["variance_vs_L"],
        description="For every (problem, estimator) pair that applies and every L, draw R replicate "
        "L-sample gradient estimates and report mean, bias², variance, MSE (with standard errors), "
        "wall time per estimate and cost in function evaluations.",
    )
    sub.add_argument("--problems", type=_comma_list, default=None, metavar="NAMES",
                     help="comma-separated problem names, or 'all' for every registered problem "
                     f"(default: {','.join(variance_vs_L.DEFAULT_PROBLEMS)}; with --no-quick also "
                     "the real-data models at their initial parameters; --list shows them all)")
    sub.add_argument("--quick", action=argparse.BooleanOptionalAction, default=True,
                     help="measure the real-data problems (logistic regression, VAEs) at "
                     f"{variance_vs_L.QUICK_REAL_DATA['replicates']} replicates and L <= "
                     f"{variance_vs_L.QUICK_REAL_DATA['max_num_samples']}, without the estimators that evaluate "
                     f"the cost more than {variance_vs_L.QUICK_REAL_DATA['max_cost_evaluations_per_estimate']} "
                     "times per estimate; --no-quick measures them like the other problems (default: quick)")
    _add_estimator_options(sub, variance_vs_L.DEFAULT_NUM_SAMPLES)
    sub.add_argument("--profile", choices=sorted(variance_vs_L.PROFILES), default=None,
                     help="a named set of cells: 'ci' is the variance-bound regression check's "
                     "(python -m experiments.bounds); it fixes problems, estimators, L and replicates")
    _add_run_options(sub, default_replicates=10_000)

    sub = experiments.add_parser(
        "bias_vs_temperature",
        help=EXPERIMENTS["bias_vs_temperature"],
        description="For every discrete problem and every estimator with a temperature (gumbel_softmax, "
        "straight_through_gumbel), sweep the temperature and report bias², variance and MSE against the "
        "exact gradient, with the exact bias where the problem knows it.",
    )
    sub.add_argument("--problems", type=_comma_list, default=[], metavar="NAMES",
                     help="comma-separated problem names (default: every problem with a discrete distribution)")
    sub.add_argument("--estimators", type=_comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: every estimator with a temperature)")
    sub.add_argument("--temperatures", type=_numbers(float), default=list(bias_vs_temperature.DEFAULT_TEMPERATURES),
                     metavar="TAUS", help="comma-separated temperatures (default: %(default)s)")
    sub.add_argument("--num-samples", type=_numbers(int), default=list(bias_vs_temperature.DEFAULT_NUM_SAMPLES),
                     metavar="LS", help="comma-separated sample counts L (default: %(default)s)")
    _add_run_options(sub, default_replicates=10_000)

    from experiments import variance_vs_dimension, variance_vs_mean

    sub = experiments.add_parser(
        "variance_vs_mean",
        help=EXPERIMENTS["variance_vs_mean"],
        description="For each Gaussian test function (x - k)², exp(-k x²), cos(k x) under N(μ, σ²), sweep μ "
        "and report the variance of every applicable estimator's gradient with respect to μ and σ, with "
        "the exact variance where it is known (Mohamed et al. 2020, figure 3).",
    )
    sub.add_argument("--functions", type=_comma_list, default=list(variance_vs_mean.DEFAULT_FUNCTIONS), metavar="NAMES",
                     help="comma-separated test functions (default: %(default)s)")
    sub.add_argument("--means", type=_numbers(float), default=list(variance_vs_mean.DEFAULT_MEANS), metavar="MUS",
                     help="comma-separated means μ; write --means=-1,0,1 when the first is negative "
                     "(default: -3 to 3 in steps of 0.5)")
    sub.add_argument("--scale", type=float, default=variance_vs_mean.SCALE, metavar="SIGMA",
                     help="the standard deviation σ (default: %(default)s)")
    _add_estimator_options(sub, variance_vs_mean.DEFAULT_NUM_SAMPLES)
    _add_run_options(sub, default_replicates=variance_vs_mean.DEFAULT_REPLICATES)

    sub = experiments.add_parser(
        "variance_vs_dimension",
        help=EXPERIMENTS["variance_vs_dimension"],
        description="For the quadratic ||x - k||² under a D-dimensional diagonal Gaussian, sweep D and report "
        "the variance of every applicable estimator's gradient, with the exact variance where it is known.",
    )
    sub.add_argument("--dimensions", type=_numbers(int), default=list(variance_vs_dimension.DEFAULT_DIMENSIONS),
                     metavar="DS", help="comma-separated dimensions D (default: %(default)s)")
    _add_estimator_options(sub, variance_vs_dimension.DEFAULT_NUM_SAMPLES)
    _add_run_options(sub, default_replicates=variance_vs_dimension.DEFAULT_REPLICATES)

    from experiments import variance_vs_batch

    sub = experiments.add_parser(
        "variance_vs_batch",
        help=EXPERIMENTS["variance_vs_batch"],
        description="For each VAE (trained checkpoint) on its first N training images, sweep N and report the "
        "variance of the score-function family's gradient with each image's own cost as its latents' "
        "learning signal (per_example) and with one cost for the whole batch (batch).",
    )
    sub.add_argument("--models", type=_comma_list, default=list(variance_vs_batch.MODELS), metavar="NAMES",
                     help="comma-separated models (default: %(default)s)")
    sub.add_argument("--batch-sizes", type=_numbers(int), default=list(variance_vs_batch.DEFAULT_BATCH_SIZES),
                     metavar="NS", help="comma-separated minibatch sizes N (default: %(default)s)")
    sub.add_argument("--signals", type=_comma_list, default=list(variance_vs_batch.SIGNALS), metavar="NAMES",
                     help="per_example, batch or both (default: %(default)s)")
    sub.add_argument("--estimators", type=_comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: "
                     f"{','.join(variance_vs_batch.DEFAULT_ESTIMATORS)})")
    sub.add_argument("--num-samples", type=_numbers(int), default=list(variance_vs_batch.DEFAULT_NUM_SAMPLES),
                     metavar="LS", help="comma-separated sample counts L (default: %(default)s)")
    _add_run_options(sub, default_replicates=variance_vs_batch.DEFAULT_REPLICATES)

    from experiments import training

    defaults = training.Config()
    sub = experiments.add_parser(
        "training",
        help=EXPERIMENTS["training"],
        description="Optimize each real-data model (Bayesian logistic regression, Gaussian and binary VAEs) "
        "with each applicable estimator by Adam, every estimator spending the same number of cost "
        "evaluations, and record the training and held-out objective against steps and wall time.",
    )
    sub.add_argument("--problems", type=_comma_list, default=list(defaults.problems), metavar="NAMES",
                     help="comma-separated models (default: %(default)s)")
    sub.add_argument("--estimators", type=_comma_list, default=None, metavar="NAMES",
                     help="comma-separated estimator names (default: every registered estimator that applies)")
    sub.add_argument("--num-samples", type=int, default=defaults.num_samples, metavar="L",
                     help="samples per gradient estimate (default: %(default)s)")
    sub.add_argument("--budget", type=int, default=defaults.budget, metavar="N",
                     help="cost evaluations each (model, estimator) pair may spend (default: %(default)s)")
    sub.add_argument("--evaluations", type=int, default=defaults.evaluations, metavar="K",
                     help="points on each curve where the objective is computed (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=0, help="the first seed of the initializations, minibatches and "
                     "samples (default: %(default)s)")
    sub.add_argument(
        "--seeds",
        type=int,
        default=defaults.seeds,
        metavar="S",
        help="independent trainings per (model, estimator), seeds SEED to SEED + S - 1 (default: %(default)s)",
    )
    sub.add_argument(
        "--output-dir", default="results", metavar="DIR", help="where run folders go (default: %(default)s)"
    )
    sub.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                     help="where to compute (default: %(default)s)")
    sub.add_argument("--precision", choices=("float32", "float64"), default="float32",
                     help="device precision (default: %(default)s)")
    sub.add_argument("--no-figures", action="store_true", help="skip drawing figures at the end")
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_argument("--list", action="store_true", help="list problems and estimators, then exit")
    return parser


def select_device(name: str):
    """The JAX device for ``--device``; a clear error where the backend is missing."""
    import jax

    if name == "auto":
        return jax.devices()[0]
    try:
        return jax.devices(name)[0]
    except RuntimeError:
        hint = " Install a GPU build of JAX (pip install 'jax[cuda12]') or use --device cpu." if name == "gpu" else ""
        raise ValueError(f"--device {name}: JAX sees no {name.upper()} here.{hint}") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    import jax

    from experiments.distributed import initialize_if_configured

    initialize_if_configured()  # several hosts: one replicate mesh over all their devices
    if args.precision == "float64":
        jax.config.update("jax_enable_x64", True)

    import estimators as est
    from experiments import bias_vs_temperature, problems, variance_vs_dimension, variance_vs_L, variance_vs_mean
    from experiments.results import ResumeError
    from experiments.runner import PlanningError, devices_for

    if args.list:
        print("problems:")
        for name in problems.names():
            print(f"  {name:28s} {problems.get(name).description}")
        print(f"  {'gaussian_quadratic_<D>d':28s} the same quadratic in any dimension D, e.g. gaussian_quadratic_100d")
        print("estimators:\n  " + "\n  ".join(est.names()))
        return 0

    if args.experiment == "training":
        from experiments import training

        config = training.Config(problems=tuple(args.problems), estimators=tuple(args.estimators or est.names()),
                                 num_samples=args.num_samples, budget=args.budget, evaluations=args.evaluations,
                                 seed=args.seed, seeds=args.seeds, output_dir=args.output_dir, device=args.device,
                                 precision=args.precision, figures=not args.no_figures)
        try:
            config.validate()
            training.plan(config)  # nothing applicable is a usage error
            device = select_device(args.device)
        except ValueError as error:
            parser.error(str(error))
        try:
            path = training.run(config, device=device, progress=not args.quiet)
        except KeyboardInterrupt:
            return 130
        return _finish(training.NAME, path, config.figures)

    common = dict(replicates=args.replicates, max_cost_evaluations=args.max_cost_evaluations, seed=args.seed,
                  output_dir=args.output_dir, device=args.device, num_devices=args.num_devices,
                  precision=args.precision, figures=not args.no_figures)
    if args.experiment == "variance_vs_L" and args.profile:
        experiment = variance_vs_L
        fixed = {"--problems", "--estimators", "--num-samples", "--replicates", "--max-cost-evaluations", "--quick",
                 "--no-quick"}
        given = sorted(option for option in fixed for token in (argv if argv is not None else sys.argv[1:])
                       if token == option or token.startswith(option + "="))
        if given:
            parser.error(f"--profile {args.profile} fixes the cells it measures; drop {', '.join(given)}.")
        fixed_settings = ("replicates", "max_cost_evaluations")
        config = variance_vs_L.Config.from_profile(
            args.profile, **{k: v for k, v in common.items() if k not in fixed_settings})
    elif args.experiment == "variance_vs_L":
        experiment = variance_vs_L
        if args.problems == ["all"]:
            problem_names = problems.names()
        else:
            problem_names = args.problems or (
                variance_vs_L.DEFAULT_PROBLEMS if args.quick else variance_vs_L.FULL_PROBLEMS
            )
        config = variance_vs_L.Config(problems=tuple(problem_names), estimators=tuple(args.estimators or est.names()),
                                      num_samples=tuple(args.num_samples), quick=args.quick, **common)
    elif args.experiment == "variance_vs_mean":
        experiment = variance_vs_mean
        config = variance_vs_mean.Config(functions=tuple(args.functions), means=tuple(args.means), scale=args.scale,
                                         estimators=tuple(args.estimators or est.names()),
                                         num_samples=tuple(args.num_samples), **common)
    elif args.experiment == "variance_vs_dimension":
        experiment = variance_vs_dimension
        config = variance_vs_dimension.Config(dimensions=tuple(args.dimensions),
                                              estimators=tuple(args.estimators or est.names()),
                                              num_samples=tuple(args.num_samples), **common)
    elif args.experiment == "variance_vs_batch":
        from experiments import variance_vs_batch

        experiment = variance_vs_batch
        config = variance_vs_batch.Config(models=tuple(args.models), batch_sizes=tuple(args.batch_sizes),
                                          signals=tuple(args.signals),
                                          estimators=tuple(args.estimators or variance_vs_batch.DEFAULT_ESTIMATORS),
                                          num_samples=tuple(args.num_samples), **common)
    else:
        experiment = bias_vs_temperature
        config = bias_vs_temperature.Config(problems=tuple(args.problems), estimators=tuple(args.estimators or ()),
                                            temperatures=tuple(args.temperatures),
                                            num_samples=tuple(args.num_samples), **common).resolved()
    try:
        if args.resume:
            config = _resumed_config(experiment, args.resume, argv if argv is not None else sys.argv[1:],
                                     device=args.device, num_devices=args.num_devices, figures=not args.no_figures)
        config.validate()
        device = select_device(args.device)
        devices_for(config, device)
    except ValueError as error:
        parser.error(str(error))
    try:
        path = experiment.run(config, device=device, progress=not args.quiet, resume=args.resume)
    except (PlanningError, ResumeError) as error:  # nothing applicable, or a run that cannot be resumed
        parser.error(str(error))
    except KeyboardInterrupt:
        return 130
    return _finish(experiment.NAME, path, config.figures)


def _finish(name: str, path, figures: bool) -> int:
    """Draw the figures of a finished run folder (the one place ``experiments`` reaches into ``analysis``:
    the command line composes the two) and say where the run is."""
    if figures:
        from analysis.figures import save_run_figures

        save_run_figures(path)
    print(f"{name}: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
