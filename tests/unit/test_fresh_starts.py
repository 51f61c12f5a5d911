"""``run_hypothesis`` goes on after the stack answered one program two ways.

A live stack decides which rules are enabled, so Hypothesis may meet a choice sequence it
explored before drawing differently (``FlakyStrategyDefinition``). Without a violation that is
no finding and no error: the run starts Hypothesis afresh for the examples left.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.reporting import with_reporter
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from rbee_props.errors import InternalError
from rbee_props.hunt import run_hypothesis


class FakeContext:
    """The parts of a MachineContext that ``run_hypothesis`` touches."""

    def __init__(self) -> None:
        self.examples = 0
        self.failures: list[Any] = []
        self.seed: int | None = None
        self.fresh_starts: list[int | None] = []


def machine_answering_two_ways(context: FakeContext, *, settles: bool):
    """A machine whose second rule is enabled on every other example, as a live stack's
    answers would enable it; when it ``settles``, always from the first fresh start on."""
    flips = itertools.count()

    class TwoWays(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            context.examples += 1
            flip = next(flips)
            self.enabled = flip % 2 == 0 or (settles and bool(context.fresh_starts))

        @rule(x=st.integers(0, 3))
        def always(self, x: int) -> None:
            pass

        @precondition(lambda self: self.enabled)
        @rule(y=st.integers(0, 100))
        def sometimes(self, y: int) -> None:
            pass

        @classmethod
        def bind(cls, _context: object) -> type[RuleBasedStateMachine]:
            return cls

    return TwoWays


def config(examples: int) -> settings:
    return settings(
        max_examples=examples, stateful_step_count=6, database=None, deadline=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip


def test_an_inconsistent_generation_starts_a_fresh_run_for_the_examples_left():
    context = FakeContext()
    machine = machine_answering_two_ways(context, settles=True)
    reported: list[object] = []
    with with_reporter(reported.append):
        flaky = run_hypothesis(machine, context, config=config(300), seed=7)  # type: ignore[arg-type]
    assert flaky is False
    assert reported == [], "Hypothesis' 'Steps leading up to this error' of a recovered run"
    assert context.fresh_starts == [100_007], "one fresh start, seeded from the run's seed"
    assert context.seed == 100_007
    assert context.examples >= 300, "every example of the budget ran, before or after"


def test_a_stack_that_never_stops_answering_two_ways_is_an_error_not_a_pass():
    context = FakeContext()
    machine = machine_answering_two_ways(context, settles=False)
    reported: list[object] = []
    with with_reporter(reported.append), pytest.raises(InternalError, match="again on replay"):
        run_hypothesis(machine, context, config=config(5000), seed=7)  # type: ignore[arg-type]
    assert len(context.fresh_starts) == 3
    assert any("Steps leading up" in str(text) for text in reported), "the last one is shown"
