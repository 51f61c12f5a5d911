"""``freeze(state)``: a hashable, canonical stand-in for a model state, for memoisation.

The search remembers the (linearized ops, state) pairs it has seen, so states must be hashable.
The rbee model's :class:`~rbee_props.model.ClusterState` holds dicts and is not; rather than
change the model, the checker hashes a frozen copy: attrs and dataclass instances become
(class, field, ...) tuples, mappings and sets become tagged frozensets (order-free, as their
equality is), lists and tuples tagged tuples. Two states freeze equal iff they are equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Set
from typing import Any, cast

import attrs

__all__ = ["freeze"]

_ATOMS = (str, int, float, bytes, type(None))


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def freeze(value: Any) -> Hashable:
    """A hashable value equal for equal inputs and different for different ones.

    Hashable values are returned as they are (a frozen attrs class of strings is its own frozen
    form). Containers are tagged with their kind so a list never equals a set of the same items.

    Raises:
        TypeError: ``value`` holds an unhashable object that is no container, attrs class or
            dataclass; give it ``__hash__`` and ``__eq__``, or pass ``freeze=`` to the checker.
    """
    if isinstance(value, _ATOMS):
        return cast(Hashable, value)
    cls = type(value)
    if attrs.has(cls):
        if _hashable(value):
            return cast(Hashable, value)
        return (cls, *(freeze(getattr(value, f.name)) for f in attrs.fields(cls)))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if _hashable(value):
            return cast(Hashable, value)
        return (cls, *(freeze(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, Mapping):
        return (Mapping, frozenset((freeze(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, Set):
        return (Set, frozenset(freeze(v) for v in value))
    if isinstance(value, list | tuple):
        return (tuple, tuple(freeze(v) for v in value))
    if _hashable(value):
        return cast(Hashable, value)
    msg = (
        f"cannot freeze a {cls.__name__} ({value!r:.80}) for memoisation: expected an attrs "
        "class, dataclass, mapping, set, sequence or hashable value; pass freeze= to the checker"
    )
    raise TypeError(msg)
