"""A campaign worker process: its own stack, the suites in turn, events to the parent.

Events (tuples on a multiprocessing queue, ``(kind, index, payload)``):

- ``stack``: the worker's stack started (payload: ``restart`` true after the first start);
- ``replayed``: an earlier finding was replayed (``key``, ``suite``, ``still_fails``);
- ``claimed`` / ``found``: a new finding was claimed, then exported in its final form;
- ``fuzz-found``: a fuzz finding (``signature``, ``suite``, ``path``, ``replayed``);
- ``duplicate``: a finding some worker had claimed already was met again;
- ``slice``: a suite's slice ended (``suite``, ``examples``, ``steps``, ``requests``, ``seconds``);
- ``crash``: an error of rbee-props (the parent restarts the worker); ``done``: it ended.

A worker ignores SIGINT (the parent decides when to stop, through ``stop``); SIGTERM or the
parent's death end it the same way, with its stack stopped (the stack's own watchdog kills the
components even if the worker itself is killed with SIGKILL).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import traceback
from typing import Any

from rbee_props.campaign.claims import Claims, property_key
from rbee_props.campaign.machine_slice import MachineSlice
from rbee_props.campaign.plan import CampaignPlan
from rbee_props.config import Config
from rbee_props.errors import StackError
from rbee_props.fuzz.campaign import Campaign, FoundEvent, Progress
from rbee_props.fuzz.database import open_database, use_shared_hypothesis_home
from rbee_props.fuzz.targets import Targets
from rbee_props.machines import MACHINES, MachineContext, StopRequested
from rbee_props.repro import Finding
from rbee_props.repro.replay import run_program
from rbee_props.stack import Stack, make_stack

__all__ = ["worker_main"]

log = logging.getLogger(__name__)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Worker:
    def __init__(
        self, index: int, plan: CampaignPlan, config: Config, events: Any, stop: Any,
        replay_first: bool, life: int = 0,
    ) -> None:  # fmt: skip
        self.index, self.plan, self.config, self.life = index, plan, config, life
        self.events, self.stop_event = events, stop
        self.replay_first = replay_first
        self.parent = os.getppid()
        self.deadline = time.monotonic()  # set by run()
        self.database, _ = open_database(plan.database)
        self.claims = Claims(plan.findings_dir)
        self.stack: Stack | None = None
        self.context: MachineContext | None = None
        self.fuzz_progress: dict[str, Progress] = {}
        self.runs: dict[str, int] = {}  # Hypothesis runs per machine: their seeds never repeat
        self.starts = 0

    # -- events and stopping ---------------------------------------------------------------------
    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.put((kind, self.index, {**payload, "pid": os.getpid()}))

    def aborted(self) -> bool:
        """Told to stop (Ctrl-C, the parent's end of the campaign) or orphaned."""
        return self.stop_event.is_set() or os.getppid() != self.parent

    def stopping(self) -> bool:
        return self.aborted() or time.monotonic() >= self.deadline

    # -- the stack ---------------------------------------------------------------------------
    def start_stack(self) -> MachineContext:
        self.close_stack()
        stack = make_stack(self.config)
        self.stack = stack
        stack.start()
        self.context = MachineContext(stack, self.config)
        self.context.should_stop = self.stopping
        self.emit("stack", {"restart": self.starts > 0})
        self.starts += 1
        return self.context

    def close_stack(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    # -- the rounds --------------------------------------------------------------------------
    def run(self, deadline: float) -> None:
        self.deadline = deadline
        context = self.start_stack()
        if self.replay_first:
            self.replay_findings(context)
        order = self.plan.suites_for(self.index)
        for suite in order:  # one round per life (see ``worker_main``)
            if self.stopping():
                return
            try:
                self.run_suite(suite)
            except StackError as exc:
                log.warning("worker %d: %s; restarting its stack", self.index, exc.message)
                self.emit("stack-error", {"suite": suite, "message": exc.message})
                if not self.stopping():
                    self.start_stack()

    def run_suite(self, suite: str) -> None:
        assert self.context is not None and self.stack is not None
        started = time.monotonic()
        until = min(self.deadline, started + self.plan.slice_of(suite))
        log.info("worker %d: slice of %s begins", self.index, suite)
        examples = steps = requests = 0
        if suite.startswith("fuzz:"):
            # a machine slice ends between examples, possibly with a component still killed or
            # paused by its last one: bring the stack back first (the fuzz suites need it whole)
            self.context.reset()
            requests, examples = self.fuzz(suite, until)
        else:
            runner = MachineSlice(
                self.plan, self.context, self.database, self.claims, self.emit,
                stop=self.stopping, abort=self.aborted,
                seed_base=seed_base(self.plan, self.index, suite),
                runs=self.runs.get(suite, RUNS_PER_LIFE * self.life),
            )  # fmt: skip
            try:
                counts = runner.run(suite, until)
            finally:
                self.context.should_stop = self.stopping
                self.runs[suite] = runner.runs
            examples, steps = counts.examples, counts.steps
            for key, count in counts.dropped.items():
                self.emit("duplicate", {"suite": suite, "key": key, "count": count})
        self.emit(
            "slice",
            {"suite": suite, "examples": examples, "steps": steps, "requests": requests,
             "seconds": time.monotonic() - started},
        )  # fmt: skip

    def fuzz(self, suite: str, until: float) -> tuple[int, int]:
        """One fuzz slice of one service; returns (requests, cases) it sent."""
        assert self.stack is not None
        service = suite.split(":", 1)[1]
        progress = self.fuzz_progress.setdefault(suite, Progress())
        requests, cases = progress.requests, progress.cases
        progress.round = max(progress.round, 100 * self.life)  # fresh seeds in every life
        targets = Targets(self.stack, self.config, (service,))
        try:
            Campaign(
                targets, database=self.database, out=self.plan.findings_dir,
                seed=self.plan.seed + 1000 * self.index + progress.round, deadline=until,
                shrink_seconds=min(30.0, self.plan.shrink_seconds), stack_label=self.config.source,
                stop=self.stopping, progress=progress,
                on_found=lambda event: self.fuzz_found(suite, event),
            ).run()  # fmt: skip
        finally:
            targets.close()
        return progress.requests - requests, progress.cases - cases

    def fuzz_found(self, suite: str, event: FoundEvent) -> None:
        self.emit(
            "fuzz-found",
            {"suite": suite, "signature": event.finding.signature,
             "path": str(event.path) if event.path else None, "replayed": event.replayed},
        )  # fmt: skip

    # -- resuming ----------------------------------------------------------------------------
    def replay_findings(self, context: MachineContext) -> None:
        """Replay every state-machine finding an earlier run left, once, before anything new."""
        for path in sorted(self.plan.findings_dir.glob("*/finding.json")):
            try:
                data = json.loads(path.read_text())
                finding = Finding.from_json(data)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a fuzz finding (another layout) or a half-written one
            if finding.machine not in MACHINES or self.stopping():
                continue
            try:
                failure = run_program(finding.program, context, MACHINES[finding.machine])
            except StopRequested:
                return
            invariant = finding.violation.invariant
            still = failure is not None and failure.violation.invariant == invariant
            if not still:  # fixed (or not reproducible): a new bug on that property may be found
                self.claims.release(property_key(finding.violation))
            self.emit(
                "replayed",
                {"key": property_key(finding.violation), "suite": finding.machine,
                 "signature": finding.signature, "path": str(path.parent), "still_fails": still},
            )  # fmt: skip


def seed_base(plan: CampaignPlan, index: int, suite: str) -> int:
    """Where the seeds of worker ``index``'s runs of ``suite`` start: run ``k`` uses this + k, so
    no two workers or machines share a seed and a campaign seed repeats the same runs."""
    return plan.seed + 10_000_000 * index + 100_000 * plan.suites.index(suite)


#: Hypothesis runs a worker life may make of one machine before seeds could repeat
RUNS_PER_LIFE = 1000


def worker_main(
    index: int, plan: CampaignPlan, config: Config, events: Any, stop: Any, deadline: float,
    replay_first: bool, life: int = 0,
) -> None:  # fmt: skip
    """Entry point of a worker process (see the module docstring).

    A worker process lives for one round of the suites, then retires and the parent starts its
    next ``life``: whatever a long run would pile up in one process (Hypothesis' per-run data,
    the interpreter's fragmentation) goes with it, so the campaign's memory stays flat
    overnight. A life costs a stack start (about a second with the reference stack).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminated)
    logs = plan.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=logs / f"worker-{index}.log", level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )  # fmt: skip
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    use_shared_hypothesis_home()
    worker = _Worker(index, plan, config, events, stop, replay_first, life)
    try:
        worker.run(deadline)
        if not worker.stopping():
            worker.emit("retire", {"life": life})
    except (KeyboardInterrupt, StopRequested):
        pass
    except StackError as exc:
        worker.emit("crash", {"message": exc.message, "stack": True})
    except Exception as exc:  # a crash is reported and the worker restarted, never a silent pass
        crash = logs / f"worker-{index}-crash-{os.getpid()}.log"
        crash.write_text(traceback.format_exc())
        worker.emit("crash", {"message": f"{type(exc).__name__}: {exc} (traceback in {crash})"})
    finally:
        try:
            worker.close_stack()
        finally:
            worker.emit("done", {"pid": os.getpid()})
