"""The state machines against the live stack: ``pytest tests/stateful`` before merging.

Against the correct reference stack every machine must pass; with ``--rbee-bugs NAME`` the
planted bug is found, shrunk and exported to ``rbee-findings/``.
"""

from __future__ import annotations

import pytest

from rbee_props.machines import MACHINES

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_machine_holds_against_the_stack(rbee_run, name):
    result = rbee_run(MACHINES[name], machine_name=name)
    assert result.examples > 0 and result.steps > 0
