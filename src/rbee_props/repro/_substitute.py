"""Single steps that might replace several: the substitution pass of replay shrinking.

Deleting steps cannot turn ``first_worker; shutdown(v1); ready_again(v1)`` (a ready callback for
an id the hive no longer knows) into ``ready_unknown(hive)``, the one step the bug needs. The
substitution pass offers, for a run of steps, each rule of the machine as a single replacement,
with arguments taken from the steps it replaces (same parameter name), from variables bound
before it, or the simplest value of the rule's strategy. Only rules of the failing step's
operation family are offered (a word of the name in common: ``ready_again`` -> ``ready_unknown``),
most alike first: each candidate costs a replay against the live stack. After them come the
rules marked ``passes_time`` (``let_time_pass``): what a run of unrelated steps often gives a
failure is only the time they took, e.g. for the hive monitor's sweeps to evict a worker.
"""

from __future__ import annotations

import difflib
import functools
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hypothesis import HealthCheck, find, settings
from hypothesis.errors import HypothesisException
from hypothesis.stateful import Bundle

__all__ = ["single_steps", "wait_steps"]

Step = Mapping[str, Any]

#: at most this many argument combinations per rule
MAX_COMBINATIONS = 3


@functools.lru_cache(maxsize=256)
def _simplest(strategy: Any) -> tuple[Any, ...]:
    """The simplest value of ``strategy`` (what Hypothesis shrinks to), or nothing."""
    try:
        quiet = settings(database=None, max_examples=5, suppress_health_check=list(HealthCheck))
        return (find(strategy, lambda _: True, settings=quiet),)
    except (HypothesisException, TypeError):
        return ()


def _passes_time(rule: Any) -> bool:
    """Whether ``rule`` is marked ``@passes_time`` (``machines._core.passes_time``)."""
    return bool(getattr(rule.function, "passes_time", False))


def _values(name: str, strategy: Any, window: Sequence[Step], bound: Sequence[str]) -> list[Any]:
    if isinstance(strategy, Bundle):
        return [{"$var": var} for var in reversed(bound)]
    used = [
        value
        for step in reversed(window)
        if name in step.get("args", {})
        for value in [step["args"][name]]
        if not (isinstance(value, dict) and value.get("$var") not in bound)
    ]  # a variable bound inside the window is gone once the window is replaced
    values: list[Any] = []
    for value in [*used, *_simplest(strategy)]:
        if value not in values:
            values.append(value)
    return values


def single_steps(machine: type, window: Sequence[Step], bound: Sequence[str]) -> Iterator[Step]:
    """Candidate single steps to replace ``window`` (the last step is where it failed).

    ``bound``: variables bound before the window, usable for bundle arguments.
    """
    state = machine.setup_state()  # type: ignore[attr-defined]
    rules = [*state.initializers, *state.rules]
    failing = str(window[-1]["rule"])

    words = set(failing.split("_"))

    def order(rule: Any) -> tuple[bool, float]:
        likeness = difflib.SequenceMatcher(None, rule.function.__name__, failing).ratio()
        return (not _passes_time(rule), likeness)

    seen: set[str] = set()
    for rule in sorted(rules, key=order, reverse=True):
        name = rule.function.__name__
        if name in seen or not (words & set(name.split("_")) or _passes_time(rule)):
            continue  # the failing operation's family (ready_*, register_*, ...), then waits
        seen.add(name)
        params = sorted(rule.arguments)
        choices = [_values(p, rule.arguments[p], window, bound) for p in params]
        if any(not values for values in choices):
            continue  # e.g. a bundle argument with no variable bound before the window
        for combination in itertools.islice(itertools.product(*choices), MAX_COMBINATIONS):
            args = dict(zip(params, combination, strict=True))
            step: dict[str, Any] = {"rule": name, "args": args}
            if rule.targets:
                step["binds"] = next(f"v{i}" for i in itertools.count(1) if f"v{i}" not in bound)
            yield step


def wait_steps(machine: type) -> list[Step]:
    """One step of each rule marked ``passes_time`` that takes no arguments (``let_time_pass``)."""
    state = machine.setup_state()  # type: ignore[attr-defined]
    return [
        {"rule": rule.function.__name__, "args": {}}
        for rule in state.rules
        if _passes_time(rule) and not rule.arguments
    ]
