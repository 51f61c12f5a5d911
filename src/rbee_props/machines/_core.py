"""The base of every rbee state machine: perform an operation, check it, converge, record.

A rule does three things, always through :meth:`StackMachineBase.call` or
:meth:`StackMachineBase.fault`: the stack call (recorded as an Op in the History), the model
step (the outcome must be one the model allows), and, after the rule, :meth:`converge`, which
polls the registered invariants until they hold or the grace window G runs out.

Every rule invocation is also recorded in ``program`` with its arguments, worker ids replaced
by variables (``$v1``), so that a failing example can be replayed and exported.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from hypothesis import reject
from hypothesis.stateful import RuleBasedStateMachine, invariant

from rbee_props.client import HiveClient, QueenClient
from rbee_props.findings import Violation
from rbee_props.history import History, Ok, Op
from rbee_props.invariants import check_all, explain
from rbee_props.machines._context import Failure, MachineContext
from rbee_props.model import (
    Beehive,
    Call,
    ClusterState,
    FaultOp,
    HiveState,
    allowed,
    expect,
    fault_successors,
)
from rbee_props.model import settle as settle_model
from rbee_props.model import step as model_step
from rbee_props.redact import Redactor
from rbee_props.snapshot import Process, Snapshot, listed_from
from rbee_props.stack import WaitTimedOut

__all__ = ["StackMachineBase", "passes_time", "recorded"]

F = TypeVar("F", bound=Callable[..., Any])
MAX_MODELS = 8

#: the property an unexpected outcome of each call kind violates
#: seconds to wait for an answer from a component the model has paused (see ``patience``)
PAUSED_TIMEOUT = 0.5

CALL_PROPERTY = {
    "register_worker": "S02",
    "shutdown_worker": "S04",
    "spawn": "S08",
    "ready": "S05",
    "inference": "S13",
    "add_beehive": "S14",
    "remove_beehive": "S14",
}


def _unique(states: list[ClusterState]) -> list[ClusterState]:
    """Equal states once each, in order (states hold dicts, so they are not hashable)."""
    out: list[ClusterState] = []
    for state in states:
        if state not in out:
            out.append(state)
    return out


def passes_time(func: F) -> F:
    """Mark a rule whose operation is only the passage of time (``let_time_pass``).

    Shrinking offers such a rule in place of any run of steps: a bug that shows only once the
    stack's monitors have swept (an eviction after N failed probes) needs the time those steps
    took, not the steps, and deleting steps can never turn them into a wait.
    """
    func.passes_time = True  # type: ignore[attr-defined]
    return func


def recorded(func: F) -> F:
    """Record a rule's invocation in ``self.program`` (worker ids as ``$v`` variables)."""

    @functools.wraps(func)
    def wrapper(self: StackMachineBase, **kwargs: Any) -> Any:
        entry: dict[str, Any] = {
            "rule": func.__name__,
            "args": {k: self.symbol(self.readable(k, v)) for k, v in kwargs.items()},
            "at": round(time.monotonic() - self.started, 3),
        }
        self.program.append(entry)
        self.step_index = len(self.program) - 1
        result = func(self, **kwargs)
        if isinstance(result, str) and result:
            entry["binds"] = self.bind_var(result)
        self.ctx.steps += 1
        return result

    return wrapper  # type: ignore[return-value]


