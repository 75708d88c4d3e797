"""The replicate axis split across devices: the same estimates on 1, 2 and 4 (CPU) devices.

JAX fixes the number of host devices when it starts, so the checks run in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import estimators as est
from experiments import problems

SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    import estimators as est
    from experiments import problems
    from experiments.engine.measure import measure_cell, replicate_mesh

    key = jax.random.key(3)
    meshes = {n: replicate_mesh(jax.devices()[:n]) for n in (1, 2, 4)}
    report = []
    for name, replicates in (("gaussian_elbo", 96), ("categorical_toy", 96)):
        problem = problems.get(name)
        for estimator in map(est.get, est.names()):
            if estimator.supports(problem.distribution()) is not None:
                continue
            runs = {n: measure_cell(problem, estimator, 4, replicates, key, mesh=mesh) for n, mesh in meshes.items()}
            leaves = {n: [m.values, *jax.tree_util.tree_leaves(m.grads)] for n, m in runs.items()}
            scale = max(float(np.max(np.abs(x))) for x in leaves[4])
            report.append({
                "cell": f"{name}/{estimator.name}",
                "shapes": [list(x.shape) for x in leaves[4]],
                "devices": [runs[n].devices for n in (1, 2, 4)],
                "chunks": [runs[n].chunk_size for n in (1, 2, 4)],
                "compilations": [runs[n].compilations for n in (1, 2, 4)],
                "identical_2_4": all(np.array_equal(a, b) for a, b in zip(leaves[2], leaves[4])),
                "identical_1_4": all(np.array_equal(a, b) for a, b in zip(leaves[1], leaves[4])),
                "max_difference_1_4": max(float(np.max(np.abs(a - b))) for a, b in zip(leaves[1], leaves[4])) / scale,
            })
    print(json.dumps(report))
""")


@pytest.fixture(scope="module")
def device_report():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_replicate_is_the_same_on_two_and_four_devices(device_report):
    applying = [f"{name}/{estimator.name}" for name in ("gaussian_elbo", "categorical_toy")
                for estimator in map(est.get, est.names())
                if estimator.supports(problems.get(name).distribution()) is None]
    assert [cell["cell"] for cell in device_report] == applying  # every estimator that applies, on both problems
    for cell in device_report:
        assert cell["devices"] == [1, 2, 4], cell
        assert len(set(cell["chunks"])) == 1, cell  # the chunk does not depend on the devices
        assert cell["identical_2_4"], cell


def test_one_device_agrees_with_four_to_float_rounding(device_report):
    # One device compiles without XLA's partitioner, whose fusions can round a formula differently in
    # its last bits; replicates are otherwise the same draws and the same arithmetic.
    for cell in device_report:
        assert cell["max_difference_1_4"] <= 1e-6, cell
    identical = sum(cell["identical_1_4"] for cell in device_report)
    print(f"{identical} of {len(device_report)} cells bitwise identical on 1 and 4 devices; compilations",
          sorted({tuple(cell["compilations"]) for cell in device_report}))


def test_one_program_per_cell(device_report):
    # No recompilation per replicate, chunk or device: a cell compiles its program once, and a stateful
    # estimator its initial state with its shared warm-up chain once more.
    for cell in device_report:
        assert max(cell["compilations"]) <= 2, cell
