"""One worker's turn at a state machine: Hypothesis runs until the slice ends, new findings only.

Each run is ``plan.examples`` examples of ``plan.steps`` steps with the shared example database,
seeded from the campaign seed. A violation of a property some worker has claimed already is
dropped (counted, not shrunk) so the search keeps going; a new one is claimed, exported at once
as recorded (so a crash cannot lose it), then shrunk by replay, measured for its reproduction
rate and exported again in its final form (:mod:`rbee_props.hunt` does the shrinking).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from hypothesis.database import ExampleDatabase
from hypothesis.errors import Unsatisfiable

from rbee_props.campaign.claims import Claims, property_key
from rbee_props.campaign.plan import CampaignPlan
from rbee_props.hunt import finish, machine_settings, make_finding, run_hypothesis
from rbee_props.machines import MACHINES, MachineContext, StopRequested
from rbee_props.machines._context import Failure
from rbee_props.repro import Finding, export_finding

__all__ = ["MachineSlice", "SliceCounts"]

#: what a worker reports: ("found", payload) and the like; see ``worker.py``
Emit = Callable[[str, dict[str, Any]], None]


@attrs.define
class SliceCounts:
    """How much one slice ran."""

    examples: int = 0
    steps: int = 0
    runs: int = 0
    dropped: dict[str, int] = attrs.field(factory=dict)  # claimed keys met again: how often


@attrs.define
class MachineSlice:
    """Runs state machines for a worker (one instance per worker and stack)."""

    plan: CampaignPlan
    context: MachineContext
    database: ExampleDatabase
    claims: Claims
    emit: Emit
    stop: Callable[[], bool]
    abort: Callable[[], bool] = lambda: False
    seed_base: int = 0
    runs: int = 0

    def run(self, machine_name: str, deadline: float) -> SliceCounts:
        """Hypothesis runs of ``machine_name`` until ``deadline`` (monotonic) or ``stop()``."""
        context = self.context
        counts = SliceCounts()
        examples, steps = context.examples, context.steps
        context.should_stop = lambda: time.monotonic() >= deadline or self.stop()
        context.already_found = lambda v: self.claims.held(property_key(v))
        try:
            while not context.should_stop():
                self._one_run(machine_name, counts)
        except StopRequested:
            pass
        finally:
            context.should_stop = self.stop
            context.already_found = None
            counts.examples = context.examples - examples
            counts.steps = context.steps - steps
            for violation in context.dropped:
                key = property_key(violation)
                counts.dropped[key] = counts.dropped.get(key, 0) + 1
            context.dropped.clear()
        return counts

    def _one_run(self, machine_name: str, counts: SliceCounts) -> None:
        machine = MACHINES[machine_name]
        self.context.failures.clear()
        seed = self.seed_base + self.runs  # printed by the parent: a run can be replayed
        self.runs += 1
        counts.runs += 1
        config = machine_settings(
            max_examples=self.plan.examples, steps=self.plan.steps, database=self.database
        )
        try:
            run_hypothesis(machine, self.context, config=config, seed=seed)
        except Unsatisfiable:
            return  # every example met a known finding: nothing new in this run
        failure = self.context.smallest_failure()
        if failure is None:
            return
        key = property_key(failure.violation)
        if not self.claims.claim(key):
            self.emit("duplicate", {"key": key, "suite": machine_name})
            return
        self._finish(failure, machine_name, key)

    def _finish(self, failure: Failure, machine_name: str, key: str) -> None:
        """Export as recorded, shrink, replay, export again; tell the parent."""
        context = self.context
        root = self.plan.findings_dir
        token = (context.stack.token,)
        first = make_finding(failure, machine_name, context.config, 0, 0)
        first_path = export_finding(first, root, secrets=token)
        self.emit("claimed", {"key": key, "suite": machine_name, "path": str(first_path)})
        filtering, stopping = context.already_found, context.should_stop
        context.already_found = None  # shrinking replays the very violation that was claimed
        context.should_stop = self.abort  # a shrink may outlast the slice, never Ctrl-C
        try:
            finding, _ = finish(
                failure, MACHINES[machine_name], context, machine_name=machine_name,
                shrink_budget=self.plan.shrink_seconds, attempts=self.plan.attempts,
            )  # fmt: skip
        except StopRequested:
            smallest = context.smallest_failure() or failure
            self._export(make_finding(smallest, machine_name, context.config, 0, 0), first_path,
                         key, machine_name)  # fmt: skip
            raise
        finally:
            context.already_found, context.should_stop = filtering, stopping
        self._export(finding, first_path, key, machine_name)

    def _export(self, finding: Finding, first_path: Path, key: str, suite: str) -> None:
        path = export_finding(finding, self.plan.findings_dir, secrets=(self.context.stack.token,))
        if path != first_path:
            shutil.rmtree(first_path, ignore_errors=True)
        self.emit(
            "found",
            {
                "key": key,
                "suite": suite,
                "signature": finding.signature,
                "path": str(path),
                "reproduced": finding.reproduced,
                "attempts": finding.attempts,
            },
        )
