"""A burst's plan: generated lanes of op descriptions resolved against the model and the stack.

A burst is generated as plain data, ``[[{"op": "spawn", "hive": 0}, ...], ...]`` (a list of
lanes, each a list of ops), so that Hypothesis and ``repro.replay.shrink_program`` can drop
lanes and ops, and a replay resolves the same data against its own run. Resolution:

- ``worker`` is an index into the live workers the model knows, in the order they appeared
  (``worker % count``), for ``infer`` into the live spawned ones (whose slots the test can
  read); an op on a worker is skipped when there is none;
- ``label`` names a fresh id within the burst: every ``register_new``/``shutdown_new`` with the
  same label uses the same new id (so two lanes can race on it), answered by a leased phantom;
- ``hive`` is an index into the stack's hives; ``spawn`` ops past ``max_spawns`` in a burst, or
  once ``max_live`` spawned workers are alive, are skipped (each is a process on a small host);
- an ``infer`` is long (about 2.5 x the admission bound) when the burst sends the worker more
  inferences than it has free slots, so that a queued one cannot pass for a prompt one (S16),
  and short otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from rbee_props.checker.rbee import BurstWorld, views_from_models
from rbee_props.history import Ok, Op
from rbee_props.machines._lanes import Action, LaneClients
from rbee_props.machines._spawning import MODEL_REF
from rbee_props.model import ClusterState, Worker

__all__ = ["OP_KINDS", "BurstPlan", "plan_burst", "slots_of", "stream_tokens"]

OP_KINDS = (
    "list_queen",
    "list_hive",
    "register",
    "register_new",
    "shutdown",
    "shutdown_new",
    "spawn",
    "ready",
    "infer",
)

PHANTOM_MODEL = "hf:rbee/phantom"
PHANTOM_NODE = "phantom-node"
SHORT_TOKENS = 4
MAX_TOKENS = 2048  # the worker's limit (contract §5.3)


@attrs.define
class BurstPlan:
    """What a burst will send, per lane, and what the check needs to know beforehand."""

    lanes: list[list[Action]]
    world: BurstWorld
    workers: dict[str, str]  # id -> URL of every worker a lane talks to
    spawns: int = 0


@attrs.define
class _Planner:
    """Resolves one burst's op descriptions (see the module docstring)."""

    models: Sequence[ClusterState]
    hives: Sequence[str]
    lease: Callable[[str], str | None]  # phantom URL for a new id, None when none is free
    fresh_id: Callable[[str], str]
    slots: Callable[[Worker], tuple[int, int] | None]  # (total, available) read at the worker
    max_spawns: int
    max_live: int
    stream_tokens: int
    timings: Mapping[str, float]
    known: list[Worker] = attrs.field(init=False)
    labels: dict[int, tuple[str, str | None]] = attrs.field(factory=dict)
    readings: dict[str, tuple[int, int] | None] = attrs.field(factory=dict)
    spawns: int = 0
    jobs: int = 0

    def __attrs_post_init__(self) -> None:
        self.known = [w for w in self.models[-1].workers.values() if w.alive]

    def worker(self, op: Mapping[str, Any]) -> Worker | None:
        """The worker an op names: among the live workers, or for ``infer`` among the live
        spawned ones (only their slots can be read)."""
        index = op.get("worker")
        pool = self.known
        if op.get("op") == "infer":
            pool = [w for w in self.known if w.origin == "spawned" and w.url]
        if not pool or not isinstance(index, int):
            return None
        return pool[index % len(pool)]

    def hive(self, op: Mapping[str, Any]) -> str:
        index = op.get("hive", 0)
        return self.hives[index % len(self.hives)] if isinstance(index, int) else str(index)

    def label(self, op: Mapping[str, Any], *, lease: bool) -> tuple[str, str | None]:
        """The fresh id of ``op``'s label and its phantom's URL (leased on first register)."""
        key = int(op.get("label", 0))
        worker_id, url = self.labels.get(key) or (self.fresh_id("phantom"), None)
        if lease and url is None:
            url = self.lease(worker_id)
        self.labels[key] = (worker_id, url)
        return worker_id, url

    def reading(self, worker: Worker) -> tuple[int, int] | None:
        if worker.worker_id not in self.readings:
            self.readings[worker.worker_id] = self.slots(worker)
        return self.readings[worker.worker_id]

    def live_spawned(self) -> int:
        return sum(w.origin == "spawned" for w in self.known)

    def action(self, op: Mapping[str, Any], tokens: Mapping[str, int]) -> Action | None:
        """The action for one op description, or None when it is skipped."""
        kind, t = op.get("op"), self.timings
        if kind == "list_queen":
            return Action("list_queen", lambda c: c.queen.list_workers(timeout=2.0))
        if kind == "list_hive":
            hive = self.hive(op)
            return Action(f"list {hive}", lambda c: c.hives[hive].list_workers(timeout=2.0))
        if kind in ("register_new", "shutdown_new"):
            worker_id, url = self.label(op, lease=kind == "register_new")
            if kind == "shutdown_new":
                return Action("shutdown new", _shutdown(worker_id, t))
            if url is None:
                return None  # every phantom is leased: the id could not be answered
            return Action("register new", _register(worker_id, url, PHANTOM_MODEL, PHANTOM_NODE))
        if kind == "spawn":
            if self.spawns >= self.max_spawns or self.live_spawned() + self.spawns >= self.max_live:
                return None
            self.spawns += 1
            hive, slots = self.hive(op), int(op.get("slots", 1))
            timeout = t["spawn_timeout"] + 2.0
            return Action(
                f"spawn {hive}",
                lambda c: c.hives[hive].spawn(
                    model_ref=MODEL_REF, slots_total=slots, timeout=timeout
                ),
            )
        worker = self.worker(op)
        if worker is None:
            return None
        if kind == "register":
            return Action("register", _register(worker.worker_id, worker.url,
                                                worker.model_ref, worker.node))  # fmt: skip
        if kind == "shutdown":
            return Action("shutdown", _shutdown(worker.worker_id, t))
        if kind == "ready":
            hive = worker.node if worker.origin == "spawned" else self.hives[0]
            url = worker.url or "http://127.0.0.1:9"
            return Action(
                "ready",
                lambda c: c.hives[hive].ready(
                    worker.worker_id, url=url, model_ref=worker.model_ref, timeout=2.0
                ),
            )
        if kind == "infer":
            if self.reading(worker) is None:
                return None
            self.jobs += 1
            job, n = f"burst-job-{self.jobs}", tokens.get(worker.worker_id, SHORT_TOKENS)
            timeout = t["inference_timeout"]
            return Action(
                "infer",
                lambda c: c.workers[worker.worker_id].inference(
                    job_id=job, prompt="hello rbee", max_tokens=n, timeout=timeout
                ),
            )
        return None

    def tokens(self, lanes: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, int]:
        """Long streams for the workers the burst sends more inferences than free slots."""
        sent: dict[str, int] = {}
        for lane in lanes:
            for op in lane:
                worker = self.worker(op) if op.get("op") == "infer" else None
                if worker is not None and worker.origin == "spawned":
                    sent[worker.worker_id] = sent.get(worker.worker_id, 0) + 1
        out = {}
        for worker_id, count in sent.items():
            reading = self.reading(next(w for w in self.known if w.worker_id == worker_id))
            if reading is not None and count > reading[1]:
                out[worker_id] = self.stream_tokens
        return out


