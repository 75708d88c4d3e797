"""The settings every experiment shares, written to its run folder's config.json; each experiment's
``Config`` extends one of them with what it sweeps."""

from __future__ import annotations

import dataclasses

from experiments.engine.measure import DEFAULT_CHUNK_ELEMENTS, DEFAULT_WARMUP_STEPS


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What any run has: its seed, where it writes, where and at what precision it computes."""

    seed: int = 0
    output_dir: str = "results"
    device: str = "auto"
    precision: str = "float32"
    figures: bool = True

    def validate(self) -> None:
        """Raise ValueError, naming the option and a fix, for any value the run cannot use."""
        if self.precision not in ("float32", "float64"):
            raise ValueError(f"--precision must be float32 or float64, got {self.precision!r}.")
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"--device must be auto, cpu or gpu, got {self.device!r}.")


@dataclasses.dataclass(frozen=True)
class MeasurementSettings(RunSettings):
    """What a run that measures cells of R replicate L-sample estimates has besides."""

    replicates: int = 10_000
    #: Cells whose R estimates would evaluate the cost more often than this use fewer replicates (at
    #: least ``min_replicates``); each row records its R.  It keeps estimators that evaluate the cost
    #: many times per sample (measure-valued: 4 per coordinate) from dominating a run.
    max_cost_evaluations: int = 2**25
    min_replicates: int = 200
    #: A time budget for each program's estimates (a cell, or the cells of a shared L grid), compilation
    #: excluded, or None for none: its replicates run in rounds of about ``min_replicates`` until R, or until
    #: the next round would overrun the budget (at least one round); each row records its R.  Cells that
    #: cost more than the cost evaluations count (a network trained on every pair of samples, a costly
    #: model) then take no more than their share of a run.  R then depends on the machine's speed; the
    #: estimates are the first R of those a run without a budget makes.
    max_seconds_per_cell: float | None = None
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    #: How stateful estimators warm up: "shared" (one chain; every replicate starts from its state)
    #: or "per_replicate" (a chain per replicate: i.i.d. replicates, warmup_steps + 1 times the cost).
    warmup: str = "shared"
    #: Devices the replicates are split across: the first N of the chosen platform's, or all (None).
    num_devices: int | None = None
    #: Measure the L grid of an estimator with per-sample statistics with one program (the same estimates;
    #: each L's time per estimate is then the shared program's, shared out by cost evaluations) rather
    #: than a program per L (each L timed on its own, at a compilation per L).
    share_programs: bool = True
    #: XLA's backend optimization level for the timed programs (on CPU, LLVM's -O level), or None for XLA's
    #: default (3).  Level 1 compiles the benchmark's programs in about 70% of the time (compile 186 s ->
    #: 129 s for the default run on 2 CPU cores) with the same total compute (84 s either way) and times per
    #: estimate whose median ratio to level 3's, 1.08, is inside the spread between two runs at one level
    #: (0.34-2.5 per cell); the reference profiles keep XLA's default.
    xla_optimization_level: int | None = 1
    #: Whether XLA's CPU backend compiles fusions with its MLIR fusion emitters (its default).  Without them
    #: the programs compile in about 60% of the time (the ci profile: 105 s -> 61 s of XLA compiling on 2
    #: CPU cores) to the same values within float32 rounding, and most run as fast, but a reduction over a data
    #: axis can run 3 times slower (logistic regression's score function); so only the ci profile, which
    #: reads values and never times, turns them off.  No effect on other platforms.
    xla_fusion_emitters: bool = True

    @property
    def compiler_options(self) -> dict[str, int | bool] | None:
        """The XLA compiler options of the timed programs (None: XLA's defaults)."""
        options: dict[str, int | bool] = {}
        if self.xla_optimization_level is not None:
            options["xla_backend_optimization_level"] = self.xla_optimization_level
        if not self.xla_fusion_emitters:
            options["xla_cpu_use_fusion_emitters"] = False
        return options or None

    def validate(self) -> None:
        # A variance's standard error is the spread of the replicates' squared deviations from their mean,
        # which are all equal at R = 2: it would come out 0 whatever the variance.
        if self.replicates < 3:
            raise ValueError(f"--replicates must be at least 3 to give a variance a standard error, got "
                             f"{self.replicates}; the report compares with exact values from R = 100.")
        if self.min_replicates < 3:
            raise ValueError(f"min_replicates must be at least 3 to give a variance a standard error, got "
                             f"{self.min_replicates}.")
        if self.max_seconds_per_cell is not None and not self.max_seconds_per_cell > 0:
            raise ValueError(f"--max-seconds-per-cell must be positive (or 'none'), got {self.max_seconds_per_cell}.")
        if self.chunk_elements < 1:
            raise ValueError(f"chunk_elements must be positive, got {self.chunk_elements}.")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be non-negative, got {self.warmup_steps}.")
        if self.warmup not in ("shared", "per_replicate"):
            raise ValueError(f"warmup must be 'shared' or 'per_replicate', got {self.warmup!r}.")
        if self.xla_optimization_level not in (None, 0, 1, 2, 3):
            raise ValueError(f"--xla-optimization-level must be 0, 1, 2, 3 or default, got "
                             f"{self.xla_optimization_level!r}.")
        if self.num_devices is not None and self.num_devices < 1:
            raise ValueError(f"--num-devices must be positive, got {self.num_devices}.")
        super().validate()
