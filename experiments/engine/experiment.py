"""What an experiment is: one object that says everything the command line, the figures and the report
need to know about it.

Each module of :mod:`experiments.catalog` defines one :class:`Experiment` and registers it; ``python -m
experiments.run`` builds its sub-commands from the registry, :mod:`analysis.figures` draws the figures it
declares and :mod:`analysis.report` writes the sections it names.  Figures are declared as data: a
:class:`LinePlot` is drawn by a generic function of the analysis package (no drawing code in the
experiment), and a figure without one names a drawing function that :mod:`analysis.figures` has.  So
adding an experiment is one module, and only the command line of ``experiments`` imports ``analysis``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from experiments.engine.settings import RunSettings

#: The blocks a report section can hold, in the order an experiment lists them: its recommendation
#: table (MSE × time per problem and L), its equal-cost ranking (MSE per problem and budget of cost
#: evaluations), its temperature table, its training table, its figures, and the table of measured against
#: exact values.
REPORT_BLOCKS = ("recommendation", "equal_cost", "temperature", "training", "figures", "agreement")


@dataclasses.dataclass(frozen=True)
class LinePlot:
    """A figure of one measured line per estimator, ``y`` against ``x`` with its 95% band (the ``<y>_se``
    column) and the ``exact`` column dotted where the run knows it, one panel per value of ``panels``
    (the ``all`` parameter group left out); one row of panels per value of the first column of ``panels``."""

    x: str
    y: str = "variance"
    panels: tuple[str, ...] = ("problem", "parameter")
    exact: str | None = "exact_variance"
    log_x: bool = True
    log_y: bool = True
    x_label: str = ""
    y_label: str = "variance of the estimate"
    title: str = ""


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """One figure of a run: its file name (``figures/<name>.png``), its caption in the report, and how it
    is drawn: ``plot``, or, where that is None, the function ``name`` of :mod:`analysis.figures`."""

    name: str
    caption: str
    plot: LinePlot | None = None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment: what it is called and says, its settings, its command-line options, how it runs, and
    what its figures and report show.

    ``add_options(parser)`` adds its options to its sub-command; ``make_config(args, given)`` builds its
    ``config`` from the parsed options (``given``: the options the user wrote, for options that exclude
    others) and raises ValueError, naming the option, for values it cannot use; ``run(config, device=None,
    progress=True, resume=None)`` measures into a new run folder and returns its path.
    """

    name: str
    summary: str  #: one line, for ``python -m experiments.run --help``
    description: str  #: the sub-command's ``--help``
    title: str  #: the report section's title
    config: type[RunSettings]
    add_options: Callable[[argparse.ArgumentParser], None]
    make_config: Callable[[argparse.Namespace, Sequence[str]], RunSettings]
    run: Callable[..., Path]
    figures: tuple[FigureSpec, ...] = ()
    report: tuple[str, ...] = ("figures", "agreement")
    #: Whether ``--resume`` can continue an interrupted run (its run folder records finished cells).
    resumable: bool = True

    def __post_init__(self):
        unknown = [block for block in self.report if block not in REPORT_BLOCKS]
        if unknown:
            raise ValueError(f"Experiment {self.name!r}: unknown report blocks {unknown}; known: {REPORT_BLOCKS}.")
        if not issubclass(self.config, RunSettings):
            raise TypeError(f"Experiment {self.name!r}: its config must extend RunSettings.")
