"""The pure reference model of the rbee stack: state, operations, transitions, expectations.

No I/O, no clock, no randomness (a unit test keeps it so): machines, checker and reproductions
share this one definition of "correct", which encodes the contract's intended behaviour.
"""

from rbee_props.model.expect import Expectation, expect, settle
from rbee_props.model.ops import (
    AddBeehive,
    Call,
    FaultOp,
    Inference,
    ReadyCallback,
    RegisterWorker,
    RemoveBeehive,
    ShutdownWorker,
    Spawn,
)
from rbee_props.model.state import Beehive, ClusterState, HiveState, Worker
from rbee_props.model.transitions import allowed, apply_fault, fault_successors, step

__all__ = [
    "AddBeehive",
    "Beehive",
    "Call",
    "ClusterState",
    "Expectation",
    "FaultOp",
    "HiveState",
    "Inference",
    "ReadyCallback",
    "RegisterWorker",
    "RemoveBeehive",
    "ShutdownWorker",
    "Spawn",
    "Worker",
    "allowed",
    "apply_fault",
    "expect",
    "fault_successors",
    "settle",
    "step",
]
