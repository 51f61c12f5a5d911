"""A time-budgeted fuzz campaign: replay the example database, then fuzz in rounds until time's up.

Each round gives every operation of every target, in positive and negative mode, an equal slice
of time (as Schemathesis' CLI shares its budget between operations; at most ``chunk`` examples),
with a seed derived from the campaign seed (printed, so a round repeats). Every
response goes through all checks in one pass (:func:`~rbee_props.fuzz._judge.judge`). A failed
check makes a :class:`~rbee_props.fuzz.signature.FuzzFinding`; what happens next depends on its
signature:

- new in this campaign: the example fails the Hypothesis test, so Hypothesis shrinks it (for at
  most ``shrink_seconds``) while that signature keeps failing, and saves the smallest one to the
  example database; the finding is written to the findings directory and the campaign goes on;
- already found: counted as a duplicate, and the example passes, so fuzzing continues.

Before the first round, every example the database holds for these operations is replayed
through a read-only view of it (so replaying never deletes what a past campaign saved), and
whatever fails is reported as found again - earlier findings come first, and the replay runs to
its end even when it outlasts the budget. The database key of
each test is ``service, operation, mode``, as Schemathesis' CLI keys its own per operation, so
campaigns on other machines sharing a Redis database replay each other's findings.
"""

from __future__ import annotations

import time
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import hypothesis
import hypothesis.errors
import requests
from hypothesis.database import ExampleDatabase, ReadOnlyDatabase
from schemathesis import Case, GenerationMode

from rbee_props.errors import StackError
from rbee_props.fuzz._judge import judge
from rbee_props.fuzz.export import ExportContext, Sample, write_finding
from rbee_props.fuzz.signature import FuzzFinding, findings_of
from rbee_props.fuzz.specs import call_kwargs
from rbee_props.fuzz.suite import checks_for, is_destructive
from rbee_props.fuzz.targets import FuzzTarget, Operation, Targets

__all__ = ["Campaign", "FoundEvent", "Progress"]

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
#: bounds of one operation's slice of a round, in seconds: rounds of a short budget still reach
#: every operation, and a long campaign comes back to each one every few minutes
MIN_SLICE, MAX_SLICE = 0.5, 10.0


class _Stop(KeyboardInterrupt):
    """Ends a Hypothesis run at once, without shrinking or reporting (time is up, or abort)."""


class _SliceDone(KeyboardInterrupt):
    """Ends one operation's slice of the round: the next operation's turn."""


class _ShrinkDone(KeyboardInterrupt):
    """Ends the shrinking of one finding: its smallest sample so far is what gets written."""


class _StackDown(_Stop):
    """The service stopped answering: the campaign ends with a stack error."""

    def __init__(self, error: StackError) -> None:
        super().__init__(error.message)
        self.error = error


class _NewFinding(Exception):
    """Fails the Hypothesis example so it is shrunk and saved: a signature not seen before."""


@attrs.define
class Progress:
    """Live counters of a campaign (read by the progress display while it runs)."""

    started: float = attrs.field(factory=time.monotonic)
    cases: int = 0
    probes: int = 0
    operations_total: int = 0
    covered: set[str] = attrs.field(factory=set)
    findings: dict[str, FuzzFinding] = attrs.field(factory=dict)
    replayed: set[str] = attrs.field(factory=set)
    duplicates: int = 0
    errors: list[str] = attrs.field(factory=list)
    phase: str = "starting"
    round: int = 0
    warm_up: float = 0.0

    @property
    def requests(self) -> int:
        """Every HTTP request sent: the cases and the checks' re-sends."""
        return self.cases + self.probes

    def rate(self, now: float | None = None) -> float:
        """Requests per second so far."""
        elapsed = (now or time.monotonic()) - self.started
        return self.requests / elapsed if elapsed > 0 else 0.0


@attrs.frozen
class FoundEvent:
    """A finding was made: where it was written (None: its directory existed already)."""

    finding: FuzzFinding
    path: Path | None
    replayed: bool


