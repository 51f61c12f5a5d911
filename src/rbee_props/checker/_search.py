"""The search for one partition: Wing & Gong with Lowe's just-in-time linearization, memoised.

This is the algorithm of Porcupine and Knossos' ``linear`` checker. Calls and returns are laid
out in a doubly linked list in time order (calls before returns at equal times, so touching
ops count as concurrent). Walking it from the front, a call may be linearized now (its op
applied to the model) because every op that completed before it was invoked is already
linearized: only those calls appear before the first remaining return. Reaching a return means
its op should already be linearized: backtrack (undo the last op, try the next candidate).

Three refinements:

- Memoisation: a (linearized ops, model states) configuration is explored once; a second
  order reaching it is cut. The set of linearized ops is kept as ``(k, ahead, indet_mask)``:
  all determinate ops below rank ``k`` (in invoke order) are in, ``ahead`` names the other
  determinate ones, and a bit mask names the indeterminate ones. ``ahead`` only holds ops that
  overlap op ``k`` in time, so a cache entry stays small however long the history is.
- Nondeterminism: ``step`` may return several next states. The search keeps the set of all
  possible states (Porcupine's power-set model), so a choice never needs backtracking, and an
  op is rejected only when every possible state rejects it.
- Indeterminate ops have no return event: they may be linearized anywhere after their invoke,
  or never. The search succeeds once every determinate op is linearized.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import attrs

from rbee_props.checker._entry import Entry
from rbee_props.history import Outcome

__all__ = ["Found", "OutOfBudget", "Stuck", "search"]

S = TypeVar("S")
C = TypeVar("C")

StepFn = Callable[[S, C, Outcome], Iterable[S]]
World = dict[Hashable, S]  # frozen form -> state: every state the history so far may be in
Prefix = tuple[int, "Prefix"] | None  # linearized ops, newest first, shared between frames
# one undo record: the op linearized last and the configuration before it
_Frame = tuple[int, World[S], int, frozenset[int], int, Prefix]


@attrs.frozen
class Found:
    """The partition is linearizable: ``order`` lists local op indices in a valid order."""

    order: tuple[int, ...]


@attrs.frozen
class Stuck(Generic[S]):
    """The partition is not linearizable. Where the search got furthest:

    ``prefix`` was linearized (local indices, in order), leaving the model in one of ``states``;
    then op ``blocking`` had to be placed (its return came next in time), and the model
    rejected every op real time allowed to come next (``candidates``, in invoke order).
    """

    prefix: tuple[int, ...]
    candidates: tuple[int, ...]
    blocking: int
    states: tuple[S, ...]


@attrs.frozen
class OutOfBudget:
    """More than the allowed number of configurations was explored: no verdict."""

    explored: int


def _unwind(prefix: Prefix) -> tuple[int, ...]:
    out: list[int] = []
    while prefix is not None:
        out.append(prefix[0])
        prefix = prefix[1]
    return tuple(reversed(out))


def _advance(k: int, ahead: frozenset[int], rank: int) -> tuple[int, frozenset[int]]:
    """The linearized-set encoding after adding the determinate op of ``rank``."""
    if rank != k:
        return k, ahead | {rank}
    k += 1
    if k in ahead:
        rest = set(ahead)
        while k in rest:
            rest.remove(k)
            k += 1
        ahead = frozenset(rest)
    return k, ahead


class _Events:
    """The time-ordered event list with O(1) removal and LIFO re-insertion (dancing links).

    Node 0 is the head; the call of op i is node ``1 + i``, its return node ``1 + n + i``
    (determinate ops only); -1 ends the list.
    """

    def __init__(self, ops: Sequence[Entry[Any]]) -> None:
        n = len(ops)
        events = [(e.invoke, 0, i, 1 + i) for i, e in enumerate(ops)]
        events += [(e.complete, 1, i, 1 + n + i) for i, e in enumerate(ops) if not e.indeterminate]
        events.sort()
        self.n = n
        self.nxt = [-1] * (1 + 2 * n)
        self.prv = [-1] * (1 + 2 * n)
        last = 0
        for *_, node in events:
            self.nxt[last], self.prv[node] = node, last
            last = node
        self.ret = [-1 if e.indeterminate else 1 + n + i for i, e in enumerate(ops)]

    def _remove(self, node: int) -> None:
        p, q = self.prv[node], self.nxt[node]
        self.nxt[p] = q
        if q != -1:
            self.prv[q] = p

    def _restore(self, node: int) -> None:
        self.nxt[self.prv[node]] = node
        q = self.nxt[node]
        if q != -1:
            self.prv[q] = node

    def lift(self, i: int) -> None:
        self._remove(1 + i)
        if self.ret[i] != -1:
            self._remove(self.ret[i])

    def unlift(self, i: int) -> None:
        if self.ret[i] != -1:
            self._restore(self.ret[i])
        self._restore(1 + i)

    def calls_before(self, node: int) -> tuple[int, ...]:
        """The ops whose call lies between the head and ``node``."""
        out, cur = [], self.nxt[0]
        while cur != node:
            if cur <= self.n:
                out.append(cur - 1)
            cur = self.nxt[cur]
        return tuple(out)


def search(
    ops: Sequence[Entry[C]],
    initial: S,
    step: StepFn[S, C],
    *,
    max_states: int,
    freeze: Callable[[Any], Hashable],
) -> Found | Stuck[S] | OutOfBudget:
    """Search for a linearization of ``ops`` (one partition, sorted by invoke time).

    Returns :class:`Found`, :class:`Stuck` with the furthest point reached, or
    :class:`OutOfBudget` once more than ``max_states`` configurations were explored.
    """
    n = len(ops)
    events = _Events(ops)
    nxt = events.nxt
    det = [not e.indeterminate for e in ops]
    rank, ibit, r, q = [0] * n, [0] * n, 0, 0
    for i in range(n):
        if det[i]:
            rank[i], r = r, r + 1
        else:
            ibit[i], q = 1 << q, q + 1
    remaining = r

    def apply(world: World[S], i: int) -> World[S]:
        call, outcome = ops[i].call, ops[i].outcome
        after: World[S] = {}
        for frozen, state in world.items():
            for nxt_state in step(state, call, outcome):
                after[frozen if nxt_state is state else freeze(nxt_state)] = nxt_state
        return after

    world: World[S] = {freeze(initial): initial}
    k, ahead, imask = 0, frozenset[int](), 0
    prefix: Prefix = None
    stack: list[_Frame[S]] = []
    cache: set[Hashable] = set()
    best: Stuck[S] | None = None
    best_depth = -1
    node = nxt[0]
    while remaining:
        if node <= n:  # a call: try to linearize its op here
            i = node - 1
            after = apply(world, i)
            if after:
                if det[i]:
                    nk, nahead, nimask = *_advance(k, ahead, rank[i]), imask
                else:
                    nk, nahead, nimask = k, ahead, imask | ibit[i]
                config = (nk, nahead, nimask, frozenset(after))
                if config not in cache:
                    if len(cache) >= max_states:
                        return OutOfBudget(len(cache))
                    cache.add(config)
                    stack.append((i, world, k, ahead, imask, prefix))
                    world, k, ahead, imask, prefix = after, nk, nahead, nimask, (i, prefix)
                    events.lift(i)
                    remaining -= det[i]
                    node = nxt[0]
                    continue
            node = nxt[node]
        else:  # a return: its op should be linearized by now; back off one op
            depth = r - remaining
            if depth > best_depth:
                best_depth = depth
                blocking = node - 1 - n
                cands = events.calls_before(node)
                best = Stuck(_unwind(prefix), cands, blocking, tuple(world.values()))
            if not stack and best is not None:  # best: set above on the first return at least
                return best
            i, world, k, ahead, imask, prefix = stack.pop()
            events.unlift(i)
            remaining += det[i]
            node = nxt[1 + i]
    return Found(_unwind(prefix))
