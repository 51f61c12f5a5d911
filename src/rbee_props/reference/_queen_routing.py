"""The queen's calls to hives and workers: inference relay, task spawn-and-wait, shutdown.

Every call carries the token (D11). A peer's 4xx (and a worker's 503) reaches the client with its
status and error envelope; another 5xx or a garbled reply is 502 ``UPSTREAM_ERROR``; a peer that
cannot be reached is 503 ``UPSTREAM_UNAVAILABLE`` (§3, F13). A 2xx SSE stream is relayed chunk by
chunk as it arrives; if the worker dies mid-stream the relay just ends, without ``end`` or
``[DONE]`` and without failover (D9). Planted bug ``text-errors`` turns a relayed 4xx into 500.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from rbee_props.reference._http import ApiError
from rbee_props.reference._queen_workers import WorkerEntry, WorkerRegistry

__all__ = ["Upstream", "hive_url"]

log = logging.getLogger("rbee_props.reference.queen.routing")

_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
_DEFAULT_CODES = {
    400: "VALIDATION_ERROR",
    404: "NOT_FOUND",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    503: "UPSTREAM_UNAVAILABLE",
}


def hive_url(node: dict[str, Any]) -> str:
    """Where a beehive's hive answers: ``http://{ssh_host}:{hive_port}`` (§5.1)."""
    return f"http://{node['ssh_host']}:{node['hive_port']}"


