"""What the stack shows at one moment: the registries it lists and the worker processes.

Machines take snapshots (I/O); invariants compare them with the model (pure). A registry that
could not be read (component down, paused, partitioned away from the test) is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Listed", "Process", "Snapshot", "listed_from"]


@attrs.frozen
class Listed:
    """One entry of a worker list."""

    worker_id: str
    node: str = ""
    state: str = ""
    url: str = ""


@attrs.frozen
class Process:
    """One live worker process: pid, worker id (from its command line), its hive, ports."""

    pid: int
    worker_id: str | None
    hive: str | None
    ports: tuple[int, ...] = ()


@attrs.frozen
class Snapshot:
    """The registries and processes seen at ``taken_at`` (monotonic seconds)."""

    queen: tuple[Listed, ...] | None
    hives: Mapping[str, tuple[Listed, ...]]
    processes: tuple[Process, ...] | None
    beehives: tuple[str, ...] | None
    taken_at: float = 0.0


def listed_from(body: Any, *, id_key: str, node: str = "") -> tuple[Listed, ...] | None:
    """Parse ``{"workers": [...]}`` from a queen (``worker_id``) or hive (``id``) list."""
    if not isinstance(body, dict) or not isinstance(body.get("workers"), list):
        return None
    out = []
    for entry in body["workers"]:
        if isinstance(entry, dict) and isinstance(entry.get(id_key), str):
            out.append(
                Listed(
                    worker_id=entry[id_key],
                    node=str(entry.get("node", entry.get("node_name", node))),
                    state=str(entry.get("state", "")),
                    url=str(entry.get("url", "")),
                )
            )
    return tuple(out)
