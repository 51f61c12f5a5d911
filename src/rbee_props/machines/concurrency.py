"""Concurrent bursts: a generated batch of operations on N lanes at once, checked exactly.

The ``burst`` rule sends lanes of operations (register, shutdown, spawn, ready callbacks,
inferences at a worker, list reads) at the same moment, one thread per lane behind a barrier
(``slot_burst`` sends inferences only, all at one worker: the S16 case);
every op lands in the History with its lane, invoke and complete times. Then, while the stack
settles (until the workers the burst spawned are registered at the queen, within the ready
timeout), the queen and hive lists are read again. The whole slice of history is checked
against the per-worker burst model (:mod:`rbee_props.checker.rbee`):

- ``NotLinearizable``: a finding, with the failing window of ops (S06; S16 when an inference
  is in the window: k free slots and n concurrent inferences, min(n, k) run and the rest get
  503 at once; S02 when only registrations are);
- ``Unknown`` (the search budget ran out): never a pass, never a finding; counted as
  indeterminate in :func:`burst_stats` and logged, and the global model takes every op of the
  burst as indeterminate;
- ``Linearizable``: the global model steps through the witness order, so the usual per-call
  checks and, after the rule, the usual invariants (``converge``) judge what the burst left.

The burst is the rule's generated data (lists of lanes of op dicts), so Hypothesis and
``repro.replay.shrink_program`` shrink it by dropping lanes and ops.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from rbee_props.checker import Linearizable, NotLinearizable, Result, Unknown
from rbee_props.checker.rbee import ADMISSION_BOUND, check_burst, model_call, op_indices
from rbee_props.client import WorkerClient
from rbee_props.findings import Violation
from rbee_props.history import Indeterminate, Op
from rbee_props.invariants import explain
from rbee_props.machines._bundles import spawned
from rbee_props.machines._burst import plan_burst, slots_of
from rbee_props.machines._context import MachineContext
from rbee_props.machines._core import CALL_PROPERTY, MAX_MODELS, StackMachineBase, recorded
from rbee_props.machines._core import _unique as unique_states
from rbee_props.machines._lanes import run_lanes
from rbee_props.machines.churn import stream_problems
from rbee_props.machines.registration import RegistrationRules
from rbee_props.model import Call, Worker
from rbee_props.model import step as model_step
from rbee_props.stack import WaitTimedOut

__all__ = [
    "BurstStats",
    "ConcurrencyRules",
    "ConcurrentMachine",
    "burst_stats",
    "inference_lanes",
    "lanes",
]

log = logging.getLogger(__name__)

#: sentences for the burst properties the invariant registry has none for
EXPLAINS = {
    "S06": (
        "Concurrent operations behave as if each took effect at one instant between its request "
        "and its answer, in an order the model allows (linearizability)."
    ),
    "S16": (
        "A worker with k free slots given n concurrent inferences runs exactly min(n, k) of them "
        "and answers 503 ALL_SLOTS_BUSY to the rest at once, without queueing."
    ),
}

_worker = st.integers(min_value=0, max_value=7)
_label = st.integers(min_value=0, max_value=2)
_hive = st.integers(min_value=0, max_value=7)


def _op(kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"op": st.just(kind), **fields})


#: one op of a lane; the first alternatives (reads) are where shrinking heads
op_description = st.one_of(
    _op("list_queen"),
    _op("list_hive", hive=_hive),
    _op("register", worker=_worker),
    _op("register_new", label=_label),
    _op("shutdown", worker=_worker),
    _op("shutdown_new", label=_label),
    _op("spawn", hive=_hive, slots=st.integers(min_value=1, max_value=2)),
    _op("ready", worker=_worker),
    _op("infer", worker=_worker),
)


def lanes(*, min_lanes: int = 2, max_lanes: int = 16, max_ops: int = 3) -> st.SearchStrategy[Any]:
    """Bursts: ``min_lanes``..``max_lanes`` lanes of 1..``max_ops`` op descriptions each."""
    lane = st.lists(op_description, min_size=1, max_size=max_ops)
    return st.lists(lane, min_size=min_lanes, max_size=max_lanes)


def inference_lanes(*, max_lanes: int = 6) -> st.SearchStrategy[Any]:
    """S16 bursts: 2..``max_lanes`` lanes of one inference each, all at the same worker.

    A worker has one or two slots, so six at once already oversubscribe it three times; more
    lanes only lengthen the burst (each oversubscribed inference streams for a second, so that
    a queued one would visibly wait), not what it can show.
    """
    return _worker.flatmap(
        lambda worker: st.lists(
            st.just([{"op": "infer", "worker": worker}]), min_size=2, max_size=max_lanes
        )
    )


@attrs.define
class BurstStats:
    """What the bursts of one session showed: verdicts, and why any was indeterminate."""

    bursts: int = 0
    linearizable: int = 0
    not_linearizable: int = 0
    unknown: int = 0
    ops: int = 0
    reasons: list[str] = attrs.field(factory=list)

    def record(self, result: Result, ops: int) -> None:
        self.bursts += 1
        self.ops += ops
        if isinstance(result, Linearizable):
            self.linearizable += 1
        elif isinstance(result, NotLinearizable):
            self.not_linearizable += 1
        else:
            self.unknown += 1
            self.reasons.append(result.reason)


_STATS: weakref.WeakKeyDictionary[MachineContext, BurstStats] = weakref.WeakKeyDictionary()


def burst_stats(context: MachineContext) -> BurstStats:
    """The burst verdicts of a session (``Unknown`` ones are indeterminate, not passes)."""
    return _STATS.setdefault(context, BurstStats())


class ConcurrencyRules(StackMachineBase):
    """The ``burst`` and ``slot_burst`` rules (see the module docstring); they need a quiet,
    certain stack."""

    #: seconds from sending an inference to its admission (the S16 timing assumption)
    admission_bound: ClassVar[float] = ADMISSION_BOUND
    #: spawns per burst, and spawned workers alive at once (each is a process)
    max_spawns: ClassVar[int] = 3
    max_live_spawned: ClassVar[int] = 5

    def quiet(self) -> bool:
        """Whether a burst can be judged now: one possible model, everything up and reachable,
        no fault in effect (a burst checks concurrency, not recovery)."""
        if len(self.models) != 1:
            return False
        model = self.model
        return (
            model.settled
            and model.queen_reachable
            and all(h.reachable and not h.partitioned and not h.uncertain
                    for h in model.hives.values())
        )  # fmt: skip

    @precondition(lambda self: self.quiet())
    @rule(lanes=lanes())
    @recorded
    def burst(self, lanes: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        """S06/S16/S02 (+burst): the lanes' ops at once, then a check of the whole history."""
        self.run_burst(lanes)

    @precondition(lambda self: self.quiet())
    @rule(lanes=inference_lanes())
    @recorded
    def slot_burst(self, lanes: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        """S16: n inferences at once at one worker with k free slots: min(n, k) run, the rest
        get 503 at once. The same check as any burst, on the case the property names."""
        self.run_burst(lanes)

    # -- the steps of a burst ------------------------------------------------------------------
    def run_burst(self, lanes: Sequence[Sequence[Mapping[str, Any]]]) -> list[Op]:
        """Plan, send, settle, check, and step the global model (see the module docstring);
        the ops of the burst and of its settling."""
        timings = attrs.asdict(self.ctx.config.timings)
        plan = plan_burst(
            lanes, models=self.models, hives=self.stack.hives, lease=self.ctx.phantoms.lease,
            fresh_id=self.fresh_id, slots=self._read_slots,
            admission_bound=self.admission_bound, timings=timings,
            max_spawns=self.max_spawns, max_live=self.max_live_spawned,
        )  # fmt: skip
        start = len(self.history)
        if plan.lanes:
            run_lanes(self.stack, self.history, plan.lanes, workers=plan.workers)
        self._settle(start, timeout=timings["ready_timeout"] + self.ctx.grace)
        ops = self.history.since(start)
        result = check_burst(ops, plan.world, admission_bound=self.admission_bound)
        burst_stats(self.ctx).record(result, len(ops))
        if isinstance(result, NotLinearizable):
            self.fail(self._violation(result, ops, start, lanes=len(plan.lanes)))
        self._check_streams(ops)
        if isinstance(result, Linearizable):
            self._step_model(ops, op_indices(result.linearization))
        else:
            assert isinstance(result, Unknown)
            log.warning("burst at step %s is indeterminate: %s", self.step_index, result.reason)
            self._step_model(ops, [], unjudged=True)
        return ops

    def _read_slots(self, worker: Worker) -> tuple[int, int] | None:
        """A worker's slots, read at the worker just before the burst (a recorded op)."""
        client = WorkerClient(
            worker.url, self.stack.token, history=self.history, service=f"worker:{worker.worker_id}"
        )
        with client:
            return slots_of(client.health(timeout=2.0))

    def _settle(self, start: int, *, timeout: float) -> None:
        """Read the queen and hive lists until every worker the burst spawned is registered at
        the queen or gone from its hive (at least once; at most ``timeout`` seconds)."""
        spawned = {
            str(op.body["worker_id"]): op.service
            for op in self.history.since(start)
            if op.kind == "spawn"
            and op.ok
            and isinstance(op.body, dict)
            and op.body.get("worker_id")
        }

        def settled() -> bool:
            queen = _ids(self.queen.list_workers(timeout=2.0), "worker_id")
            hives = {
                name: _ids(client.list_workers(timeout=2.0), "id")
                for name, client in self.hive_clients.items()
            }
            return all(
                worker_id in (queen or ()) or worker_id not in (hives.get(hive) or {worker_id})
                for worker_id, hive in spawned.items()
            )

        # a worker that never came is for the invariants to judge; the check judges the rest
        with contextlib.suppress(WaitTimedOut):
            self.stack.wait_until(settled, timeout, what="the burst's workers registered")

    def _check_streams(self, ops: Sequence[Op]) -> None:
        """S15: every inference stream of the burst is well formed."""
        for op in ops:
            if op.kind == "inference" and op.ok and isinstance(op.body, dict):
                problems = stream_problems(op.body.get("events", []), op.args["max_tokens"])
                if problems:
                    self.fail(
                        Violation(
                            "S15",
                            explains=explain("S15"),
                            expected="tokens 0..n-1, tokens_out = n <= max_tokens, then [DONE]",
                            observed=f"op {op.index} ({op.service}): " + "; ".join(problems),
                            details={"op": op.index},
                        )
                    )

    def _step_model(
        self, ops: Sequence[Op], order: Sequence[int], *, unjudged: bool = False
    ) -> None:
        """Step the global model through the witness ``order``, then the ops it left out
        (timeouts that need not have happened), as the sequential rules do; ``unjudged``: no
        order is known, so every op is taken as indeterminate (both branches kept)."""
        by_index = {op.index: op for op in ops}
        placed = [by_index[i] for i in order if i in by_index]
        rest = [op for op in ops if op.index not in set(order)]
        for op in [*placed, *rest]:
            call = model_call(op)
            if call is None:
                continue
            if unjudged:
                op = attrs.evolve(op, outcome=Indeterminate("burst not judged"))
            if _judged(op):
                self._follow(call, op)
            else:
                self.call(call, op)

    def _follow(self, call: Call, op: Op) -> None:
        """Step the global model through an op the burst model has judged already.

        The global model is coarser (a spawned worker the queen must list is always listed
        there, while under load its probes may time out and its hive re-register it): where it
        rejects what the finer burst model accepted, it keeps both possibilities instead, and
        the invariants decide after the burst.
        """
        nexts = [t for s in self.models for t in model_step(s, call, op.outcome)]
        if not nexts:
            unsure = Indeterminate("accepted by the burst model")
            nexts = [t for s in self.models for t in model_step(s, call, unsure)]
        self.models = unique_states(nexts)[-MAX_MODELS:]

    def _violation(
        self, result: NotLinearizable, ops: Sequence[Op], start: int, *, lanes: int
    ) -> Violation:
        window = op_indices(result.window)
        kinds = {op.kind for op in ops if op.index in window}
        prefix = set(op_indices(result.prefix))
        unplaced = {op.kind for op in ops if op.index in window and op.index not in prefix}
        prop = "S16" if "inference" in kinds else "S06"
        if prop == "S06" and len(unplaced) == 1 and (kind := next(iter(unplaced))) in CALL_PROPERTY:
            # the ops no order can place are of one kind (a second registration of one id
            # answered 200, a ready callback for an unknown id accepted), whatever reads
            # were placed around them: that operation's own property, as a sequential step
            # would report it; S06 is for orders that need several kinds to go wrong
            prop = CALL_PROPERTY[kind]
        stuck = [
            line.strip()
            for line in result.explanation.splitlines()
            if line.endswith((": rejected", "no order of the rest fits"))
        ]
        return Violation(
            prop,
            explains=EXPLAINS.get(prop, explain(prop)),
            expected="an order of the burst's ops, each inside its request-answer interval, "
            "that the model accepts",
            observed=f"no such order for worker {result.key}; stuck at " + "; ".join(stuck),
            details={
                "window": window,
                "prefix": op_indices(result.prefix),
                "burst": [start, ops[-1].index if ops else start],
                "key": str(result.key),
                "lanes": lanes,
                "explanation": result.explanation,
            },
        )


def _judged(op: Op) -> bool:
    """Whether the burst model judges ``op``'s outcome itself (every register, shutdown and
    ready callback; a spawn only when it answered a worker)."""
    return op.kind in ("register_worker", "shutdown_worker", "ready") or (
        op.kind == "spawn" and op.ok
    )


def _ids(op: Op, key: str) -> set[str] | None:
    """The worker ids an Ok list op shows (None when it shows nothing readable)."""
    items = op.body.get("workers") if op.ok and isinstance(op.body, dict) else None
    if not isinstance(items, list):
        return None
    return {str(w[key]) for w in items if isinstance(w, dict) and key in w}


class ConcurrentMachine(ConcurrencyRules, RegistrationRules):
    """Bursts, and the sequential registration rules (always possible, also while a burst is
    not: a timeout left the model unsure), from three workers that are ready."""

    @initialize(target=spawned)
    @recorded
    def first_workers(self) -> str:
        """Every example starts with a burst of three spawns on the first hive, checked like
        any burst: inferences and shutdowns need workers, and the hive's monitor meets ready
        callbacks arriving together while the host is busy starting processes (S06).

        The first worker goes to the ``spawned`` bundle (the registration rules draw from it;
        an empty bundle would void the example after its costliest step).
        """
        spawn = {"op": "spawn", "hive": 0, "slots": 1}
        ops = self.run_burst([[dict(spawn)] for _ in range(3)])
        for op in ops:
            if op.kind == "spawn" and op.ok and isinstance(op.body, dict):
                return str(op.body.get("worker_id", ""))
        return self.fresh_id("unspawned")  # keeps the bundle independent of the outcome
