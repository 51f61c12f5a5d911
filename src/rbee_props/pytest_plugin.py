"""The rbee-props pytest plugin: options, Hypothesis profiles and fixtures for a live stack.

Registered through the ``pytest11`` entry point, so installing rbee-props is enough::

    pytest tests/stateful --rbee-bugs dup-register --hypothesis-profile dev

Options: ``--rbee-config FILE``, ``--rbee-backend local|compose|external``, ``--rbee-bugs a,b``,
``--rbee-grace SECONDS``, ``--rbee-findings DIR``. Fixtures: ``rbee_config``, ``rbee_stack``
(started once per session; machines reset it cheaply between examples), ``rbee_context`` and
``rbee_run`` (run a machine; a finding is exported and fails the test with its path).

Profiles (``--hypothesis-profile``): ``ci`` (few examples, derandomized: the same programs on
every run), ``dev`` (more examples, random), ``overnight`` (many examples, long programs).
Without ``--hypothesis-profile`` the machines run ``ci``: Hypothesis' own default (100 examples
of 50 live steps) takes an hour on a live stack, and a plain ``pytest`` must stay a pre-merge run.
The option still sets the profile of the session's other Hypothesis tests, as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from rbee_props.config import Config, load_config
from rbee_props.errors import RbeePropsError
from rbee_props.hunt import HuntResult, hunt, machine_settings
from rbee_props.machines import MachineContext, StackMachineBase
from rbee_props.stack import Stack, make_stack

PROFILES = {
    "ci": {"max_examples": 5, "stateful_step_count": 8, "derandomize": True},
    "dev": {"max_examples": 30, "stateful_step_count": 20},
    "overnight": {"max_examples": 2000, "stateful_step_count": 50},
}
for _name, _values in PROFILES.items():
    settings.register_profile(_name, machine_settings(), **_values)  # type: ignore[arg-type]


def machine_profile(chosen: str | None) -> settings:
    """The settings a machine runs with: the profile ``--hypothesis-profile`` chose, else ``ci``."""
    return settings.default if chosen else settings.get_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rbee-props", "rbee-props: a live rbee stack under test")
    group.addoption("--rbee-config", help="rbee-props.toml describing the stack")
    group.addoption("--rbee-backend", choices=("local", "compose", "external"))
    group.addoption("--rbee-bugs", help="planted bugs of the reference stack, comma-separated")
    group.addoption("--rbee-grace", type=float, help="grace window G in seconds (overrides)")
    group.addoption("--rbee-findings", default="rbee-findings", help="where findings go")
    group.addoption("--rbee-shrink-budget", type=float, default=60.0,
                    help="seconds to spend shrinking a finding by replay")  # fmt: skip


@pytest.fixture(scope="session")
def rbee_config(pytestconfig: pytest.Config) -> Config:
    """The stack description: ``--rbee-config`` or the usual lookup, with CLI overrides."""
    bugs = pytestconfig.getoption("--rbee-bugs")
    try:
        return load_config(
            pytestconfig.getoption("--rbee-config"),
            overrides={
                "bugs": [b for b in bugs.split(",") if b] if bugs else None,
                "backend": pytestconfig.getoption("--rbee-backend"),
                "grace": pytestconfig.getoption("--rbee-grace"),
            },
        )
    except RbeePropsError as exc:
        pytest.exit(f"rbee-props: {exc}", returncode=int(exc.exit_code))


@pytest.fixture(scope="session")
def rbee_stack(rbee_config: Config) -> Iterator[Stack]:
    """The stack, started once per session and stopped at its end (even after Ctrl-C)."""
    stack = make_stack(rbee_config)
    try:
        stack.start()
    except RbeePropsError as exc:
        pytest.exit(f"rbee-props: {exc}", returncode=int(exc.exit_code))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def rbee_context(rbee_stack: Stack, rbee_config: Config) -> Iterator[MachineContext]:
    """The machines' session state: the stack, phantom workers, recorded failures."""
    context = MachineContext(rbee_stack, rbee_config)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def rbee_run(
    rbee_context: MachineContext, pytestconfig: pytest.Config
) -> Callable[..., HuntResult]:
    """Run a machine with the chosen Hypothesis profile (``ci`` when none is chosen); a finding
    fails the test."""
    base = machine_profile(pytestconfig.getoption("--hypothesis-profile", None))

    def run(machine: type[StackMachineBase], **options: Any) -> HuntResult:
        result = hunt(
            machine,
            rbee_context,
            # the profile's budget, but never a deadline or Hypothesis' own shrink phase: a
            # live stack's steps take seconds and its replays are not deterministic
            config=settings(
                base,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=machine_settings().phases,
            ),
            machine_name=options.pop("machine_name", machine.__name__),
            shrink_budget=pytestconfig.getoption("--rbee-shrink-budget"),
            out=Path(pytestconfig.getoption("--rbee-findings")),
            **options,
        )
        if result.finding is not None:
            finding = result.finding
            pytest.fail(
                f"{finding.violation.summary}\n"
                f"minimal program: {[step['rule'] for step in finding.program]}\n"
                f"reproduced {finding.reproduced}/{finding.attempts}; "
                f"reproduction in {result.path}",
                pytrace=False,
            )
        return result

    return run