@attrs.define
class _Hunt:
    """The signature one Hypothesis run is shrinking: the first failing example (with every new
    finding it showed) and the smallest one so far that still fails under that signature."""

    signature: str | None = None
    first: list[tuple[FuzzFinding, Sample]] = attrs.field(factory=list)
    smallest: Sample | None = None
    shrink_until: float = 0.0


def _findings(target: FuzzTarget, operation: Operation, sample: Sample) -> list[FuzzFinding]:
    """One finding per check that failed on ``sample``."""
    return findings_of(target.service, operation, sample.response.status_code, sample.judgement)


class Campaign:
    """Fuzz ``targets`` until ``deadline`` (a ``time.monotonic()`` value) or ``stop()``.

    Args:
        targets: the aimed documents and their tidying.
        database: the example database (shared by every process of a campaign).
        out: the findings directory.
        seed: the campaign seed; rounds derive theirs from it.
        deadline: when to stop (monotonic clock).
        chunk: most examples per operation, mode and round.
        shrink_seconds: longest time spent shrinking one new finding.
        stack_label: how the stack is described in reports.
        stop: polled between examples; True ends the campaign like the deadline.
        on_found: called with each finding (new or replayed) as it is made.
        progress: where the counters go (a display may read it while the campaign runs).
    """

    def __init__(
        self,
        targets: Targets,
        *,
        database: ExampleDatabase,
        out: Path,
        seed: int,
        deadline: float,
        chunk: int = 50,
        shrink_seconds: float = 30.0,
        stack_label: str = "",
        stop: Callable[[], bool] | None = None,
        on_found: Callable[[FoundEvent], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.targets = targets
        self.database = database
        self.out = out
        self.seed = seed
        self.deadline = deadline
        self.chunk = chunk
        self.shrink_seconds = shrink_seconds
        self.stack_label = stack_label
        self.stop = stop or (lambda: False)
        self.on_found = on_found or (lambda event: None)
        self.progress = progress if progress is not None else Progress()
        self.progress.operations_total = targets.operation_count
        self._dead_ops: set[tuple[str, str, str]] = set()
        self._slice = MIN_SLICE
        self._slice_end = 0.0
        self._strategies: dict[tuple[str, str, str], Any] = {}  # (target id, label, mode)
        self._session = requests.Session()
        self._session.trust_env = False  # the stack is where the config says, never via a proxy

    # -- the campaign ----------------------------------------------------------------------------
    def run(self) -> Progress:
        """Replay the database, then fuzz rounds until the deadline or ``stop()``.

        Raises:
            StackError: a service stopped answering.
            KeyboardInterrupt: Ctrl-C (the progress so far stays in ``self.progress``).
        """
        try:
            self.progress.phase = "warm-up"
            self._warm_up()
            self.progress.phase = "replay"
            for target, operation, mode in self._plan():
                self._run_one(target, operation, mode, replay=True)
            pairs = max(len(list(self._plan())), 1)
            self._slice = min(
                max((self.deadline - time.monotonic()) / (2 * pairs), MIN_SLICE), MAX_SLICE
            )
            while not self._over():
                self.progress.round += 1
                self.progress.phase = f"round {self.progress.round}"
                for target, operation, mode in self._plan():
                    # after a new finding the same operation goes again: a bug that fails
                    # several checks at once is found under each of their signatures
                    while not self._over() and self._run_one(target, operation, mode, replay=False):
                        pass
                self.targets.refresh()
        except _StackDown as down:
            raise down.error from None
        except _Stop:
            pass
        finally:
            self._session.close()
        self.progress.phase = "done"
        return self.progress

    def _warm_up(self) -> None:
        """Build every strategy and draw one example of each, before the budget starts.

        The first draw of a Schemathesis strategy compiles it, and Hypothesis builds its tables
        of encodable characters once per home directory: seconds of CPU that would otherwise
        come out of a short budget. The deadline moves by the time it took; nothing is sent.
        """
        started = time.monotonic()
        for target, operation, mode in list(self._plan()):
            if self.stop():
                raise _Stop

            def draw(case: Case[Any]) -> None:
                return None

            # seeded and quiet: an operation with nothing to negate is no failure to report
            given = hypothesis.given(case=self._strategy(target, operation, mode))(draw)
            test = hypothesis.settings(
                max_examples=1, database=None, deadline=None, phases=[hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
                verbosity=hypothesis.Verbosity.quiet,
            )(hypothesis.seed(0)(given))  # fmt: skip
            try:
                test()
            except hypothesis.errors.Unsatisfiable:
                self._dead_ops.add((target.service, operation.label, mode.value))
        spent = time.monotonic() - started
        self.deadline += spent
        self.progress.started += spent
        self.progress.warm_up = spent

    def _strategy(self, target: FuzzTarget, operation: Operation, mode: GenerationMode) -> Any:
        """The (cached) Schemathesis strategy of one operation and mode of this target (a
        respawned campaign worker is a new target, with a schema aimed at the new worker)."""
        ident = (str(id(target)), operation.label, mode.value)
        if ident not in self._strategies:
            self._strategies[ident] = operation.as_strategy(generation_mode=mode)
        return self._strategies[ident]

    def _over(self) -> bool:
        return time.monotonic() >= self.deadline or self.stop()

    def _plan(self) -> Iterator[tuple[FuzzTarget, Operation, GenerationMode]]:
        for target in list(self.targets.targets):
            for operation in target.operations:
                for mode in MODES:
                    if (target.service, operation.label, mode.value) not in self._dead_ops:
                        yield target, operation, mode

    # -- one Hypothesis run ------------------------------------------------------------------------
    def _settings(self, *, replay: bool) -> hypothesis.settings:
        common: dict[str, Any] = {
            "deadline": None,
            "derandomize": False,
            "print_blob": False,
            "report_multiple_bugs": False,
            "verbosity": hypothesis.Verbosity.quiet,
            "suppress_health_check": list(hypothesis.HealthCheck),
        }
        if replay:
            return hypothesis.settings(
                max_examples=1,
                database=ReadOnlyDatabase(self.database),
                phases=[hypothesis.Phase.reuse],
                **common,
            )
        return hypothesis.settings(
            max_examples=self.chunk,
            database=self.database,
            phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink],
            **common,
        )

    def _run_one(
        self, target: FuzzTarget, operation: Operation, mode: GenerationMode, *, replay: bool
    ) -> bool:
        """One Hypothesis run of one operation and mode; whether it made a new finding."""
        hunt = _Hunt()
        fuzz_case = self._body(target, operation, mode, hunt, replay=replay)
        # one database entry per service, operation and mode, as Schemathesis' CLI does
        key = f"rbee-props-fuzz:{target.service}:{operation.label}:{mode.value}"
        fuzz_case._hypothesis_internal_add_digest = key.encode()  # type: ignore[attr-defined]
        ident = (target.service, operation.label, mode.value)
        test = hypothesis.given(case=self._strategy(target, operation, mode))(fuzz_case)
        seed = f"{self.seed}:{self.progress.round}:{target.service}:{operation.label}:{mode.value}"
        # settings on top: hypothesis.seed() alone would switch the database off
        test = self._settings(replay=replay)(hypothesis.seed(seed)(test))
        self._slice_end = time.monotonic() + self._slice
        try:
            test()
        except (_NewFinding, _ShrinkDone, _SliceDone, hypothesis.errors.Flaky):
            pass  # the hunted finding is in ``hunt``; a flaky replay still showed it once
        except unittest.SkipTest:
            pass  # a replay with nothing stored for this operation
        except hypothesis.errors.Unsatisfiable:
            # nothing to generate in this mode (e.g. no parameter to negate): skip it from now on
            self._dead_ops.add(ident)
        finally:
            # also on Ctrl-C or when time is up mid-shrink: what was found so far is written
            self._record_hunt(target, operation, mode, hunt)
        return hunt.signature is not None

    def _record_hunt(
        self, target: FuzzTarget, operation: Operation, mode: GenerationMode, hunt: _Hunt
    ) -> None:
        """Write the hunted finding from its smallest example, with every other new finding
        that example shows; the first example's remaining new findings from that one."""
        if hunt.smallest is not None:
            for finding in _findings(target, operation, hunt.smallest):
                if not self._known(finding):
                    self._record(target, mode, finding, hunt.smallest, replayed=False)
        for finding, sample in hunt.first:
            if not self._known(finding):
                self._record(target, mode, finding, sample, replayed=False)

    def _body(
        self,
        target: FuzzTarget,
        operation: Operation,
        mode: GenerationMode,
        hunt: _Hunt,
        *,
        replay: bool,
    ) -> Callable[[Case[Any]], None]:
        kwargs = call_kwargs(target.schema)
        session = self._session
        keep = self.targets.stack.hives
        progress = self.progress

        def fuzz_case(case: Case[Any]) -> None:
            # the replay of the database always completes (it is short): it comes first
            if self.stop() or (not replay and hunt.signature is None and self._over()):
                raise _Stop
            if not replay and hunt.signature is None and time.monotonic() >= self._slice_end:
                raise _SliceDone
            if hunt.signature is not None and (
                time.monotonic() >= hunt.shrink_until or self._over()
            ):
                raise _ShrinkDone  # enough shrinking: the smallest sample so far is written
            if is_destructive(case, keep_nodes=keep):
                return
            try:
                response = case.call(session=session, **kwargs)
            except requests.RequestException as exc:
                self._transport_error(target, case, exc)
                return
            progress.cases += 1
            progress.covered.add(f"{target.service}.{operation.label}")
            judgement = judge(case, response, checks_for(case), target=kwargs)
            progress.probes += judgement.probe_count
            self.targets.tidy(response, case)
            sample = Sample(case, response, judgement)
            findings = _findings(target, operation, sample)
            if replay:
                for finding in findings:
                    self._record(target, mode, finding, sample, replayed=True)
                return
            if any(finding.signature == hunt.signature for finding in findings):
                hunt.smallest = sample  # Hypothesis shrank it and it still fails the same way
                raise _NewFinding(hunt.signature)
            new = [finding for finding in findings if not self._known(finding)]
            progress.duplicates += len(findings) - len(new)
            if new and hunt.signature is None:
                hunt.signature, hunt.smallest = new[0].signature, sample
                hunt.first = [(finding, sample) for finding in new]
                hunt.shrink_until = time.monotonic() + self.shrink_seconds
                raise _NewFinding(hunt.signature)

        return fuzz_case

    # -- bookkeeping -------------------------------------------------------------------------------
    def _known(self, finding: FuzzFinding) -> bool:
        """Found already in this campaign: by this process, or by another one of it."""
        if finding.signature in self.progress.findings:
            return True
        report = self.out / finding.slug / "finding.json"
        try:
            written = report.stat().st_mtime
        except OSError:
            return False
        if written >= time.time() - (time.monotonic() - self.progress.started):
            self.progress.findings[finding.signature] = finding
            return True
        return False

    def _record(
        self,
        target: FuzzTarget,
        mode: GenerationMode,
        finding: FuzzFinding,
        sample: Sample,
        *,
        replayed: bool,
    ) -> None:
        if finding.signature in self.progress.findings:
            return
        self.progress.findings[finding.signature] = finding
        if replayed:
            self.progress.replayed.add(finding.signature)
        ctx = ExportContext(
            service=target.service,
            base_url=target.base_url,
            token=self.targets.stack.token,
            spec=target.spec,
            seed=self.seed,
            mode=mode.value,
            stack=self.stack_label,
        )
        path = write_finding(self.out, finding, sample, ctx, replayed=replayed)
        self.on_found(FoundEvent(finding, path, replayed))

    def _transport_error(self, target: FuzzTarget, case: Case[Any], exc: Exception) -> None:
        """No answer: a dead service ends the campaign; a single lost request is listed."""
        instance = target.instance.split()[0]
        if instance in self.targets.stack.urls and not self.targets.stack.is_healthy(
            instance, timeout=2.0
        ):
            msg = (
                f"{target.instance} stopped answering during the fuzz campaign "
                f"({type(exc).__name__} on {case.operation.label}); "
                f"{self.targets.stack.describe_failure(instance)}"
            )
            raise _StackDown(StackError(msg, component=instance))
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        self.progress.errors.append(f"{target.service} {case.operation.label}: {reason}")
