"""The linearizability checker: split a history per key, search each part, join the verdicts.

A concurrent history is linearizable when its operations can be put in one order that respects
real time (an op that completed before another was invoked comes first) and that the model
accepts, outcome by outcome (Herlihy & Wing). Checking is NP-complete in general, but bursts
from a few lanes keep few ops in flight, and the memoised search of :mod:`._search` is then
close to linear. Splitting per key (locality) keeps each search small; the verdict is the
conjunction: one part not linearizable fails the history, a part out of budget makes it
unknown unless another part fails, and only all parts linearizable is a pass.

Cost (benchmarks/checker_speed.py): a valid history costs a few configurations per op, each
costing a scan of the ops in flight; timeouts stay in flight to the end of their partition.
Proving a history is NOT linearizable means exhausting every configuration before the stuck
point, which grows with the ops in flight together and doubles with each timeout pending at
once: keep partitions fine and bursts short, and set ``max_states`` to bound the time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from rbee_props.checker._entry import Entry, precedes
from rbee_props.checker._freeze import freeze as default_freeze
from rbee_props.checker._results import Linearizable, NotLinearizable, Result, Unknown
from rbee_props.checker._search import Found, OutOfBudget, ReadOnlyFn, StepFn, Stuck, search
from rbee_props.history import Fail, Indeterminate, Ok, Outcome

__all__ = ["LinearizabilityChecker", "check_linearizable", "describe", "partitions"]

S = TypeVar("S")
C = TypeVar("C")


def describe(entry: Entry[Any]) -> str:
    """One line for an op in an explanation: id, call and outcome."""
    call = repr(entry.call)
    call = call if len(call) <= 100 else call[:97] + "..."
    return f"[{entry.id!r}] {call} -> {_outcome(entry.outcome)}"


def _outcome(outcome: Outcome) -> str:
    if isinstance(outcome, Ok):
        return f"Ok({outcome.status})"
    if isinstance(outcome, Fail):
        return f"Fail({outcome.status})"
    if isinstance(outcome, Indeterminate):
        return f"Indeterminate({outcome.reason!r})"
    return repr(outcome)


def partitions(entries: Iterable[Entry[C]]) -> list[list[Entry[C]]]:
    """The entries grouped by key, each group sorted by invoke time (stable), groups in the
    order of their first entry.

    Raises:
        ValueError: two entries share an id.
    """
    groups: dict[Hashable, list[Entry[C]]] = {}
    seen: set[Hashable] = set()
    for entry in entries:
        if entry.id in seen:
            msg = f"two entries have the id {entry.id!r}; give every op a distinct id"
            raise ValueError(msg)
        seen.add(entry.id)
        groups.setdefault(entry.key, []).append(entry)
    parts = [sorted(group, key=lambda e: e.invoke) for group in groups.values()]
    return sorted(parts, key=lambda part: part[0].invoke)


def _merge(orders: Sequence[Sequence[Entry[C]]]) -> list[Hashable]:
    """One linearization of the whole history from one per partition.

    Repeatedly take, of the partitions' next ops, the one invoked first. This respects real
    time: if some unplaced op ``o`` completed before that op ``h`` was invoked, then the next op
    ``h'`` of ``o``'s partition comes no later than ``o`` in a valid order, so
    ``h'.invoke <= o.complete < h.invoke``, contradicting the choice of ``h``.
    """
    heap = [(order[0].invoke, n, 0) for n, order in enumerate(orders) if order]
    heapq.heapify(heap)
    out: list[Hashable] = []
    while heap:
        _, n, pos = heapq.heappop(heap)
        out.append(orders[n][pos].id)
        if pos + 1 < len(orders[n]):
            heapq.heappush(heap, (orders[n][pos + 1].invoke, n, pos + 1))
    return out


class LinearizabilityChecker(Generic[S, C]):
    """Checks histories of entries against one model: ``step`` from ``initial``.

    Args:
        step: ``(state, call, outcome) -> next states``; empty when the outcome is not allowed,
            several when the model cannot tell (an Indeterminate outcome: unchanged and applied).
            It is called with Indeterminate outcomes too; the checker itself adds the option
            that such an op never took effect.
        initial: the model state before the first op; every partition starts from it.
        initial_for: optional ``key -> states``: where the partition of ``key`` may start,
            when that differs per key (a worker already registered, another not) or is not
            known exactly (several states: the search keeps all of them, as it does after a
            nondeterministic step). Overrides ``initial``.
        max_states: the search budget per partition, in (linearized set, states)
            configurations explored; past it that partition is :class:`Unknown`.
        freeze: makes a state hashable for memoisation (default :func:`freeze`).
        read_only: optional ``(call, outcome) -> bool``, true for ops that never change the
            state: from every state ``step`` rejects them or returns that state alone (a read;
            in today's rbee model, any ``Fail``: a refused call changes nothing). The search
            takes such an op as soon as it fits, without trying other orders: several times
            faster on read-heavy histories. Declaring an op that can change the state makes
            the checker unsound; each declared op is checked against the states the search
            meets (ValueError).
    """

    def __init__(
        self,
        step: StepFn[S, C],
        initial: S,
        *,
        max_states: int = 1_000_000,
        freeze: Callable[[Any], Hashable] = default_freeze,
        read_only: ReadOnlyFn[C] | None = None,
        initial_for: Callable[[Hashable], Iterable[S]] | None = None,
    ) -> None:
        if max_states < 1:
            msg = f"max_states must be at least 1, got {max_states!r}"
            raise ValueError(msg)
        self.step = step
        self.initial = initial
        self.max_states = max_states
        self.freeze = freeze
        self.read_only = read_only
        self.initial_for = initial_for

    def initials(self, key: Hashable) -> list[S]:
        """The states the partition of ``key`` may start in.

        Raises:
            ValueError: ``initial_for`` named no state for ``key``.
        """
        if self.initial_for is None:
            return [self.initial]
        states = list(self.initial_for(key))
        if not states:
            msg = f"initial_for({key!r}) gave no state; give at least one start state per key"
            raise ValueError(msg)
        return states

    def check(self, entries: Iterable[Entry[C]]) -> Result:
        """The verdict on ``entries``: Linearizable, NotLinearizable or Unknown.

        Partitions are searched in the order of their first op; the first one that is not
        linearizable is reported (the others are not searched).

        Raises:
            ValueError: two entries share an id, or ``initial_for`` gave no state for a key.
        """
        orders: list[list[Entry[C]]] = []
        unknown: list[str] = []
        explored = 0
        for part in partitions(entries):
            found = search(
                part,
                self.initials(part[0].key),
                self.step,
                max_states=self.max_states,
                freeze=self.freeze,
                read_only=self.read_only,
            )
            if isinstance(found, Found):
                orders.append([part[i] for i in found.order])
            elif isinstance(found, Stuck):
                return self._explain(part, found)
            elif isinstance(found, OutOfBudget):
                explored += found.explored
                n_det = sum(not e.indeterminate for e in part)
                where = f"key {part[0].key!r}: {found.furthest} of {n_det} ops linearized"
                if found.blocking >= 0:
                    where += f", furthest unplaced op {part[found.blocking].id!r}"
                unknown.append(f"({where})")
        if unknown:
            reason = (
                f"the search budget of {self.max_states} states per partition ran out in "
                f"{len(unknown)} partition(s): {', '.join(unknown[:5])}"
                f"{', ...' if len(unknown) > 5 else ''}"
            )
            if orders:
                reason += f"; the other {len(orders)} partition(s) are linearizable"
            return Unknown(reason, explored)
        return Linearizable(_merge(orders))

    def _explain(self, part: Sequence[Entry[C]], stuck: Stuck[S]) -> NotLinearizable:
        """The window and the words for a partition that could not be linearized.

        The window is the determinate ops that had to come next after the longest
        linearizable prefix (real time let them go next, and the model rejected each) plus the
        determinate prefix ops that real time would let move after one of them: the ops an
        other order could have rearranged around the stuck point. It stays about as large as
        the number of lanes. Timeouts are named in the explanation but kept out of the window:
        each one overlaps everything after its invoke, so counting them would make the window
        grow with the history, and the search already tried them in every position. The full
        prefix is kept on the result for context.
        """
        prefix = [part[i] for i in stuck.prefix]
        cands = [part[i] for i in stuck.candidates if not part[i].indeterminate]
        pending = [part[i] for i in stuck.candidates if part[i].indeterminate]
        movable = [
            p for p in prefix if not p.indeterminate and any(not precedes(p, c) for c in cands)
        ]
        window = sorted(movable + cands, key=lambda e: e.invoke)
        blocking = part[stuck.blocking]
        n_det = sum(not e.indeterminate for e in part)
        done = sum(not e.indeterminate for e in prefix)
        last = f", ending with op {prefix[-1].id!r}" if prefix else ""
        lines = [
            f"partition key={part[0].key!r}: at most {done} of its {n_det} determinate ops can "
            f"be linearized (prefix of {len(prefix)} op(s){last}). Op {blocking.id!r} completed "
            f"at t={blocking.complete:g}, so it or another op invoked before then had to come "
            f"next, but from each of the {len(stuck.states)} model state(s) the prefix leads to:"
        ]
        for cand in cands:
            accepted = any(tuple(self.step(s, cand.call, cand.outcome)) for s in stuck.states)
            why = "accepted, but no order of the rest fits" if accepted else "rejected"
            lines.append(f"  {describe(cand)}: {why}")
        if movable:
            lines.append("and these linearized ops overlap them, so they could have moved after:")
            lines.extend(f"  {describe(p)}" for p in movable)
        timeouts = [p for p in prefix if p.indeterminate] + pending
        if timeouts:
            ids = ", ".join(repr(t.id) for t in timeouts[:5]) + (
                ", ..." if len(timeouts) > 5 else ""
            )
            lines.append(
                f"{len(timeouts)} timed-out op(s) ({ids}) may have taken effect anywhere after "
                "their invoke, or never; no placement of them helps."
            )
        return NotLinearizable(
            window=[e.id for e in window],
            explanation="\n".join(lines),
            prefix=[e.id for e in prefix],
            key=part[0].key,
        )


def check_linearizable(
    entries: Iterable[Entry[C]],
    initial: S,
    step: StepFn[S, C],
    *,
    max_states: int = 1_000_000,
    read_only: ReadOnlyFn[C] | None = None,
    initial_for: Callable[[Hashable], Iterable[S]] | None = None,
) -> Result:
    """Shorthand for ``LinearizabilityChecker(step, initial, ...).check(entries)``."""
    checker = LinearizabilityChecker(
        step, initial, max_states=max_states, read_only=read_only, initial_for=initial_for
    )
    return checker.check(entries)
