"""Throughput of each estimator against the floor: ``python -m experiments.bench``.

For each problem and estimator, R replicate L-sample estimates are computed by one jit-compiled program
(vmapped in chunks, as the runner does) and timed, best of several calls after a warm-up call, with
its compile time.  The floor draws the same random numbers (the same per-sample keys, the same sampler)
and evaluates the cost on them under jit, with no gradient: what any estimator must at least do.  An
estimator that evaluates the cost several times per sample (the measure-valued one: 4 per coordinate
plus 1; the delta method: its Taylor terms) is compared with a floor that makes as many evaluations, so
the ratio measures the estimator's overhead, not its design.

    python -m experiments.bench                                   # the default problems, L = 16
    python -m experiments.bench --problems gaussian_vae --num-samples 4 --replicates 200
    python -m experiments.bench --output bench.csv                # the table as CSV too
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import pandas as pd

import estimators as est
from experiments import problems
from experiments.measure import DEFAULT_CHUNK_ELEMENTS, chunk_size

DEFAULT_PROBLEMS = ("gaussian_cosine", "gaussian_quadratic_20d", "bernoulli_toy", "categorical_toy",
                    "logistic_regression", "gaussian_vae", "binary_vae")
#: Replicates per timed call: fewer on the real-data problems, whose every cost evaluation runs a model.
DEFAULT_REPLICATES = {"synthetic": 1_000, "real_data": 50}


def floor_fn(problem, evaluations: int, num_replicates: int, batch: int):
    """R × ``evaluations`` cost evaluations on samples drawn as the estimators draw them, no gradient."""

    def floor(params, key):
        def one(replicate_key):
            dist = problem.objective.distribution(params)
            samples = jax.vmap(dist.sample)(est.sample_keys(replicate_key, evaluations))
            return jnp.mean(problem.objective.costs(params, samples))

        return jax.lax.map(one, est.sample_keys(key, num_replicates), batch_size=batch)

    return floor


def estimator_fn(problem, estimator, num_samples: int, num_replicates: int, batch: int):
    """R L-sample estimates (value and gradient) of ``estimator``, from its initial state."""
    init, update = est.value_and_grad_with_state(problem.objective, estimator, num_samples)

    def estimates(params, key):
        state = init(params)
        one = lambda k: update(params, k, state)[:2]  # noqa: E731
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
        if estimator.incompatibility(dist) is not None or num_samples < estimator.min_num_samples:
            continue
        evaluations = estimator.cost_evaluations(num_samples, dist)
        batch = chunk_size(problem, estimator, num_samples, num_replicates, DEFAULT_CHUNK_ELEMENTS)
        if evaluations not in floors:
            floor_batch = chunk_size(problem, est.get("score_function"), evaluations, num_replicates,
                                     DEFAULT_CHUNK_ELEMENTS)
            floors[evaluations] = time_fn(floor_fn(problem, evaluations, num_replicates, floor_batch),
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--problems", default=",".join(DEFAULT_PROBLEMS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--estimators", default=",".join(est.names()), help="comma-separated (default: all)")
    parser.add_argument("--num-samples", type=int, default=16, help="L per estimate (default: %(default)s)")
    parser.add_argument("--replicates", type=int, default=None,
                        help=f"estimates per call (default: {DEFAULT_REPLICATES['synthetic']}, "
                        f"{DEFAULT_REPLICATES['real_data']} on real-data problems)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls, best kept (default: %(default)s)")
    parser.add_argument("--output", default=None, metavar="CSV", help="also write the table to this CSV file")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.estimators.split(",") if n.strip()]
    for name in names:
        est.get(name)  # unknown names fail here, naming the known ones
    rows = []
    device = jax.devices()[0]
    print(f"backend {jax.default_backend()} ({device.device_kind}), L = {args.num_samples}, best of {args.repeats}",
          flush=True)
    for problem_name in [p.strip() for p in args.problems.split(",") if p.strip()]:
        problem = problems.get(problem_name)
        replicates = args.replicates or DEFAULT_REPLICATES["real_data" if problem.dataset else "synthetic"]
        rows += bench_problem(problem, names, args.num_samples, replicates, args.repeats)
        print(f"  {problem_name}: done", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    columns = ["problem", "estimator", "replicates", "cost_evaluations", "compile_s", "best_ms", "estimates_per_s",
               "floor_ms", "x_floor"]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in table[columns].itertuples(index=False):
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |")
    if args.output:
        table.assign(backend=jax.default_backend(), device_kind=device.device_kind).to_csv(args.output, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
