"""The reference checker: try every order of the ops that respects real time. Small inputs only.

Deliberately naive, to be obviously right: no memoisation, no just-in-time pruning, no
partitions (``Entry.key`` is ignored, so agreeing with it also shows that splitting per key was
sound for the model at hand). For each choice of the indeterminate ops that took effect
(every subset), it enumerates every permutation of the chosen ops in which no op comes before
one that completed before it was invoked, and replays the whole permutation through the model,
keeping every possible state. Cost grows like n!: tests and the benchmark use it up to 8 ops.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from rbee_props.checker._entry import Entry, precedes
from rbee_props.checker._results import Linearizable, NotLinearizable, Result, Unknown
from rbee_props.checker._search import StepFn

__all__ = ["brute_force"]

S = TypeVar("S")
C = TypeVar("C")


def _orders(ops: Sequence[Entry[Any]]) -> Iterator[tuple[int, ...]]:
    """Every permutation of ``range(len(ops))`` that respects real-time order."""
    n = len(ops)
    before = [frozenset(j for j in range(n) if precedes(ops[j], ops[i])) for i in range(n)]

    def extend(placed: tuple[int, ...], left: frozenset[int]) -> Iterator[tuple[int, ...]]:
        if not left:
            yield placed
            return
        done = frozenset(placed)
        for i in sorted(left):
            if before[i] <= done:
                yield from extend((*placed, i), left - {i})

    yield from extend((), frozenset(range(n)))


def _replay(ops: Sequence[Entry[C]], order: Sequence[int], initial: S, step: StepFn[S, C]) -> bool:
    """Whether the model accepts every op of ``order`` in turn, from some state path."""
    states = [initial]
    for i in order:
        after: list[S] = []
        for state in states:
            for nxt in step(state, ops[i].call, ops[i].outcome):
                if nxt not in after:
                    after.append(nxt)
        if not after:
            return False
        states = after
    return True


def brute_force(
    entries: Iterable[Entry[C]],
    initial: S,
    step: StepFn[S, C],
    *,
    max_orders: int = 2_000_000,
) -> Result:
    """Decide linearizability by enumeration (the reference for the real checker).

    Returns :class:`Linearizable` with the first order found, :class:`NotLinearizable` whose
    window is every op (enumeration learns nothing smaller), or :class:`Unknown` once more than
    ``max_orders`` orders were replayed.
    """
    ops = sorted(entries, key=lambda e: e.invoke)
    if len({e.id for e in ops}) != len(ops):
        msg = "two entries share an id; give every op a distinct id"
        raise ValueError(msg)
    det = [e for e in ops if not e.indeterminate]
    indet = [e for e in ops if e.indeterminate]
    tried = 0
    for size in range(len(indet) + 1):
        for chosen in itertools.combinations(indet, size):
            sub = sorted([*det, *chosen], key=lambda e: e.invoke)
            for order in _orders(sub):
                tried += 1
                if tried > max_orders:
                    return Unknown(f"more than {max_orders} orders to try", tried)
                if _replay(sub, order, initial, step):
                    return Linearizable([sub[i].id for i in order])
    return NotLinearizable(
        window=[e.id for e in ops],
        explanation=(
            f"none of the {tried} orders of these {len(ops)} ops that respect real time "
            "(with any subset of the indeterminate ones) is accepted by the model"
        ),
        prefix=(),
    )
