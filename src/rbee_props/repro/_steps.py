"""Reading a finding's program and history: readable steps, and the worker ids spawns returned.

Shared by REPORT.md and repro.sh, so that both call the worker a ``spawn`` returned by the same
name: the program's own variable (``v1`` in the steps, ``$V1`` in the script) when the spawns of
the program and of the history pair up one to one, else ``V1``, ``V2``... in history order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

__all__ = ["CONTROLLER", "Capture", "captures", "format_step", "is_controller"]

#: the service name fault ops are recorded under
CONTROLLER: Final = "controller"


@attrs.frozen
class Capture:
    """A worker id (and URL) that the spawn op at ``index`` of the history returned, and its
    shell variable name (``V1``)."""

    index: int
    name: str
    worker_id: str
    url: str | None


#: program rules that spawn a worker through a hive (their history op is a ``spawn``)
SPAWN_RULES = frozenset({"spawn", "first_worker"})


def is_controller(op: Mapping[str, Any]) -> bool:
    """Whether ``op`` is a fault injected by the stack controller (not an HTTP exchange)."""
    return op.get("service") == CONTROLLER or op.get("method") == "FAULT"


def _value(value: Any) -> str:
    if isinstance(value, Mapping) and set(value) == {"$var"}:
        return str(value["$var"])
    return repr(value)


def format_step(step: Mapping[str, Any]) -> str:
    """One program step as a call: ``v1 = spawn(hive=0)``, ``kill_worker(worker_id=v1)``."""
    args = step.get("args") or {}
    call = f"{step.get('rule', '?')}({', '.join(f'{k}={_value(v)}' for k, v in args.items())})"
    binds = step.get("binds")
    return f"{binds} = {call}" if binds else call


def _spawned(op: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The worker id (and URL) a successful spawn op answered with, if any."""
    body = op.get("body")
    if op.get("kind") != "spawn" or op.get("outcome") != "Ok" or not isinstance(body, Mapping):
        return None
    worker_id = body.get("worker_id")
    if not isinstance(worker_id, str) or not worker_id:
        return None
    url = body.get("url")
    return worker_id, url if isinstance(url, str) and url else None


def _shell_name(name: str) -> str:
    name = re.sub(r"[^A-Z0-9_]", "_", name.upper())
    return name if name[:1].isalpha() else f"V{name}"


def captures(
    program: Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]]
) -> list[Capture]:
    """The worker ids returned by spawns in ``history``, each with a shell variable name.

    ``Capture.index`` is the op's position in ``history``.
    """
    spawns = [
        (position, op)
        for position, op in enumerate(history)
        if op.get("kind") == "spawn" and not is_controller(op)
    ]
    binds = [step.get("binds") for step in program if step.get("rule") in SPAWN_RULES]
    paired = len(binds) == len(spawns) and all(isinstance(b, str) and b for b in binds)
    found: list[Capture] = []
    for number, (position, op) in enumerate(spawns):
        spawned = _spawned(op)
        if spawned is None:
            continue
        name = _shell_name(str(binds[number])) if paired else f"V{len(found) + 1}"
        found.append(Capture(position, name, spawned[0], spawned[1]))
    return found
