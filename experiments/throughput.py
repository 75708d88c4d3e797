"""Per-sample throughput against hand-written JAX: ``python -m experiments.throughput``.

How fast the library draws gradient estimates where a user writes them out, on three workloads (a 100-D
Gaussian quadratic, Bayesian logistic regression on all 569 × 31 breast-cancer examples, whose cost
reduces over a data axis, and a 200-D Bernoulli toy), in two forms:

- ``per_sample``: N single-sample estimates, ``jax.vmap(est.grad(objective, name, 1))`` over N keys (how
  a user draws many estimates, and how the runner's replicates are vmapped);
- ``mean``: one N-sample estimate, ``est.grad(objective, name, N)``.

Each is timed beside the hand-written ``jax.grad`` of the same estimator's surrogate with the same
sampler (pathwise: the cost at a reparameterized sample; score function: the cost plus its stopped value
times log q at a stopped sample), vmapped the same way, and ``x_hand_written`` is the library's time over
the hand-written one: 1 is the floor.  A library that evaluated the cost in a layout no one would write
(a vmap over a one-sample axis inside the user's vmap over keys: [569, N, 1] before a transpose) shows as
a ratio well above 1 on logistic regression.

    python -m experiments.throughput                       # N = 4096, best of 5
    python -m experiments.throughput --num-estimates 1024 --output throughput.csv
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import estimators as est
from experiments.bench import time_fn

ESTIMATORS = ("pathwise", "score_function")
FORMS = ("per_sample", "mean")


def workloads() -> dict:
    """{name: (objective, params)} of the three workloads."""
    from experiments.problems import data
    from experiments.problems.gaussian_nd import gaussian_quadratic_nd
    from experiments.problems.logistic_regression import LogisticRegression

    split = data.breast_cancer()
    everything = (np.concatenate([split.train_x, split.held_out_x]), np.concatenate([split.train_y, split.held_out_y]))
    model = LogisticRegression()
    quadratic = gaussian_quadratic_nd(100)
    # The Bernoulli toy's cost in 200 dimensions (its problem enumerates 2^dim outcomes for exact answers).
    toy = est.Objective(dist=lambda q: est.Bernoulli(q["logits"]), cost=lambda q, b: jnp.sum((b - 0.45) ** 2))
    return {
        "gaussian_quadratic_100d": (quadratic.objective, quadratic.params),
        "logistic_regression_569": (model.objective(everything), model.init_params()),
        "bernoulli_toy_200d": (toy, {"logits": jnp.linspace(-1.0, 1.0, 200)}),
    }


def hand_written_gradient(objective: est.Objective, name: str):
    """``(params, key) -> gradient`` of one sample, written out with ``jax.grad``."""
    if name == "pathwise":
        return jax.grad(lambda p, key: objective.cost(p, objective.distribution(p).rsample(key)))

    def score_function(params, key):
        x = jax.lax.stop_gradient(objective.distribution(params).sample(key))

        def surrogate(p):
            cost = objective.cost(p, x)
            return cost + jax.lax.stop_gradient(cost) * objective.distribution(p).log_prob(x)

        return jax.grad(surrogate)(params)

    return score_function


def estimates_fn(objective: est.Objective, name: str, form: str, implementation: str, num_estimates: int):
    """``(params, key) -> gradients``: N single-sample estimates, or one N-sample estimate."""
    if implementation == "library":
        if form == "per_sample":
            one = est.grad(objective, name, 1)
            return lambda params, key: jax.vmap(one, in_axes=(None, 0))(params, jax.random.split(key, num_estimates))
        return est.grad(objective, name, num_estimates)
    one = hand_written_gradient(objective, name)
    per_sample = lambda params, key: jax.vmap(one, in_axes=(None, 0))(params, jax.random.split(key, num_estimates))
    if form == "per_sample":
        return per_sample
    return lambda params, key: jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), per_sample(params, key))


def throughput_rows(num_estimates: int, repeats: int, workload_names=None, estimator_names=ESTIMATORS) -> list[dict]:
    """One row per (workload, applicable estimator, form, implementation)."""
    rows = []
    key = jax.random.key(0)
    for workload, (objective, params) in workloads().items():
        if workload_names is not None and workload not in workload_names:
            continue
        dist = objective.distribution(params)
        for name in estimator_names:
            if est.get(name).supports(dist) is not None:
                continue
            for form in FORMS:
                times = {}
                for implementation in ("library", "hand_written"):
                    fn = estimates_fn(objective, name, form, implementation, num_estimates)
                    compile_time, best, _ = time_fn(fn, params, key, repeats)
                    times[implementation] = best
                    rows.append({"workload": workload, "estimator": name, "form": form,
                                 "implementation": implementation, "num_estimates": num_estimates,
                                 "compile_s": compile_time, "best_ms": best * 1e3,
                                 "samples_per_s": num_estimates / best})
                rows[-2]["x_hand_written"] = times["library"] / times["hand_written"]
                rows[-1]["x_hand_written"] = 1.0
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.throughput", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--num-estimates", type=int, default=4096,
                        help="N: single-sample estimates per call, or samples of the mean (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls, best kept (default: %(default)s)")
    parser.add_argument("--workloads", default=None, help="comma-separated (default: all three)")
    parser.add_argument("--output", default=None, metavar="CSV", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    if args.num_estimates < 1 or args.repeats < 1:
        parser.error(f"--num-estimates and --repeats take positive integers, got {args.num_estimates} and "
                     f"{args.repeats}.")
    names = None if args.workloads is None else [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = sorted(set(names or ()) - set(workloads()))
    if unknown:
        parser.error(f"Unknown workloads {', '.join(unknown)}; known: {', '.join(workloads())}.")
    device = jax.devices()[0]
    print(f"backend {jax.default_backend()} ({device.device_kind}), N = {args.num_estimates}, best of {args.repeats}",
          file=sys.stderr, flush=True)
    table = pd.DataFrame(throughput_rows(args.num_estimates, args.repeats, names))
    columns = ["workload", "estimator", "form", "implementation", "best_ms", "samples_per_s", "x_hand_written"]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in table[columns].itertuples(index=False):
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |")
    if args.output:
        table.assign(backend=jax.default_backend(), device_kind=device.device_kind).to_csv(args.output, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
