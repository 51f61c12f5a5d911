"""The campaign's parent process: start the workers, add up their events, restart the fallen,
stop them all, and write the report (every minute, at the end, and on Ctrl-C)."""

from __future__ import annotations

import json
import multiprocessing
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import psutil

from rbee_props.campaign.plan import CampaignPlan
from rbee_props.campaign.worker import worker_main
from rbee_props.config import Config
from rbee_props.errors import InternalError, StackError
from rbee_props.report import CampaignResult, ReportFiles, SuiteResult, findings_from, write_report
from rbee_props.report.result import FindingReport

__all__ = ["CampaignState", "run_campaign"]

#: how long workers get to finish their current example once told to stop
STOP_GRACE = 90.0
#: how often the report is rewritten while the campaign runs
REPORT_EVERY = 60.0
#: a worker slot that crashes this many times in a row (without finishing a slice) ends the run
MAX_CRASHES = 5


@attrs.define
class SuiteTotals:
    examples: int = 0
    steps: int = 0
    requests: int = 0
    seconds: float = 0.0
    slices: int = 0
    findings: set[str] = attrs.field(factory=set)


@attrs.define
class FindingState:
    """One finding as the campaign knows it."""

    key: str
    suite: str
    path: str | None = None
    signature: str | None = None
    occurrences: int = 1
    earlier: bool = False  # made by an earlier campaign on this directory
    still_fails: bool | None = None  # an earlier finding's replay: did it fail again?


@attrs.define
class CampaignState:
    """Live figures of a campaign (a display reads it from another thread)."""

    plan: CampaignPlan
    started: float = attrs.field(factory=time.monotonic)
    started_unix: float = attrs.field(factory=time.time)
    suites: dict[str, SuiteTotals] = attrs.field(factory=dict)
    findings: dict[str, FindingState] = attrs.field(factory=dict)
    duplicates: int = 0
    stack_starts: int = 0
    stack_restarts: int = 0
    worker_restarts: int = 0
    crashes: list[str] = attrs.field(factory=list)
    interrupted: bool = False
    rss: dict[str, float] = attrs.field(factory=dict)  # MiB: runner_start, runner_end, peak

    def totals(self) -> SuiteTotals:
        """All suites added up; ``examples`` counts state-machine examples only (a fuzz suite's
        examples are its cases, counted as ``requests``)."""
        total = SuiteTotals()
        for name, suite in self.suites.items():
            if not name.startswith("fuzz:"):
                total.examples += suite.examples
            total.steps += suite.steps
            total.requests += suite.requests
        return total

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def new_findings(self) -> list[FindingState]:
        return [f for f in self.findings.values() if not f.earlier]

    def line(self) -> str:
        """One line of progress: examples/s, steps/s, findings, restarts, time left."""
        total, elapsed = self.totals(), max(self.elapsed(), 1e-9)
        left = max(self.plan.seconds - elapsed, 0.0)
        earlier = len(self.findings) - len(self.new_findings())
        return (
            f"{elapsed:.0f}s, {left:.0f}s left: {total.examples} examples "
            f"({total.examples / elapsed:.2f}/s), {total.steps} steps "
            f"({total.steps / elapsed:.1f}/s), {total.requests} fuzz requests, "
            f"findings {len(self.new_findings())} new + {earlier} "
            f"earlier, {self.duplicates} met again, stack restarts {self.stack_restarts}, "
            f"worker restarts {self.worker_restarts}"
        )


def _rss_mib(pid: int) -> float:
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return 0.0


