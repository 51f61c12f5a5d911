"""Idle workers for an inference load run, spawned through the hives (contract §5.2, D3).

The queen routes ``/v1/inference`` only to registered idle workers, and a worker takes as many
requests at once as it has slots (D10: the rest are 503 ``ALL_SLOTS_BUSY`` at once). So before an
inference run, ``count`` workers with ``slots`` slots each are spawned round-robin over the hives
(``POST /v1/workers/spawn``) and the run starts once the queen lists every one of them.
"""

from __future__ import annotations

from typing import Final

import httpx

from rbee_props.errors import StackError
from rbee_props.stack import Stack, WaitTimedOut

__all__ = ["MODEL_REF", "spawn_workers"]

MODEL_REF: Final = "hf:rbee/load-model"
SPAWN_ATTEMPTS: Final = 3


def _spawn(http: httpx.Client, stack: Stack, hive: str, slots: int) -> str:
    """One worker on ``hive``; a 5xx is tried again (up to SPAWN_ATTEMPTS): the worker's port
    can be taken by another process between the hive's check and the worker's bind."""
    body = {"model_ref": MODEL_REF, "backend": "cpu", "device": 0, "slots_total": slots}
    attempt = 0
    while True:
        attempt += 1
        try:
            reply = http.post(stack.urls[hive] + "/v1/workers/spawn", json=body)
        except httpx.HTTPError as exc:
            msg = f"{hive} did not answer a spawn for the load run: {type(exc).__name__}"
            raise StackError(msg) from exc
        if reply.status_code == 200:
            return str(reply.json()["worker_id"])
        if reply.status_code < 500 or attempt >= SPAWN_ATTEMPTS:
            msg = (
                f"{hive} answered {reply.status_code} to spawning a worker for the load run "
                f"(expected 200, contract §5.2; attempt {attempt}): {reply.text[:200]}"
            )
            raise StackError(msg)


def spawn_workers(stack: Stack, *, count: int, slots: int, timeout: float = 30.0) -> list[str]:
    """Spawn ``count`` workers of ``slots`` slots; return their ids once the queen lists them.

    Raises:
        StackError: a hive refused a spawn, or the workers were not registered in time.
    """
    if not stack.hives:
        msg = "the stack has no hive to spawn inference workers on; add one to [stack.hive]"
        raise StackError(msg)
    headers = {"Authorization": f"Bearer {stack.token}"}
    with httpx.Client(headers=headers, timeout=10.0, trust_env=False) as http:
        ids = [_spawn(http, stack, stack.hives[i % len(stack.hives)], slots) for i in range(count)]

        def all_idle() -> bool:
            try:
                listed = http.get(stack.urls["queen"] + "/v2/workers/list").json()["workers"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            idle = {w.get("worker_id") for w in listed if w.get("state") == "idle"}
            return idle >= set(ids)

        try:
            stack.wait_until(all_idle, timeout, what="load workers registered at the queen")
        except WaitTimedOut as exc:
            msg = (
                f"the queen did not list the {count} spawned workers as idle within {timeout:g}s;"
                " check the hives' logs (ready callback, registration at the queen)"
            )
            raise StackError(msg) from exc
    return ids
