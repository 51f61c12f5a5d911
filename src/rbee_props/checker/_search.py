"""The search for one partition: Wing & Gong's algorithm with Lowe's memoisation.

This is the algorithm of Porcupine and Knossos' ``linear`` checker. Calls and returns are laid
out in a doubly linked list in time order (calls before returns at equal times, so touching
ops count as concurrent). The calls before the first remaining return are the candidates: each
may be linearized next (applied to the model), since every op that completed before it was
invoked is linearized already. The search takes a candidate the model accepts and goes on
from there, depth first; when no candidate fits, the op of that first return can never be
placed: it backtracks (undoes the last op and tries the next candidate there). It succeeds
when every determinate op is linearized.

Refinements:

- Memoisation: a (linearized ops, model states) configuration is explored once; a second
  order reaching it is cut. The set of linearized ops is kept as ``(k, ahead, indet_mask)``:
  all determinate ops below rank ``k`` (in invoke order) are in, ``ahead`` names the other
  determinate ones, and a bit mask names the indeterminate ones. ``ahead`` only holds ops that
  overlap op ``k`` in time, so a cache entry stays small however long the history is.
- Nondeterminism: ``step`` may return several next states. The search keeps the set of all
  possible states (Porcupine's power-set model), so a choice never needs backtracking, and an
  op is rejected only when every possible state rejects it.
- Indeterminate ops have no return event: they may be linearized anywhere after their invoke,
  or never (they stay candidates to the end, so each pending timeout costs a little on every
  step after it).
- Indeterminate ops are optional, so a configuration is also cut when one with the same
  determinate ops and states but a *subset* of its indeterminate ops was seen: whatever
  completes the larger one completes the smaller one too (leave the extra ops out). Without
  this, every pending timeout doubles the configurations after each overwrite.
- Ops the caller declares read-only (``read_only(call, outcome)``: from every state, rejected
  or the state unchanged, like a read or a refused call) are taken at once when they leave
  every current state as it is, without trying the other candidates: such an op can be moved
  to the front of any completion (real time allows it, and a filter applied later only
  removes states), so if nothing completes after it, nothing completes at all.
- The candidates of a configuration are tried in the order of the middle of their recorded
  intervals, the likeliest linearization points (Wing & Gong walk them in invoke order).
  On valid histories from 8 lanes this needs fewer backtracks; the candidates are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import attrs

from rbee_props.checker._entry import Entry
from rbee_props.checker._events import Events
from rbee_props.history import Outcome

__all__ = ["Found", "OutOfBudget", "ReadOnlyFn", "StepFn", "Stuck", "search"]

S = TypeVar("S")
C = TypeVar("C")

StepFn = Callable[[S, C, Outcome], Iterable[S]]
ReadOnlyFn = Callable[[C, Outcome], bool]
World = dict[Hashable, S]  # frozen form -> state: every state the history so far may be in
Prefix = tuple[int, "Prefix"] | None  # linearized ops, newest first, shared between frames
# one undo record: the op linearized last and the configuration before it
_Frame = tuple[int, World[S], int, frozenset[int], int, Prefix, tuple[int, ...] | None, int, int]


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
    """More than the allowed number of configurations was explored: no verdict.

    ``furthest`` determinate ops were linearized at best (at least), and op ``blocking`` (a
    local index; -1 if the search never got stuck) was the furthest one it could not place:
    a hint of where to look.
    """

    explored: int
    furthest: int
    blocking: int


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


class _Search(Generic[S, C]):
    """The state of one depth-first search; :func:`search` is its entry point."""

    def __init__(
        self,
        ops: Sequence[Entry[C]],
        initials: Sequence[S],
        step: StepFn[S, C],
        max_states: int,
        freeze: Callable[[Any], Hashable],
        read_only: ReadOnlyFn[C] | None,
    ) -> None:
        self.ops, self.step, self.freeze, self.max_states = ops, step, freeze, max_states
        self.n = n = len(ops)
        self.pure = [bool(read_only and read_only(e.call, e.outcome)) for e in ops]
        # try candidates in the order of the middle of their recorded interval, the likeliest
        # linearization point (a timeout's interval is its recorded one, too)
        self.prio = [(e.invoke + e.complete) / 2 for e in ops]
        self.events = Events(ops)
        self.det = [not e.indeterminate for e in ops]
        self.rank, self.ibit = [0] * n, [0] * n
        r = q = 0
        for i in range(n):
            if self.det[i]:
                self.rank[i], r = r, r + 1
            else:
                self.ibit[i], q = 1 << q, q + 1
        self.total = self.remaining = r
        self.world: World[S] = {freeze(state): state for state in initials}
        self.k, self.ahead, self.imask = 0, frozenset[int](), 0
        self.prefix: Prefix = None
        self.stack: list[_Frame[S]] = []
        self.seen: dict[Hashable, list[int]] = {}  # (k, ahead, states) -> indeterminate masks
        self.explored = 0
        # the furthest stuck point: prefix (unwound only at the end), candidates, blocking op
        self.best: tuple[Prefix, tuple[int, ...], int, tuple[S, ...]] | None = None
        self.best_depth = -1

    def apply(self, i: int) -> World[S]:
        """The states after op ``i`` from every current state (empty: rejected)."""
        call, outcome, freeze = self.ops[i].call, self.ops[i].outcome, self.freeze
        after: World[S] = {}
        for frozen, state in self.world.items():
            for nxt_state in self.step(state, call, outcome):
                key = frozen if nxt_state is state else freeze(nxt_state)
                if key != frozen and self.pure[i]:
                    msg = (
                        f"op {self.ops[i].id!r} was declared read-only, but the model moved "
                        f"{state!r:.200} to {nxt_state!r:.200}; fix the read_only function"
                    )
                    raise ValueError(msg)
                after[key] = nxt_state
        return after

    def scan(self) -> tuple[list[tuple[int, World[S]]], int]:
        """The calls that may go next with the states after each (if accepted), and the first
        return node (one exists while determinate ops remain)."""
        accepted, nxt, node = [], self.events.nxt, self.events.nxt[0]
        while node <= self.n:
            after = self.apply(node - 1)
            if after:
                accepted.append((node, after))
            node = nxt[node]
        return accepted, node

    def enter(
        self, i: int, after: World[S], order: tuple[int, ...] | None, pos: int, ret: int
    ) -> bool:
        """Linearize op ``i`` unless a configuration at least as promising was seen.

        ``order`` are this configuration's candidate nodes and ``pos`` the index of op ``i``
        in it: if ``i`` fails, the next ones are tried (None: forced, try none). ``ret`` is
        the return node where this configuration is stuck once they are exhausted.
        """
        if self.det[i]:
            k, ahead = _advance(self.k, self.ahead, self.rank[i])
            imask = self.imask
        else:
            k, ahead, imask = self.k, self.ahead, self.imask | self.ibit[i]
        masks = self.seen.setdefault((k, ahead, frozenset(after)), [])
        if any(m & imask == m for m in masks):  # this, or it with fewer timeouts, was seen
            return False
        if self.explored >= self.max_states:
            raise _Budget
        self.explored += 1
        masks.append(imask)
        frame = (i, self.world, self.k, self.ahead, self.imask, self.prefix, order, pos, ret)
        self.stack.append(frame)
        self.world, self.k, self.ahead, self.imask = after, k, ahead, imask
        self.prefix = (i, self.prefix)
        self.events.lift(i)
        self.remaining -= self.det[i]
        return True

    def backtrack(self) -> tuple[tuple[int, ...], int, int] | None:
        """Undo ops up to the last free choice: its candidates, the next to try, return node."""
        while self.stack:
            frame = self.stack.pop()
            i, self.world, self.k, self.ahead, self.imask, self.prefix, order, pos, ret = frame
            self.events.unlift(i)
            self.remaining += self.det[i]
            if order is not None:
                return order, pos + 1, ret
        return None

    def stuck_at(self, node: int) -> None:
        """Remember the return ``node`` if no search got this far before."""
        depth = self.total - self.remaining
        if depth > self.best_depth:
            self.best_depth = depth
            cands = self.events.calls_before(node)
            states = tuple(self.world.values())
            self.best = (self.prefix, cands, node - 1 - self.n, states)

    def forced(self, accepted: list[tuple[int, World[S]]], ret: int) -> bool | None:
        """Take a read-only op that keeps every current state, if there is one.

        Its frame is marked forced: backtracking skips past it, since no completion after it
        means no completion at all. True: entered. False: a determinate one led to a dead
        end seen before, so this configuration is one too. None: no such op.
        """
        keys = self.world.keys()
        for c, after in accepted:
            if self.pure[c - 1] and after.keys() == keys:
                if self.enter(c - 1, after, None, 0, ret):
                    return True
                if self.det[c - 1]:  # its configuration is finished (failed), not in progress
                    return False
                # an indeterminate one whose configuration is covered by this one: skip it
        return None

    def first(
        self, order: tuple[int, ...], start: int, ret: int, afters: list[World[S]] | None
    ) -> bool:
        """Enter the first candidate of ``order[start:]`` that fits (``afters``: known states
        after each candidate, else computed)."""
        for pos in range(start, len(order)):
            c = order[pos]
            after = afters[pos] if afters is not None else self.apply(c - 1)
            if after and self.enter(c - 1, after, order, pos, ret):
                return True
        return False

    def run(self) -> Found | Stuck[S]:
        prio = self.prio
        fresh, start, ret = True, 0, 0
        order: tuple[int, ...] = ()
        while self.remaining:
            if fresh:  # a new configuration: scan its candidates, try them most likely first
                accepted, ret = self.scan()
                took = self.forced(accepted, ret)
                if took is None:
                    accepted.sort(key=lambda ca: prio[ca[0] - 1])
                    order = tuple(c for c, _ in accepted)
                    took = self.first(order, 0, ret, [after for _, after in accepted])
            else:  # back in a configuration: the candidates not tried yet
                took = self.first(order, start, ret, None)
            if took:
                fresh = True
                continue
            self.stuck_at(ret)  # no candidate fits: the op of ``ret`` cannot be placed
            back = self.backtrack()
            if back is None:  # every order failed; best was set by stuck_at just above
                prefix, cands, blocking, states = self.best or (None, (), ret - 1 - self.n, ())
                return Stuck(_unwind(prefix), cands, blocking, states)
            (order, start, ret), fresh = back, False
        return Found(_unwind(self.prefix))


class _Budget(Exception):
    """The search explored ``max_states`` configurations."""


def search(
    ops: Sequence[Entry[C]],
    initials: Sequence[S],
    step: StepFn[S, C],
    *,
    max_states: int,
    freeze: Callable[[Any], Hashable],
    read_only: ReadOnlyFn[C] | None = None,
) -> Found | Stuck[S] | OutOfBudget:
    """Search for a linearization of ``ops`` (one partition, sorted by invoke time), starting
    from any of the states ``initials`` (the model may not know which one holds).

    Returns :class:`Found`, :class:`Stuck` with the furthest point reached, or
    :class:`OutOfBudget` once more than ``max_states`` configurations were explored.
    """
    state = _Search(ops, initials, step, max_states, freeze, read_only)
    try:
        return state.run()
    except _Budget:
        blocking = state.best[2] if state.best is not None else -1
        furthest = max(state.best_depth, state.total - state.remaining)
        return OutOfBudget(state.explored, furthest, blocking)
