"""``fresh_examples_only``: Hypothesis generates no near-copies while a live machine runs."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture.engine import ConjectureRunner
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from rbee_props._engine import fresh_examples_only


def programs_of_a_run() -> list[tuple[int, ...]]:
    """The programs (sequences of drawn rule numbers) of one 40-example run of a 12-rule machine."""
    programs: list[tuple[int, ...]] = []

    class TwelveRules(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.program: list[int] = []
            programs.append(())

        def teardown(self) -> None:
            programs[-1] = tuple(self.program)

    for number in range(12):

        def step(self, n=number, x=0):
            self.program.append(n)

        step.__name__ = f"rule_{number}"
        setattr(TwelveRules, step.__name__, rule(x=st.integers(0, 3))(step))

    run_state_machine_as_test(
        TwelveRules,
        settings=settings(
            max_examples=40, stateful_step_count=10, database=None, deadline=None,
            suppress_health_check=list(HealthCheck), derandomize=True,
        ),
    )  # fmt: skip
    return programs


def test_without_the_mutator_almost_every_example_is_a_new_program():
    with fresh_examples_only():
        fresh = programs_of_a_run()
    copied = programs_of_a_run()
    assert len(set(fresh)) >= 0.9 * len(fresh)
    assert len(set(fresh)) / len(fresh) > len(set(copied)) / len(copied)


def test_the_mutator_comes_back_afterwards():
    before = ConjectureRunner.generate_mutations_from
    with fresh_examples_only():
        assert ConjectureRunner.generate_mutations_from is not before
    assert ConjectureRunner.generate_mutations_from is before
