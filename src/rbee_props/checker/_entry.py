"""The checker's input: one :class:`Entry` per operation, and the adapter from recorded ops.

The checker is generic: it knows nothing of HTTP or of rbee. An entry carries the model's call,
the observed outcome and the real-time interval [invoke, complete]. ``key`` names the object the
operation acts on (a worker id, a register name): the checker splits the history per key and
checks each part on its own, which is sound by Herlihy & Wing's locality theorem when ops of
different keys cannot affect each other in the model. Ops with the same key (None by default)
form one part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

import attrs

from rbee_props.history import Indeterminate, Op, Outcome

__all__ = ["Entry", "entries_from_ops", "precedes"]

C = TypeVar("C")


def _finite_interval(entry: Entry[Any], attribute: attrs.Attribute[float], value: float) -> None:
    if math.isnan(value) or math.isnan(entry.invoke) or value < entry.invoke:
        msg = (
            f"entry {entry.id!r}: expected invoke <= complete, got invoke={entry.invoke!r} and "
            f"complete={value!r}; record both from one monotonic clock"
        )
        raise ValueError(msg)


@attrs.frozen
class Entry(Generic[C]):
    """One operation for the checker: what was asked (``call``), what came back, and when.

    An :class:`~rbee_props.history.Indeterminate` outcome (a timeout) may have taken effect at
    any moment after ``invoke``, or never: the checker then treats ``complete`` as +infinity.
    """

    id: Hashable
    call: C
    outcome: Outcome
    invoke: float
    complete: float = attrs.field(validator=_finite_interval)
    key: Hashable = None

    @property
    def indeterminate(self) -> bool:
        """Whether the outcome is unknown (the op may or may not have happened)."""
        return isinstance(self.outcome, Indeterminate)

    @property
    def deadline(self) -> float:
        """The latest moment the op can take effect: ``complete``, or +inf when indeterminate."""
        return math.inf if self.indeterminate else self.complete


def precedes(a: Entry[Any], b: Entry[Any]) -> bool:
    """Whether real time orders ``a`` before ``b``: ``a`` completed before ``b`` was invoked.

    Equal times do not order two ops (two threads' clocks cannot tell them apart), and an
    indeterminate op precedes nothing, since its effect may land arbitrarily late.
    """
    return a.deadline < b.invoke


def entries_from_ops(
    ops: Iterable[Op],
    to_call: Callable[[Op], C | None],
    *,
    key: Callable[[Op], Hashable] | None = None,
) -> list[Entry[C]]:
    """Turn recorded ops into checker entries.

    Args:
        ops: the recorded operations (a :class:`~rbee_props.history.History` or a slice of it).
        to_call: the model call of an op, or None for an op the model does not cover (a read of
            another service, a health probe); those are left out of the check, so return None
            only for ops that cannot change or observe the modelled state.
        key: the partition key of an op (e.g. ``lambda op: op.args["worker_id"]``); None puts
            every op in one partition.

    Returns:
        One entry per covered op, with ``id`` = ``op.index``, in history order.
    """
    entries: list[Entry[C]] = []
    for op in ops:
        call = to_call(op)
        if call is None:
            continue
        part = key(op) if key is not None else None
        entries.append(Entry(op.index, call, op.outcome, op.invoke, op.complete, part))
    return entries
