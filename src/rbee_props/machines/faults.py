"""Fault rules: kill -9, SIGTERM, restarts, pause/resume, partitions and slow links (C01-C09).

Faults are ordinary rules, so the shrinker drops the ones a failure does not need. Each is
switched off by precondition when the backend cannot inject it (``stack.supports``).
"""

from __future__ import annotations

import contextlib

from hypothesis import strategies as st
from hypothesis.stateful import MultipleResults, consumes, multiple, precondition, rule

from rbee_props.errors import UsageError
from rbee_props.machines._bundles import component_index, hive_index, spawned
from rbee_props.machines._core import recorded
from rbee_props.machines._spawning import Spawner
from rbee_props.model import FaultOp
from rbee_props.stack import Fault

__all__ = ["FaultRules"]


def _can(fault: Fault):  # type: ignore[no-untyped-def]
    return precondition(lambda self: self.stack.supports(fault))


class FaultRules(Spawner):
    """Faults injected through the stack controller."""

    def _down(self) -> list[str]:
        model = self.model
        down = [] if model.queen_up else ["queen"]
        return down + [name for name, hive in model.hives.items() if not hive.up]

    def _paused(self) -> list[str]:
        return [name for name in ("queen", *self.model.hives) if self.model.is_paused(name)]

    @_can(Fault.KILL_WORKER)
    @rule(worker_id=consumes(spawned))
    @recorded
    def kill_worker(self, worker_id: str) -> None:
        """C01: SIGKILL a worker; it must leave both registries within G."""
        stack = self.stack

        def kill() -> None:
            with contextlib.suppress(UsageError):  # already gone: the model says so too
                stack.kill_worker(worker_id)

        self.fault(FaultOp("kill_worker", worker_id), kill)

    @_can(Fault.PAUSE)
    @rule(worker_id=consumes(spawned))
    @recorded
    def pause_worker(self, worker_id: str) -> None:
        """C07/S20: a frozen worker fails its health checks: evicted and killed within G.

        Only while its hive can act (not paused): a paused hive kills nothing until resumed,
        and the model does not follow that hand-over yet. Only a worker the model still counts
        alive: one shut down a moment ago may still be exiting, and a SIGSTOP would keep its
        process around for good (an S20 of the test's own making).
        """
        worker = self.model.workers.get(worker_id)
        if worker is None or not worker.alive:
            return  # on its way out (shut down, evicted): freezing it would keep it, our doing
        if self.model.is_paused(worker.node):
            return
        stack = self.stack

        def pause() -> None:
            with contextlib.suppress(UsageError):
                stack.pause_worker(worker_id)

        self.fault(FaultOp("pause_worker", worker_id), pause)

    @_can(Fault.KILL)
    @rule(component=component_index)
    @recorded
    def kill_component(self, component: int) -> None:
        """C03/C04: SIGKILL the queen or a hive (its workers are orphaned)."""
        name = self.target("component", component)
        if name in self._down():
            return
        self.fault(FaultOp("kill", name), lambda: self.stack.kill(name))

    @_can(Fault.TERMINATE)
    @rule(hive=hive_index)
    @recorded
    def terminate_hive(self, hive: int) -> None:
        """C09: SIGTERM a hive: it stops every worker before it exits."""
        name = self.target("hive", hive)
        if name in self._down():
            return
        self.fault(FaultOp("terminate", name), lambda: self.stack.terminate(name))

    @_can(Fault.RESTART)
    @precondition(lambda self: bool(self._down()))
    @rule(pick=st.integers(min_value=0, max_value=3))
    @recorded
    def start_component(self, pick: int) -> None:
        """C03/C04: start a component that was killed or terminated."""
        down = self._down()
        if not down:
            return
        name = down[pick % len(down)]
        self.settle_first()
        self.fault(FaultOp("start", name), lambda: self.stack.start_component(name))

    @_can(Fault.RESTART)
    @rule(component=component_index)
    @recorded
    def restart_component(self, component: int) -> None:
        """C03/C04/C09: SIGTERM and start again; beehives persist, workers are rebuilt."""
        name = self.target("component", component)
        if name in self._down():
            return
        self.fault(FaultOp("restart", name), lambda: self.stack.restart(name))

    @_can(Fault.KILL)
    @_can(Fault.RESTART)
    @rule(target=spawned, component=component_index)
    @recorded
    def crash_restart(self, component: int) -> MultipleResults[str] | str:
        """C03/C04: SIGKILL the queen or a hive and start it at once, as a supervisor would.

        The restarted component meets what the crash left before anything has timed out: its
        workers' processes and ports, the other side's registry entries. A restarted hive is
        then asked for a worker straight away, as a scheduler restoring capacity would: it gets
        a port a crashed worker held a moment ago, and any entry still keyed by that port must
        not come back to life (C03). (A kill and a start without the spawn are the separate
        rules ``kill_component`` and ``start_component``.)
        """
        name = self.target("component", component)
        if name in self._down():
            return multiple()
        self.fault(FaultOp("kill", name), lambda: self.stack.kill(name))
        self.fault(FaultOp("start", name), lambda: self.stack.start_component(name))
        if name != "queen" and self.room_to_spawn():
            return self._spawn(name)
        return multiple()

    @_can(Fault.PAUSE)
    @rule(component=component_index)
    @recorded
    def pause_component(self, component: int) -> None:
        """C07: freeze the queen or a hive (SIGSTOP)."""
        name = self.target("component", component)
        if name in self._down() or name in self._paused():
            return
        self.fault(FaultOp("pause", name), lambda: self.stack.pause(name))

    @_can(Fault.PAUSE)
    @precondition(lambda self: bool(self._paused()))
    @rule(pick=st.integers(min_value=0, max_value=3))
    @recorded
    def resume_component(self, pick: int) -> None:
        """Undo a pause."""
        paused = self._paused()
        if not paused:
            return
        name = paused[pick % len(paused)]
        self.fault(FaultOp("resume", name), lambda: self.stack.resume(name))

    @_can(Fault.PARTITION)
    @rule(hive=hive_index)
    @recorded
    def partition(self, hive: int) -> None:
        """C05: cut the queen from a hive; the test still reaches both."""
        name = self.target("hive", hive)
        self.fault(FaultOp("partition", name), lambda: self.stack.partition("queen", name))

    @_can(Fault.SLOW)
    @rule(hive=hive_index, ms=st.sampled_from([50, 200]))
    @recorded
    def slow_link(self, hive: int, ms: int) -> None:
        """C14: delay queen<->hive traffic; every answer still arrives, once."""
        name = self.target("hive", hive)
        self.fault(FaultOp("slow", name), lambda: self.stack.slow("queen", name, ms), ms=ms)

    @_can(Fault.PARTITION)
    @rule()
    @recorded
    def heal(self) -> None:
        """Undo every partition and slow link."""
        self.fault(FaultOp("heal"), self.stack.heal)
