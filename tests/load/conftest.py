"""A fresh local reference stack per test, always stopped, with its own run directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rbee_props.config import default_config
from rbee_props.stack import LocalStack


@pytest.fixture
def local_stack(tmp_path, monkeypatch) -> Iterator[LocalStack]:
    monkeypatch.setenv("RBEE_PROPS_HOME", str(tmp_path / "home"))
    stack = LocalStack(default_config())
    try:
        yield stack.start()
    finally:
        stack.stop()
