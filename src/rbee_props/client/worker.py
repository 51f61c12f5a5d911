"""The worker client: a worker's routes (contract §5.3) as calls that each record an Op.

Every method takes ``auth=`` (see :data:`~rbee_props.client.USE_TOKEN`) and ``timeout=`` (None:
the client's default) and records its parameters as the op's ``args``. ``WorkerClient`` returns
the :class:`~rbee_props.history.Op`; ``AsyncWorkerClient`` is awaited for it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

from rbee_props.client._base import USE_TOKEN, Auth, _AsyncClient, _BaseClient, _SyncClient
from rbee_props.history import Op

__all__ = ["AsyncWorkerClient", "WorkerClient", "WorkerRoutes"]

R = TypeVar("R")
T = TypeVar("T")


class WorkerRoutes(_BaseClient[R, T]):
    """A worker's routes, written once for the sync and the async client."""

    service_name = "worker"

    def health(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /health`` (public): answers even when every slot is busy (B09)."""
        return self._get("health", "/health", auth=auth, timeout=timeout)

    def ready(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /v1/ready``: ``{"ready": false, "state": "loading", ...}`` then ``ready: true``."""
        return self._get("ready", "/v1/ready", auth=auth, timeout=timeout)

    def loading_progress(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /v1/loading/progress``: SSE ``loading`` stages, ``ready``, ``[DONE]``."""
        return self._get("loading_progress", "/v1/loading/progress", auth=auth, timeout=timeout)

    def inference(
        self,
        *,
        job_id: str,
        prompt: str,
        max_tokens: int,
        auth: Auth = USE_TOKEN,
        timeout: float | None = None,
        **extra: Any,
    ) -> R:
        """``POST /v1/inference``: SSE ``started``, ``token`` x n, ``end``, ``[DONE]``.

        ``extra`` fields (``temperature``, ``top_p``, ``stop``, ``seed``...) go into the body
        as given. No free slot is 503 ``ALL_SLOTS_BUSY`` at once (D10).
        """
        body = {"job_id": job_id, "prompt": prompt, "max_tokens": max_tokens, **extra}
        return self._post("inference", "/v1/inference", body, auth=auth, timeout=timeout)

    def shutdown(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``POST /v1/admin/shutdown``: new work 503, in-flight work finishes, then exit 0."""
        return self._post("shutdown", "/v1/admin/shutdown", None, auth=auth, timeout=timeout)


class WorkerClient(WorkerRoutes[Op, httpx.BaseTransport], _SyncClient):
    """Synchronous worker client on ``httpx.Client``: each call returns its recorded Op.

    Takes the arguments of :class:`~rbee_props.client.QueenClient`; pass
    ``service=f"worker:{worker_id}"`` so the history says which worker answered (default
    ``"worker"``). The base URL is the ``url`` the hive lists for the worker.
    """


class AsyncWorkerClient(
    WorkerRoutes[Coroutine[Any, Any, Op], httpx.AsyncBaseTransport], _AsyncClient
):
    """Asynchronous worker client on ``httpx.AsyncClient``; same arguments as WorkerClient."""
