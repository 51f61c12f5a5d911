"""The fuzz suite as callable pieces: which checks run, what must not be sent, the state machine.

``tests/fuzz`` (through Schemathesis' pytest integration) and the planted-bug selftests
(programmatically) share these, so both run the same checks with the same guards.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import hypothesis
from schemathesis import Case, Response
from schemathesis.checks import CheckFunction
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from rbee_props.fuzz.checks import RBEE_CHECKS

__all__ = [
    "BUILTIN_CHECKS",
    "STATEFUL_CHECKS",
    "all_checks",
    "is_destructive",
    "state_machine",
]

#: Schemathesis' own checks that apply to every rbee operation
BUILTIN_CHECKS: tuple[CheckFunction, ...] = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
)
#: checks that need the scenario history of the stateful phase
STATEFUL_CHECKS: tuple[CheckFunction, ...] = (use_after_free, ensure_resource_availability)


def all_checks(*, stateful: bool = False) -> list[CheckFunction]:
    """Built-in plus rbee checks (and the stateful ones for a state machine)."""
    checks = [*BUILTIN_CHECKS, *RBEE_CHECKS]
    return [*checks, *STATEFUL_CHECKS] if stateful else checks


def is_destructive(case: Case, *, keep_nodes: Collection[str] = ()) -> bool:
    """Whether sending ``case`` would remove a beehive the shared stack needs.

    The suites run against one stack that other suites use afterwards; a remove of one of its
    own beehives (``hive1``...) would cut the queen off from that hive for the whole session.
    """
    if case.operation.definition.raw.get("operationId") != "removeBeehive":
        return False
    body = case.body
    return isinstance(body, dict) and body.get("node_name") in set(keep_nodes)


def state_machine(
    schema: BaseSchema,
    *,
    keep_nodes: Collection[str] = (),
    after: Callable[[Response, Case], None] | None = None,
) -> type[Any]:
    """``schema.as_state_machine()`` with every check, and destructive steps skipped.

    Args:
        schema: a schema from :func:`~rbee_props.fuzz.specs.load_spec`.
        keep_nodes: beehive names the scenario must never remove.
        after: called after each step with its response and case (clean-up bookkeeping).
    """
    base = schema.as_state_machine()
    checks = all_checks(stateful=True)

    class RbeeStateMachine(base):  # type: ignore[valid-type, misc]
        """Links of the document, all checks, and no removal of the stack's own beehives."""

        def before_call(self, case: Case) -> None:
            hypothesis.assume(not is_destructive(case, keep_nodes=keep_nodes))

        def after_call(self, response: Response, case: Case) -> None:
            super().after_call(response, case)
            if after is not None:
                after(response, case)

        def validate_response(
            self, response: Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            __tracebackhide__ = True
            case.validate_response(
                response,
                checks=checks,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    RbeeStateMachine.__name__ = f"{base.__name__}Rbee"
    return RbeeStateMachine
