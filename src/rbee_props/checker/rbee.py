"""Recorded rbee ops -> model calls: what each op says, about which worker id, and when.

Two mappings, both pure:

- :func:`model_call` gives the global model's call (:mod:`rbee_props.model`) for a recorded
  client op, so a history can be stepped through ``model.step`` (a machine does that with the
  witness order of a burst).
- :func:`burst_entries` gives the checker's entries for the per-worker burst model
  (:mod:`._burst_model`): one partition per worker id. A list read becomes one entry per id
  it could show (listed or not); a shutdown that answered 200 becomes its two steps; an
  inference at a worker becomes admission and release (or its refusal).

Time bounds of an inference (S16, D10: "the rest 503 promptly, no queueing"): from outside,
any number of successful inferences can be ordered one after the other inside their recorded
intervals, so a worker that queues instead of refusing is indistinguishable from a fast one,
unless admission is bounded. An admitted inference takes its slot at most ``admission_bound``
seconds after it was sent (the request's trip to the worker plus its admission, which has no
queue), and frees it no earlier than ``decode_time_ms`` (the worker's own ``end`` event) after
it was sent. ``admission_bound`` is the one timing assumption; streams much longer than it make
a queued request stand out (see docs/concurrency.md).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence, Set

import attrs

from rbee_props.checker._burst_model import (
    UNKNOWN,
    InferAnswer,
    Ready,
    Register,
    SeenAtHive,
    SeenAtQueen,
    ShutdownCheck,
    ShutdownDone,
    SlotFreed,
    SlotTaken,
    Spawned,
    WorkerView,
    step,
)
from rbee_props.checker._checker import LinearizabilityChecker
from rbee_props.checker._entry import Entry
from rbee_props.checker._results import Result
from rbee_props.history import Fail, Ok, Op
from rbee_props.model import (
    Call,
    ClusterState,
    ReadyCallback,
    RegisterWorker,
    ShutdownWorker,
    Spawn,
)

__all__ = [
    "ADMISSION_BOUND",
    "BurstWorld",
    "burst_entries",
    "check_burst",
    "model_call",
    "op_indices",
    "views_from_models",
]

#: seconds from sending an inference to its admission at the worker (see the module docstring)
ADMISSION_BOUND = 1.0

QUEEN_LIST = "/v2/workers/list"
HIVE_LIST = "/v1/workers/list"


def _path(op: Op) -> str:
    return op.path.split("?", 1)[0]


def _worker_of(op: Op) -> str | None:
    """The worker id of an op sent to a worker client (service ``worker:<id>``)."""
    prefix, _, worker_id = op.service.partition(":")
    return worker_id if prefix == "worker" and worker_id else None


# -- the global model ---------------------------------------------------------------------------


def model_call(op: Op) -> Call | None:
    """The global model's call for a recorded op, or None for an op it does not model (reads,
    probes, faults, inferences at a worker)."""
    args, path = op.args, _path(op)
    if path == "/v2/workers/register":
        return RegisterWorker(
            str(args.get("worker_id", "")),
            str(args.get("node_name", "")),
            str(args.get("url", "")),
            str(args.get("model_ref", "hf:rbee/phantom")),
            int(args.get("slots_total", 1)),
        )
    if path == "/v2/workers/shutdown":
        return ShutdownWorker(str(args.get("worker_id", "")))
    if path == "/v1/workers/spawn":
        body = op.body if isinstance(op.outcome, Ok) and isinstance(op.body, dict) else {}
        return Spawn(
            op.service,
            str(args.get("model_ref", "")),
            str(body.get("worker_id", "")),
            str(body.get("url", "")),
        )
    if path == "/v1/workers/ready":
        return ReadyCallback(op.service, str(args.get("worker_id", "")))
    return None


# -- the burst model ----------------------------------------------------------------------------


@attrs.frozen
class BurstWorld:
    """What the burst check knows before the burst: per known worker id, its hive (None for a
    phantom) and the views it may start in."""

    homes: Mapping[str, str | None] = attrs.field(factory=dict)
    views: Mapping[str, tuple[WorkerView, ...]] = attrs.field(factory=dict)

    def start(self, key: Hashable) -> tuple[WorkerView, ...]:
        """The start views of ``key``; an id nobody had starts :data:`UNKNOWN`."""
        return self.views.get(str(key), (UNKNOWN,))


def views_from_models(
    models: Sequence[ClusterState],
    worker_id: str,
    *,
    slots: tuple[int, int] | None = None,
) -> tuple[WorkerView, ...]:
    """The views ``worker_id`` may be in, according to any of the global ``models``.

    ``slots`` is ``(total, available)`` as the worker reported them just before the burst
    (None: unknown, and inferences at it are not judged). A spawned worker that the queen must
    list has reported ready, so its hive entry is ``ready``; wherever a model is unsure (a
    fault, a shutdown not yet settled) every possibility is kept.
    """
    total, available = slots or (0, 0)
    out: set[WorkerView] = set()
    for state in models:
        worker = state.workers.get(worker_id)
        if worker is None:
            out.add(UNKNOWN)
            continue
        where = state.presence_at_queen(worker)
        queen = {"must": (True,), "not": (False,)}.get(where, (True, False))
        spawned = worker.origin == "spawned"
        hives: tuple[str, ...] = ("none",)
        if spawned:
            sure = worker.alive and not worker.orphan and where == "must"
            hives = ("ready",) if sure else ("loading", "ready", "gone")
        for listed in queen:
            for hive in hives:
                out.add(
                    WorkerView(
                        origin=worker.origin,
                        home=worker.node if spawned else None,
                        queen=listed,
                        hive=hive,
                        alive=worker.alive and hive != "gone",
                        slots=total,
                        anon=max(total - available, 0),
                    )
                )
    return tuple(sorted(out, key=repr))


def _listed(op: Op, id_key: str) -> dict[str, str] | None:
    """``{worker id: state}`` of an Ok list op, or None when it shows nothing readable."""
    body = op.body
    if not isinstance(op.outcome, Ok) or not isinstance(body, dict):
        return None
    items = body.get("workers")
    if not isinstance(items, list):
        return None
    return {
        str(item[id_key]): str(item.get("state", ""))
        for item in items
        if isinstance(item, dict) and isinstance(item.get(id_key), str)
    }


def _decode_seconds(op: Op) -> float:
    """The worker's own ``decode_time_ms`` from the ``end`` event of a stream (0 if absent)."""
    body = op.body
    events = body.get("events") if isinstance(body, dict) else None
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict) and event.get("type") == "end":
            value = event.get("decode_time_ms")
            if isinstance(value, int | float) and value > 0:
                return float(value) / 1000.0
    return 0.0


