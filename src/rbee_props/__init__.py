"""rbee-props: property-based and model-based stateful testing of the rbee stack.

Users import from here; the modules behind these names may move.
"""

from rbee_props.errors import (
    ConfigError,
    RbeePropsError,
    StackError,
    UsageError,
)
from rbee_props.findings import Violation
from rbee_props.invariants import define_invariant
from rbee_props.machines import StackMachine, recorded
from rbee_props.stack import Fault, Stack, open_stack

__all__ = [
    "ConfigError",
    "Fault",
    "RbeePropsError",
    "Stack",
    "StackError",
    "StackMachine",
    "UsageError",
    "Violation",
    "define_invariant",
    "open_stack",
    "recorded",
]
