"""One transition per operation: ``step(state, call, outcome)`` -> the possible next states.

An empty tuple means the outcome is not allowed from ``state``: a finding. An indeterminate
outcome (timeout, cut connection) keeps both the unchanged and the applied state, so a later
observation decides (Jepsen's ``:info``). ``allowed(state, call)`` describes the allowed outcomes
in words for reports. Faults have no outcome: ``apply_fault(state, fault)``.
"""

from __future__ import annotations

import attrs

from rbee_props.history import Fail, Indeterminate, Ok, Outcome
from rbee_props.model.ops import (
    AddBeehive,
    Call,
    FaultOp,
    Inference,
    ReadyCallback,
    RegisterWorker,
    RemoveBeehive,
    ShutdownWorker,
    Spawn,
)
from rbee_props.model.state import Beehive, ClusterState, HiveState, Worker

__all__ = ["allowed", "apply_fault", "step"]

States = tuple[ClusterState, ...]


def _rule(state: ClusterState, call: Call) -> tuple[dict[object, ClusterState], str]:
    """Map each allowed status (an int, ``"2xx"``, None for refused) to the next state."""
    same = state
    if isinstance(call, Spawn | ReadyCallback):
        hive = state.hives.get(call.hive, HiveState())
        if not hive.up:
            return {None: same}, f"{call.hive} is down: connection refused"
    elif not state.queen_up:
        return {None: same}, "the queen is down: connection refused"

    if isinstance(call, RegisterWorker):
        known = state.workers.get(call.worker_id)
        where = state.presence_at_queen(known) if known else "not"
        added = state.with_worker(
            Worker(
                worker_id=call.worker_id,
                node=call.node,
                origin="phantom",
                model_ref=call.model_ref,
                url=call.url,
                slots_total=call.slots_total,
                incarnation=state.queen_incarnation,
            )
        )
        if where == "must":
            return {409: same}, "409 WORKER_ALREADY_REGISTERED, registry unchanged (D1)"
        if where == "may":
            return {409: same, "2xx": same}, "409 (still registered) or 200/201 (gone)"
        return {"2xx": added}, "200 or 201: a new id is registered (D1)"

    if isinstance(call, ShutdownWorker):
        known = state.workers.get(call.worker_id)
        where = state.presence_at_queen(known) if known else "not"
        if known is None or where == "not":
            return {404: same}, "404 WORKER_NOT_FOUND: the id is not registered"
        doomed = state.with_worker(attrs.evolve(known, doomed=known.doomed or "shutdown"))
        if where == "must":
            return {"2xx": doomed}, "200: the worker is told to shut down and leaves the registry"
        return {"2xx": doomed, 404: same, 503: same, 502: same}, "200, or 404/502/503 (in doubt)"

    if isinstance(call, Spawn):
        hive = state.hives.get(call.hive, HiveState())
        if hive.paused:
            return {}, "no answer while the hive is paused"
        spawned = state.with_worker(
            Worker(
                worker_id=call.worker_id,
                node=call.hive,
                origin="spawned",
                model_ref=call.model_ref,
                url=call.url,
                incarnation=hive.incarnation,
            )
        )
        return {"2xx": spawned, 503: same}, "200 with a new worker in state loading"

    if isinstance(call, ReadyCallback):
        known = state.workers.get(call.worker_id)
        hive = state.hives.get(call.hive, HiveState())
        mine = (
            known is not None
            and known.alive
            and known.origin == "spawned"
            and known.node == call.hive
            and known.incarnation == hive.incarnation
        )
        if mine:
            return {409: same}, "409 ILLEGAL_TRANSITION: the worker is no longer loading (S05)"
        if known is not None and known.doomed and known.node == call.hive:
            return {409: same, 404: same}, "409 (still listed) or 404 (already gone)"
        return {404: same}, "404 WORKER_NOT_FOUND: the hive does not know this id (S05)"

    if isinstance(call, Inference):
        wheres = {state.presence_at_queen(w) for w in state.workers.values()}
        if "must" in wheres:
            return {"2xx": same}, "200 SSE from an idle registered worker (S13, S15)"
        if "may" in wheres:
            return {"2xx": same, 503: same, 502: same}, "200 or 503 NO_IDLE_WORKERS (in doubt)"
        return {503: same}, "503 NO_IDLE_WORKERS: no idle worker is registered"

    if isinstance(call, AddBeehive):
        if call.node_name in state.beehives:
            return {409: same}, "409 NODE_ALREADY_EXISTS, the entry is kept (D15)"
        node = Beehive(call.node_name, call.ssh_host, call.hive_port)
        added = attrs.evolve(state, beehives={**state.beehives, call.node_name: node})
        return {"2xx": added}, "200: the node is added"

    if isinstance(call, RemoveBeehive):
        if call.node_name not in state.beehives:
            return {404: same}, "404 NODE_NOT_FOUND"
        left = {k: v for k, v in state.beehives.items() if k != call.node_name}
        return {"2xx": attrs.evolve(state, beehives=left)}, "200: the node is removed"

    msg = f"no transition for {call!r}"
    raise TypeError(msg)


