"""Keep a shared stack usable while it is fuzzed: a live worker to aim at, and clean-up after.

Fuzzing changes the stack it runs on: ``spawn`` starts real worker processes, ``add`` registers
beehives whose made-up hosts the queen then polls. These helpers start the one worker the worker
suite needs and retire what the suites left behind, through the services' own routes (so they
work on any backend), leaving the stack as the next suite expects it.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import attrs
import httpx

from rbee_props.errors import StackError, UsageError
from rbee_props.fuzz._probe import client
from rbee_props.stack import Fault, Stack, WaitTimedOut, poll_until

__all__ = [
    "LiveWorker",
    "discard_worker",
    "forget_beehive",
    "remove_beehives",
    "retire_worker",
    "retire_workers",
    "spawn_worker",
    "worker_answers",
]

TIMEOUT = 10.0


@attrs.frozen
class LiveWorker:
    """A worker spawned for fuzzing: its id, URL and hive."""

    worker_id: str
    url: str
    hive: str


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _listed(url: str, token: str, key: str) -> list[dict[str, Any]]:
    try:
        reply = httpx.get(url, headers=_headers(token), timeout=TIMEOUT, trust_env=False)
        items = reply.json().get(key, []) if reply.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        return []
    return [item for item in items if isinstance(item, dict)]


def spawn_worker(
    stack: Stack,
    *,
    hive: str = "hive1",
    model_ref: str = "hf:rbee-props/fuzz-target",
    timeout: float = 30.0,
    at_queen: bool = True,
) -> LiveWorker:
    """Spawn a worker through ``hive`` and wait until the hive lists it idle (and the queen too).

    Raises:
        StackError: the spawn was refused, or the worker did not become ready in time.
    """
    base = stack.urls[hive]
    body = {"model_ref": model_ref, "backend": "cpu", "device": 0}
    reply = httpx.post(
        f"{base}/v1/workers/spawn", json=body, headers=_headers(stack.token), timeout=TIMEOUT
    )
    if reply.status_code != 200:
        msg = (
            f"{hive} answered {reply.status_code} to spawning a fuzz target worker; "
            f"expected 200 (contract §5.2): {reply.text[:200]}"
        )
        raise StackError(msg, component=hive)
    worker_id, url = reply.json()["worker_id"], reply.json()["url"]

    def ready() -> bool:
        idle = any(
            w.get("id") == worker_id and w.get("state") == "idle"
            for w in _listed(f"{base}/v1/workers/list", stack.token, "workers")
        )
        if not idle or not at_queen:
            return idle
        queen = _listed(f"{stack.urls['queen']}/v2/workers/list", stack.token, "workers")
        return any(w.get("worker_id") == worker_id for w in queen)

    try:
        poll_until(ready, timeout, what=f"worker {worker_id} idle")
    except WaitTimedOut as exc:
        msg = f"the fuzz target worker {worker_id} on {hive} was not ready within {timeout:g}s"
        raise StackError(msg, component=hive) from exc
    return LiveWorker(worker_id=worker_id, url=url, hive=hive)


def retire_worker(url: str, token: str, *, timeout: float = 5.0) -> bool:
    """Ask the worker at ``url`` to shut down, retrying while it is still binding its port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = httpx.post(
                f"{url.rstrip('/')}/v1/admin/shutdown", headers=_headers(token), timeout=2.0
            )
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
            continue
        return reply.status_code == 200


def discard_worker(stack: Stack, worker_id: str, url: str) -> None:
    """Get rid of a worker the fuzzer just spawned, as cheaply as the backend allows.

    A fresh worker answers its shutdown route only once its interpreter is up (about a second
    on a busy machine); where the backend can kill worker processes, SIGKILL is immediate and
    the hive drops the entry at its next sweep.
    """
    if stack.supports(Fault.KILL_WORKER):
        try:
            stack.kill_worker(worker_id)
        except UsageError:
            return  # already gone
        return
    retire_worker(url, stack.token)


def retire_workers(stack: Stack, *, keep: Collection[str] = ()) -> list[str]:
    """Shut down every worker any hive lists, except ``keep``; their ids."""
    retired = []
    for hive in stack.hives:
        for worker in _listed(f"{stack.urls[hive]}/v1/workers/list", stack.token, "workers"):
            if worker.get("id") not in keep and isinstance(worker.get("url"), str):
                retire_worker(worker["url"], stack.token, timeout=1.0)
                retired.append(str(worker.get("id")))
    return retired


def worker_answers(url: str) -> bool:
    """Whether the worker at ``url`` answers its health route."""
    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def forget_beehive(stack: Stack, name: str) -> None:
    """Remove the beehive ``name`` at the queen, so the queen stops polling its made-up host."""
    with client() as http:
        http.post(
            f"{stack.urls['queen']}/v2/registry/beehives/remove",
            json={"node_name": name},
            headers=_headers(stack.token),
        )


def remove_beehives(stack: Stack, *, keep: Collection[str]) -> list[str]:
    """Remove every beehive at the queen except ``keep`` (the stack's own hives)."""
    removed = []
    queen = stack.urls["queen"]
    for node in _listed(f"{queen}/v2/registry/beehives/list", stack.token, "nodes"):
        name = node.get("node_name")
        if name in keep:
            continue
        forget_beehive(stack, str(name))
        removed.append(str(name))
    return removed
