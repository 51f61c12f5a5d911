"""Concurrent bursts against a live stack: no finding on the correct stack, S16 on a queueing one.

The no-finding test draws bursts from the machine's own strategy (one Hypothesis example per
burst, and a tenth more examples for those where a timeout left the model unsure) and runs them
on a few machine instances in turn, each starting with its two ready workers: 10 bursts in the
default run (about a minute on two cores), 200 under ``-m slow``. A burst counts only when the
checker said Linearizable: an Unknown verdict is not a pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from rbee_props.config import load_config
from rbee_props.machines import MachineContext
from rbee_props.machines.concurrency import ConcurrentMachine, burst_stats, lanes
from rbee_props.repro.replay import run_program
from rbee_props.stack import LocalStack

pytestmark = pytest.mark.stack

#: bursts per machine instance (then a fresh one: phantoms and worker slots run out)
PER_INSTANCE = 20
INFER_TWICE = [
    {"rule": "first_workers", "args": {}},
    {"rule": "burst", "args": {"lanes": [[{"op": "infer", "worker": 0}]] * 2}},
]


@pytest.mark.parametrize("bursts", [10, pytest.param(200, marks=pytest.mark.slow)])
def test_bursts_against_the_correct_stack_make_no_finding(rbee_context, bursts):
    if rbee_context.config.bugs:
        pytest.skip("the session's stack has planted bugs")
    stats = burst_stats(rbee_context)
    before = stats.linearizable
    machine: dict[str, Any] = {}

    def instance() -> ConcurrentMachine:
        current = machine.get("m")
        if current is None or current.burst_count >= PER_INSTANCE:
            if current is not None:
                current.teardown()
            current = machine["m"] = ConcurrentMachine.bind(rbee_context)()
            current.burst_count = 0
            current.first_workers()
            current.converge()
        return current

    @seed(20261125)
    @settings(
        max_examples=bursts + bursts // 10, phases=[Phase.generate], deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(lanes())
    def one_burst(generated: Any) -> None:
        m = instance()
        if not m.quiet():  # a timeout left the model unsure: judge no burst there
            m.burst_count = PER_INSTANCE
            return
        m.burst(lanes=generated)
        m.converge()
        m.burst_count += 1

    try:
        one_burst()
    finally:
        if "m" in machine:
            machine["m"].teardown()
    assert stats.unknown == 0, stats.reasons
    assert stats.linearizable - before >= bursts, stats


def test_two_inferences_for_one_slot_one_is_refused_at_once_or_it_is_a_finding(
    rbee_context, tmp_path, monkeypatch
):
    """S16 both ways: the correct stack answers one of them 503 at once; a worker that queues
    (no-slot-admission) serves both, one after the other, and the burst fails with both in
    its window."""
    if rbee_context.config.bugs:
        pytest.skip("the session's stack has planted bugs")
    assert run_program(INFER_TWICE, rbee_context, ConcurrentMachine) is None
    monkeypatch.setenv("RBEE_PROPS_HOME", str(tmp_path / "home"))
    config = load_config(overrides={"bugs": ["no-slot-admission"]})
    stack = LocalStack(config).start()
    context = MachineContext(stack, config)
    try:
        failure = run_program(INFER_TWICE, context, ConcurrentMachine)
    finally:
        context.close()
        stack.stop()
    assert failure is not None
    assert failure.violation.invariant == "S16", failure.violation.summary
    window = failure.violation.details["window"]
    kinds = [op["kind"] for op in failure.history if op["index"] in window]
    assert kinds.count("inference") == 2
