"""Replay a recorded program against a stack, shrink it, and measure how often it reproduces.

A program is the list of rule invocations a machine recorded (``machines/_core.py``); worker
ids bound by earlier steps appear as ``{"$var": "v1"}`` and are re-bound to the ids the stack
hands out this time. Replays run through the same machine, so the same model, checks and
invariants judge them. A live stack is not deterministic: ``shrink_program`` re-checks each
candidate against the stack, and ``reproduction_rate`` reports how often the result fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rbee_props.config import Config, load_config
from rbee_props.findings import Violation
from rbee_props.machines import MACHINES, MachineContext, StackMachineBase
from rbee_props.machines._context import Failure
from rbee_props.repro._shrink_args import drop_elements
from rbee_props.repro._substitute import single_steps, wait_steps
from rbee_props.stack import make_stack

__all__ = [
    "assert_program_holds",
    "replay_program",
    "reproduction_rate",
    "run_program",
    "shrink_program",
]

Program = Sequence[Mapping[str, Any]]


def _resolve(value: Any, bound: Mapping[str, str]) -> Any:
    if isinstance(value, dict) and "$var" in value:
        return bound.get(value["$var"], f"unbound-{value['$var']}")
    return value


def run_program(
    program: Program,
    context: MachineContext,
    machine: type[StackMachineBase],
    *,
    respect_delays: bool = False,
) -> Failure | None:
    """Run ``program`` once on a freshly reset stack; the failure it caused, or None."""
    bound_cls = machine.bind(context)
    before = len(context.failures)
    instance = bound_cls()
    bound: dict[str, str] = {}
    try:
        instance.converge()
        start = time.monotonic()
        for step in program:
            if respect_delays and "at" in step:
                lag = float(step["at"]) - (time.monotonic() - start)
                if lag > 0:
                    time.sleep(lag)  # the recorded pause before this step
            args = {k: _resolve(v, bound) for k, v in dict(step.get("args", {})).items()}
            result = getattr(instance, step["rule"])(**args)
            if "binds" in step and isinstance(result, str):
                bound[str(step["binds"])] = result
            instance.converge()
        instance.teardown()  # converges a trailing fault, as Hypothesis does
    except Violation:
        return context.failures[-1] if len(context.failures) > before else None
    finally:
        instance.close_clients()
    return None


def _uses(step: Mapping[str, Any]) -> set[str]:
    return {v["$var"] for v in step.get("args", {}).values() if isinstance(v, dict) and "$var" in v}


def _dependency_core(
    program: Program, *, tail: int = 1, workers: bool = False
) -> list[Mapping[str, Any]]:
    """The last ``tail`` steps and, transitively, the steps that bound the variables they use;
    with ``workers``, also every step that made a worker (a fault can hit a worker through its
    hive without naming it: a restart of the hive a spawn chose)."""
    binder = {str(step["binds"]): i for i, step in enumerate(program) if step.get("binds")}
    todo = list(range(max(len(program) - tail, 0), len(program)))
    if workers:
        todo += [i for i in binder.values() if i not in todo]
    keep = set(todo)
    while todo:
        for var in _uses(program[todo.pop()]):
            index = binder.get(var)
            if index is not None and index not in keep:
                keep.add(index)
                todo.append(index)
    return [step for i, step in enumerate(program) if i in keep]


def _dependents(program: Program, removed: set[int]) -> set[int]:
    """Steps that use a variable bound by a removed step must go too."""
    dropped = set(removed)
    gone_vars = {str(program[i].get("binds")) for i in removed if program[i].get("binds")}
    for index, step in enumerate(program):
        if _uses(step) & gone_vars:
            dropped.add(index)
            if step.get("binds"):
                gone_vars.add(str(step["binds"]))
    return dropped


def shrink_program(
    program: Program,
    fails: Callable[[Program], Failure | None],
    *,
    invariant: str,
    budget: float = 120.0,
    machine: type[StackMachineBase] | None = None,
    trail: list[tuple[list[Mapping[str, Any]], Failure]] | None = None,
) -> tuple[list[Mapping[str, Any]], Failure | None]:
    """Shrink ``program`` while the same invariant still fails, within ``budget`` seconds.

    First at most four candidates: the failing (last) step, then the last two steps (a fault's
    consequences are judged at the step after it), each with only the steps that bound the
    workers they use (``_dependency_core``), then the failing step with every step that made a
    worker, then (given a ``machine`` with a ``passes_time`` rule) every step that made a worker
    followed by a wait: a monitor that evicts a healthy worker needs the worker and time. A
    fault on a worker needs its spawn and rarely more; on a live stack, where a replay
    takes seconds, trying these first saves most of the budget. Each is replayed up to twice: a
    finding that depends on a race may miss once. Then two passes, repeated while either makes
    progress: greedy delta debugging (drop chunks of steps, and the steps that use what they
    bound; once, also elements of the lists in a step's arguments, see ``_shrink_args``), then,
    given the ``machine``, substitution (replace the steps from some point to the failing one
    by a single rule, see ``_substitute``). Each of their candidates is replayed once against
    the live stack; a candidate whose replay raises counts as not failing. Returns the smallest
    failing program found, with its failure (None when no candidate failed). Every candidate
    that failed is kept, in order, in ``trail`` when one is given: each one failed is accepted,
    so the last is the result and the ones before it are the way back (see ``hunt.finish``).
    """
    deadline = time.monotonic() + budget

    def still_fails(candidate: Program) -> Failure | None:
        if not candidate or time.monotonic() >= deadline:
            return None
        try:
            failure = fails(candidate)
        except Exception:  # a candidate the machine cannot run does not fail
            return None
        if failure is None or failure.violation.invariant != invariant:
            return None
        if trail is not None:
            trail.append((list(candidate), failure))
        return failure

    current, best = list(program), None
    tried: list[list[Mapping[str, Any]]] = []
    # a fault's consequences are checked at the step after it: the last two steps too
    cores = [
        _dependency_core(current, tail=tail, workers=workers)
        for tail, workers in ((1, False), (2, False), (1, True))
    ]
    # the workers and a quiet period: what a bug of a background monitor needs
    makers = _dependency_core(current, tail=0, workers=True)
    waits = wait_steps(machine) if machine is not None and makers else []
    cores += [[*makers, wait] for wait in waits[:1]]
    for core in cores:
        if len(core) >= len(current) or core in tried:
            continue
        tried.append(core)
        # twice each: a race-dependent finding (a rate of 2/3) must not lose its best candidate
        # to one unlucky replay; a core that holds costs two replays, at most six in all
        if (failure := still_fails(core) or still_fails(core)) is not None:
            current, best = core, failure  # often the answer at once: one replay, not dozens
            break
    current, shorter = _drop_chunks(current, still_fails, deadline)
    best = shorter or best
    current, inner = drop_elements(current, still_fails, deadline)
    best = inner or best
    while machine is not None and time.monotonic() < deadline:
        substituted = _substitute(current, still_fails, machine)
        if substituted is None:
            break
        current, best = substituted
        current, shorter = _drop_chunks(current, still_fails, deadline)
        best = shorter or best
    return current, best


def _drop_chunks(
    current: list[Mapping[str, Any]],
    still_fails: Callable[[Program], Failure | None],
    deadline: float,
) -> tuple[list[Mapping[str, Any]], Failure | None]:
    best: Failure | None = None
    size = max(len(current) // 2, 1)
    while size >= 1 and time.monotonic() < deadline:
        index, changed = 0, False
        while index < len(current) and time.monotonic() < deadline:
            removed = _dependents(current, set(range(index, min(index + size, len(current)))))
            candidate = [s for i, s in enumerate(current) if i not in removed]
            failure = still_fails(candidate)
            if failure is not None:
                current, best, changed = candidate, failure, True
            else:
                index += size
        if not changed:
            size //= 2
    return current, best


def _substitute(
    current: list[Mapping[str, Any]],
    still_fails: Callable[[Program], Failure | None],
    machine: type[StackMachineBase],
) -> tuple[list[Mapping[str, Any]], Failure] | None:
    """The first shorter program with one step in place of a run ending at the failing step."""
    for start in range(len(current) - 1):  # the longest runs first: the biggest gain
        prefix = current[:start]
        bound = [str(step["binds"]) for step in prefix if step.get("binds")]
        for step in single_steps(machine, current[start:], bound):
            candidate = [*prefix, step]
            failure = still_fails(candidate)
            if failure is not None:
                return candidate, failure
    return None


def reproduction_rate(program: Program, fails: Callable[[Program], Failure | None], *,
                      invariant: str, attempts: int = 3) -> int:  # fmt: skip
    """How many of ``attempts`` replays fail with ``invariant``."""
    hits = 0
    for _ in range(attempts):
        failure = fails(program)
        if failure is not None and failure.violation.invariant == invariant:
            hits += 1
    return hits


def _config(config: str | Path | Config | None, bugs: Sequence[str], backend: str | None) -> Config:
    if isinstance(config, Config):
        return config
    return load_config(config, overrides={"bugs": list(bugs), "backend": backend})


def replay_program(
    program: Program,
    *,
    machine: str = "stack",
    bugs: Sequence[str] = (),
    config: str | Path | Config | None = None,
    backend: str | None = None,
    attempts: int = 1,
    respect_delays: bool = True,
) -> list[Failure | None]:
    """Start a stack, replay ``program`` ``attempts`` times, stop it; each attempt's failure."""
    cfg = _config(config, bugs, backend)
    stack = make_stack(cfg)
    stack.start()
    context = MachineContext(stack, cfg)
    try:
        return [
            run_program(program, context, MACHINES[machine], respect_delays=respect_delays)
            for _ in range(attempts)
        ]
    finally:
        context.close()
        stack.stop()


def assert_program_holds(program: Program, *, attempts: int = 1, **options: Any) -> None:
    """Replay ``program``; raise the violation if it still fails (for ``test_repro.py``).

    ``attempts`` > 1 replays it that many times (a concurrent burst's outcome depends on
    timing) and raises the first violation, its observation ending with how many replays
    reproduced it. ``RBEE_PROPS_BUGS`` (comma-separated, may be empty) and
    ``RBEE_PROPS_CONFIG`` in the environment replace the recorded planted bugs and config,
    e.g. to check a fix.
    """
    if "RBEE_PROPS_BUGS" in os.environ:
        options["bugs"] = [b for b in os.environ["RBEE_PROPS_BUGS"].split(",") if b]
    if os.environ.get("RBEE_PROPS_CONFIG"):
        options["config"] = os.environ["RBEE_PROPS_CONFIG"]
    failures = [f for f in replay_program(program, attempts=attempts, **options) if f]
    if not failures:
        return
    first = failures[0].violation
    if attempts == 1:
        raise first
    raise Violation(
        first.invariant,
        explains=first.explains,
        expected=first.expected,
        observed=f"{first.observed} [reproduced in {len(failures)} of {attempts} replays]",
        op_kinds=first.op_kinds,
        step=first.step,
        waited=first.waited,
        details=first.details,
    )
