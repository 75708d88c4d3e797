"""Runs across hosts: ``jax.distributed.initialize`` when the environment describes a cluster.

JAX's own machinery does the work: once initialized, ``jax.devices()`` lists every host's devices, the
runner's replicate mesh spans them all, each host computes its devices' share, and the results are
gathered to every host (:func:`experiments.engine.measure.measure_cell`); only process 0 writes the run folder.
The standard environments are recognized: ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID``), or a multi-task Slurm or Open MPI job, whose variables JAX reads itself.
"""

from __future__ import annotations

import os

import jax


def cluster_arguments(environ=os.environ) -> dict | None:
    """The arguments of ``jax.distributed.initialize`` that the environment gives, or None where it
    describes no cluster (a single process)."""
    if environ.get("JAX_COORDINATOR_ADDRESS"):
        arguments = {"coordinator_address": environ["JAX_COORDINATOR_ADDRESS"]}
        for name, variable in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
            if environ.get(variable):
                arguments[name] = int(environ[variable])
        return arguments
    for variable in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        if int(environ.get(variable, "1") or 1) > 1:
            return {}  # JAX detects the cluster from the scheduler's variables
    return None


def initialize_if_configured(environ=os.environ) -> bool:
    """Initialize JAX's distributed runtime where the environment describes a cluster; True if it did."""
    arguments = cluster_arguments(environ)
    if arguments is None:
        return False
    jax.distributed.initialize(**arguments)
    return True


def is_writer() -> bool:
    """Whether this process writes results (process 0; the only one in a single-host run)."""
    return jax.process_index() == 0