def step(state: ClusterState, call: Call, outcome: Outcome) -> States:
    """The states ``state`` may move to when ``call`` completes with ``outcome``.

    Empty when the outcome is not allowed (a finding).
    """
    if isinstance(outcome, Indeterminate) and state.is_paused(component_of(call)):
        # a frozen component has not read the request yet: nothing happened so far, and it
        # may still happen once the component runs again (resolved by ``fault_successors``)
        return (attrs.evolve(state, pending=(*state.pending, (component_of(call), call))),)
    if isinstance(outcome, Indeterminate):
        return _indeterminate(state, call)
    rules, _ = _rule(state, call)
    status = outcome.status
    if isinstance(outcome, Ok) and "2xx" in rules:
        return (rules["2xx"],)
    if isinstance(outcome, Fail) and status in rules:
        return (rules[status],)
    if isinstance(outcome, Fail) and status is None and state.queen_paused:
        return (state,)
    return ()


def _indeterminate(state: ClusterState, call: Call) -> States:
    """The states after ``call`` whose answer never came: it may or may not have taken effect."""
    if isinstance(call, Spawn):
        hive = attrs.evolve(_hive(state, call.hive), uncertain=True)
        return (state.with_hive(call.hive, hive),)  # an unknown worker may now exist
    rules, _ = _rule(state, call)
    return (state, *[s for k, s in rules.items() if k == "2xx" and s != state])


def component_of(call: Call) -> str:
    """The component a call is sent to: a hive for spawns and ready callbacks, else the queen."""
    return call.hive if isinstance(call, Spawn | ReadyCallback) else "queen"


def allowed(state: ClusterState, call: Call) -> str:
    """The allowed outcomes of ``call`` from ``state``, in words (for REPORT.md)."""
    return _rule(state, call)[1]


# -- faults --------------------------------------------------------------------------------------


def _hive(state: ClusterState, name: str) -> HiveState:
    return state.hives.get(name, HiveState())


def _doom(state: ClusterState, reason: str, pick: object) -> ClusterState:
    workers = {
        k: (attrs.evolve(w, doomed=reason) if w.alive and pick(w) else w)  # type: ignore[operator]
        for k, w in state.workers.items()
    }
    return attrs.evolve(state, workers=workers)


def fault_successors(state: ClusterState, fault: FaultOp) -> States:
    """The states after a fault, with the calls pending at its target resolved.

    A request that timed out at a frozen component is still in its socket. When the component
    runs again (resume; a SIGTERM, which also lets it finish what it read) the request may or
    may not be served, so both states follow; a SIGKILL discards it unread.
    """
    after = apply_fault(state, fault)
    waiting = [call for component, call in after.pending if component == fault.target]
    if not waiting or fault.kind not in ("resume", "terminate", "restart", "kill"):
        return (after,)
    after = attrs.evolve(after, pending=tuple(p for p in after.pending if p[0] != fault.target))
    if fault.kind == "kill":
        return (after,)
    states: list[ClusterState] = [after]
    for call in waiting:
        states = [n for s in states for n in _indeterminate(s, call)]
    return tuple(s for i, s in enumerate(states) if s not in states[:i])


