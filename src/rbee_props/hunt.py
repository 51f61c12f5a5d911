"""Hunt for findings: run a machine with Hypothesis, then shrink, re-check and export.

Hypothesis shrinks well, but a live stack is not deterministic, so its final replay may not
fail again (``Flaky``) and its shrinking may stop early. rbee-props never lets that hide a
finding: every failing example is kept by the machine context, the smallest is shrunk further
by replaying candidates against the stack (``repro.replay.shrink_program``), replayed ``k``
times for a reproduction rate, and exported with that rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky, FlakyStrategyDefinition
from hypothesis.reporting import current_reporter, with_reporter
from hypothesis.stateful import get_state_machine_test

from rbee_props._engine import fresh_examples_only
from rbee_props.config import Config
from rbee_props.errors import InternalError, RbeePropsError, StackError
from rbee_props.findings import Violation
from rbee_props.machines import MachineContext, StackMachineBase
from rbee_props.machines._context import Failure
from rbee_props.repro import Finding, current_versions, export_finding
from rbee_props.repro.replay import reproduction_rate, run_program, shrink_program

__all__ = ["HuntResult", "hunt", "machine_settings", "make_finding"]


def machine_settings(
    *, max_examples: int = 20, steps: int = 12, database: object = None
) -> settings:
    """Settings for a machine on a live stack: no deadline, no health checks on slow data."""
    return settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=database,  # type: ignore[arg-type]
        # no Phase.shrink: on a live stack Hypothesis' replays turn flaky and stop early;
        # hunt() shrinks by replaying candidates itself (shrink_program), with a time budget
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        report_multiple_bugs=False,
    )


@attrs.define
class HuntResult:
    """What one hunt did and found."""

    failure: Failure | None
    finding: Finding | None
    examples: int
    steps: int
    seconds: float
    flaky: bool
    seed: int | None
    path: Path | None = None


#: how often one run starts Hypothesis afresh after the stack answered a program two ways
MAX_FRESH_STARTS = 3


def run_hypothesis(
    machine: type[StackMachineBase], context: MachineContext, *, config: settings,
    seed: int | None,
) -> bool:  # fmt: skip
    """Run Hypothesis on ``machine``; True when Hypothesis called the result flaky.

    Which rules are enabled, and which workers a rule can pick, follow the stack's answers, so
    a choice sequence Hypothesis explored once can draw differently the next time it is walked
    (``FlakyStrategyDefinition``: "inconsistent data generation"). Without a recorded violation
    that is the live stack's doing, not a finding and not an error: the search goes on with a
    fresh Hypothesis run for the examples left, seeded ``seed + 100000 k`` (noted in
    ``context.fresh_starts``, which the commands print), at most ``MAX_FRESH_STARTS`` times.
    """
    examples_before = context.examples
    current, current_config = seed, config
    for fresh_start in range(MAX_FRESH_STARTS + 1):
        try:
            return _run_once(machine, context, config=current_config, seed=current)
        except FlakyStrategyDefinition as exc:  # raised by _run_once only without a failure
            left = config.max_examples - (context.examples - examples_before)
            if left <= 0:
                return False
            if fresh_start == MAX_FRESH_STARTS:
                for text in getattr(exc, "held_report", ()):
                    current_reporter()(text)
                raise_unrecorded(exc)
            current = None if seed is None else seed + 100_000 * (fresh_start + 1)
            current_config = settings(current_config, max_examples=left, derandomize=False)
            context.fresh_starts.append(current)
    return False


def _run_once(
    machine: type[StackMachineBase], context: MachineContext, *, config: settings,
    seed: int | None,
) -> bool:  # fmt: skip
    test = get_state_machine_test(machine.bind(context), settings=config)
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    context.seed = seed
    # Hypothesis reports the steps before an inconsistent generation as if it were an error;
    # its report is held and dropped when run_hypothesis goes on afresh instead
    outer, recovered = current_reporter(), False
    held: list[object] = []
    try:
        with fresh_examples_only(), with_reporter(held.append):
            test()
    except FlakyStrategyDefinition as exc:
        if not context.failures:
            recovered = True
            exc.held_report = held  # type: ignore[attr-defined]  # shown if it gives up
            raise  # the stack answered one program two ways: run_hypothesis starts afresh
        return True
    except Flaky as exc:
        if not context.failures:
            raise_unrecorded(exc)
        return True
    except Violation:
        return False
    except BaseExceptionGroup as group:  # several distinct failures: the recorder has them all
        if not group.subgroup((Violation, Flaky, FlakyStrategyDefinition)):
            raise
        return bool(group.subgroup((Flaky, FlakyStrategyDefinition)))
    finally:
        if not recovered:
            for text in held:
                outer(text)
    return False


def raise_unrecorded(flaky: BaseException) -> None:
    """A ``Flaky`` without a recorded violation: an error of the run itself, never "no finding".

    Hypothesis calls a failure flaky when its replay passes. When no invariant was violated,
    the failure was something else (the stack stopped answering, an error in a rule): surface
    it, as a StackError when the stack is to blame, else as an InternalError.
    """
    causes = [flaky]
    if isinstance(flaky, BaseExceptionGroup):
        causes = list(flaky.exceptions) or causes
    cause = causes[0]
    if isinstance(cause, RbeePropsError):
        raise cause
    text = f"{type(cause).__name__}: {cause}".strip()
    if isinstance(cause, (httpx.HTTPError, OSError)):
        msg = (
            f"the run stopped on a stack error that did not happen again on replay ({text}); "
            "check the components' logs and run again with the printed seed"
        )
        raise StackError(msg) from flaky
    msg = (
        f"the run stopped on an error that did not happen again on replay ({text}); "
        "this is a bug in rbee-props or in a custom rule: report it with the printed seed"
    )
    raise InternalError(msg) from flaky


def hunt(
    machine: type[StackMachineBase],
    context: MachineContext,
    *,
    config: settings,
    seed: int | None = None,
    machine_name: str = "stack",
    shrink_budget: float = 60.0,
    attempts: int = 3,
    out: Path | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> HuntResult:
    """Run ``machine`` until Hypothesis is done or something fails; finish the finding."""
    started = time.monotonic()
    examples_before, steps_before = context.examples, context.steps
    context.failures.clear()
    try:
        flaky = run_hypothesis(machine, context, config=config, seed=seed)
        smallest = context.smallest_failure()
        result = HuntResult(
            failure=smallest,
            finding=None,
            examples=context.examples - examples_before,
            steps=context.steps - steps_before,
            seconds=0.0,
            flaky=flaky,
            seed=seed,
        )
        if smallest is not None:
            result.finding, result.failure = finish(
                smallest, machine, context, machine_name=machine_name,
                shrink_budget=shrink_budget, attempts=attempts, on_progress=on_progress,
            )  # fmt: skip
            if out is not None:
                result.path = export_finding(result.finding, out, secrets=(context.stack.token,))
    except KeyboardInterrupt:
        # Ctrl-C while searching or shrinking: keep the smallest failing program seen so far
        # (replays during shrinking record theirs too), marked as not replayed (attempts 0)
        interrupted = context.smallest_failure()
        if interrupted is not None and out is not None:
            finding = make_finding(interrupted, machine_name, context.config, 0, 0)
            export_finding(finding, out, secrets=(context.stack.token,))
        raise
    result.seconds = time.monotonic() - started
    return result


#: how many programs shrinking accepted before its result are measured when the result does not
#: reproduce (each costs ``attempts`` replays), before the original program
STEP_BACK = 2


def finish(
    failure: Failure,
    machine: type[StackMachineBase],
    context: MachineContext,
    *,
    machine_name: str,
    shrink_budget: float,
    attempts: int,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[Finding, Failure]:
    """Shrink ``failure`` by replaying against the stack, measure its rate, make a Finding.

    A candidate is accepted on one failing replay, so a race can hand shrinking a program that
    failed once and never again. When the result reproduces in none of the ``attempts``
    replays, up to ``STEP_BACK`` of the programs accepted before it (the original last) are
    measured too, newest first, and the first that reproduces is the finding.
    """
    invariant = failure.violation.invariant

    def fails(program: list[dict[str, object]] | object) -> Failure | None:
        return run_program(program, context, machine)  # type: ignore[arg-type]

    if on_progress:
        on_progress(f"shrinking {failure.violation.signature} ({len(failure.program)} steps)")
    trail: list[tuple[list[Any], Failure]] = []
    program, shrunk = shrink_program(
        failure.program, fails, invariant=invariant, budget=shrink_budget, machine=machine,
        trail=trail,
    )  # fmt: skip
    best = shrunk or failure
    if on_progress:
        on_progress(f"replaying {len(program)} steps {attempts} times for the reproduction rate")
    hits = reproduction_rate(program, fails, invariant=invariant, attempts=attempts)
    chosen = best if shrunk else attrs.evolve(failure, program=list(program))
    way_back = [*trail[-STEP_BACK - 1 : -1], (list(failure.program), failure)][::-1]
    for earlier, earlier_failure in way_back if shrunk and attempts and not hits else ():
        if on_progress:
            on_progress(f"{len(program)} steps did not fail again; measuring {len(earlier)} steps")
        hits = reproduction_rate(earlier, fails, invariant=invariant, attempts=attempts)
        if hits:
            best = chosen = earlier_failure
            break
    return make_finding(chosen, machine_name, context.config, hits, attempts), best


def make_finding(
    failure: Failure, machine_name: str, config: Config, reproduced: int, attempts: int
) -> Finding:
    """A Finding from a recorded failure (``attempts`` 0: not replayed, e.g. after Ctrl-C)."""
    source = config.source
    config_path = None if source.startswith("built-in") else source.split(" [tool.")[0]
    return Finding(
        violation=failure.violation,
        program=tuple(failure.program),
        history=tuple(failure.history),
        machine=machine_name,
        bugs=tuple(config.bugs),
        config_path=config_path,
        backend=config.backend,
        seed=failure.seed,
        reproduced=reproduced,
        attempts=attempts,
        versions=current_versions(),
        waited=failure.violation.waited,
    )