class StackMachineBase(RuleBasedStateMachine):
    """Shared machinery of the rule mixins (see the module docstring)."""

    context: ClassVar[MachineContext | None] = None

    def __init__(self) -> None:
        super().__init__()
        if self.context is None:
            msg = (
                "this machine is not bound to a stack; use the rbee_stack pytest fixture or "
                "Machine.bind(context)"
            )
            raise RuntimeError(msg)
        self.ctx: MachineContext = self.context
        self.stack = self.ctx.stack
        self.ctx.reset()
        self.ctx.examples += 1
        self.started = time.monotonic()
        self.history = History(redactor=Redactor([self.stack.token]))
        self.queen = QueenClient(self.stack.urls["queen"], self.stack.token, history=self.history)
        self.hive_clients = {
            h: HiveClient(self.stack.urls[h], self.stack.token, history=self.history, service=h)
            for h in self.stack.hives
        }
        hives = {h: HiveState() for h in self.stack.hives}
        self.models: list[ClusterState] = [ClusterState(hives=hives, beehives=self._beehives())]
        self.program: list[dict[str, Any]] = []
        self.vars: dict[str, str] = {}
        self.step_index = -1
        self.counter = 0
        self.convergence: list[float] = []
        self.deferred = False
        self.unsettled = False
        self.last_seen: Snapshot | None = None

    @classmethod
    def bind(cls, context: MachineContext) -> type[StackMachineBase]:
        """A subclass of this machine bound to ``context`` (its stack, phantoms, recorder)."""
        return type(cls.__name__, (cls,), {"context": context})

    # -- hooks for users ---------------------------------------------------------------------
    def before_step(self) -> None:
        """Called before the invariants of each step; override to add checks of your own."""

    def after_step(self) -> None:
        """Called after the invariants of each step held."""

    # -- program variables -------------------------------------------------------------------
    def readable(self, name: str, value: Any) -> Any:
        """Record hive and component indexes by name: ``spawn(hive='hive1')``, not ``hive=6``."""
        if isinstance(value, int) and name in ("hive", "component"):
            return self.target(name, value)
        return value

    def hives_by_load(self) -> list[str]:
        """The stack's hives, those with the most live spawned workers first (ties in stack
        order).

        Index 0 is the value Hypothesis draws most often and shrinks towards, so a rule's
        simplest target is the hive with the most state to lose: a fault aimed at an empty hive
        tests little, and a bug that needs "a worker, then a fault on its hive" is no longer
        left to a coin flip between the hives.
        """
        live = Counter(
            w.node for w in self.model.workers.values() if w.alive and w.origin == "spawned"
        )
        return sorted(self.stack.hives, key=lambda hive: -live[hive])

    def target(self, kind: str, value: int | str) -> str:
        """The hive (``kind`` ``hive``) or component (``component``: the queen, then the hives)
        a drawn index names; a replayed program passes the name itself."""
        if isinstance(value, str):
            return value
        hives = self.hives_by_load()
        names = hives if kind == "hive" else ["queen", *hives]
        return names[value % len(names)]

    def symbol(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.vars:
            return {"$var": self.vars[value]}
        return value

    def bind_var(self, value: str) -> str:
        name = f"v{len(self.vars) + 1}"
        self.vars[value] = name
        return name

    def patience(self, component: str, seconds: float) -> float:
        """The timeout for a request to ``component``: ``seconds``, or half a second while the
        model has it paused (it accepts the connection and never answers, so any wait ends in the
        same timeout; ten-second waits on a paused queen made examples take minutes)."""
        return PAUSED_TIMEOUT if self.model.is_paused(component) else seconds

    def fresh_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}-{int(self.started * 1000) % 100000}"

    @property
    def model(self) -> ClusterState:
        """The most recent possible model state (all of them are in ``self.models``)."""
        return self.models[-1]

    # -- operations ----------------------------------------------------------------------------
    def call(self, call: Call, op: Op) -> Op:
        """Step every possible model with the op's outcome; a disallowed outcome is a finding."""
        nexts: list[ClusterState] = []
        for state in self.models:
            nexts.extend(model_step(state, call, op.outcome))
        if not nexts:
            prop = CALL_PROPERTY.get(call.kind, "S03")
            body = op.body if not isinstance(op.body, str) else op.body[:200]
            self.fail(
                Violation(
                    prop,
                    explains=explain(prop),
                    expected=allowed(self.model, call),
                    observed=f"{op.status} {body!r}" if op.status else repr(op.outcome),
                    details={"op": op.index},
                )
            )
        self.models = _unique(nexts)[-MAX_MODELS:]
        return op

    def fault(self, fault: FaultOp, action: Callable[[], Any], **details: Any) -> Any:
        """Inject a fault through the stack controller and apply it to every model.

        ``details`` (e.g. ``ms`` of a slow link) are recorded with the op for reproductions.
        """
        started = time.monotonic()
        result = action()
        self.history.record(
            lane=0,
            kind=fault.kind,
            service="controller",
            method="FAULT",
            path=fault.target,
            args={"target": fault.target, **details},
            invoke=started,
            complete=time.monotonic(),
            outcome=Ok(0, None),
        )
        nexts = [n for s in self.models for n in fault_successors(s, fault)]
        self.models = _unique(nexts)[-MAX_MODELS:]
        self.deferred = True  # the next step runs while the stack is still reacting
        return result

    def fail(self, violation: Violation) -> None:
        """Attach the program so far and raise the violation (recorded for flaky handling)."""
        kinds = [entry["rule"] for entry in self.program]
        violation = violation.with_program(kinds, step=self.step_index)
        if self.ctx.is_known(violation):
            reject()  # reported already: drop this example, keep searching for new ones
        self.ctx.record_failure(
            Failure(
                violation=violation,
                program=[dict(e) for e in self.program],
                history=[self.history.redactor.obj(op.to_json()) for op in self.history],
                seed=self.ctx.seed,
            )
        )
        raise violation

    # -- observation ---------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """What the stack shows now (registries it can read, worker processes)."""
        model = self.model
        queen = None
        if model.queen_reachable:
            op = self.queen.list_workers(timeout=2.0)
            queen = listed_from(op.body, id_key="worker_id") if op.ok else None
        hives = {}
        for name, hive in model.hives.items():
            if hive.reachable:
                op = self.hive_clients[name].list_workers(timeout=2.0)
                entries = listed_from(op.body, id_key="id", node=name) if op.ok else None
                if entries is not None:
                    hives[name] = entries
        processes = None
        if self.stack.sees_processes:
            processes = tuple(
                Process(pid=w.pid, worker_id=w.worker_id, hive=w.hive, ports=w.ports)
                for w in self.stack.workers()
            )
        beehives = None
        if model.queen_reachable:
            op = self.queen.list_beehives(timeout=2.0)
            if op.ok and isinstance(op.body, dict):
                beehives = tuple(n.get("node_name", "") for n in op.body.get("nodes", []))
        return Snapshot(queen, hives, processes, beehives, taken_at=time.monotonic())

    def _beehives(self) -> dict[str, Any]:
        """The beehive registry as the stack has it when the example starts."""

        with QueenClient(self.stack.urls["queen"], self.stack.token, history=History()) as queen:
            op = queen.list_beehives()
        nodes = op.body.get("nodes", []) if op.ok and isinstance(op.body, dict) else []
        return {
            n["node_name"]: Beehive(
                n["node_name"], str(n.get("ssh_host")), int(n.get("hive_port") or 0)
            )
            for n in nodes
        }

    def _loading(self) -> bool:
        """Whether the last snapshot showed a worker still loading at its hive.

        Registration at the queen follows the ready callback, so the grace window of S21 starts
        when loading ends; loading itself may last up to the hive's ready timeout (contract §7).
        """
        seen = self.last_seen
        return seen is not None and any(
            entry.state == "loading" for entries in seen.hives.values() for entry in entries
        )

    def _violations(self) -> tuple[list[Violation], list[Violation], list[ClusterState]]:
        """(immediate violations, eventual violations of the closest model, models that hold)."""
        seen = self.last_seen = self.snapshot()
        best: list[Violation] | None = None
        holding = []
        for state in self.models:
            exp = expect(state)
            immediate = check_all(state, exp, seen, eventually=False)
            if immediate:
                return immediate, [], []
            found = check_all(state, exp, seen, eventually=True)
            if not found:
                holding.append(state)
            elif best is None or len(found) < len(best):
                best = found
        return [], ([] if holding else (best or [])), holding

    @invariant()
    def converge(self) -> None:
        """Poll every invariant until it holds for some possible model, within the grace G.

        After a fault only the immediate invariants are checked: the next step runs while the
        stack is still reacting to the fault (as in production), and its own convergence
        covers both. The last step of an example always converges (``teardown``).
        """
        if self.deferred:
            self.deferred, self.unsettled = False, True
            immediate, _, _ = self._violations()
            if immediate:
                self.fail(immediate[0])
            return
        self.before_step()
        started = time.monotonic()
        result: dict[str, list[Violation]] = {"immediate": [], "eventual": []}

        def holds() -> bool:
            immediate, eventual, holding = self._violations()
            result["immediate"], result["eventual"] = immediate, eventual
            if immediate:
                return True
            if holding:
                self.models = _unique([settle_model(s) for s in holding])
                return True
            return False

        try:
            self.stack.wait_until(
                holds, self.ctx.grace, what="invariants", extend_while=self._loading,
                at_most=self.ctx.grace + self.ctx.config.timings.ready_timeout,
                max_delay=self.ctx.config.timings.poll_interval,
            )  # fmt: skip
        except WaitTimedOut as exc:
            first = result["eventual"][0]
            first.waited = exc.elapsed
            self.fail(first)
        if result["immediate"]:
            self.fail(result["immediate"][0])
        self.unsettled = False
        self.convergence.append(time.monotonic() - started)
        self.after_step()

    def settle_first(self) -> None:
        """Converge now if the previous step was a fault whose consequences are still due.

        Used before undoing a fault (starting what it took down): otherwise the undo would hide
        what the fault left behind, e.g. the workers a SIGTERM'd hive failed to stop (C09).
        """
        if self.deferred or self.unsettled:
            self.deferred = False
            self.converge()

    def teardown(self) -> None:
        try:
            if self.unsettled or self.deferred:
                self.deferred = False
                self.converge()  # the last step was a fault: its consequences must still hold
        finally:
            self.close_clients()

    def close_clients(self) -> None:
        self.queen.close()
        for client in self.hive_clients.values():
            client.close()
