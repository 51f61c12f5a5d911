"""The per-worker model of a concurrent burst: one worker id as queen, hive and slots show it.

The global model (:mod:`rbee_props.model`) judges one step at a time and says "may" wherever a
fault or a shutdown left the stack in doubt: after a shutdown, ``presence_at_queen`` is "may"
until the stack settles, so within a burst it would accept a second shutdown's 200 as readily as
a bug. This model is finer, and local to one worker id (the checker's partition key), so that
concurrent ops on that id are decidable (S01, S02, S04, S05, S06, S16):

- A :class:`WorkerView` is the id at one instant: listed by the queen or not, its hive's entry
  (``none``, ``loading``, ``ready``, ``gone``), whether its process (or phantom) still runs, and
  its slot pool (capacity, the inferences holding a slot, slots held by work from before).
- What the stack does on its own between two client ops is *drift*, applied before every op:
  a loading worker reports ready (its own callback) or is killed by the ready timeout; the hive
  registers a ready worker at the queen (again, in a race, right after a shutdown, or after the
  queen dropped it because its probes timed out on a starved host); a dead worker leaves the
  queen (failed health checks) and its hive (process exit); work from before the burst frees
  its slots. A phantom has no hive to put it back, so a live phantom never leaves the queen.
  Drift never returns a worker to ``loading``, so a worker seen listed by the queen and later
  ``loading`` at its hive is a finding (S05/S06).
- A queen shutdown is two steps, as the contract's route is (tell the worker, then drop the
  entry): ``ShutdownCheck`` finds the entry and stops the worker, ``ShutdownDone`` removes it.
  Two overlapping shutdowns may therefore both answer 200; a shutdown after a completed one
  must answer 404 (S04).
- A successful inference is two steps too: ``SlotTaken`` (admission) and ``SlotFreed`` (end of
  the stream). At most ``slots`` are held at once; a 503 ``ALL_SLOTS_BUSY`` needs all of them
  held (S16). The mapping (:mod:`rbee_props.checker.rbee`) bounds when each may happen.

No I/O: this module is part of the checker.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator

import attrs

from rbee_props.history import Indeterminate, Ok, Outcome

__all__ = [
    "UNKNOWN",
    "InferAnswer",
    "Ready",
    "Register",
    "SeenAtHive",
    "SeenAtQueen",
    "ShutdownCheck",
    "ShutdownDone",
    "SlotFreed",
    "SlotTaken",
    "Spawned",
    "WorkerView",
    "drift",
    "seen_at_hive",
    "step",
]


@attrs.frozen
class WorkerView:
    """One worker id at one instant.

    ``origin``: ``none`` (an id the stack never had), ``phantom`` (registered by hand, answered
    by a phantom worker) or ``spawned`` (a process started by the hive ``home``). ``hive`` is its
    entry there. ``alive``: it still answers as this worker (False from the moment a shutdown
    reached it). ``slots``: its capacity (0: unknown, so no inference is judged); ``anon``: slots
    held by work from before the burst; ``held``: the inferences of the burst holding one;
    ``closing``: shutdowns that found the entry and have not removed it yet.
    """

    origin: str = "none"
    home: str | None = None
    queen: bool = False
    hive: str = "none"
    alive: bool = False
    slots: int = 0
    anon: int = 0
    held: frozenset[Hashable] = frozenset()
    closing: frozenset[Hashable] = frozenset()


UNKNOWN = WorkerView()
"""An id nobody has used: not listed anywhere, no process."""


# -- the calls: what one recorded op says about one worker id ------------------------------------


@attrs.frozen
class SeenAtQueen:
    """A queen ``GET /v2/workers/list`` listed the id (or did not)."""

    listed: bool


@attrs.frozen
class SeenAtHive:
    """A hive ``GET /v1/workers/list``: ``absent``, ``loading`` or ``ready`` (idle or busy)."""

    hive: str
    state: str


@attrs.frozen
class Register:
    """``POST /v2/workers/register`` of the id; ``fresh``: a new id answered by a new phantom."""

    fresh: bool


@attrs.frozen
class ShutdownCheck:
    """``POST /v2/workers/shutdown``, first step: the queen finds the entry, stops the worker."""

    op: Hashable


@attrs.frozen
class ShutdownDone:
    """The second step of a shutdown answered 200: the queen drops the entry."""

    op: Hashable


@attrs.frozen
class Spawned:
    """``POST /v1/workers/spawn`` at ``hive`` answered this id: a new entry, loading."""

    hive: str


@attrs.frozen
class Ready:
    """``POST /v1/workers/ready`` for the id at ``hive``, sent by the test (S05)."""

    hive: str


@attrs.frozen
class SlotTaken:
    """An inference at the worker was admitted (the first step of a 200)."""

    op: Hashable


@attrs.frozen
class SlotFreed:
    """The admitted inference ended and freed its slot."""

    op: Hashable


@attrs.frozen
class InferAnswer:
    """An inference at the worker was refused: ``status`` (None: connection refused), ``code``."""

    status: int | None
    code: str | None


# -- drift: what the stack does on its own --------------------------------------------------------


def _moves(v: WorkerView) -> Iterator[WorkerView]:
    if v.origin == "spawned":
        if v.hive == "loading":
            if v.alive:
                yield attrs.evolve(v, hive="ready")  # its own ready callback
            yield attrs.evolve(v, hive="gone", alive=False)  # the ready timeout kills it
        if v.hive == "ready" and not v.queen:
            yield attrs.evolve(v, queen=True)  # the hive registers it (or re-registers it)
        if not v.alive and v.hive in ("loading", "ready"):
            yield attrs.evolve(v, hive="gone")  # the process exited; the hive drops it
        if v.alive and v.queen:
            yield attrs.evolve(v, queen=False)  # probes timed out (a starved host); re-added
    if not v.alive and v.queen:
        yield attrs.evolve(v, queen=False)  # failed health checks or reconciliation
    if v.anon:
        yield attrs.evolve(v, anon=v.anon - 1)  # work from before the burst ends


def drift(view: WorkerView) -> list[WorkerView]:
    """Every view the stack may reach from ``view`` on its own (``view`` first)."""
    seen = {view}
    out, todo = [view], [view]
    while todo:
        for nxt in _moves(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                out.append(nxt)
                todo.append(nxt)
    return out


# -- one op ----------------------------------------------------------------------------------------


def seen_at_hive(view: WorkerView, hive: str) -> str:
    """What a list of ``hive`` shows of the worker: ``absent``, ``loading`` or ``ready``."""
    if view.home != hive or view.hive in ("none", "gone"):
        return "absent"
    return view.hive


def _free(v: WorkerView) -> int:
    return v.slots - len(v.held) - v.anon


def _apply(v: WorkerView, call: object, outcome: Outcome) -> list[WorkerView]:
    """The views after ``call`` answered ``outcome`` in view ``v`` (empty: not allowed).

    An Indeterminate outcome means "it took effect, answer unknown": the checker adds the
    option that it never did.
    """
    ok, unsure = isinstance(outcome, Ok), isinstance(outcome, Indeterminate)
    status = getattr(outcome, "status", None)
    if isinstance(call, SeenAtQueen):
        return [v] if v.queen == call.listed else []
    if isinstance(call, SeenAtHive):
        return [v] if seen_at_hive(v, call.hive) == call.state else []
    if isinstance(call, Register):
        if v.queen:  # present: 409 and nothing changes (D1)
            return [v] if status == 409 or unsure else []
        new = call.fresh and v.origin == "none"
        added = attrs.evolve(v, queen=True, origin="phantom", alive=True) if new else v
        return [attrs.evolve(added, queen=True)] if ok or unsure else []
    if isinstance(call, ShutdownCheck):
        if ok or unsure:
            if v.queen:
                return [attrs.evolve(v, alive=False, closing=v.closing | {call.op})]
            return [v] if unsure else []  # 200 for an id that is not listed
        if status == 404:  # not listed, or listed but its worker says it is not there any more
            return [v] if not v.queen or not v.alive else []
        if status in (502, 503):  # listed, and its worker is gone: the entry is kept
            return [v] if v.queen and not v.alive else []
        return []
    if isinstance(call, ShutdownDone):
        if call.op in v.closing:
            return [attrs.evolve(v, queen=False, closing=v.closing - {call.op})]
        return []
    if isinstance(call, Spawned):
        if v.origin == "none" and not v.queen and ok:
            return [attrs.evolve(v, origin="spawned", home=call.hive, hive="loading", alive=True)]
        return []
    if isinstance(call, Ready):
        here = v.home == call.hive and v.hive in ("loading", "ready")
        if ok or unsure:
            if here and v.hive == "loading":
                return [attrs.evolve(v, hive="ready")]
            return [v] if unsure else []
        if status == 409:
            return [v] if here and v.hive == "ready" else []
        if status == 404:
            return [v] if not here else []
        return []
    if isinstance(call, SlotTaken):
        if v.alive and _free(v) > 0:
            return [attrs.evolve(v, held=v.held | {call.op})]
        return []
    if isinstance(call, SlotFreed):
        return [attrs.evolve(v, held=v.held - {call.op})] if call.op in v.held else []
    if isinstance(call, InferAnswer):
        if call.status == 503 and call.code == "ALL_SLOTS_BUSY":
            return [v] if v.alive and v.slots and _free(v) <= 0 else []
        if (call.status == 503 and call.code == "SHUTTING_DOWN") or call.status is None:
            return [v] if not v.alive else []
        return []
    msg = f"the burst model has no rule for {call!r}"
    raise TypeError(msg)


def step(view: WorkerView, call: object, outcome: Outcome) -> tuple[WorkerView, ...]:
    """The views the worker may be in after ``call`` answered ``outcome``, from ``view``.

    Drift first (anything the stack may do on its own before the op), then the op.
    """
    out: list[WorkerView] = []
    for before in drift(view):
        for after in _apply(before, call, outcome):
            if after not in out:
                out.append(after)
    return tuple(out)