def _register(worker_id: str, url: str, model_ref: str, node: str) -> Callable[[LaneClients], Op]:
    return lambda c: c.queen.register_worker(
        worker_id, url=url, model_ref=model_ref, node_name=node, timeout=3.0
    )


def _shutdown(worker_id: str, timings: Mapping[str, float]) -> Callable[[LaneClients], Op]:
    timeout = timings["kill_grace"] + timings["health_timeout"] + 2.0
    return lambda c: c.queen.shutdown_worker(worker_id, timeout=timeout)


def stream_tokens(admission_bound: float, token_delay: float) -> int:
    """Tokens for a stream of about 2.5 admission bounds (capped at the worker's limit)."""
    if token_delay <= 0:
        return MAX_TOKENS
    return max(SHORT_TOKENS, min(MAX_TOKENS, math.ceil(2.5 * admission_bound / token_delay)))


def plan_burst(
    lanes: Sequence[Sequence[Mapping[str, Any]]],
    *,
    models: Sequence[ClusterState],
    hives: Sequence[str],
    lease: Callable[[str], str | None],
    fresh_id: Callable[[str], str],
    slots: Callable[[Worker], tuple[int, int] | None],
    admission_bound: float,
    timings: Mapping[str, float],
    max_spawns: int = 3,
    max_live: int = 5,
) -> BurstPlan:
    """Resolve generated ``lanes`` into actions; empty lanes are dropped.

    ``slots(worker)`` reads ``(slots_total, slots_available)`` at a worker (a recorded op,
    before the burst) and is called once per worker an ``infer`` targets.
    """
    planner = _Planner(
        models=models, hives=hives, lease=lease, fresh_id=fresh_id, slots=slots,
        max_spawns=max_spawns, max_live=max_live, timings=timings,
        stream_tokens=stream_tokens(admission_bound, timings["token_delay"]),
    )  # fmt: skip
    tokens = planner.tokens(lanes)
    resolved = [
        [a for a in (planner.action(op, tokens) for op in lane if isinstance(op, Mapping)) if a]
        for lane in lanes
    ]
    resolved = [lane for lane in resolved if lane]
    homes: dict[str, str | None] = {}
    views = {}
    for state in models:
        for worker in state.workers.values():
            homes[worker.worker_id] = worker.node if worker.origin == "spawned" else None
    for worker_id in homes:
        views[worker_id] = views_from_models(
            models, worker_id, slots=planner.readings.get(worker_id)
        )
    workers = {
        w.worker_id: w.url
        for w in planner.known
        if planner.readings.get(w.worker_id) is not None and w.url
    }
    return BurstPlan(resolved, BurstWorld(homes, views), workers, planner.spawns)


def slots_of(op: Op) -> tuple[int, int] | None:
    """``(slots_total, slots_available)`` from a worker's ``GET /health`` op, if it says."""
    body = op.body if isinstance(op.outcome, Ok) and isinstance(op.body, dict) else {}
    total, available = body.get("slots_total"), body.get("slots_available")
    if isinstance(total, int) and isinstance(available, int) and total >= 1:
        return total, max(0, min(available, total))
    return None
