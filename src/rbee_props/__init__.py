"""rbee-props: property-based and model-based stateful testing of the rbee stack.

Users import from here; the modules behind these names may move.

The names are imported on first use (PEP 562): the reference stack's programs live in this
package too, and a worker that imported Hypothesis and the machines to serve a few routes
took 0.4 s longer to start, a delay every spawn of every example paid.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rbee_props.errors import ConfigError, RbeePropsError, StackError, UsageError
    from rbee_props.findings import Violation
    from rbee_props.invariants import define_invariant
    from rbee_props.machines import StackMachine, recorded
    from rbee_props.stack import Fault, Stack, open_stack

_HOMES = {
    "ConfigError": "rbee_props.errors",
    "RbeePropsError": "rbee_props.errors",
    "StackError": "rbee_props.errors",
    "UsageError": "rbee_props.errors",
    "Violation": "rbee_props.findings",
    "define_invariant": "rbee_props.invariants",
    "StackMachine": "rbee_props.machines",
    "recorded": "rbee_props.machines",
    "Fault": "rbee_props.stack",
    "Stack": "rbee_props.stack",
    "open_stack": "rbee_props.stack",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        msg = f"module 'rbee_props' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
