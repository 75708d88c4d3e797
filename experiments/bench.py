"""Throughput of each estimator against the floor: ``python -m experiments.bench``.

For each problem and estimator, R replicate L-sample estimates are computed by one jit-compiled program
(vmapped in chunks, as the runner does) and timed, best of several calls after a warm-up call, with
its compile time.  The floor is what any estimator of L samples must at least do: draw L samples (the
same per-sample keys, the same sampler) and evaluate the cost as many times as the estimator does, under
jit, with no gradient.  An estimator that evaluates the cost several times per sample (an antithetic pair:
2; RELAX: 4; the measure-valued one: 4 per coordinate plus 1) is compared with a floor that evaluates it
as often, on copies of the L samples (each copy scaled by its own constant near 1, so that XLA cannot merge
the evaluations), not on as many fresh draws: an antithetic estimator draws one uniform per pair, and a
floor that drew a sample per evaluation would do more work than it (``x_floor`` 0.5 for ARM and DisARM on
the Bernoulli toy, 0.28 on a slower machine).  So ``x_floor`` measures the gradient, the extra random
numbers (REBAR's conditional draws, Gumbel-Rao's K) and the overhead, and is about 1 or more, with one
exception where the cost is so cheap that drawing dominates: ARM and DisARM draw a Bernoulli as a uniform
below σ(ℓ), more cheaply than the distribution's sampler (logistic noise, shared with the relaxations), and
come in about 20% under the floor on the Bernoulli toy (1.8-2 times over it on the binary VAE).

    python -m experiments.bench                                   # the default problems, L = 16
    python -m experiments.bench --problems gaussian_vae --num-samples 4 --replicates 200
    python -m experiments.bench --output bench.csv                # the table as CSV too

With ``--scaling``, the runner's own cell program (:func:`experiments.engine.measure.measure_cell`: sharded,
chunked) is timed instead at every (R, L) of a grid, compiled once per shape and best of the repeats,
and the table gives the time per sample (R × L) and the slope of log time against log R·L: 1 when the
cost grows as the work grows.

    python -m experiments.bench --scaling --problems gaussian_quadratic_20d --estimators pathwise,score_function
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import estimators as est
from experiments import problems
from experiments.engine.measure import DEFAULT_CHUNK_ELEMENTS, chunk_size, measure_cell

DEFAULT_PROBLEMS = ("gaussian_cosine", "gaussian_quadratic_20d", "bernoulli_toy", "categorical_toy",
                    "logistic_regression", "gaussian_vae", "binary_vae")
#: Replicates per timed call: fewer on the real-data problems, whose every cost evaluation runs a model.
DEFAULT_REPLICATES = {"synthetic": 1_000, "real_data": 50}
#: The (R, L) grid of ``--scaling``: R·L from 1,024 to 1,048,576 samples.
SCALING_REPLICATES = (256, 1_024, 4_096)
SCALING_NUM_SAMPLES = (4, 16, 64, 256)


def floor_fn(problem, num_samples: int, evaluations: int, num_replicates: int, batch: int):
    """R replicates of L samples drawn as the estimators draw them and ``evaluations`` cost evaluations on
    them (on copies of the L samples, each scaled by its own constant, where there are more evaluations
    than samples), no gradient."""
    copies = max(1, -(-evaluations // num_samples))

    def floor(params, key):
        def one(replicate_key):
            dist = problem.objective.distribution(params)
            samples = jax.vmap(dist.sample)(est.sample_keys(replicate_key, num_samples))
            objective = problem.objective
            scaled = lambda copy: samples if copy == 0 else samples * jnp.asarray(1 + copy / 1024, samples.dtype)
            return sum(jnp.mean(objective.sum_examples(objective.costs(params, scaled(copy))))
                       for copy in range(copies))

        return jax.lax.map(one, est.sample_keys(key, num_replicates), batch_size=batch)

    return floor


def estimator_fn(problem, estimator, num_samples: int, num_replicates: int, batch: int):
    """R L-sample estimates (value and gradient) of ``estimator``, from its initial state."""
    init, update = est.value_and_grad_with_state(problem.objective, estimator, num_samples)

    def estimates(params, key):
        state = init(params)
        one = lambda k: update(params, k, state)[:2]
        return jax.lax.map(one, est.sample_keys(key, num_replicates), batch_size=batch)

    return estimates


def time_fn(fn, params, key, repeats: int) -> tuple[float, float, float]:
    """(compile seconds, best seconds per call, median seconds per call), after one warm-up call."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(params, key).compile()
    compile_time = time.perf_counter() - start
    jax.block_until_ready(compiled(params, key))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, key))
        times.append(time.perf_counter() - start)
    return compile_time, min(times), statistics.median(times)


