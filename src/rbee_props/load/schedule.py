"""Durations and fault schedules of a load run: ``kill:hive1@10s+5s,restart:queen@20s``.

A schedule is a comma-separated list of ``ACTION[:TARGET]@TIME[+HOLD]`` steps. ``TIME`` is when
the fault starts, counted from the start of the load; ``+HOLD`` undoes it that long afterwards
(kill/terminate -> start, pause -> resume, partition/slow -> heal). Targets are component names
(``queen``, ``hive1``...); a link is ``a/b``; ``slow`` takes a delay: ``slow:queen/hive1:200ms``.

While the load runs, :func:`run_faults` performs each step on the stack at its time (in a
thread, so a restart that waits for health does not stall the generator) and records when it
started and finished; :func:`fault_windows` turns the records into the shaded windows of the plot
(C01-C05 faults, measured under load).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import attrs

from rbee_props.errors import RbeePropsError, UsageError, did_you_mean
from rbee_props.stack import Fault, Stack

__all__ = [
    "ACTIONS",
    "FaultRecord",
    "FaultStep",
    "FaultWindow",
    "check_targets",
    "fault_windows",
    "parse_duration",
    "parse_schedule",
    "required_faults",
    "run_faults",
]

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_STEP = re.compile(r"(?P<action>[a-z-]+)(?::(?P<target>[^@]+))?@(?P<at>[^+]+)(?:\+(?P<hold>.+))?")


@attrs.frozen
class _Action:
    fault: Fault
    target: str  # "component", "link", "slow" (link + delay) or "none"
    undo: str | None = None


#: action -> the fault it needs, the kind of target it takes, the action that undoes it
ACTIONS: Final = {
    "kill": _Action(Fault.KILL, "component", "start"),
    "terminate": _Action(Fault.TERMINATE, "component", "start"),
    "restart": _Action(Fault.RESTART, "component"),
    "start": _Action(Fault.RESTART, "component"),
    "pause": _Action(Fault.PAUSE, "component", "resume"),
    "resume": _Action(Fault.PAUSE, "component"),
    "partition": _Action(Fault.PARTITION, "link", "heal"),
    "slow": _Action(Fault.SLOW, "slow", "heal"),
    "heal": _Action(Fault.PARTITION, "none"),
}


def parse_duration(text: str, *, option: str = "--duration", allow_zero: bool = False) -> float:
    """``90``, ``90s``, ``250ms``, ``5m``, ``1.5h`` -> seconds.

    Raises:
        UsageError: not a duration (or zero when ``allow_zero`` is false).
    """
    match = _DURATION.fullmatch(text.strip())
    seconds = float(match[1]) * _UNITS[match[2] or "s"] if match else -1.0
    if seconds < 0 or (seconds == 0 and not allow_zero):
        low = "0 or more" if allow_zero else "more than 0"
        msg = f"{option} expects a duration ({low}) like 250ms, 60s, 5m or 1h, got {text!r}"
        raise UsageError(msg)
    return seconds


@attrs.frozen
class FaultStep:
    """One timed fault: ``action`` on ``target`` at ``at`` seconds.

    ``hold``: how long until it is undone; on an undo step, how long after the step it undoes
    really began it may run (never earlier than ``at``).
    """

    action: str
    target: str | None
    at: float
    hold: float | None = None
    delay_ms: int | None = None
    text: str = ""
    #: for a step made by :meth:`undo` from a ``+HOLD``: the (action, target, at) it undoes
    undoes: tuple[str, str | None, float] | None = None

    @property
    def key(self) -> tuple[str, str | None, float]:
        return (self.action, self.target, self.at)

    @property
    def is_undo(self) -> bool:
        """Made from a step's ``+HOLD``, not written by the user."""
        return self.undoes is not None

    @property
    def components(self) -> tuple[str, ...]:
        """The component names the step acts on."""
        return tuple(self.target.split("/")) if self.target else ()

    @property
    def label(self) -> str:
        """``kill hive1``, ``partition queen/hive1``, ``slow queen/hive1 200ms``."""
        parts = [self.action, self.target or ""]
        if self.delay_ms is not None:
            parts.append(f"{self.delay_ms}ms")
        return " ".join(p for p in parts if p)

    def undo(self) -> FaultStep | None:
        """The step that undoes this one at ``at + hold`` (None without a hold)."""
        if self.hold is None:
            return None
        action = ACTIONS[self.action].undo
        assert action is not None
        target = None if action == "heal" else self.target
        return FaultStep(
            action, target, self.at + self.hold, self.hold, text=self.text, undoes=self.key
        )


def _bad(text: str, why: str) -> UsageError:
    msg = (
        f"--faults step {text!r} {why}; write ACTION[:TARGET]@TIME[+HOLD], e.g. "
        "kill:hive1@10s+5s, restart:queen@20s, partition:queen/hive1@5s+3s, "
        "slow:queen/hive1:200ms@5s+3s, heal@9s"
    )
    return UsageError(msg)


