"""What a quiet stack must show, derived from the model: the expectation every step polls for.

For each registry the test can read (the queen, each reachable hive) and for the worker
processes, every known worker is ``must`` (listed), ``may`` (either) or ``not`` (absent), each
within the grace window G. Once the stack shows it, :func:`settle` drops the workers that are now
gone, so the model does not grow without bound.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from rbee_props.model.state import DOOM_PROPERTY, ClusterState, Worker

__all__ = ["Expectation", "expect", "settle"]


@attrs.frozen
class Expectation:
    """must / may / not per worker id, for the queen, each readable hive and the processes."""

    queen: Mapping[str, str] | None
    hives: Mapping[str, Mapping[str, str]]
    processes: Mapping[str, str]
    open_hives: frozenset[str]
    beehives: frozenset[str] | None
    doomed: Mapping[str, str]
    nodes: Mapping[str, str]

    def property_for(self, worker_id: str, default: str) -> str:
        """The property a lingering entry of ``worker_id`` violates."""
        reason = self.doomed.get(worker_id)
        return DOOM_PROPERTY.get(reason, default) if reason else default


def _on_hive(state: ClusterState, worker: Worker, hive: str) -> str:
    if worker.origin != "spawned" or worker.node != hive:
        return "not"
    current = state.hives[hive].incarnation if hive in state.hives else 0
    return "must" if worker.alive and worker.incarnation == current else "not"


def expect(state: ClusterState) -> Expectation:
    """The expectation for a quiet stack in ``state``."""
    workers = list(state.workers.values())
    queen = {w.worker_id: state.at_queen(w) for w in workers} if state.queen_reachable else None
    hives = {
        name: {w.worker_id: _on_hive(state, w, name) for w in workers}
        for name, hive in state.hives.items()
        if hive.reachable
    }
    processes = {
        w.worker_id: (
            "may" if w.orphan or state.left_to_paused_hive(w) else "not" if not w.alive else "must"
        )
        for w in workers
        if w.origin == "spawned"
    }
    open_hives = frozenset(name for name, hive in state.hives.items() if hive.uncertain)
    beehives = None if not state.queen_reachable else frozenset(state.beehives)
    return Expectation(
        queen=queen,
        hives=hives,
        processes=processes,
        open_hives=open_hives,
        beehives=beehives,
        doomed={w.worker_id: w.doomed for w in workers if w.doomed},
        nodes={w.worker_id: w.node for w in workers},
    )


def settle(state: ClusterState) -> ClusterState:
    """The state once the stack has shown the expectation: doomed workers are gone for good
    (except those a paused hive has still to kill: they must be gone once it is resumed)."""
    workers = {
        k: w
        for k, w in state.workers.items()
        if (w.alive or state.left_to_paused_hive(w))
        and not (w.origin == "phantom" and w.incarnation != state.queen_incarnation)
    }
    return attrs.evolve(state, workers=workers, settled=True)
