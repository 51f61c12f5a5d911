"""Run a fuzz campaign in this process, or in N worker processes sharing one example database.

Hypothesis spends most of a case drawing it, which is CPU work, so ``--workers N`` means N
processes, not threads. Each worker fuzzes the same running stack with its own seed (campaign
seed + its index), its own campaign worker and its own HTTP connections, and shares with the
others only what is meant to be shared: the example database (a directory, safe for several
processes, or Redis) and the findings directory, whose one-directory-per-signature layout
de-duplicates between them. The parent owns the stack, adds up the workers' progress and
findings, and stops them at the deadline, on Ctrl-C (the workers ignore SIGINT and are told
through an event, so every one tidies up) or when one reports the stack gone.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from rbee_props.config import Config, ExternalConfig
from rbee_props.errors import InternalError, StackError
from rbee_props.fuzz.campaign import Campaign, FoundEvent, Progress
from rbee_props.fuzz.database import open_database, use_shared_hypothesis_home
from rbee_props.fuzz.targets import Targets
from rbee_props.stack import ExternalStack, Stack

__all__ = ["CampaignPlan", "run_campaign"]

#: how often a worker process reports its counters
TICK = 0.5
#: how long the workers get to finish their current example after being told to stop
STOP_GRACE = 60.0


@attrs.frozen
class CampaignPlan:
    """Everything a campaign process needs (picklable: it crosses to worker processes).

    Attributes:
        services: the documents to fuzz.
        db: the ``--db`` value (each process opens the database itself).
        out: the findings directory.
        seed: the campaign seed.
        seconds: the budget.
        spec: a document replacing the one service's shipped document.
        chunk: most examples per operation, mode and round.
        shrink_seconds: longest shrink of one finding.
        stack_label: how reports describe the stack.
    """

    services: tuple[str, ...]
    db: str | None
    out: str
    seed: int
    seconds: float
    spec: str | None = None
    chunk: int = 50
    shrink_seconds: float = 30.0
    stack_label: str = ""


def _campaign(
    plan: CampaignPlan,
    targets: Targets,
    *,
    seed: int,
    deadline: float,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
    on_found: Callable[[FoundEvent], None] | None = None,
) -> Campaign:
    database, _ = open_database(plan.db)
    return Campaign(
        targets, database=database, out=Path(plan.out), seed=seed, deadline=deadline,
        chunk=plan.chunk, shrink_seconds=plan.shrink_seconds, stack_label=plan.stack_label,
        stop=stop, on_found=on_found, progress=progress,
    )  # fmt: skip


def run_campaign(
    stack: Stack,
    config: Config,
    plan: CampaignPlan,
    *,
    workers: int = 1,
    progress: Progress,
    on_found: Callable[[FoundEvent], None],
    stop: Callable[[], bool] | None = None,
) -> Progress:
    """Fuzz the running ``stack`` as ``plan`` says, in this process or ``workers`` processes.

    ``progress`` is updated as the campaign goes (a display may read it from another thread);
    ``stop()`` becoming true ends the campaign as the deadline does (Ctrl-C).

    Raises:
        StackError: a service stopped answering.
        UsageError: the targets cannot be built (no hive, a bad document).
        KeyboardInterrupt: Ctrl-C; every worker process has been stopped by then.
    """
    deadline = time.monotonic() + plan.seconds
    if workers <= 1:
        targets = Targets(stack, config, plan.services, spec=plan.spec)
        progress.operations_total = targets.operation_count
        try:
            campaign = _campaign(
                plan, targets, seed=plan.seed, deadline=deadline, progress=progress,
                on_found=on_found, stop=stop,
            )  # fmt: skip
            return campaign.run()
        finally:
            targets.close()
    return _Pool(stack, config, plan, workers, progress, on_found, stop).run(deadline)


def _child_config(stack: Stack, config: Config, token_file: Path) -> Config:
    """The running stack as an external one: what a worker process attaches to."""
    external = ExternalConfig(
        queen_url=stack.urls["queen"], hive_urls=tuple(stack.urls[h] for h in stack.hives)
    )
    return attrs.evolve(config, backend="external", external=external, token_file=str(token_file))


def _snapshot(progress: Progress) -> dict[str, Any]:
    return {
        "cases": progress.cases,
        "probes": progress.probes,
        "covered": sorted(progress.covered),
        "operations_total": progress.operations_total,
        "duplicates": progress.duplicates,
        "errors": list(progress.errors[-5:]),
        "error_count": len(progress.errors),
        "round": progress.round,
        "phase": progress.phase,
        "warm_up": progress.warm_up,
        "started": progress.started,  # the machine's monotonic clock: the same in every process
    }


def _worker_main(
    index: int, plan: CampaignPlan, config: Config, events: Any, stop: Any, deadline: float
) -> None:
    """One worker process: attach to the stack, fuzz, report; tidy up whatever happens."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    use_shared_hypothesis_home()
    parent = os.getppid()
    progress = Progress()
    targets: Targets | None = None
    try:
        stack = ExternalStack(config)
        targets = Targets(stack, config, plan.services, spec=plan.spec)
        progress.operations_total = targets.operation_count
        ticking = threading.Event()

        def tick() -> None:
            while not ticking.wait(TICK):
                events.put(("progress", index, _snapshot(progress)))

        threading.Thread(target=tick, daemon=True).start()
        campaign = _campaign(
            plan, targets, seed=plan.seed + index, deadline=deadline,
            progress=progress, stop=lambda: stop.is_set() or os.getppid() != parent,
            on_found=lambda e: events.put(
                ("found", index, e.finding, str(e.path) if e.path else None, e.replayed)
            ),
        )  # fmt: skip
        campaign.run()
        ticking.set()
    except StackError as exc:
        events.put(("error", index, exc.message))
    except Exception as exc:  # a worker's crash is reported (exit 4), never a silent pass
        log = Path(tempfile.gettempdir()) / f"rbee-props-crash-{os.getpid()}.log"
        log.write_text(traceback.format_exc())
        events.put(("crash", index, f"{type(exc).__name__}: {exc} (traceback in {log})"))
    finally:
        if targets is not None:
            targets.close()
        events.put(("done", index, _snapshot(progress)))


