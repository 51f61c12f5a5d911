"""Fixtures of the fuzz suites: the service schemas aimed at the session stack, a live worker.

Each suite collects its schema at import time (Schemathesis' pytest integration generates one
test per operation at collection) and an autouse fixture aims it at ``rbee_stack`` with the
stack's token. The worker suite needs a live worker, spawned once through hive1. Budgets stay
small so ``pytest tests/fuzz`` takes a few minutes; ``RBEE_FUZZ_EXAMPLES`` and
``RBEE_FUZZ_SCENARIOS`` raise them.
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest

from rbee_props.fuzz.housekeeping import LiveWorker, retire_worker, spawn_worker
from rbee_props.stack import Stack
from tests.fuzz._budget import SCENARIOS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each generated test its operation in the node id (``test_x[POST /v2/tasks]``).

    Schemathesis 4.32 names its per-operation items through the ``name`` argument; pytest 9.2
    builds node ids from ``originalname`` instead, so every operation of a suite would share one
    id (and ``-k``, ``--lf`` and reports could not tell them apart).
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        node_id = getattr(item, "_id", None)
        if label and node_id is not None and getattr(node_id, "params", "") is None:
            item._id = node_id.with_params(label)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def stateful_settings() -> hypothesis.settings:
    """Scenarios of the link-driven state machines: few, short, no example database."""
    return hypothesis.settings(
        max_examples=SCENARIOS,
        stateful_step_count=6,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )


@pytest.fixture(scope="session")
def live_worker(rbee_stack: Stack) -> Iterator[LiveWorker]:
    """One idle worker on hive1, shut down at the end.

    Only the hive is waited for: whether the worker reaches the queen is what
    ``ready_workers_reach_queen`` checks, so a stack that fails it gets a finding, not an error.
    """
    worker = spawn_worker(rbee_stack, hive="hive1", at_queen=False)
    yield worker
    retire_worker(worker.url, rbee_stack.token, timeout=1.0)
