"""Zero false alarms: a long run of StackMachine, faults on, against the correct stack.

Marked slow (about 15-25 minutes on 2 cores): ``pytest -m slow tests/stateful``. A finding here
is a bug in rbee-props (the model or an invariant) or in the reference stack; either way it
must be fixed, not retried.
"""

from __future__ import annotations

import pytest

from rbee_props.config import load_config
from rbee_props.hunt import hunt, machine_settings
from rbee_props.machines import MachineContext, StackMachine
from rbee_props.stack import LocalStack

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(3600)]

EXAMPLES = 300


def test_three_hundred_examples_with_faults_make_no_finding(tmp_path, monkeypatch):
    monkeypatch.setenv("RBEE_PROPS_HOME", str(tmp_path / "home"))
    config = load_config()
    stack = LocalStack(config).start()
    context = MachineContext(stack, config)
    try:
        result = hunt(
            StackMachine,
            context,
            config=machine_settings(max_examples=EXAMPLES, steps=15),
            seed=300,
            out=tmp_path / "findings",
        )
    finally:
        context.close()
        stack.stop()
    assert result.finding is None, result.finding.violation.summary if result.finding else ""
    assert result.examples >= EXAMPLES
