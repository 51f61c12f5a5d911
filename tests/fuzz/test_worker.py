"""A live worker against its OpenAPI document; its shutdown routes on throwaway workers.

The suite's worker (spawned through hive1 and idle) takes every operation
except the shutdown routes, which would end it for everyone after; each shutdown route gets a
worker of its own and must then take it off both registries within the grace window (S04).
"""

from __future__ import annotations

import httpx
import pytest
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rbee_props.fuzz.checks import (
    auth_enforced,
    error_envelope,
    no_secret_leak,
    no_server_error_for_client_input,
)
from rbee_props.fuzz.housekeeping import retire_worker, spawn_worker
from rbee_props.fuzz.specs import aim, call_kwargs, load_spec
from rbee_props.fuzz.suite import checks_for
from rbee_props.stack import poll_until
from tests.fuzz._budget import SETTINGS, UNAIMED

pytestmark = pytest.mark.stack

SHUTDOWN_ROUTES = ["adminShutdown", "shutdownAlias"]
WORKER = load_spec("worker", UNAIMED, settings=SETTINGS)


@pytest.fixture(autouse=True)
def _worker_aimed(rbee_stack, live_worker):
    aim(WORKER, live_worker.url, token=rbee_stack.token)


@WORKER.exclude(operation_id=SHUTDOWN_ROUTES).parametrize()
def test_worker_operation_follows_the_contract(case):
    case.call_and_validate(**call_kwargs(case.operation.schema), checks=checks_for(case))


def _listed(url: str, token: str, key: str, id_key: str) -> set[str]:
    reply = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return {w[id_key] for w in reply.json()[key]}


@pytest.mark.parametrize("path", ["/v1/admin/shutdown", "/v1/shutdown"])
def test_worker_shutdown_route_follows_the_contract_and_ends_the_worker(
    path, rbee_stack, rbee_config
):
    target = spawn_worker(rbee_stack, hive="hive2")
    try:
        schema = load_spec("worker", target.url, token=rbee_stack.token, settings=SETTINGS)
        case = schema[path]["POST"].Case()
        wrong = "Bearer " + "x" * len(rbee_stack.token)
        target_kwargs = call_kwargs(schema)
        refused = case.call(base_url=target_kwargs["base_url"], headers={"Authorization": wrong})
        case.validate_response(
            refused, checks=[auth_enforced, error_envelope, status_code_conformance]
        )
        accepted = case.call(**target_kwargs)
        case.validate_response(
            accepted,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
                error_envelope,
                no_secret_leak,
                no_server_error_for_client_input,
            ],
        )
        assert accepted.status_code == 200
        hive, queen = rbee_stack.urls["hive2"], rbee_stack.urls["queen"]

        def gone() -> bool:
            at_hive = _listed(f"{hive}/v1/workers/list", rbee_stack.token, "workers", "id")
            at_queen = _listed(f"{queen}/v2/workers/list", rbee_stack.token, "workers", "worker_id")
            return target.worker_id not in at_hive | at_queen

        poll_until(gone, rbee_config.grace_seconds, what=f"{target.worker_id} off both registries")
    finally:
        retire_worker(target.url, rbee_stack.token, timeout=0.5)