def apply_fault(state: ClusterState, fault: FaultOp) -> ClusterState:
    """The state after a fault (faults always happen; the stack controller checks that)."""
    return attrs.evolve(_apply_fault(state, fault), settled=False)


def _apply_fault(state: ClusterState, fault: FaultOp) -> ClusterState:
    kind, target = fault.kind, fault.target
    if kind in ("kill_worker", "pause_worker"):
        worker = state.workers.get(target)
        if worker is None or (kind == "pause_worker" and worker.orphan):
            # a frozen orphan has no hive to evict and kill it: it stays an orphan until its
            # hive starts again and reaps it (C03); the queen may drop it meanwhile
            return state
        return state.with_worker(attrs.evolve(worker, doomed=kind))
    if kind == "partition":
        return state.with_hive(target, attrs.evolve(_hive(state, target), partitioned=True))
    if kind == "heal":
        hives = {k: attrs.evolve(h, partitioned=False) for k, h in state.hives.items()}
        return attrs.evolve(state, hives=hives)
    if kind == "slow":
        return state
    if target == "queen":
        return _queen_fault(state, kind)
    return _hive_fault(state, kind, target)


def _queen_fault(state: ClusterState, kind: str) -> ClusterState:
    if kind in ("kill", "terminate"):
        return attrs.evolve(state, queen_up=False, queen_paused=False)
    if kind in ("start", "restart"):
        if kind == "start" and state.queen_up:
            return state
        return attrs.evolve(
            state, queen_up=True, queen_paused=False, queen_incarnation=state.queen_incarnation + 1
        )
    if kind == "pause":
        return attrs.evolve(state, queen_paused=True)
    if kind == "resume":
        return attrs.evolve(state, queen_paused=False)
    msg = f"unknown fault {kind!r} on the queen"
    raise ValueError(msg)


def _hive_fault(state: ClusterState, kind: str, name: str) -> ClusterState:
    hive = _hive(state, name)

    def on_hive(worker: Worker) -> bool:
        return worker.node == name and worker.origin == "spawned"

    if kind in ("kill", "terminate", "pause", "resume") and not hive.up:
        # no hive process to signal: its orphans stay orphans (a SIGTERM cannot make a dead
        # hive kill them), until a start reaps them (C03)
        return state
    if kind == "kill":
        # every process of the hive is on its own now, also one the hive was about to kill
        workers = {
            k: (attrs.evolve(w, orphan=True) if on_hive(w) else w) for k, w in state.workers.items()
        }
        state = attrs.evolve(state, workers=workers)
        return state.with_hive(name, attrs.evolve(hive, up=False, paused=False))
    if kind == "terminate":
        state = _doom(state, "terminate_hive", on_hive)
        return state.with_hive(name, attrs.evolve(hive, up=False, paused=False))
    if kind in ("start", "restart"):
        if kind == "start" and hive.up:
            return state
        if kind == "restart":
            state = _doom(state, "terminate_hive", on_hive)
        state = _doom(state, "hive_restart", on_hive)  # orphans of the old incarnation
        workers = {
            k: (attrs.evolve(w, orphan=False, doomed=w.doomed or "hive_restart")
                if w.orphan and on_hive(w) else w)
            for k, w in state.workers.items()
        }  # fmt: skip
        state = attrs.evolve(state, workers=workers)  # the new hive reaps them
        fresh = attrs.evolve(
            hive, up=True, paused=False, incarnation=hive.incarnation + 1, uncertain=False
        )
        return state.with_hive(name, fresh)
    if kind == "pause":
        return state.with_hive(name, attrs.evolve(hive, paused=True))
    if kind == "resume":
        return state.with_hive(name, attrs.evolve(hive, paused=False))
    msg = f"unknown fault {kind!r} on {name!r}"
    raise ValueError(msg)
