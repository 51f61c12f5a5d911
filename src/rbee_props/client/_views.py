"""Views of recorded ops: the typed facts callers read from list and stream results.

A view reads one kind of body. An op that does not hold it (a Fail, an Indeterminate, a body of
another shape) raises :class:`UnexpectedOutcome` instead of answering "nothing": an empty set
read from a failed list would make "no ghost worker" pass when nothing was observed.
"""

from __future__ import annotations

import json
from typing import Any

from rbee_props.client._outcome import DONE, EVENTS_MARKER
from rbee_props.errors import RbeePropsError
from rbee_props.history import Indeterminate, Ok, Op

__all__ = [
    "UnexpectedOutcome",
    "node_names",
    "partial_events",
    "sse_events",
    "stream_complete",
    "tokens",
    "worker_ids",
    "worker_states",
    "workers",
]


class UnexpectedOutcome(RbeePropsError, ValueError):
    """A view was asked to read an op that does not hold what it reads."""


def _fail(view: str, expected: str, op: Op) -> UnexpectedOutcome:
    seen = repr(op.outcome)
    if len(seen) > 200:
        seen = seen[:200] + "..."
    msg = (
        f"{view}() reads an Ok op whose body has {expected}; got op #{op.index} "
        f"({op.service} {op.kind}): {seen}; check op.ok before reading it"
    )
    return UnexpectedOutcome(msg, op_index=op.index, kind=op.kind)


def _list(op: Op, key: str, view: str) -> list[dict[str, Any]]:
    body = op.body
    if not isinstance(op.outcome, Ok) or not isinstance(body, dict):
        raise _fail(view, f"a {key!r} list", op)
    items = body.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _fail(view, f"a {key!r} list", op)
    return items


def workers(op: Op) -> list[dict[str, Any]]:
    """The worker entries of an Ok ``list_workers`` op (queen or hive)."""
    return _list(op, "workers", "workers")


def _worker_id(entry: dict[str, Any]) -> str:
    # the queen lists ``worker_id``, the hive's WorkerInfo ``id``
    value = entry.get("worker_id", entry.get("id"))
    return str(value)


def worker_ids(op: Op) -> set[str]:
    """The worker ids of an Ok ``list_workers`` (queen or hive) or ``workers_health`` op."""
    return {_worker_id(w) for w in _list(op, "workers", "worker_ids")}


def worker_states(op: Op) -> dict[str, str]:
    """Worker id -> state (``loading``, ``idle``, ``busy``) of an Ok list of workers."""
    return {_worker_id(w): str(w.get("state")) for w in _list(op, "workers", "worker_states")}


def node_names(op: Op) -> set[str]:
    """The node names of an Ok ``list_beehives`` op."""
    return {str(n.get("node_name")) for n in _list(op, "nodes", "node_names")}


def _stream(op: Op, view: str) -> dict[str, Any]:
    body = op.body
    if isinstance(body, dict) and isinstance(body.get("events"), list) and "complete" in body:
        return body
    raise _fail(view, "an event stream", op)


def sse_events(op: Op) -> list[Any]:
    """The data payloads of a streamed response (Ok or Fail), without the final ``[DONE]``."""
    return [e for e in _stream(op, "sse_events")["events"] if e != DONE]


def tokens(op: Op) -> list[str]:
    """The text of the ``token`` events of an inference stream, in the order received."""
    return [
        str(e.get("t")) for e in sse_events(op) if isinstance(e, dict) and e.get("type") == "token"
    ]


def stream_complete(op: Op) -> bool:
    """Whether a stream ended with ``[DONE]``; a cut stream (Indeterminate) did not."""
    if isinstance(op.outcome, Indeterminate):
        return False
    return bool(_stream(op, "stream_complete")["complete"])


def partial_events(op: Op) -> list[Any]:
    """The events read before a stream was cut (from the Indeterminate's reason).

    For a stream read to its end, all its events; for an op that streamed nothing, ``[]``.
    """
    outcome = op.outcome
    if isinstance(outcome, Indeterminate):
        if outcome.reason.startswith("stream cut") and EVENTS_MARKER in outcome.reason:
            events = json.loads(outcome.reason.split(EVENTS_MARKER, 1)[1])
            return events if isinstance(events, list) else []
        return []
    body = op.body
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return list(body["events"])
    return []
