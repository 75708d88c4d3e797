"""The command line: ``python -m experiments.run EXPERIMENT [options]``.

    python -m experiments.run variance_vs_L                       # the default run
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
import signal
import sys

#: The options that may accompany --resume: they change how, not what, a run measures.
RESUME_OPTIONS = {"--resume", "--device", "--num-devices", "--no-figures", "--quiet", "--compilation-cache"}


def _resumed_config(experiment, path: str, given: list[str], **execution):
    """The Config of the interrupted run at ``path``, from its config.json; a ValueError where the
    folder is another experiment's or other options would redefine its cells."""
    import dataclasses
    import json
    from pathlib import Path

    given = sorted(set(given) - RESUME_OPTIONS)
    if given:
        raise ValueError(f"--resume continues a run with the settings in its config.json; drop {', '.join(given)}.")
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise ValueError(f"--resume {path}: no run folder there (it has no config.json).")
    stored = json.loads(config_file.read_text())
    if stored.get("experiment") != experiment.name:
        raise ValueError(f"--resume {path}: that is a {stored.get('experiment')} run, not {experiment.name}.")
    fields = {f.name for f in dataclasses.fields(experiment.config)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields}
    if "xla_optimization_level" in fields:  # a run from before the option compiled at XLA's default
        values.setdefault("xla_optimization_level", None)
    return experiment.config(**{**values, **execution})


def build_parser() -> argparse.ArgumentParser:
    """One sub-command per registered experiment, with the options it declares."""
    from experiments import catalog

    parser = argparse.ArgumentParser(
        prog="python -m experiments.run",
        description="Measure Monte Carlo gradient estimators on problems with exact answers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Results go to OUTPUT_DIR/EXPERIMENT/RUN_ID/ (metrics.csv, metrics_by_coordinate.csv, "
        "config.json, env.json, figures/); see results/README.md for the layout.",
    )
    commands = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name in catalog.names():
        experiment = catalog.get(name)
        command = commands.add_parser(name, help=experiment.summary, description=experiment.description)
        experiment.add_options(command)
        command.set_defaults(command_parser=command)  # its errors show the experiment's own usage
    return parser


def check_output_dir(path) -> None:
    """A ValueError naming the problem where run folders cannot be made under ``path`` (a file in the way,
    a directory that cannot be written), before anything runs."""
    import os
    from pathlib import Path

    target = Path(path)
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        where = "that is" if existing == target else f"{existing} is"
        raise ValueError(f"--output-dir {path}: {where} a file, not a directory; give a directory for the run folders.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output-dir {path}: {existing} cannot be written (permission denied); give a directory "
                         "you can write to.")


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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    parser = args.command_parser  # errors below show the experiment's own usage, not the top-level one

    import jax

    from experiments.engine.distributed import initialize_if_configured

    initialize_if_configured()  # several hosts: one replicate mesh over all their devices
    if args.precision == "float64":
        jax.config.update("jax_enable_x64", True)
    if args.compilation_cache != "off":
        from experiments.engine import compilation_cache

        compilation_cache.enable(args.compilation_cache)

    import estimators as est
    from experiments import catalog, problems
    from experiments.engine.results import ResumeError
    from experiments.engine.runner import PlanningError, devices_for
    from experiments.engine.settings import MeasurementSettings

    if args.list:
        print("problems:")
        for name in problems.names():
            print(f"  {name:28s} {problems.describe(name)}")
        print(f"  {'gaussian_quadratic_<D>d':28s} the same quadratic in any dimension D, e.g. gaussian_quadratic_100d")
        print("estimators:\n  " + "\n  ".join(est.names()))
        return 0

    experiment = catalog.get(args.experiment)
    resume = getattr(args, "resume", None)
    given = sorted({token.split("=")[0] for token in argv if token.startswith("--")})
    try:
        if resume:
            config = _resumed_config(experiment, resume, given, device=args.device, num_devices=args.num_devices,
                                     figures=not args.no_figures)
        else:
            config = experiment.make_config(args, given)
        config.validate()
        if not resume:
            check_output_dir(config.output_dir)
        device = select_device(args.device)
        if isinstance(config, MeasurementSettings):
            devices_for(config, device)
    except ValueError as error:
        parser.error(str(error))
    previous = signal.signal(signal.SIGTERM, _terminate)  # timeout, Slurm: stop as Ctrl-C does
    try:
        path = experiment.run(config, device=device, progress=not args.quiet, resume=resume)
    except (PlanningError, ResumeError) as error:  # nothing applicable, or a run that cannot be resumed
        parser.error(str(error))
    except Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _finish(experiment.name, path, config.figures)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, Slurm's time limit, ``kill``), raised where the run is, so that it stops as on
    Ctrl-C: the finished cells stay in the ``.partial`` folder and the command to resume it is printed."""


def _terminate(signum, frame):
    raise Terminated()


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
