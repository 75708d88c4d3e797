"""Throughput of each estimator against the floor: ``python -m experiments.bench``.

The floor draws the same random numbers (the same per-sample keys, the same sampler) and evaluates
the cost on them under jit, with no gradient: what any estimator must at least do.  Each estimator
is timed on R replicate estimates at once (vmapped, jit-compiled once), best of several repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import estimators as est
from experiments import problems
from experiments.measure import DEFAULT_CHUNK_ELEMENTS, chunk_size


def floor_fn(problem, num_samples: int, num_replicates: int):
    """R × L cost evaluations on the same samples the estimators draw, with no gradient."""
    batch = chunk_size(problem, est.get("pathwise"), num_samples, num_replicates, DEFAULT_CHUNK_ELEMENTS)

    def floor(params, key):
        def one(replicate_key):
            dist = problem.objective.distribution(params)
            samples = jax.vmap(dist.sample)(est.sample_keys(replicate_key, num_samples))
            return jnp.mean(problem.objective.costs(params, samples))

        return jax.lax.map(one, est.sample_keys(key, num_replicates), batch_size=batch)

    return floor


def estimator_fn(problem, estimator, num_samples: int, num_replicates: int):
    init, update = est.value_and_grad_with_state(problem.objective, estimator, num_samples)
    batch = chunk_size(problem, estimator, num_samples, num_replicates, DEFAULT_CHUNK_ELEMENTS)

    def estimates(params, key):
        state = init(params)  # stateful estimators are timed from their initial state
        one = lambda k: update(params, k, state)[:2]  # noqa: E731
        return jax.lax.map(one, est.sample_keys(key, num_replicates), batch_size=batch)

    return estimates


def time_fn(fn, params, key, repeats: int) -> tuple[float, float, float]:
    """(compile seconds, best seconds per call, median seconds per call)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(params, key).compile()
    compile_time = time.perf_counter() - start
    jax.block_until_ready(compiled(params, key))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, key))
        times.append(time.perf_counter() - start)
    return compile_time, min(times), statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", default="gaussian_quadratic_100d", help="problem name (default: %(default)s)")
    parser.add_argument("--estimators", default=",".join(est.names()), help="comma-separated (default: all)")
    parser.add_argument("--num-samples", type=int, default=1, help="L per estimate (default: %(default)s)")
    parser.add_argument("--replicates", type=int, default=10_000, help="estimates per call (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls, best kept (default: %(default)s)")
    args = parser.parse_args(argv)

    problem = problems.get(args.problem)
    key = jax.random.key(0)
    rows = [("floor (sample + cost, no gradient)", floor_fn(problem, args.num_samples, args.replicates))]
    for name in args.estimators.split(","):
        estimator = est.get(name.strip())
        if estimator.incompatibility(problem.distribution()) is None and args.num_samples >= estimator.min_num_samples:
            rows.append((estimator.name, estimator_fn(problem, estimator, args.num_samples, args.replicates)))

    print(f"{problem.name}: {args.replicates} estimates of L={args.num_samples} per call, "
          f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), best of {args.repeats}")
    print(f"{'':36s} {'compile s':>10s} {'best ms':>9s} {'median ms':>10s} {'estimates/s':>13s} {'× floor':>8s}")
    floor_time = None
    for label, fn in rows:
        compile_time, best, median = time_fn(fn, problem.params, key, args.repeats)
        floor_time = floor_time or best
        print(f"{label:36s} {compile_time:10.2f} {best * 1e3:9.2f} {median * 1e3:10.2f} "
              f"{args.replicates / best:13.3g} {best / floor_time:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
