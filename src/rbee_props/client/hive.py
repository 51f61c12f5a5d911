"""The hive client: rbee-hive's routes (contract §5.2) as calls that each record an Op.

Every method takes ``auth=`` (see :data:`~rbee_props.client.USE_TOKEN`) and ``timeout=`` (None:
the client's default) and records its parameters as the op's ``args``. ``HiveClient`` returns
the :class:`~rbee_props.history.Op`; ``AsyncHiveClient`` is awaited for it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

from rbee_props.client._base import (
    USE_TOKEN,
    Auth,
    _AsyncClient,
    _BaseClient,
    _SyncClient,
    worker_fields,
)
from rbee_props.history import Op

__all__ = ["AsyncHiveClient", "HiveClient", "HiveRoutes"]

R = TypeVar("R")
T = TypeVar("T")


class HiveRoutes(_BaseClient[R, T]):
    """The hive's routes, written once for the sync and the async client."""

    service_name = "hive1"

    # -- public probes --------------------------------------------------------------------------
    def health(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /v1/health`` (public): ``{"status":"alive","version",...}``."""
        return self._get("health", "/v1/health", auth=auth, timeout=timeout)

    def health_live(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /health/live`` (public): ``{"status":"alive"}``."""
        return self._get("health_live", "/health/live", auth=auth, timeout=timeout)

    def health_ready(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /health/ready`` (public): 200 with counts, 503 ``NOT_READY`` without a worker."""
        return self._get("health_ready", "/health/ready", auth=auth, timeout=timeout)

    def metrics(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /metrics`` (public): Prometheus text (the op's body is the text)."""
        return self._get("metrics", "/metrics", auth=auth, timeout=timeout)

    # -- workers --------------------------------------------------------------------------------
    def spawn(
        self,
        *,
        model_ref: str,
        backend: str = "cpu",
        device: int = 0,
        slots_total: int | None = None,
        model_path: str | None = None,
        auth: Auth = USE_TOKEN,
        timeout: float | None = None,
    ) -> R:
        """``POST /v1/workers/spawn``: start a worker, 200 ``{worker_id, url, state:"loading"}``.

        ``slots_total`` and ``model_path`` left as None are left out of the body (optional as
        intended; an upstream build requires ``model_path``: pass ``model_path=""`` there).
        """
        body: dict[str, Any] = {"model_ref": model_ref, "backend": backend, "device": device}
        if slots_total is not None:
            body["slots_total"] = slots_total
        if model_path is not None:
            body["model_path"] = model_path
        return self._post("spawn", "/v1/workers/spawn", body, auth=auth, timeout=timeout)

    def ready(
        self,
        worker_id: str,
        *,
        url: str,
        model_ref: str,
        backend: str = "cpu",
        device: int = 0,
        auth: Auth = USE_TOKEN,
        timeout: float | None = None,
    ) -> R:
        """``POST /v1/workers/ready``: the worker's callback; loading -> idle, else 404/409."""
        body = worker_fields(worker_id, url, model_ref, backend, device)
        return self._post("ready", "/v1/workers/ready", body, auth=auth, timeout=timeout)

    def list_workers(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /v1/workers/list``: ``{"workers": [WorkerInfo]}`` (the id is under ``id``)."""
        return self._get("list_workers", "/v1/workers/list", auth=auth, timeout=timeout)

    # -- models ---------------------------------------------------------------------------------
    def download(
        self, model_ref: str, *, auth: Auth = USE_TOKEN, timeout: float | None = None
    ) -> R:
        """``POST /v1/models/download``: ``{"download_id", "local_path"}``; a hit is ``cached``."""
        body = {"model_ref": model_ref}
        return self._post("download", "/v1/models/download", body, auth=auth, timeout=timeout)

    def download_progress(
        self, download_id: str, *, auth: Auth = USE_TOKEN, timeout: float | None = None
    ) -> R:
        """``GET /v1/models/download/progress?id=``: SSE stages then ``[DONE]``; unknown 404."""
        return self._get(
            "download_progress",
            "/v1/models/download/progress",
            params={"id": download_id},
            args={"download_id": download_id},
            auth=auth,
            timeout=timeout,
        )


class HiveClient(HiveRoutes[Op, httpx.BaseTransport], _SyncClient):
    """Synchronous hive client on ``httpx.Client``: each call returns its recorded Op.

    Takes the arguments of :class:`~rbee_props.client.QueenClient`; ``service`` defaults to
    ``"hive1"``: pass the hive's component name (``"hive2"``...) when there are several.
    """


class AsyncHiveClient(HiveRoutes[Coroutine[Any, Any, Op], httpx.AsyncBaseTransport], _AsyncClient):
    """Asynchronous hive client on ``httpx.AsyncClient``; same arguments as HiveClient."""