def _keys(ops: Sequence[Op], homes: Mapping[str, str | None]) -> dict[str, str | None]:
    """Every worker id the burst touches, with its hive: the known ones, the ids ops name, and
    the ids spawns answered."""
    keys = dict(homes)
    for op in ops:
        path = _path(op)
        if path == "/v1/workers/spawn" and isinstance(op.outcome, Ok):
            worker_id = op.body.get("worker_id") if isinstance(op.body, dict) else None
            if isinstance(worker_id, str) and worker_id:
                keys[worker_id] = op.service
        elif path in ("/v2/workers/register", "/v2/workers/shutdown", "/v1/workers/ready"):
            keys.setdefault(str(op.args.get("worker_id", "")), None)
        elif _worker_of(op):
            keys.setdefault(str(_worker_of(op)), None)
    return keys


def _entries_of(
    op: Op, keys: Mapping[str, str | None], known: Set[str], admission_bound: float
) -> Iterable[tuple[str, str, object, float, float]]:
    """(key, part label, call, invoke, complete) for each entry of one op; ``known``: the ids
    the world knew before the burst (any other registered id is a fresh phantom)."""
    path, inv, comp = _path(op), op.invoke, op.complete
    if op.method == "GET" and path in (QUEEN_LIST, HIVE_LIST):
        listed = _listed(op, "worker_id" if path == QUEEN_LIST else "id")
        if listed is None:
            return
        for key, home in keys.items():
            if path == QUEEN_LIST:
                yield key, "seen", SeenAtQueen(key in listed), inv, comp
            elif home == op.service:
                state = listed.get(key)
                seen = "absent" if state is None else "loading" if state == "loading" else "ready"
                yield key, "seen", SeenAtHive(op.service, seen), inv, comp
    elif path == "/v2/workers/register":
        key = str(op.args.get("worker_id", ""))
        yield key, "register", Register(fresh=key not in known), inv, comp
    elif path == "/v2/workers/shutdown":
        key = str(op.args.get("worker_id", ""))
        yield key, "check", ShutdownCheck(op.index), inv, comp
        if not isinstance(op.outcome, Fail):
            yield key, "done", ShutdownDone(op.index), inv, comp
    elif path == "/v1/workers/spawn" and isinstance(op.outcome, Ok):
        worker_id = op.body.get("worker_id") if isinstance(op.body, dict) else None
        if isinstance(worker_id, str) and worker_id:
            yield worker_id, "spawn", Spawned(op.service), inv, comp
    elif path == "/v1/workers/ready":
        yield str(op.args.get("worker_id", "")), "ready", Ready(op.service), inv, comp
    elif path == "/v1/inference" and _worker_of(op):
        key = str(_worker_of(op))
        if isinstance(op.outcome, Fail):
            code = op.outcome.code
            yield key, "refused", InferAnswer(op.outcome.status, code), inv, comp
            return
        taken = min(comp, inv + admission_bound)
        freed = min(comp, inv + _decode_seconds(op))
        yield key, "taken", SlotTaken(op.index), inv, taken
        yield key, "freed", SlotFreed(op.index), freed, comp


