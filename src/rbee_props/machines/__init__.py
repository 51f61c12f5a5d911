"""Hypothesis state machines that drive a live rbee stack and check it against the model.

``StackMachine`` composes the rule mixins; users extend it with a thin subclass::

    class RestartHeavy(StackMachine):
        @precondition(lambda self: self.stack.supports(Fault.RESTART))
        @rule(times=st.integers(1, 3))
        @recorded
        def restart_queen_often(self, times: int) -> None:
            for _ in range(times):
                self.fault(FaultOp("restart", "queen"), lambda: self.stack.restart("queen"))

Every rule ends with the registered invariants, polled within the grace window (``converge``).
"""

from __future__ import annotations

from rbee_props.machines._context import Failure, MachineContext, StopRequested
from rbee_props.machines._core import StackMachineBase, passes_time, recorded
from rbee_props.machines.auth import AuthRules
from rbee_props.machines.beehives import BeehiveRules
from rbee_props.machines.churn import ChurnRules
from rbee_props.machines.concurrency import ConcurrentMachine
from rbee_props.machines.faults import FaultRules
from rbee_props.machines.registration import RegistrationRules

__all__ = [
    "MACHINES",
    "AuthRules",
    "BeehiveRules",
    "ChurnRules",
    "Failure",
    "FaultRules",
    "MachineContext",
    "RegistrationRules",
    "StackMachine",
    "StackMachineBase",
    "StopRequested",
    "passes_time",
    "recorded",
]


class StackMachine(RegistrationRules, ChurnRules, FaultRules, AuthRules, BeehiveRules):
    """Every rule: registration, churn, faults and restarts, auth probes, beehives."""


class RegistryMachine(RegistrationRules, ChurnRules, BeehiveRules):
    """No faults: registration, churn and beehives only (quick, for pre-merge runs)."""


MACHINES: dict[str, type[StackMachineBase]] = {
    "stack": StackMachine,
    "registry": RegistryMachine,
    "concurrent": ConcurrentMachine,
}