def bench_problem(problem, estimator_names, num_samples: int, num_replicates: int, repeats: int) -> list[dict]:
    """One row per applicable estimator of ``problem``: its timings and the floor's at its evaluations."""
    key = jax.random.key(0)
    dist = problem.distribution()
    floors, rows = {}, []
    for name in estimator_names:
        estimator = est.get(name)
        if estimator.applicability(dist, num_samples, problem.objective.batch_ndims) is not None:
            continue
        evaluations = problem.cost_evaluations(estimator, num_samples)
        batch = chunk_size(problem, estimator, num_samples, num_replicates, DEFAULT_CHUNK_ELEMENTS)
        if evaluations not in floors:
            floor_batch = chunk_size(problem, est.get("score_function"), evaluations, num_replicates,
                                     DEFAULT_CHUNK_ELEMENTS)
            floors[evaluations] = time_fn(floor_fn(problem, num_samples, evaluations, num_replicates, floor_batch),
                                          problem.params, key, repeats)
        compile_time, best, median = time_fn(estimator_fn(problem, estimator, num_samples, num_replicates, batch),
                                             problem.params, key, repeats)
        floor_best = floors[evaluations][1]
        rows.append({
            "problem": problem.name, "estimator": name, "num_samples": num_samples, "replicates": num_replicates,
            "cost_evaluations": evaluations, "compile_s": compile_time, "best_ms": best * 1e3,
            "median_ms": median * 1e3, "estimates_per_s": num_replicates / best,
            "floor_ms": floor_best * 1e3, "x_floor": best / floor_best,
        })
    return rows


def scaling_rows(problem, estimator_names, replicates=SCALING_REPLICATES, num_samples=SCALING_NUM_SAMPLES,
                 repeats: int = 5) -> list[dict]:
    """Best run time of the runner's cell program at every (R, L), per applicable estimator."""
    key = jax.random.key(0)
    dist = problem.distribution()
    rows = []
    for name in estimator_names:
        estimator = est.get(name)
        for num_replicates in replicates:
            for count in num_samples:
                if estimator.applicability(dist, count, problem.objective.batch_ndims) is not None:
                    continue
                runs = [measure_cell(problem, estimator, count, num_replicates, key)
                        for _ in range(repeats + 1)]  # the first compiles; the others reuse its program
                best = min(run.run_time_s for run in runs[1:])
                rows.append({"problem": problem.name, "estimator": name, "replicates": num_replicates,
                             "num_samples": count, "samples": num_replicates * count, "best_ms": best * 1e3,
                             "ns_per_sample": best / (num_replicates * count) * 1e9,
                             "compilations": sum(run.compilations for run in runs)})
    return rows


def scaling_slopes(table: pd.DataFrame) -> pd.DataFrame:
    """Per problem and estimator: the least-squares slope of log time on log R·L (1 = linear; below 1
    where a fixed cost per call still shows at the small end), the time per sample at the smallest,
    the largest and the most work, and the spread of the time per sample (largest / smallest)."""
    def fit(group):
        slope = np.polyfit(np.log(group["samples"]), np.log(group["best_ms"]), 1)[0]
        spread = group["ns_per_sample"].max() / group["ns_per_sample"].min()
        at_most_work = group.loc[group["samples"].idxmax(), "ns_per_sample"]
        return pd.Series({"slope": slope, "ns_per_sample_min": group["ns_per_sample"].min(),
                          "ns_per_sample_max": group["ns_per_sample"].max(), "ns_per_sample_most_work": at_most_work,
                          "spread": spread})

    return table.groupby(["problem", "estimator"], sort=False)[["samples", "best_ms", "ns_per_sample"]].apply(fit)


