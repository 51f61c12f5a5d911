"""Start, stop and break an rbee stack: one interface, several backends.

``open_stack()`` builds the backend the config names (``local`` by default, ``compose``,
``external``); each backend declares the faults it supports in ``capabilities``.
"""

from __future__ import annotations

from pathlib import Path

from rbee_props.config import Config, load_config
from rbee_props.errors import ConfigError
from rbee_props.stack._base import Fault, Stack, WaitTimedOut, WorkerProcess, poll_until
from rbee_props.stack.external import ExternalStack
from rbee_props.stack.local import LocalStack

__all__ = [
    "ExternalStack",
    "Fault",
    "LocalStack",
    "Stack",
    "WaitTimedOut",
    "WorkerProcess",
    "make_stack",
    "open_stack",
    "poll_until",
]


def make_stack(config: Config, *, detached: bool = False) -> Stack:
    """The (not yet started) backend for ``config.backend``."""
    if config.backend == "local":
        return LocalStack(config, detached=detached)
    if config.backend == "external":
        return ExternalStack(config)
    if config.backend == "compose":
        from rbee_props.stack.compose import ComposeStack  # imports docker: only when asked

        return ComposeStack(config, detached=detached)
    msg = f'backend {config.backend!r} is not available; use "local", "compose" or "external"'
    raise ConfigError(msg)


def open_stack(*, config: Config | Path | None = None, detached: bool = False) -> Stack:
    """Start the stack described by ``config`` (a Config, a TOML path, or the default lookup).

    Raises:
        ConfigError: the config is invalid.
        StackError: a component did not become healthy in time.
    """
    if not isinstance(config, Config):
        config = load_config(config)
    return make_stack(config, detached=detached).start()