class _Pool:
    """The parent's side: start the workers, add up what they report, stop them."""

    def __init__(
        self,
        stack: Stack,
        config: Config,
        plan: CampaignPlan,
        workers: int,
        progress: Progress,
        on_found: Callable[[FoundEvent], None],
        stop: Callable[[], bool] | None,
    ) -> None:
        self.stack, self.config, self.plan = stack, config, plan
        self.stop_asked = stop or (lambda: False)
        self.count = workers
        self.progress = progress
        self.on_found = on_found
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.failure: str | None = None
        self.cross_duplicates = 0  # the same signature found by two workers

    def run(self, deadline: float) -> Progress:
        context = multiprocessing.get_context("spawn")
        events = context.Queue()
        stop = context.Event()
        with tempfile.TemporaryDirectory(prefix="rbee-fuzz-") as tmp:
            token_file = Path(tmp) / "token"
            token_file.write_text(self.stack.token)
            os.chmod(token_file, 0o600)
            config = _child_config(self.stack, self.config, token_file)
            # one deadline for all: the monotonic clock is the machine's, the same in every process
            arguments = [(i, self.plan, config, events, stop, deadline) for i in range(self.count)]
            procs = [
                context.Process(target=_worker_main, args=args, name=f"rbee-fuzz-{args[0]}")
                for args in arguments
            ]
            for proc in procs:
                proc.daemon = True  # never outlive the parent, whatever happens to it
            for proc in procs:
                proc.start()
            try:
                self._collect(events, procs, stop)
            except KeyboardInterrupt:
                stop.set()
                self._collect(events, procs, stop, until=time.monotonic() + STOP_GRACE)
                raise
            finally:
                self._reap(procs)
        if self.failure is not None:
            raise StackError(self.failure)
        self.progress.phase = "done"
        return self.progress

    def _collect(
        self,
        events: Any,
        procs: Sequence[multiprocessing.process.BaseProcess],
        stop: Any,
        *,
        until: float | None = None,
    ) -> None:
        done: set[int] = set()
        while len(done) < len(procs):
            if until is not None and time.monotonic() > until:
                return
            if self.stop_asked():
                stop.set()  # the workers finish their current example and report
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if all(not p.is_alive() for p in procs):
                    return
                continue
            kind, index = event[0], event[1]
            if kind == "found":
                self._found(*event[2:])
            elif kind == "progress":
                self._merge(index, event[2])
            elif kind in ("error", "crash"):
                self.failure = self.failure or f"fuzz worker {index}: {event[2]}"
                if kind == "crash":
                    self.failure = f"internal error in fuzz worker {index}: {event[2]}"
                stop.set()
            elif kind == "done":
                self._merge(index, event[2])
                done.add(index)
        if self.failure is not None and self.failure.startswith("internal error"):
            raise InternalError(self.failure)

    def _found(self, finding: Any, path: str | None, replayed: bool) -> None:
        if finding.signature in self.progress.findings:
            self.cross_duplicates += 1
            return
        self.progress.findings[finding.signature] = finding
        if replayed:
            self.progress.replayed.add(finding.signature)
        self.on_found(FoundEvent(finding, Path(path) if path else None, replayed))

    def _merge(self, index: int, snapshot: dict[str, Any]) -> None:
        self.snapshots[index] = snapshot
        shots = self.snapshots.values()
        progress = self.progress
        progress.cases = sum(s["cases"] for s in shots)
        progress.probes = sum(s["probes"] for s in shots)
        progress.duplicates = sum(s["duplicates"] for s in shots) + self.cross_duplicates
        progress.covered = set().union(*(s["covered"] for s in shots))
        progress.operations_total = max(s["operations_total"] for s in shots)
        progress.round = max(s["round"] for s in shots)
        progress.warm_up = max(s["warm_up"] for s in shots)
        progress.started = min(s["started"] for s in shots)  # the first worker's fuzzing start
        progress.phase = snapshot["phase"]
        errors = [e for s in shots for e in s["errors"]]
        if len(errors) > len(progress.errors):
            progress.errors = errors

    @staticmethod
    def _reap(procs: Sequence[multiprocessing.process.BaseProcess]) -> None:
        for proc in procs:
            proc.join(timeout=5.0)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
