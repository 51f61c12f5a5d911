"""Which recorded failure a hunt shrinks and exports (``MachineContext.smallest_failure``)."""

from __future__ import annotations

from types import SimpleNamespace

from rbee_props.config import load_config
from rbee_props.findings import Violation
from rbee_props.machines import MachineContext
from rbee_props.machines._context import Failure


def failing(invariant: str, *rules: str) -> Failure:
    violation = Violation(invariant, explains="", expected="", observed="")
    return Failure(
        violation=violation, program=[{"rule": r, "args": {}} for r in rules], history=[]
    )


def context_with(*failures: Failure) -> MachineContext:
    context = MachineContext(SimpleNamespace(callback_host="127.0.0.1"), load_config())
    context.failures.extend(failures)
    return context


def test_a_property_that_failed_once_does_not_replace_the_one_being_shrunk():
    # S09 failed first and again while Hypothesis shrank it; one S21 on the way is as short
    context = context_with(
        failing("S09", "first_worker", "spawn", "inference", "spawn"),
        failing("S09", "occupy_port", "spawn", "spawn"),
        failing("S09", "occupy_port", "spawn"),
        failing("S21", "first_worker", "spawn"),
    )
    chosen = context.smallest_failure()
    assert chosen is not None
    assert chosen.violation.invariant == "S09"
    assert [s["rule"] for s in chosen.program] == ["occupy_port", "spawn"]


def test_the_shortest_program_of_that_property_wins_the_last_one_on_ties():
    late = failing("S02", "spawn", "register_duplicate")
    context = context_with(
        failing("S02", "spawn", "inference", "register_duplicate"),
        failing("S02", "first_worker", "register_duplicate"),
        late,
    )
    assert context.smallest_failure() is late


def test_on_equal_counts_the_property_that_failed_first_is_chosen():
    context = context_with(failing("C01", "spawn", "kill_worker"), failing("S21", "spawn"))
    chosen = context.smallest_failure()
    assert chosen is not None and chosen.violation.invariant == "C01"
    assert context_with().smallest_failure() is None
