"""The operations the model knows: client calls (with outcomes) and faults (without).

Each op is a frozen value naming its ``kind``, the same name the client records in the history,
so a recorded :class:`~rbee_props.history.Op` and a model op line up one to one.
"""

from __future__ import annotations

import attrs

__all__ = [
    "AddBeehive",
    "Call",
    "Fault",
    "FaultOp",
    "Inference",
    "ReadyCallback",
    "RegisterWorker",
    "RemoveBeehive",
    "ShutdownWorker",
    "Spawn",
]


@attrs.frozen
class RegisterWorker:
    """``POST /v2/workers/register`` at the queen (S01, S02)."""

    worker_id: str
    node: str
    url: str
    model_ref: str = "hf:rbee/phantom"
    slots_total: int = 1
    kind: str = "register_worker"


@attrs.frozen
class ShutdownWorker:
    """``POST /v2/workers/shutdown`` at the queen (S04)."""

    worker_id: str
    kind: str = "shutdown_worker"


@attrs.frozen
class Spawn:
    """``POST /v1/workers/spawn`` at a hive; ``worker_id`` is filled from the answer (S08)."""

    hive: str
    model_ref: str
    worker_id: str = ""
    url: str = ""
    kind: str = "spawn"


@attrs.frozen
class ReadyCallback:
    """``POST /v1/workers/ready`` at a hive, sent by the test (S05)."""

    hive: str
    worker_id: str
    kind: str = "ready"


@attrs.frozen
class Inference:
    """``POST /v1/inference`` at the queen (S13, S15)."""

    max_tokens: int
    kind: str = "inference"


@attrs.frozen
class AddBeehive:
    """``POST /v2/registry/beehives/add`` (S14)."""

    node_name: str
    ssh_host: str
    hive_port: int
    kind: str = "add_beehive"


@attrs.frozen
class RemoveBeehive:
    """``POST /v2/registry/beehives/remove`` (S14)."""

    node_name: str
    kind: str = "remove_beehive"


Call = (
    RegisterWorker | ShutdownWorker | Spawn | ReadyCallback | Inference | AddBeehive | RemoveBeehive
)


@attrs.frozen
class FaultOp:
    """A fault injected by the stack controller: ``kind`` is the verb, ``target`` its object.

    Kinds: ``kill``, ``terminate``, ``start``, ``restart``, ``pause``, ``resume`` (components),
    ``kill_worker``, ``pause_worker`` (workers), ``partition``, ``heal``, ``slow``.
    """

    kind: str
    target: str = ""


Fault = FaultOp
