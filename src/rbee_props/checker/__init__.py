"""Linearizability of concurrent histories against the pure model (Wing & Gong / Lowe).

Given the ops of a concurrent burst as :class:`Entry` values (see :func:`entries_from_ops`), a
model ``step(state, call, outcome) -> next states`` and its initial state,
:class:`LinearizabilityChecker` decides whether some order of the ops respects real time and
every observed outcome. It splits the history per key, runs a memoised just-in-time search on
each part, and answers :class:`Linearizable` (with a witness order), :class:`NotLinearizable`
(with a small window of ops and an explanation) or :class:`Unknown` (budget spent: never a
pass). :func:`brute_force` is the slow, obvious reference the tests compare it with. No I/O.
"""

from rbee_props.checker._brute import brute_force
from rbee_props.checker._checker import (
    LinearizabilityChecker,
    check_linearizable,
    describe,
    partitions,
)
from rbee_props.checker._entry import Entry, entries_from_ops, precedes
from rbee_props.checker._freeze import freeze
from rbee_props.checker._results import Linearizable, NotLinearizable, Result, Unknown

__all__ = [
    "Entry",
    "LinearizabilityChecker",
    "Linearizable",
    "NotLinearizable",
    "Result",
    "Unknown",
    "brute_force",
    "check_linearizable",
    "describe",
    "entries_from_ops",
    "freeze",
    "partitions",
    "precedes",
]
