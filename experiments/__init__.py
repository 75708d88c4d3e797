"""Problems with exact answers, the experiments that measure estimators on them, the CLI ``run``, and
:func:`compare`, which ranks the estimators on a user's own objective."""

__all__ = ["Comparison", "compare"]


def __getattr__(name):  # imported on first use: ``import experiments.problems`` stays light
    if name in __all__:
        from experiments import comparison

        return getattr(comparison, name)
    raise AttributeError(f"module 'experiments' has no attribute {name!r}")