def _print_markdown(table: pd.DataFrame, columns) -> None:
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in table[columns].itertuples(index=False):
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--problems", default=",".join(DEFAULT_PROBLEMS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--estimators", default=",".join(est.names()), help="comma-separated (default: all)")
    parser.add_argument("--num-samples", default=None, help="L per estimate (default: 16)")
    parser.add_argument("--replicates", default=None,
                        help=f"estimates per call (default: {DEFAULT_REPLICATES['synthetic']}, "
                        f"{DEFAULT_REPLICATES['real_data']} on real-data problems)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls, best kept (default: %(default)s)")
    parser.add_argument("--output", default=None, metavar="CSV", help="also write the table to this CSV file")
    parser.add_argument("--scaling", action="store_true",
                        help="time the runner's cell program over a grid of R and L instead (--num-samples and "
                        "--replicates then give the grid, comma-separated; default R "
                        f"{','.join(map(str, SCALING_REPLICATES))}, L {','.join(map(str, SCALING_NUM_SAMPLES))})")
    args = parser.parse_args(argv)
    for name in _names(args.estimators):
        est.get(name)  # unknown names fail here, naming the known ones
    if args.scaling:
        return _scaling_main(parser, args, argv)

    names = _names(args.estimators)
    num_samples = _counts(parser, "--num-samples", args.num_samples or "16", single=True)[0]
    fixed_replicates = _counts(parser, "--replicates", args.replicates, single=True)[0] if args.replicates else None
    rows = []
    device = jax.devices()[0]
    print(f"backend {jax.default_backend()} ({device.device_kind}), L = {num_samples}, best of {args.repeats}",
          flush=True)
    for problem_name in _names(args.problems):
        problem = problems.get(problem_name)
        replicates = fixed_replicates or DEFAULT_REPLICATES["real_data" if problem.dataset else "synthetic"]
        rows += bench_problem(problem, names, num_samples, replicates, args.repeats)
        print(f"  {problem_name}: done", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    _print_markdown(table, ["problem", "estimator", "replicates", "cost_evaluations", "compile_s", "best_ms",
                            "estimates_per_s", "floor_ms", "x_floor"])
    if args.output:
        table.assign(backend=jax.default_backend(), device_kind=device.device_kind).to_csv(args.output, index=False)
    return 0


def _scaling_main(parser, args, argv) -> int:
    names = _names(args.estimators)
    replicates = _counts(parser, "--replicates", args.replicates) if args.replicates else SCALING_REPLICATES
    num_samples = _counts(parser, "--num-samples", args.num_samples) if args.num_samples else SCALING_NUM_SAMPLES
    device = jax.devices()[0]
    print(f"backend {jax.default_backend()} ({device.device_kind}), {len(jax.devices())} device(s), "
          f"R in {list(replicates)}, L in {list(num_samples)}, best of {args.repeats}", flush=True)
    rows = []
    for problem_name in _names(args.problems):
        rows += scaling_rows(problems.get(problem_name), names, replicates, num_samples, args.repeats)
        print(f"  {problem_name}: done", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    _print_markdown(table, ["problem", "estimator", "replicates", "num_samples", "samples", "best_ms",
                            "ns_per_sample", "compilations"])
    print()
    _print_markdown(scaling_slopes(table).reset_index(),
                    ["problem", "estimator", "slope", "ns_per_sample_min", "ns_per_sample_max",
                     "ns_per_sample_most_work", "spread"])
    if args.output:
        table.assign(backend=jax.default_backend(), device_kind=device.device_kind).to_csv(args.output, index=False)
    return 0


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _counts(parser, option: str, text: str, single: bool = False) -> list[int]:
    """Positive integers from a comma-separated option, or the parser's error naming the option."""
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or (single and len(counts) != 1):
        parser.error(f"{option} takes {'a positive integer' if single else 'comma-separated positive integers'}"
                     f" (--scaling takes a list), got {text!r}.")
    return counts


if __name__ == "__main__":
    sys.exit(main())
