"""A guided tour of a live stack: register, spawn, inference, kill a worker, watch it evicted.

``rbee-props demo`` runs it on the reference stack; each step yields one line of what it saw, so
the library never prints and the CLI decides how to show it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx

from rbee_props.stack import LocalStack, Stack
from rbee_props.stack._processes import processes_of_run

__all__ = ["walkthrough"]


def _sse_tokens(text: str) -> list[str]:
    tokens = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            event = json.loads(line[len("data: ") :])
            if event.get("type") == "token":
                tokens.append(event["t"])
    return tokens


def walkthrough(stack: Stack) -> Iterator[str]:
    """Drive ``stack`` through the worker lifecycle, yielding a sentence per observation."""
    queen, hive = stack.urls["queen"], stack.urls[stack.hives[0]]
    grace = getattr(getattr(stack, "config", None), "grace_seconds", 30.0)
    with httpx.Client(headers={"Authorization": f"Bearer {stack.token}"}, timeout=10) as http:

        def queen_ids() -> set[str]:
            return {w["worker_id"] for w in http.get(queen + "/v2/workers/list").json()["workers"]}

        def hive_ids() -> set[str]:
            return {w["id"] for w in http.get(hive + "/v1/workers/list").json()["workers"]}

        yield f"stack up: {', '.join(f'{n}={u}' for n, u in stack.urls.items())}"
        nodes = [
            n["node_name"] for n in http.get(queen + "/v2/registry/beehives/list").json()["nodes"]
        ]
        yield f"beehive registry: {nodes}"

        hand = f"hand-{uuid.uuid4().hex[:8]}"
        body = {
            "worker_id": hand, "url": "http://127.0.0.1:9", "model_ref": "hf:demo/model",
            "backend": "cpu", "node_name": stack.hives[0], "device": 0,
        }  # fmt: skip
        first = http.post(queen + "/v2/workers/register", json=body)
        again = http.post(queen + "/v2/workers/register", json=body)
        yield (
            f"register {hand} at the queen: {first.status_code}; the same id again: "
            f"{again.status_code} {again.json().get('error', {}).get('code')}"
        )
        took = stack.wait_until(lambda: hand not in queen_ids(), grace, what="unreachable evicted")
        yield f"{hand} never answers its health checks: the queen evicted it after {took:.2f}s"

        spawned = http.post(
            hive + "/v1/workers/spawn",
            json={"model_ref": "hf:demo/model", "backend": "cpu", "device": 0},
        ).json()
        worker_id = spawned["worker_id"]
        yield f"spawn on {stack.hives[0]}: {worker_id} at {spawned['url']} is {spawned['state']}"
        took = stack.wait_until(lambda: worker_id in queen_ids(), grace, what="worker registered")
        yield f"{worker_id} loaded, reported ready, and is registered at the queen ({took:.2f}s)"

        answer = http.post(queen + "/v1/inference", json={"prompt": "hello rbee", "max_tokens": 6})
        tokens = _sse_tokens(answer.text)
        yield f"inference through the queen: {answer.status_code}, tokens {tokens}"

        pids = [w.pid for w in stack.workers() if w.worker_id == worker_id]
        stack.kill_worker(worker_id)
        yield f"kill -9 {worker_id} (pid {pids[0] if pids else '?'})"
        took = stack.wait_until(lambda: worker_id not in hive_ids(), grace, what="hive evicts")
        yield f"{stack.hives[0]} dropped it after {took:.2f}s"
        took = stack.wait_until(lambda: worker_id not in queen_ids(), grace, what="queen evicts")
        yield f"the queen dropped it after {took:.2f}s (grace G = {grace:.2f}s)"

    if isinstance(stack, LocalStack):
        run_id = stack.run_id
        stack.stop()
        left = processes_of_run(run_id)
        yield f"stack stopped; processes of the run still alive: {len(left)}"
