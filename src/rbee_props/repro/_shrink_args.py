"""Shrinking inside a step: drop elements of the lists in a program step's arguments.

Deleting whole steps cannot shrink generated data that one rule takes, such as a concurrent
burst (a list of lanes, each a list of ops): the burst is one step. This pass runs greedy delta
debugging on every list inside a step's arguments, outer lists before inner ones (whole lanes,
then ops within each lane), keeping a removal when the same invariant still fails. Dicts are
records and keep their keys; only lists lose elements.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rbee_props.machines._context import Failure

__all__ = ["drop_elements"]

Program = Sequence[Mapping[str, Any]]


def _lists_in(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to the lists inside an argument value (dict keys and list positions)."""
    if isinstance(value, list):
        yield path
        for position, item in enumerate(value):
            yield from _lists_in(item, (*path, position))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _lists_in(item, (*path, key))


def _with_list(
    program: list[Mapping[str, Any]], index: int, path: tuple[Any, ...], items: list[Any]
) -> list[Mapping[str, Any]]:
    """``program`` with the list at ``path`` (``("args", name, ...)``) of step ``index``
    replaced by ``items``."""
    step = copy.deepcopy(dict(program[index]))
    parent: Any = step
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = items
    return [*program[:index], step, *program[index + 1 :]]


def drop_elements(
    current: list[Mapping[str, Any]],
    still_fails: Callable[[Program], Failure | None],
    deadline: float,
) -> tuple[list[Mapping[str, Any]], Failure | None]:
    """Drop elements of the lists in each step's arguments while ``still_fails`` (see the
    module docstring); the program and the last failure found (None: nothing dropped)."""
    best: Failure | None = None
    for index in range(len(current)):
        depth = 1
        while time.monotonic() < deadline:
            paths = list(_lists_in(dict(current[index].get("args") or {})))
            if not any(len(path) >= depth for path in paths):
                break
            for path in (p for p in paths if len(p) == depth):
                current, found = _shrink_list(current, index, ("args", *path), still_fails)
                best = found or best
            depth += 1
    return current, best


def _shrink_list(
    current: list[Mapping[str, Any]],
    index: int,
    path: tuple[Any, ...],
    still_fails: Callable[[Program], Failure | None],
) -> tuple[list[Mapping[str, Any]], Failure | None]:
    """Greedy delta debugging on the list at ``path`` of step ``index`` (``still_fails``
    answers None once the deadline passed, which ends it)."""
    best: Failure | None = None
    size = max(len(_at(current[index], path)) // 2, 1)
    while size >= 1:
        position, changed = 0, False
        while position < len(items := _at(current[index], path)):
            kept = items[:position] + items[position + size :]
            candidate = _with_list(current, index, path, kept)
            failure = still_fails(candidate)
            if failure is not None:
                current, best, changed = candidate, failure, True
            else:
                position += size
        if not changed:
            size //= 2
    return current, best


def _at(step: Mapping[str, Any], path: tuple[Any, ...]) -> list[Any]:
    value: Any = step
    for key in path:
        value = value[key]
    return list(value)