def _parse_step(text: str) -> FaultStep:
    match = _STEP.fullmatch(text)
    if not match:
        raise _bad(text, "is not a fault step")
    action, target = match["action"], match["target"]
    if action not in ACTIONS:
        raise _bad(text, f"has no action {action!r}{did_you_mean(action, ACTIONS)}")
    kind = ACTIONS[action]
    delay_ms = None
    if kind.target == "none" and target:
        raise _bad(text, f"gives {action} a target; {action} takes none")
    if kind.target != "none" and not target:
        raise _bad(text, f"names no target for {action}")
    if kind.target == "slow":
        link, _, delay = (target or "").partition(":")
        try:
            delay_ms = round(parse_duration(delay, option="slow delay") * 1000)
        except UsageError:
            raise _bad(text, "gives slow no delay like :200ms") from None
        target = link
    if kind.target in ("link", "slow") and len((target or "").split("/")) != 2:
        raise _bad(text, f"needs a link a/b for {action}")
    if kind.target == "component" and "/" in (target or ""):
        raise _bad(text, f"needs one component for {action}, not a link")
    at = parse_duration(match["at"], option=f"--faults time of {text!r}", allow_zero=True)
    hold = None
    if match["hold"] is not None:
        if kind.undo is None:
            raise _bad(text, f"holds {action}, which nothing undoes")
        hold = parse_duration(match["hold"], option=f"--faults hold of {text!r}")
    return FaultStep(action, target, at, hold, delay_ms, text)


def parse_schedule(text: str | None) -> tuple[FaultStep, ...]:
    """The steps of ``text`` and their undo steps, in time order ('' or None: no faults).

    Raises:
        UsageError: a step is malformed (the message shows the syntax).
    """
    if not text or not text.strip():
        return ()
    steps: list[FaultStep] = []
    for part in text.split(","):
        if not part.strip():
            raise _bad(part, "is empty")
        step = _parse_step(part.strip())
        steps.append(step)
        undo = step.undo()
        if undo is not None:
            steps.append(undo)
    return tuple(sorted(steps, key=lambda s: s.at))


def required_faults(steps: Iterable[FaultStep]) -> set[Fault]:
    """The faults a stack must support to run ``steps``."""
    return {ACTIONS[step.action].fault for step in steps}


def check_targets(steps: Iterable[FaultStep], components: Sequence[str]) -> None:
    """Every target names a component of the stack.

    Raises:
        UsageError: one does not (the message lists the components).
    """
    for step in steps:
        for name in step.components:
            if name not in components:
                msg = (
                    f"--faults step {step.text!r} names {name!r}, which this stack does not have"
                    f"{did_you_mean(name, components)}; its components are {', '.join(components)}"
                )
                raise UsageError(msg)
        if len(step.components) == 2 and step.components[0] == step.components[1]:
            raise _bad(step.text, "links a component to itself")


@attrs.frozen
class FaultRecord:
    """A step as it happened: seconds from the start of the load, and its error if it failed."""

    action: str
    target: str | None
    label: str
    started: float
    finished: float
    error: str | None = None


def _perform(stack: Stack, step: FaultStep) -> None:
    a, b = (*step.components, None, None)[:2]
    match step.action:
        case "partition":
            stack.partition(a, b)  # type: ignore[arg-type]
        case "slow":
            stack.slow(a, b, step.delay_ms or 0)  # type: ignore[arg-type]
        case "heal":
            stack.heal()
        case "start":
            stack.start_component(a)  # type: ignore[arg-type]
        case _:
            getattr(stack, step.action)(a)


async def run_faults(
    stack: Stack, steps: Sequence[FaultStep], *, start: float, clock: Callable[[], float]
) -> list[FaultRecord]:
    """Perform ``steps`` at ``start + step.at`` (``clock`` time); return what happened.

    Steps run one after the other, so one that takes long (a restart waits for health) delays
    the next; an undo step then still waits its full hold after the step it undoes really began.
    A step that fails (a component did not come back) is recorded with its error and the run
    goes on: the load figures show what the failure did.
    """
    records = []
    began_at: dict[tuple[str, str | None, float], float] = {}
    for step in steps:
        due = step.at
        if step.undoes is not None and step.undoes in began_at and step.hold is not None:
            due = max(due, began_at[step.undoes] + step.hold)
        delay = start + due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        began = clock() - start
        began_at[step.key] = began
        error = None
        try:
            await asyncio.to_thread(_perform, stack, step)
        except RbeePropsError as exc:
            error = exc.message
        records.append(
            FaultRecord(step.action, step.target, step.label, began, clock() - start, error)
        )
    return records


@attrs.frozen
class FaultWindow:
    """A span of the run during which a fault was in effect (shaded in the plot)."""

    label: str
    start: float
    end: float


def fault_windows(records: Sequence[FaultRecord], *, end: float) -> list[FaultWindow]:
    """Pair each fault with what ended it: a kill with the next start or restart of that
    component, a pause with its resume, a partition or slow link with the next heal; a restart
    is a window of its own (down until healthy again). Unended faults last until ``end``."""
    windows: list[FaultWindow] = []
    open_: dict[tuple[str, str | None], tuple[str, float]] = {}

    def close(key: tuple[str, str | None], at: float) -> bool:
        if key not in open_:
            return False
        label, began = open_.pop(key)
        windows.append(FaultWindow(label, began, at))
        return True

    for record in sorted(records, key=lambda r: r.started):
        match record.action:
            case "kill" | "terminate":
                open_[("down", record.target)] = (record.label, record.started)
            case "pause":
                open_[("paused", record.target)] = (record.label, record.started)
            case "partition" | "slow":
                open_[("link", record.target)] = (record.label, record.started)
            case "resume":
                close(("paused", record.target), record.finished)
            case "heal":
                for key in [k for k in open_ if k[0] == "link"]:
                    close(key, record.finished)
            case "start":
                close(("down", record.target), record.finished)
            case "restart":
                if not close(("down", record.target), record.finished):
                    windows.append(FaultWindow(record.label, record.started, record.finished))
    for key in list(open_):
        close(key, end)
    return sorted(windows, key=lambda w: w.start)
