"""What a fuzz campaign aims at: one schema per service, aimed at a live stack, and its tidying.

The queen's document goes to the queen, the hive's to ``hive1`` (with the queen as peer, for
S21), the worker's to a worker spawned for the campaign (its shutdown routes excluded: they would
end it for the rest of the run). After every case :class:`Tidy` undoes what the case left behind
on the shared stack - a beehive it added, a worker it spawned - so an eight-hour run does not pile
up processes, and it never sends the removal of the stack's own beehives.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from schemathesis import Case, Response
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema

from rbee_props.config import Config
from rbee_props.errors import UsageError, did_you_mean
from rbee_props.fuzz.housekeeping import (
    LiveWorker,
    discard_worker,
    forget_beehive,
    retire_worker,
    spawn_worker,
    worker_answers,
)
from rbee_props.fuzz.settings import FuzzSettings
from rbee_props.fuzz.specs import SERVICES, call_kwargs, load_spec, read_spec, spec_path
from rbee_props.stack import Stack

__all__ = ["FuzzTarget", "Operation", "Targets", "Tidy", "parse_services"]

Operation = APIOperation[Any, Any, Any, Any]
"""An operation of a loaded OpenAPI document."""

#: worker routes that end the worker (each gets a worker of its own in tests/fuzz instead)
WORKER_SHUTDOWN = frozenset({"adminShutdown", "shutdownAlias"})


def parse_services(text: str) -> tuple[str, ...]:
    """``queen``, ``hive,worker`` or ``all`` -> the services, in document order.

    Raises:
        UsageError: an unknown service name.
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or names == ["all"]:
        return SERVICES
    for name in names:
        if name not in SERVICES:
            msg = (
                f"unknown rbee service {name!r}{did_you_mean(name, (*SERVICES, 'all'))} for "
                f"--service; expected one of {', '.join(SERVICES)} or all"
            )
            raise UsageError(msg, service=name)
    return tuple(s for s in SERVICES if s in names)


@attrs.frozen
class FuzzTarget:
    """One document aimed at one running service.

    Attributes:
        service: the document (``queen``, ``hive``, ``worker``).
        instance: the component it is aimed at (``queen``, ``hive1``, ``worker <id>``).
        schema: the aimed Schemathesis schema.
        operations: the operations to fuzz, in document order.
        spec: the raw document as read (for the finding's copy).
    """

    service: str
    instance: str
    schema: BaseSchema
    operations: tuple[Operation, ...]
    spec: Mapping[str, Any]

    @property
    def base_url(self) -> str:
        """Where the schema is aimed."""
        return str(call_kwargs(self.schema)["base_url"])


class Tidy:
    """After each case: remove the beehive it added, get rid of the worker it spawned."""

    def __init__(self, stack: Stack, *, keep_nodes: Collection[str]) -> None:
        self.stack = stack
        self.keep_nodes = frozenset(keep_nodes)

    def __call__(self, response: Response, case: Case[Any]) -> None:
        if response.status_code != 200:
            return
        op_id = case.operation.definition.raw.get("operationId")
        if op_id == "addBeehive" and isinstance(case.body, dict):
            name = case.body.get("node_name")
            if isinstance(name, str) and name not in self.keep_nodes:
                forget_beehive(self.stack, name)
        elif op_id == "spawnWorker":
            try:
                body = response.json()
            except ValueError:
                return
            if isinstance(body, dict) and isinstance(body.get("worker_id"), str):
                discard_worker(self.stack, body["worker_id"], str(body.get("url", "")))


class Targets:
    """The campaign's targets on ``stack``; a worker spawned for them is retired by ``close``."""

    def __init__(
        self,
        stack: Stack,
        config: Config,
        services: Sequence[str],
        *,
        spec: str | Path | None = None,
        settings: FuzzSettings | None = None,
    ) -> None:
        if spec is not None and len(services) != 1:
            msg = "--spec replaces one service's document; name that service with --service"
            raise UsageError(msg)
        self.stack = stack
        self.config = config
        self.spec = spec
        self.settings = settings or FuzzSettings(grace=config.grace_seconds)
        self.tidy = Tidy(stack, keep_nodes=stack.hives)
        self.live_worker: LiveWorker | None = None
        self.targets: list[FuzzTarget] = []
        if ("hive" in services or "worker" in services) and not stack.hives:
            msg = (
                f"--service {','.join(services)} needs a hive, and the stack has none; "
                "add hive_urls to [stack.external] or fuzz only the queen"
            )
            raise UsageError(msg)
        for service in services:
            self.targets.append(self._target(service))

    def _load(self, service: str, url: str, peers: Mapping[str, str]) -> FuzzTarget:
        path = Path(self.spec) if self.spec is not None else spec_path(service)
        schema = load_spec(
            service, url, token=self.stack.token or None, peers=peers,
            settings=self.settings, path=path,
        )  # fmt: skip
        operations = tuple(
            result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)
        )
        if service == "worker":
            operations = tuple(
                op
                for op in operations
                if op.definition.raw.get("operationId") not in WORKER_SHUTDOWN
            )
        instance = "queen" if service == "queen" else self.stack.hives[0]
        if service == "worker" and self.live_worker is not None:
            instance = f"worker {self.live_worker.worker_id}"
        return FuzzTarget(service, instance, schema, operations, read_spec(path))

    def _target(self, service: str) -> FuzzTarget:
        urls = self.stack.urls
        if service == "queen":
            return self._load("queen", urls["queen"], {})
        if service == "hive":
            return self._load("hive", urls[self.stack.hives[0]], {"queen": urls["queen"]})
        self.live_worker = spawn_worker(self.stack, hive=self.stack.hives[0], at_queen=False)
        return self._load("worker", self.live_worker.url, {})

    def refresh(self) -> None:
        """Spawn a new campaign worker when the old one is gone (a case shut it down via a peer)."""
        if self.live_worker is None or worker_answers(self.live_worker.url):
            return
        self.targets = [t for t in self.targets if t.service != "worker"]
        self.targets.append(self._target("worker"))

    @property
    def operation_count(self) -> int:
        """How many operations the targets fuzz."""
        return sum(len(t.operations) for t in self.targets)

    def close(self) -> None:
        """Retire the worker spawned for the campaign."""
        if self.live_worker is not None:
            retire_worker(self.live_worker.url, self.stack.token, timeout=1.0)
            self.live_worker = None