class RelayStream(StreamingResponse):
    """An SSE relay that closes the upstream response and frees the slot however it ends."""

    def __init__(self, entry: WorkerEntry, upstream: httpx.Response) -> None:
        super().__init__(
            self._chunks(upstream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
        self.entry = entry
        self.upstream = upstream
        self.released = False

    async def _chunks(self, upstream: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:  # D9: the worker died mid-stream; end without [DONE]
            log.warning("stream from %s ended early: %s", self.entry.worker_id, type(exc).__name__)
        self._release()  # before the client sees the end, so its next request finds it idle

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self.entry.free_slot()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
            self._release()


class Upstream:
    """The queen's HTTP client towards hives and workers."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        registry: WorkerRegistry,
        *,
        timings: dict[str, Any],
        bugs: frozenset[str],
    ) -> None:
        self.client = client
        self.registry = registry
        self.t = timings
        self.text_errors = "text-errors" in bugs

    def _timeout(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(read, connect=min(read, max(self.t["health_timeout"], 0.5)))

    def relayed(self, response: httpx.Response, peer: str, *, relay_503: bool) -> ApiError:
        """The error to answer for a peer's non-2xx ``response`` (already read)."""
        status = response.status_code
        if status in (401, 403):  # the peer refused the queen's token: not the client's fault
            return ApiError(502, "UPSTREAM_ERROR", f"the {peer} refused the queen's credentials")
        if not (400 <= status < 500 or (status == 503 and relay_503)):
            return ApiError(502, "UPSTREAM_ERROR", f"the {peer} answered {status}")
        code = _DEFAULT_CODES.get(status, "UPSTREAM_ERROR")
        try:
            peer_code = response.json()["error"]["code"]
            if isinstance(peer_code, str) and _CODE.fullmatch(peer_code):
                code = peer_code
        except (ValueError, KeyError, TypeError):
            pass
        # the peer's own message is not passed on: it might quote the client's input (F11)
        message = f"the {peer} refused the request ({status} {code})"
        if self.text_errors and status < 500:  # planted bug B24: a peer's 4xx becomes 500
            return ApiError(500, "INTERNAL_ERROR", message)
        return ApiError(status, code, message)

    # -- inference ------------------------------------------------------------------------------
    async def infer(self, entry: WorkerEntry, request: dict[str, Any]) -> StreamingResponse:
        """Send one job to ``entry`` and relay its SSE stream."""
        payload = {
            "job_id": str(uuid.uuid4()),
            "prompt": request["prompt"],
            "max_tokens": request["max_tokens"],
            "temperature": request["temperature"],
        }
        entry.take_slot()
        handed_over = False
        try:
            call = self.client.build_request(
                "POST",
                f"{entry.url}/v1/inference",
                json=payload,
                timeout=self._timeout(self.t["inference_timeout"]),
            )
            try:
                response = await self.client.send(call, stream=True)
            except httpx.HTTPError as exc:
                log.warning("worker %s unreachable: %s", entry.worker_id, type(exc).__name__)
                raise ApiError(503, "UPSTREAM_UNAVAILABLE", "the worker is unreachable") from None
            try:
                ctype = response.headers.get("content-type", "")
                if response.status_code == 200 and ctype.startswith("text/event-stream"):
                    handed_over = True
                    return RelayStream(entry, response)
                try:
                    await response.aread()
                except httpx.HTTPError:
                    raise ApiError(502, "UPSTREAM_ERROR", "the worker reply broke off") from None
                if 200 <= response.status_code < 300:
                    raise ApiError(502, "UPSTREAM_ERROR", "the worker did not answer with SSE")
                raise self.relayed(response, "worker", relay_503=True)
            finally:
                if not handed_over:
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
        finally:
            if not handed_over:
                entry.free_slot()

    # -- tasks ----------------------------------------------------------------------------------
    async def spawn(self, hive: str, model: str) -> str:
        """Ask the hive for a worker of ``model``; its ``worker_id``."""
        try:
            response = await self.client.post(
                f"{hive}/v1/workers/spawn",
                json={"model_ref": model, "backend": "cpu", "device": 0},
                timeout=self._timeout(self.t["spawn_timeout"]),
            )
        except httpx.HTTPError as exc:
            log.warning("hive %s unreachable on spawn: %s", hive, type(exc).__name__)
            raise ApiError(503, "UPSTREAM_UNAVAILABLE", "the hive is unreachable") from None
        if not 200 <= response.status_code < 300:
            raise self.relayed(response, "hive", relay_503=False)
        try:
            worker_id = response.json()["worker_id"]
        except (ValueError, KeyError, TypeError):
            worker_id = None
        if not isinstance(worker_id, str) or not worker_id:
            raise ApiError(502, "UPSTREAM_ERROR", "the hive's spawn reply has no worker_id")
        log.info("hive %s spawned %s for a task", hive, worker_id)
        return worker_id

    async def wait_registered(self, hive: str, worker_id: str) -> WorkerEntry:
        """Wait until the hive registers ``worker_id`` here (504 after ``task_ready_wait``).

        While waiting, the hive's list is read now and then: a worker it dropped (failed load,
        ready timeout) ends the wait at once.
        """
        deadline = time.monotonic() + self.t["task_ready_wait"]
        delay = 0.02
        next_hive_check = time.monotonic() + 0.5
        while True:
            entry = self.registry.get(worker_id)
            if entry is not None:
                return entry
            now = time.monotonic()
            if now >= deadline:
                raise ApiError(504, "READY_TIMEOUT", "the spawned worker did not become ready")
            if now >= next_hive_check:
                next_hive_check = now + 0.5
                if await self._hive_dropped(hive, worker_id) and not self.registry.get(worker_id):
                    raise ApiError(502, "UPSTREAM_ERROR", "the hive dropped the spawned worker")
                continue
            await asyncio.sleep(min(delay, max(deadline - now, 0)))
            delay = min(delay * 1.5, 0.25)

    async def _hive_dropped(self, hive: str, worker_id: str) -> bool:
        try:
            response = await self.client.get(
                f"{hive}/v1/workers/list", timeout=self.t["health_timeout"]
            )
            listed = response.json()["workers"] if response.status_code == 200 else None
            if listed is None:
                return False
            return all(w.get("id", w.get("worker_id")) != worker_id for w in listed)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
            return False

    # -- shutdown -------------------------------------------------------------------------------
    async def shutdown(self, entry: WorkerEntry) -> None:
        """POST the worker's ``/v1/admin/shutdown``; on 200 the entry leaves the registry."""
        try:
            response = await self.client.post(
                f"{entry.url}/v1/admin/shutdown",
                timeout=self._timeout(max(self.t["kill_grace"], self.t["health_timeout"])),
            )
        except httpx.HTTPError as exc:
            log.warning(
                "worker %s unreachable on shutdown: %s", entry.worker_id, type(exc).__name__
            )
            raise ApiError(503, "UPSTREAM_UNAVAILABLE", "the worker is unreachable") from None
        if not 200 <= response.status_code < 300:
            raise self.relayed(response, "worker", relay_503=False)
        self.registry.remove(entry, "shut down")
