"""The experiments: each module of this package defines one :class:`~experiments.engine.experiment.Experiment`
and registers it with :func:`register`; :func:`get` and :func:`names` see every module's."""

from __future__ import annotations

import importlib
import pkgutil

from experiments.engine.experiment import Experiment

_EXPERIMENTS: dict[str, Experiment] = {}
#: The order experiments are listed in: the headline one first, then by module name.
_FIRST = ("variance_vs_L",)


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry (a module calls it once, at import) and return it."""
    existing = _EXPERIMENTS.get(experiment.name)
    if existing is not None and existing is not experiment:
        raise ValueError(f"An experiment named {experiment.name!r} is already registered.")
    _EXPERIMENTS[experiment.name] = experiment
    return experiment


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def names() -> list[str]:
    """The registered experiments' names."""
    _discover()
    return sorted(_EXPERIMENTS, key=lambda name: (name not in _FIRST, name.lower()))


def get(name: str) -> Experiment:
    """The experiment called ``name``; a ValueError naming the known ones otherwise."""
    _discover()
    if name not in _EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; known experiments: {', '.join(names())}.")
    return _EXPERIMENTS[name]
