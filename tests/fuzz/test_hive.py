"""rbee-hive (hive1) against its OpenAPI document: every operation fuzzed, then the links.

The spawn -> ready -> list links run as scenarios; ``ready_workers_reach_queen`` compares every
hive list with the queen's. Workers the fuzzer spawned are shut down again (right away in the
operation suite, after each scenario in the stateful one) so ports and processes do not pile up;
the suite's live worker stays.
"""

from __future__ import annotations

import pytest

from rbee_props.fuzz.housekeeping import discard_worker, retire_workers
from rbee_props.fuzz.specs import aim, call_kwargs, load_spec
from rbee_props.fuzz.suite import checks_for, run_scenarios, state_machine
from tests.fuzz._budget import SETTINGS, UNAIMED

pytestmark = pytest.mark.stack

HIVE = load_spec("hive", UNAIMED, settings=SETTINGS)


@pytest.fixture(autouse=True)
def _hive_aimed(rbee_stack, rbee_config, live_worker):
    aim(
        HIVE,
        rbee_stack.urls["hive1"],
        token=rbee_stack.token,
        peers={"queen": rbee_stack.urls["queen"]},
        grace=rbee_config.grace_seconds,
    )
    yield
    retire_workers(rbee_stack, keep={live_worker.worker_id})


@HIVE.parametrize()
def test_hive_operation_follows_the_contract(case, rbee_stack):
    response = case.call_and_validate(**call_kwargs(case.operation.schema), checks=checks_for(case))
    spawned = case.operation.definition.raw.get("operationId") == "spawnWorker"
    if spawned and response.status_code == 200:
        discard_worker(rbee_stack, response.json()["worker_id"], response.json()["url"])


def test_hive_links_spawn_ready_list_hold(rbee_stack, live_worker, stateful_settings):
    machine = state_machine(
        HIVE, teardown=lambda: retire_workers(rbee_stack, keep={live_worker.worker_id})
    )
    run_scenarios(machine, stateful_settings)
