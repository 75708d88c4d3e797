"""Estimators by name: the names the CLI, result files and plots use.

Each estimator module registers its own estimators when it is imported, with :func:`register` (as a
class decorator, or called with a factory for a named configuration such as ``score_function_loo``);
``import estimators`` imports every module of the package (:func:`discover`), so adding an estimator
is adding one module.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from estimators.base import GradientEstimator

T = TypeVar("T")

#: The families, in the order :func:`~estimators.names` lists them (and tables and legends show them).
FAMILIES = ("pathwise", "score_function", "control_variate", "measure_valued", "relaxation", "antithetic",
            "conditional_relaxation", "importance_weighted")

_FACTORIES: dict[str, Callable[..., GradientEstimator]] = {}
_FAMILY: dict[str, str] = {}
_CLASSES: dict[str, type] = {}


def register(name: str, factory: Callable[..., GradientEstimator] | None = None, *, family: str) -> Any:
    """Register ``factory`` (a class or a function; its keyword arguments are the estimator's options)
    under ``name``, in one of the :data:`FAMILIES`.  Without ``factory``, a class decorator:
    ``@register("pathwise", family="pathwise")``.  A registered class is also exported from the
    top-level package under its own name."""
    if family not in FAMILIES:
        raise ValueError(f"Unknown estimator family {family!r}; the families are {', '.join(FAMILIES)}.")

    def add(target: T) -> T:
        if name in _FACTORIES and _FACTORIES[name] is not target:
            raise ValueError(f"Estimator name {name!r} is registered twice; each name must be unique.")
        _FACTORIES[name] = target  # type: ignore[assignment]
        _FAMILY[name] = family
        if inspect.isclass(target):
            _CLASSES[target.__name__] = target
        return target

    return add if factory is None else add(factory)


def export(cls: T) -> T:
    """Export a class from the top-level package without registering a name for it (an estimator that
    is only registered in configurations, such as the delta method)."""
    _CLASSES[cls.__name__] = cls  # type: ignore[attr-defined,assignment]
    return cls


def discover() -> None:
    """Import every module of the ``estimators`` package, so that each registers its estimators."""
    package = importlib.import_module("estimators")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"estimators.{module.name}")


def classes() -> dict[str, type]:
    """The estimator classes the modules export, by class name."""
    return dict(_CLASSES)


def names() -> list[str]:
    """The registered estimator names, family by family (:data:`~estimators.registry.FAMILIES`), each
    family's in the order its modules register them."""
    return sorted(_FACTORIES, key=lambda name: FAMILIES.index(_FAMILY[name]))


def family(name: str) -> str:
    """The family (one of :data:`FAMILIES`) the estimator ``name`` was registered in."""
    _check_name(name)
    return _FAMILY[name]


def options(name: str) -> list[str]:
    """The keyword options the estimator ``name`` accepts (``get(name, **options)``)."""
    _check_name(name)
    return [p for p in inspect.signature(_FACTORIES[name]).parameters if p not in ("baseline", "base")]


def _check_name(name: str) -> None:
    if name not in _FACTORIES:
        close = difflib.get_close_matches(str(name), _FACTORIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown estimator {name!r}.{hint} Known estimators: {', '.join(names())}.")


def get(name: str, **kwargs) -> GradientEstimator:
    """The estimator registered as ``name``, built with its options (for example ``temperature=0.5``)."""
    known = options(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        accepted = ", ".join(known) if known else "none"
        raise ValueError(
            f"Estimator {name!r} has no option {', '.join(map(repr, unknown))}; its options are: {accepted}."
        )
    return _FACTORIES[name](**kwargs)


def supporting(dist) -> list[str]:
    """The registered estimators that can serve ``dist`` (with their default options)."""
    return [name for name in names() if get(name).supports(dist) is None]
