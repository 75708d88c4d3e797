"""Frozen dataclasses as pytrees whose structure includes their class.

``jax.tree_util.register_dataclass`` (JAX 0.10) makes the structures of two different dataclasses with
the same fields compare equal (``tree_structure(A()) == tree_structure(B())``), so a program that
``jax.jit`` compiled for one can be reused for the other when their hashes happen to collide in its
cache: a measurement of ``straight_through_gumbel`` returned ``gumbel_softmax``'s numbers that way.  The
registration here is a custom node, whose structure compares the class itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

import jax

T = TypeVar("T")


def register_frozen_dataclass(cls: type[T], data_fields: Sequence[str], meta_fields: Sequence[str]) -> type[T]:
    """Register the frozen dataclass ``cls`` as a pytree: ``data_fields`` are its children (leaves or
    subtrees), ``meta_fields`` static, part of its structure with the class.  Rebuilding an instance from
    its children skips ``__init__`` and ``__post_init__`` (the children may be tracers or placeholders)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass.")
    data, meta = tuple(data_fields), tuple(meta_fields)

    def flatten_with_keys(obj):
        return [(jax.tree_util.GetAttrKey(name), getattr(obj, name)) for name in data], _meta(obj)

    def flatten(obj):
        return [getattr(obj, name) for name in data], _meta(obj)

    def _meta(obj):
        return tuple(getattr(obj, name) for name in meta)

    def unflatten(meta_values, children):
        obj = object.__new__(cls)
        for name, value in zip(data, children):
            object.__setattr__(obj, name, value)
        for name, value in zip(meta, meta_values):
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls
