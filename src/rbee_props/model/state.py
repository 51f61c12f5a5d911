"""The pure model's state: the registries of the stack as frozen attrs values.

The model encodes the *intended* behaviour (rbee-contract.md), not what one implementation
does. It knows every worker the test created, which hive and incarnation it belongs to, whether
its process should still live, and, when it must leave the registries, why (the reason names
the property a lingering entry violates). No clock, socket or randomness lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Beehive", "ClusterState", "HiveState", "Worker"]

#: why a worker must leave the registries -> the property a lingering entry violates
DOOM_PROPERTY = {
    "kill_worker": "C01",
    "pause_worker": "C01",
    "shutdown": "S04",
    "terminate_hive": "C09",
    "hive_restart": "C03",
}


@attrs.frozen
class Worker:
    """One worker the test knows of.

    ``origin`` is ``spawned`` (a real process started by a hive) or ``phantom`` (registered at
    the queen by hand, answered by rbee-props' phantom worker). ``doomed`` says why it must leave
    every registry within the grace window (None while it should stay).
    """

    worker_id: str
    node: str
    origin: str
    model_ref: str
    url: str = ""
    slots_total: int = 1
    incarnation: int = 0
    doomed: str | None = None
    orphan: bool = False

    @property
    def alive(self) -> bool:
        return self.doomed is None


@attrs.frozen
class HiveState:
    """One hive: whether it runs, its incarnation (bumped by every start), its faults."""

    up: bool = True
    paused: bool = False
    incarnation: int = 0
    partitioned: bool = False
    uncertain: bool = False  # a spawn timed out: an unknown worker may exist

    @property
    def reachable(self) -> bool:
        """Whether the test client can read its registry right now."""
        return self.up and not self.paused


@attrs.frozen
class Beehive:
    """One entry of the queen's beehive registry."""

    node_name: str
    ssh_host: str
    hive_port: int


@attrs.frozen
class ClusterState:
    """Everything the model knows: workers, hives, the queen, beehives."""

    workers: Mapping[str, Worker] = attrs.field(factory=dict)
    hives: Mapping[str, HiveState] = attrs.field(factory=dict)
    beehives: Mapping[str, Beehive] = attrs.field(factory=dict)
    queen_up: bool = True
    queen_paused: bool = False
    queen_incarnation: int = 0
    beehives_uncertain: frozenset[str] = frozenset()
    settled: bool = True  # False from a fault until the stack was seen to match the model
    #: (component, call) sent to a paused component that timed out: the request waits in its
    #: socket and may take effect when the component runs again
    #: (``transitions.fault_successors``)
    pending: tuple[tuple[str, Any], ...] = ()

    @property
    def queen_reachable(self) -> bool:
        return self.queen_up and not self.queen_paused

    def with_worker(self, worker: Worker) -> ClusterState:
        return attrs.evolve(self, workers={**self.workers, worker.worker_id: worker})

    def without_worker(self, worker_id: str) -> ClusterState:
        return attrs.evolve(self, workers={k: v for k, v in self.workers.items() if k != worker_id})

    def with_hive(self, name: str, hive: HiveState) -> ClusterState:
        return attrs.evolve(self, hives={**self.hives, name: hive})

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive]

    def presence_at_queen(self, worker: Worker) -> str:
        """Like :meth:`at_queen`, for judging a call right now: after a fault, until the stack
        was seen to match the model, a worker that must come or go may or may not be listed."""
        where = self.at_queen(worker)
        if worker.doomed or (not self.settled and where == "must"):
            return "may"  # a fault's consequences (eviction, a rebuild) may still be under way
        return where

    def is_paused(self, component: str) -> bool:
        """Whether ``component`` (``queen`` or a hive) runs but is frozen (SIGSTOP)."""
        if component == "queen":
            return self.queen_up and self.queen_paused
        hive = self.hives.get(component)
        return hive is not None and hive.up and hive.paused

    def left_to_paused_hive(self, worker: Worker) -> bool:
        """Whether ``worker``'s end is up to a hive that is frozen now: a frozen worker (C07) is
        evicted and killed by its hive's monitor, and a hive paused before it got to that kills
        nothing until it is resumed (it may also have killed the worker just before)."""
        return worker.doomed == "pause_worker" and self.is_paused(worker.node)

    def at_queen(self, worker: Worker) -> str:
        """Whether ``worker`` must be (``must``), may be (``may``) or must not be (``not``) listed
        by the queen once the stack is quiet."""
        if not worker.alive:
            return "not"
        if worker.origin == "phantom":
            return "must" if worker.incarnation == self.queen_incarnation else "not"
        hive = self.hives.get(worker.node, HiveState())
        if worker.orphan or hive.partitioned or not hive.up or hive.paused:
            return "may"
        return "must"
