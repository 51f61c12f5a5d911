"""The one exception tree of rbee-props.

Every error rbee-props raises on purpose derives from :class:`RbeePropsError` and carries a message
that says what was expected, what was seen and what to do next. The CLI maps each branch to an
exit code (see :class:`ExitCode`)::

    RbeePropsError
    ├── UsageError(RbeePropsError, ValueError)      the user can fix the command line -> exit 2
    ├── ConfigError(RbeePropsError, ValueError)     the config file is wrong          -> exit 2
    ├── StackError                                  the stack failed to start or died -> exit 3
    │   ├── PortInUse
    │   ├── ComponentDidNotStart
    │   ├── DockerUnavailable
    │   └── UnsupportedFault
    └── InternalError                               a bug in rbee-props: keep the traceback -> 4

A finding (a violated invariant) is *not* an error: it is a ``Violation``, an ``AssertionError``.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ComponentDidNotStart",
    "ConfigError",
    "DockerUnavailable",
    "ExitCode",
    "InternalError",
    "PortInUse",
    "RbeePropsError",
    "StackError",
    "UnsupportedFault",
    "UsageError",
    "did_you_mean",
]


class ExitCode(enum.IntEnum):
    """Exit codes of every ``rbee-props`` command (ARCHITECTURE.md, "Findings")."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    STACK = 3
    INTERNAL = 4
    INTERRUPTED = 130


class RbeePropsError(Exception):
    """Base of every error rbee-props raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class UsageError(RbeePropsError, ValueError):
    """The command line asked for something that cannot be done."""

    exit_code = ExitCode.USAGE


class ConfigError(RbeePropsError, ValueError):
    """The configuration (``rbee-props.toml``) is invalid."""

    exit_code = ExitCode.USAGE


class StackError(RbeePropsError):
    """The stack could not be started, or a component died outside a fault."""

    exit_code = ExitCode.STACK


class PortInUse(StackError):
    """A port the stack needs is held by another process."""


class ComponentDidNotStart(StackError):
    """A component exited or never answered its health route in time."""


class DockerUnavailable(StackError):
    """No Docker Engine answers, or the compose tool is missing."""


class UnsupportedFault(StackError):
    """The backend cannot inject the requested fault (see ``Stack.capabilities``)."""

    exit_code = ExitCode.USAGE


class InternalError(RbeePropsError):
    """A bug in rbee-props itself."""

    exit_code = ExitCode.INTERNAL


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
