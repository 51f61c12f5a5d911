"""The state machines against the live stack: ``pytest tests/stateful`` before merging.

Against the correct reference stack every machine must pass; with ``--rbee-bugs NAME`` the
planted bug is found, shrunk and exported to ``rbee-findings/``. Without
``--hypothesis-profile`` each runs the ``ci`` profile (5 derandomized examples of 8 steps,
10-40 s a machine on two cores); ``--hypothesis-profile dev`` or ``overnight`` searches longer.
"""

from __future__ import annotations

import pytest

from rbee_props.machines import MACHINES

#: a `ci` run is 40 live steps, each followed by polled invariants; a longer profile gets time
pytestmark = [pytest.mark.stack, pytest.mark.timeout(3600)]


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_machine_holds_against_the_stack(rbee_run, name):
    result = rbee_run(MACHINES[name], machine_name=name)
    assert result.examples > 0 and result.steps > 0
