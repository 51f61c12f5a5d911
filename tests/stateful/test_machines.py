"""The state machines against the live stack: ``pytest tests/stateful`` before merging.

Against the correct reference stack every machine must pass; with ``--rbee-bugs NAME`` the
planted bug is found, shrunk and exported to ``rbee-findings/``.
"""

from __future__ import annotations

import pytest

from rbee_props.machines import MACHINES

#: a machine's `ci` run is 40 live steps with a convergence check after each: minutes
pytestmark = [pytest.mark.stack, pytest.mark.timeout(1800)]


#: the concurrent machine's steps are bursts, each settled and checked (1-40 s a step); its
#: `ci` run takes 1-6 minutes on two cores depending on the drawn bursts, so the default run
#: covers bursts through tests/stateful/test_bursts.py and this one runs under ``-m slow``
SLOW_MACHINES = {"concurrent", "registry", "stack"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.slow, pytest.mark.timeout(1200)])
        if n in SLOW_MACHINES
        else n
        for n in sorted(MACHINES)
    ],
)
def test_machine_holds_against_the_stack(rbee_run, name):
    result = rbee_run(MACHINES[name], machine_name=name)
    assert result.examples > 0 and result.steps > 0
