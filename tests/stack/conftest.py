"""Fixtures for the stack-controller tests: fresh local stacks, always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from rbee_props.config import Config, default_config
from rbee_props.stack import LocalStack


@pytest.fixture
def make_local_stack(tmp_path, monkeypatch) -> Iterator[Callable[..., LocalStack]]:
    monkeypatch.setenv("RBEE_PROPS_HOME", str(tmp_path / "home"))
    stacks: list[LocalStack] = []

    def make(config: Config | None = None) -> LocalStack:
        stack = LocalStack(config or default_config())
        stacks.append(stack)
        return stack.start()

    yield make
    for stack in stacks:
        stack.stop()
