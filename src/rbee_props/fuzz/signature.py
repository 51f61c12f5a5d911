"""A fuzz finding and its signature: the key campaigns de-duplicate by.

A finding is one failed check on one operation. Its signature, ``<check>:<service>.<operation>:
<status class>`` (``error_envelope:queen.registerWorker:4xx``), is stable across runs, machines
and the values Hypothesis happened to draw, so one bug found ten thousand times overnight is one
finding; a check failing on the same operation with a 2xx and with a 5xx (accepted bad input vs.
crashed on it) are two. The status class is ``none`` when the service gave no answer.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from rbee_props.fuzz._judge import Judgement

__all__ = ["FuzzFinding", "findings_of", "status_class"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def status_class(status: int | None) -> str:
    """``404`` -> ``4xx``; None (no answer) -> ``none``."""
    return f"{status // 100}xx" if status is not None else "none"


@attrs.frozen
class FuzzFinding:
    """One failed check on one operation.

    Attributes:
        check: the check's name (``error_envelope``, ``not_a_server_error``, ...).
        service: ``queen``, ``hive`` or ``worker`` (the document, not the instance).
        operation: the operationId (or the method and path when the document gives none).
        label: ``POST /v2/workers/register``.
        status: the status of the answer (None: no answer).
        messages: what the check said, first message first.
    """

    check: str
    service: str
    operation: str
    label: str
    status: int | None
    messages: tuple[str, ...] = ()

    @property
    def signature(self) -> str:
        """``<check>:<service>.<operation>:<status class>``, stable across runs and machines."""
        return f"{self.check}:{self.service}.{self.operation}:{status_class(self.status)}"

    @property
    def slug(self) -> str:
        """The signature as a directory name: ``error_envelope-queen.registerWorker-4xx``."""
        return _UNSAFE.sub("_", self.signature.replace(":", "-"))

    @property
    def summary(self) -> str:
        """One line: the signature and the first line of the first message."""
        first = self.messages[0].splitlines()[0] if self.messages else ""
        return f"{self.signature}: {first}" if first else self.signature


def findings_of(
    service: str, operation: Any, status: int | None, judgement: Judgement
) -> list[FuzzFinding]:
    """One finding per check that failed in ``judgement`` of an answer to ``operation``."""
    op_id = str(operation.definition.raw.get("operationId") or operation.label)
    return [
        FuzzFinding(
            check=check,
            service=service,
            operation=op_id,
            label=operation.label,
            status=status,
            messages=judgement.messages(check),
        )
        for check in judgement.failures
    ]