class _Supervisor:
    def __init__(
        self, plan: CampaignPlan, config: Config, state: CampaignState,
        stop: Callable[[], bool], on_event: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.plan, self.config, self.state = plan, config, state
        self.stop_asked, self.on_event = stop, on_event
        self.mp = multiprocessing.get_context("spawn")
        self.events = self.mp.Queue()
        self.stop = self.mp.Event()
        self.procs: dict[int, multiprocessing.process.BaseProcess] = {}
        self.done: set[int] = set()
        self.crashes_in_row: dict[int, int] = {}
        self.sliced: set[int] = set()  # workers that finished a slice at least once
        self.lives: dict[int, int] = {}  # how many processes each worker slot has had
        self.failure: Exception | None = None
        self.deadline = time.monotonic() + plan.seconds
        # the first report (and the memory baseline after it) comes once the workers warmed up
        self.last_report = time.monotonic()

    # -- workers ---------------------------------------------------------------------------
    def start(self, index: int, *, replay_first: bool) -> None:
        life = self.lives[index] = self.lives.get(index, -1) + 1
        args = (
            index, self.plan, self.config, self.events, self.stop, self.deadline, replay_first,
            life,
        )  # fmt: skip
        proc = self.mp.Process(target=worker_main, args=args, name=f"rbee-campaign-{index}")
        proc.daemon = True  # never outlive the parent
        proc.start()
        self.procs[index] = proc
        self.done.discard(index)

    def run(self) -> None:
        for index in range(self.plan.workers):
            self.start(index, replay_first=index == 0)
        try:
            self.collect(until=None)
        except KeyboardInterrupt:
            self.state.interrupted = True
            raise
        finally:
            self.sample_memory()  # the last sample, while every worker is still there
            if self.state.interrupted or self.failure is not None or self.stop_asked():
                self.stop.set()  # Ctrl-C: stop after the current example, shrinks cut short
            else:
                # the deadline: the workers see it themselves; a shrink under way may finish
                finishing = time.monotonic() + self.plan.shrink_seconds + STOP_GRACE
                self.collect(until=finishing, stopping=True)
                self.stop.set()
            self.collect(until=time.monotonic() + STOP_GRACE, stopping=True)
            self.reap()
        if self.failure is not None:
            raise self.failure

    def collect(self, *, until: float | None, stopping: bool = False) -> None:
        while len(self.done) < len(self.procs):
            now = time.monotonic()
            if until is not None and now > until:
                return
            if stopping and self.stop_asked():
                self.stop.set()  # Ctrl-C while waiting for the workers' last examples
            if not stopping and (self.stop_asked() or now >= self.deadline):
                self.state.interrupted = self.state.interrupted or self.stop_asked()
                return
            if not stopping and now - self.last_report >= REPORT_EVERY:
                self.last_report = now
                write_campaign(self.state, self.config)
                self.sample_memory()
            try:
                event = self.events.get(timeout=0.5)
            except queue.Empty:
                self.check_alive(stopping)
                continue
            self.handle(*event, stopping=stopping)

    def check_alive(self, stopping: bool) -> None:
        """A worker gone without a ``done`` (SIGKILL, OOM kill): restart it like a crash."""
        for index, proc in list(self.procs.items()):
            if index not in self.done and not proc.is_alive():
                # events it sent before dying may still be in the queue: take them first
                self.done.add(index)
                self.crashed(index, f"worker {index} died (exit code {proc.exitcode})", stopping)

    def crashed(self, index: int, message: str, stopping: bool) -> None:
        self.state.crashes.append(message)
        self.on_event(f"worker {index}: {message}")
        count = self.crashes_in_row.get(index, 0) + 1
        self.crashes_in_row[index] = count
        if stopping or time.monotonic() >= self.deadline:
            return
        if count >= MAX_CRASHES:
            if self.failure is None:
                self.failure = InternalError(
                    f"campaign worker {index} failed {count} times in a row, last: {message}; "
                    f"see {self.plan.root / 'logs'}"
                )
            self.stop.set()
            return
        self.state.worker_restarts += 1
        proc = self.procs[index]
        proc.join(timeout=30.0)
        self.start(index, replay_first=False)

    def handle(self, kind: str, index: int, payload: dict[str, Any], *, stopping: bool) -> None:
        state = self.state
        current = self.procs[index].pid == payload["pid"]
        if kind in ("crash", "done") and not current:
            return  # the last words of a worker already replaced
        if kind == "stack":
            state.stack_starts += 1
            state.stack_restarts += bool(payload["restart"])
        elif kind == "slice":
            self.crashes_in_row[index] = 0
            self.sliced.add(index)
            totals = state.suites.setdefault(payload["suite"], SuiteTotals())
            totals.examples += payload["examples"]
            totals.steps += payload["steps"]
            totals.requests += payload["requests"]
            totals.seconds += payload["seconds"]
            totals.slices += 1
        elif kind in ("claimed", "found"):
            self.found(payload["key"], payload["suite"], payload, final=kind == "found")
        elif kind == "fuzz-found":
            self.fuzz_found(payload)
        elif kind == "replayed":
            self.replayed(payload)
        elif kind == "duplicate":
            count = payload.get("count", 1)
            state.duplicates += count
            if payload["key"] in state.findings:
                state.findings[payload["key"]].occurrences += count
        elif kind == "stack-error":
            self.on_event(f"worker {index}: {payload['message']} (its stack restarts)")
        elif kind == "crash":
            self.done.add(index)
            self.procs[index].join(timeout=30.0)
            if payload.get("stack") and not self.sliced:
                # no stack of this campaign ever ran a slice: the config is wrong, not the luck
                self.failure = self.failure or StackError(payload["message"])
                self.stop.set()
                return
            self.crashed(index, payload["message"], stopping)
        elif kind == "retire":  # a round done: its next life continues (see worker_main)
            self.procs[index].join(timeout=60.0)
            if not stopping and time.monotonic() < self.deadline:
                self.start(index, replay_first=False)
            else:
                self.done.add(index)
        elif kind == "done":
            self.done.add(index)

    def found(self, key: str, suite: str, payload: dict[str, Any], *, final: bool) -> None:
        finding = self.state.findings.get(key)
        if finding is None:
            finding = self.state.findings[key] = FindingState(key, suite)
            self.on_event(f"FOUND {key} by {suite}: shrinking ({payload['path']})")
        finding.path = payload["path"]
        if final:
            finding.signature = payload["signature"]
            self.state.suites.setdefault(suite, SuiteTotals()).findings.add(payload["signature"])
            self.on_event(
                f"  -> {payload['signature']}, reproduced {payload['reproduced']}/"
                f"{payload['attempts']}: {payload['path']}"
            )

    def fuzz_found(self, payload: dict[str, Any]) -> None:
        key = payload["signature"]
        if key in self.state.findings:
            self.state.findings[key].occurrences += 1
            self.state.duplicates += 1
            return
        earlier = bool(payload["replayed"]) and payload["path"] is None
        self.state.findings[key] = FindingState(
            key, payload["suite"], path=payload["path"], signature=key, earlier=earlier,
            still_fails=True if payload["replayed"] else None,
        )  # fmt: skip
        self.state.suites.setdefault(payload["suite"], SuiteTotals()).findings.add(key)
        how = "replayed from the database" if payload["replayed"] else "found"
        self.on_event(f"FOUND ({how}) {key}: {payload['path'] or 'its directory exists'}")

    def replayed(self, payload: dict[str, Any]) -> None:
        verdict = "still fails" if payload["still_fails"] else "did not fail again"
        self.state.findings[payload["key"]] = FindingState(
            payload["key"], payload["suite"], path=payload["path"],
            signature=payload["signature"], earlier=True, still_fails=payload["still_fails"],
        )  # fmt: skip
        self.on_event(f"replayed earlier finding {payload['signature']}: {verdict}")

    def sample_memory(self) -> None:
        rss = self.state.rss
        parent = _rss_mib(multiprocessing.current_process().pid or 0)
        workers = sum(_rss_mib(p.pid) for p in self.procs.values() if p.pid and p.is_alive())
        if not workers:
            return  # between a worker's death and its restart: no sample
        runner = parent + workers  # the runner: this process and its workers (not the stacks)
        rss.setdefault("runner_first_mib", runner)
        rss["runner_last_mib"] = runner
        rss["runner_peak_mib"] = max(rss.get("runner_peak_mib", 0.0), runner)

    def reap(self) -> None:
        for proc in self.procs.values():
            proc.join(timeout=5.0)
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker stops its stack on the way out
                proc.join(timeout=30.0)
            if proc.is_alive():
                proc.kill()  # its stack's watchdog still stops the components
                proc.join()


def run_campaign(
    plan: CampaignPlan,
    config: Config,
    *,
    state: CampaignState | None = None,
    stop: Callable[[], bool] = lambda: False,
    on_event: Callable[[str], None] = lambda line: None,
) -> tuple[CampaignState, ReportFiles]:
    """Run ``plan`` to its budget (or ``stop()``), then write the report; return both.

    The report is written on every way out: the end, Ctrl-C (KeyboardInterrupt is re-raised
    after it), a failed worker slot (its error is re-raised after it).
    """
    state = state or CampaignState(plan)
    plan.findings_dir.mkdir(parents=True, exist_ok=True)
    supervisor = _Supervisor(plan, config, state, stop, on_event)
    try:
        supervisor.run()
    finally:
        files = write_campaign(state, config)
    if supervisor.failure is None and stop():
        state.interrupted = True
    return state, files


def _finding_reports(state: CampaignState) -> list[FindingReport]:
    by_path = {str(Path(f.path)): f for f in state.findings.values() if f.path}
    reports = []
    for report in findings_from(state.plan.findings_dir):
        seen = by_path.get(str(report.directory))
        if seen is None:
            continue  # left by an earlier campaign and not met in this one
        # an earlier finding that no longer fails on replay (fixed) fails no suite
        fixed = seen.earlier and seen.still_fails is False
        reports.append(
            attrs.evolve(report, suite=seen.suite, occurrences=seen.occurrences, known=fixed)
        )
    return reports


def write_campaign(state: CampaignState, config: Config) -> ReportFiles:
    """``report.html``, ``junit.xml`` and ``campaign.json`` of the campaign so far."""
    plan = state.plan
    elapsed = state.elapsed()
    total = state.totals()
    summary: dict[str, Any] = {
        "workers": plan.workers,
        "seed": plan.seed,
        "examples": total.examples,
        "examples/s": round(total.examples / max(elapsed, 1e-9), 3),
        "steps/s": round(total.steps / max(elapsed, 1e-9), 2),
        "fuzz requests": total.requests,
        "new findings": len(state.new_findings()),
        "earlier findings replayed": len(state.findings) - len(state.new_findings()),
        "met again": state.duplicates,
        "stack restarts": state.stack_restarts,
        "worker restarts": state.worker_restarts,
        **{k.replace("_", " "): round(v, 1) for k, v in sorted(state.rss.items())},
    }
    suites = [
        SuiteResult(
            name,
            kind="fuzz" if name.startswith("fuzz:") else "machine",
            examples=t.examples,
            steps=t.steps,
            seconds=t.seconds,
            findings=sorted(t.findings),
        )
        for name, t in sorted(state.suites.items())
    ]
    suites += [
        SuiteResult(
            name,
            kind="fuzz" if name.startswith("fuzz:") else "machine",
            skipped="the budget ended before its turn",
        )
        for name in plan.suites
        if name not in state.suites
    ]
    result = CampaignResult(
        title=f"rbee-props campaign: {plan.root.resolve().name}",
        started_unix=state.started_unix, seconds=elapsed, budget=plan.seconds,
        interrupted=state.interrupted, summary=summary, suites=suites,
        findings=_finding_reports(state), config_source=config.source, bugs=config.bugs,
    )  # fmt: skip
    files = write_report(result, plan.root)
    record = {
        "summary": summary,
        "interrupted": state.interrupted,
        "seconds": elapsed,
        "crashes": state.crashes,
        "findings": {k: attrs.asdict(f) for k, f in sorted(state.findings.items())},
    }
    (plan.root / "campaign.json").write_text(json.dumps(record, indent=2) + "\n")
    return files