def burst_entries(
    ops: Iterable[Op], world: BurstWorld, *, admission_bound: float = ADMISSION_BOUND
) -> list[Entry[object]]:
    """The checker's entries for the ops of a burst, keyed by worker id.

    Each entry's id is ``(op index, part, worker id)``, the part one of ``seen`` (a list read),
    ``register``, ``check`` and ``done`` (a shutdown), ``spawn``, ``ready``, ``taken`` and
    ``freed`` (an admitted inference), ``refused``. Reads that failed or timed out say nothing
    and are left out, as are ops the model does not cover (health probes, faults, inferences
    through the queen: do not mix those with inferences at a worker in one burst, their slots
    are not tracked).
    """
    ops = list(ops)
    keys = _keys(ops, world.homes)
    known = set(world.homes)
    entries: list[Entry[object]] = []
    for op in ops:
        if op.method == "GET" and not isinstance(op.outcome, Ok):
            continue
        for key, part, call, invoke, complete in _entries_of(op, keys, known, admission_bound):
            entries.append(Entry((op.index, part, key), call, op.outcome, invoke, complete, key))
    return entries


def check_burst(
    ops: Iterable[Op],
    world: BurstWorld,
    *,
    admission_bound: float = ADMISSION_BOUND,
    max_states: int = 200_000,
) -> Result:
    """Check the ops of a burst against the per-worker model, one partition per worker id."""
    checker = LinearizabilityChecker(step, UNKNOWN, max_states=max_states, initial_for=world.start)
    return checker.check(burst_entries(ops, world, admission_bound=admission_bound))


def op_indices(ids: Iterable[Hashable]) -> list[int]:
    """The op indices behind entry ids ``(op index, part, worker id)`` (a window, a witness),
    in order of first appearance, each once."""
    out: list[int] = []
    for entry_id in ids:
        index = entry_id[0] if isinstance(entry_id, tuple) else entry_id
        if isinstance(index, int) and index not in out:
            out.append(index)
    return out
