"""queen-rbee against its OpenAPI document: every operation fuzzed, then the links as scenarios.

Runs against the session stack (``rbee_stack``) with every built-in and rbee check; against the
correct reference stack nothing may fail. Removing one of the stack's own beehives is never sent
(it would cut the queen off from that hive for later suites); beehives the fuzzer added are
removed again.
"""

from __future__ import annotations

import hypothesis
import pytest

from rbee_props.fuzz.housekeeping import remove_beehives
from rbee_props.fuzz.specs import aim, call_kwargs, load_spec
from rbee_props.fuzz.suite import checks_for, is_destructive, run_scenarios, state_machine
from tests.fuzz._budget import SETTINGS, UNAIMED

pytestmark = pytest.mark.stack

QUEEN = load_spec("queen", UNAIMED, settings=SETTINGS)


@pytest.fixture(autouse=True)
def _queen_aimed(rbee_stack, rbee_config):
    aim(QUEEN, rbee_stack.urls["queen"], token=rbee_stack.token, grace=rbee_config.grace_seconds)
    yield
    remove_beehives(rbee_stack, keep=rbee_stack.hives)


@QUEEN.parametrize()
def test_queen_operation_follows_the_contract(case, rbee_stack):
    hypothesis.assume(not is_destructive(case, keep_nodes=rbee_stack.hives))
    case.call_and_validate(**call_kwargs(case.operation.schema), checks=checks_for(case))


def test_queen_links_register_list_shutdown_and_add_list_remove_hold(rbee_stack, stateful_settings):
    machine = state_machine(
        QUEEN,
        keep_nodes=rbee_stack.hives,
        teardown=lambda: remove_beehives(rbee_stack, keep=rbee_stack.hives),
    )
    run_scenarios(machine, stateful_settings)
