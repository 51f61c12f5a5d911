"""The fuzz suite as callable pieces: which checks run, what must not be sent, the state machine.

``tests/fuzz`` (through Schemathesis' pytest integration) and the planted-bug selftests
(programmatically) share these, so both run the same checks with the same guards.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import hypothesis
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import Case, Response
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from rbee_props.fuzz.checks import RBEE_CHECKS
from rbee_props.fuzz.specs import call_kwargs

__all__ = [
    "BUILTIN_CHECKS",
    "STATEFUL_CHECKS",
    "all_checks",
    "checks_for",
    "is_destructive",
    "run_scenarios",
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


#: operation extension: the resource a link leads to may be gone already (finished download)
TRANSIENT_KEY = "x-rbee-transient"


def checks_for(case: Case[Any], *, stateful: bool = False) -> list[CheckFunction]:
    """:func:`all_checks` minus those the operation's document rules out.

    An operation marked ``x-rbee-transient`` reads a resource that may legitimately be gone by
    the time a link follows it (a download's progress 404s once the download finished, §5.2),
    so ``ensure_resource_availability`` does not apply to it.
    """
    checks = all_checks(stateful=stateful)
    if case.operation.definition.raw.get(TRANSIENT_KEY):
        checks = [check for check in checks if check is not ensure_resource_availability]
    return checks


def is_destructive(case: Case[Any], *, keep_nodes: Collection[str] = ()) -> bool:
    """Whether sending ``case`` would remove a beehive the shared stack needs.

    The suites run against one stack that other suites use afterwards; a remove of one of its
    own beehives (``hive1``...) would cut the queen off from that hive for the whole session.
    """
    if case.operation.definition.raw.get("operationId") != "removeBeehive":
        return False
    name = case.body.get("node_name") if isinstance(case.body, dict) else None
    return isinstance(name, str) and name in set(keep_nodes)


def state_machine(
    schema: BaseSchema,
    *,
    keep_nodes: Collection[str] = (),
    after: Callable[[Response, Case[Any]], None] | None = None,
    teardown: Callable[[], None] | None = None,
) -> type[Any]:
    """``schema.as_state_machine()`` with every check, and destructive steps skipped.

    Args:
        schema: a schema from :func:`~rbee_props.fuzz.specs.load_spec`.
        keep_nodes: beehive names the scenario must never remove.
        after: called after each step with its response and case (clean-up bookkeeping).
        teardown: called at the end of each scenario (clean-up).
    """
    base = schema.as_state_machine()

    class RbeeStateMachine(base):  # type: ignore[valid-type, misc]
        """Links of the document, all checks, and no removal of the stack's own beehives."""

        def before_call(self, case: Case[Any]) -> None:
            hypothesis.assume(not is_destructive(case, keep_nodes=keep_nodes))

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return call_kwargs(case.operation.schema)

        def after_call(self, response: Response, case: Case[Any]) -> None:
            super().after_call(response, case)
            if after is not None:
                after(response, case)

        def teardown(self) -> None:
            super().teardown()
            if teardown is not None:
                teardown()

        def validate_response(
            self, response: Response, case: Case[Any], additional_checks: Any = None, **kwargs: Any
        ) -> None:
            __tracebackhide__ = True
            case.validate_response(
                response,
                checks=checks_for(case, stateful=True),
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    RbeeStateMachine.__name__ = f"{base.__name__}Rbee"
    return RbeeStateMachine


def run_scenarios(machine: type[Any], settings: hypothesis.settings, *, attempts: int = 3) -> int:
    """Run ``machine`` like ``machine.run(settings=...)``; a data-generation flake restarts it.

    Against a live stack the same steps need not get the same answers twice (a beehive added
    by one scenario makes the next ``add`` of that name a 409, so a link's bundle stays empty),
    and Hypothesis then stops with ``FlakyStrategyDefinition`` although no check failed. Like
    Schemathesis' own stateful engine, that is not a finding: the run starts over, at most
    ``attempts`` times. A check failure - even one whose replay was flaky - is raised.

    Returns:
        how many runs it took.
    """
    for attempt in range(1, attempts + 1):
        try:
            machine.run(settings=settings)
        except FlakyStrategyDefinition:
            if attempt == attempts:
                return attempt
            continue
        return attempt
    return attempts
