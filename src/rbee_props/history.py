"""Jepsen's history: every call a client makes becomes an :class:`Op` in a :class:`History`.

An op has a lane (the concurrent "process" that issued it), monotonic invoke and complete times,
the request, the response and an outcome:

- :class:`Ok`: the service answered 2xx; the operation happened.
- :class:`Fail`: the service answered with an error status, or the connection was refused; the
  model decides what each status means for each operation (usually: nothing changed).
- :class:`Indeterminate`: a timeout or a connection cut mid-request; it may or may not have taken
  effect, and the model keeps both possibilities.

The checker, the invariants and the reproduction exporter all read the history. Tokens are
redacted when a history is written out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from rbee_props.redact import Redactor

__all__ = ["Fail", "History", "Indeterminate", "Ok", "Op", "Outcome"]


@attrs.frozen
class Ok:
    """The service answered with a 2xx status."""

    status: int
    body: Any = None


@attrs.frozen
class Fail:
    """The service said no (4xx/5xx), or nobody listened (``status`` None, connection refused)."""

    status: int | None
    body: Any = None
    reason: str = ""

    @property
    def code(self) -> str | None:
        """The ``error.code`` of a JSON error envelope, if there is one."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return code if isinstance(code, str) else None
        return None


@attrs.frozen
class Indeterminate:
    """No answer: a timeout or a connection cut mid-request. Maybe it happened."""

    reason: str


Outcome = Ok | Fail | Indeterminate


@attrs.frozen
class Op:
    """One completed operation, as recorded."""

    index: int
    lane: int
    kind: str
    service: str
    method: str
    path: str
    args: Mapping[str, Any]
    invoke: float
    complete: float
    outcome: Outcome
    request: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        return isinstance(self.outcome, Ok)

    @property
    def status(self) -> int | None:
        return getattr(self.outcome, "status", None)

    @property
    def body(self) -> Any:
        return getattr(self.outcome, "body", None)

    def to_json(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "index": self.index,
            "lane": self.lane,
            "kind": self.kind,
            "service": self.service,
            "method": self.method,
            "path": self.path,
            "args": dict(self.args),
            "invoke": self.invoke,
            "complete": self.complete,
            "outcome": type(outcome).__name__,
            "status": getattr(outcome, "status", None),
            "body": getattr(outcome, "body", None),
            "reason": getattr(outcome, "reason", ""),
            "request": self.request,
            "headers": dict(self.headers),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Op:
        kind = data["outcome"]
        outcome: Outcome
        if kind == "Ok":
            outcome = Ok(data["status"], data.get("body"))
        elif kind == "Fail":
            outcome = Fail(data.get("status"), data.get("body"), data.get("reason", ""))
        else:
            outcome = Indeterminate(data.get("reason", ""))
        return cls(
            index=data["index"],
            lane=data["lane"],
            kind=data["kind"],
            service=data["service"],
            method=data["method"],
            path=data["path"],
            args=data.get("args", {}),
            invoke=data["invoke"],
            complete=data["complete"],
            outcome=outcome,
            request=data.get("request"),
            headers=data.get("headers", {}),
        )


class History:
    """An append-only, thread-safe list of ops (lanes may record concurrently)."""

    def __init__(self, *, redactor: Redactor | None = None) -> None:
        self._ops: list[Op] = []
        self._lock = threading.Lock()
        self.redactor = redactor or Redactor()

    def record(self, **fields: Any) -> Op:
        """Append an op; its index is its position in the history."""
        with self._lock:
            op = Op(index=len(self._ops), **fields)
            self._ops.append(op)
        return op

    def __iter__(self) -> Iterator[Op]:
        with self._lock:
            return iter(list(self._ops))

    def __len__(self) -> int:
        return len(self._ops)

    def __getitem__(self, index: int) -> Op:
        return self._ops[index]

    def since(self, index: int) -> list[Op]:
        """The ops recorded at or after position ``index``."""
        with self._lock:
            return self._ops[index:]

    def to_jsonl(self, path: Path) -> None:
        """Write one redacted JSON object per line."""
        with path.open("w") as handle:
            for op in self:
                handle.write(json.dumps(self.redactor.obj(op.to_json())) + "\n")

    @classmethod
    def from_jsonl(cls, path: Path) -> History:
        history = cls()
        for line in path.read_text().splitlines():
            if line.strip():
                history._ops.append(Op.from_json(json.loads(line)))
        return history
