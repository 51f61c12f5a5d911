"""The queen client: queen-rbee's routes (contract §5.1) as calls that each record an Op.

Every method takes ``auth=`` (see :data:`~rbee_props.client.USE_TOKEN`) and ``timeout=`` (None:
the client's default) and records its parameters as the op's ``args``. ``QueenClient`` returns
the :class:`~rbee_props.history.Op`; ``AsyncQueenClient`` is awaited for it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Final, TypeVar

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

__all__ = ["DEFAULT_GIT_REPO_URL", "AsyncQueenClient", "QueenClient", "QueenRoutes"]

DEFAULT_GIT_REPO_URL: Final = "https://github.com/veighnsche/llama-orch.git"

R = TypeVar("R")
T = TypeVar("T")


class QueenRoutes(_BaseClient[R, T]):
    """The queen's routes, written once for the sync and the async client."""

    service_name = "queen"

    def health(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /health`` (public), kind ``queen_health``: 200 ``{"status":"ok",...}``."""
        return self._get("queen_health", "/health", auth=auth, timeout=timeout)

    # -- worker registry ------------------------------------------------------------------------
    def register_worker(
        self,
        worker_id: str,
        *,
        url: str,
        model_ref: str,
        backend: str = "cpu",
        node_name: str,
        device: int = 0,
        slots_total: int = 1,
        auth: Auth = USE_TOKEN,
        timeout: float | None = None,
    ) -> R:
        """``POST /v2/workers/register``: add an idle worker; a present id is 409 (D1)."""
        body = worker_fields(worker_id, url, model_ref, backend, device)
        body |= {"node_name": node_name, "slots_total": slots_total}
        return self._post(
            "register_worker", "/v2/workers/register", body, auth=auth, timeout=timeout
        )

    def list_workers(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /v2/workers/list``: ``{"workers": [{worker_id, node, state, model_ref, url}]}``."""
        return self._get("list_workers", "/v2/workers/list", auth=auth, timeout=timeout)

    def workers_health(
        self, node: str, *, auth: Auth = USE_TOKEN, timeout: float | None = None
    ) -> R:
        """``GET /v2/workers/health?node=``: the workers of ``node`` with ``ready`` = idle."""
        params = {"node": node}
        return self._get(
            "workers_health", "/v2/workers/health", params=params, auth=auth, timeout=timeout
        )

    def shutdown_worker(
        self, worker_id: str, *, auth: Auth = USE_TOKEN, timeout: float | None = None
    ) -> R:
        """``POST /v2/workers/shutdown``: stop a worker; unknown 404, unreachable 503."""
        body = {"worker_id": worker_id}
        return self._post(
            "shutdown_worker", "/v2/workers/shutdown", body, auth=auth, timeout=timeout
        )

    # -- beehive registry -----------------------------------------------------------------------
    def add_beehive(
        self,
        node_name: str,
        *,
        ssh_host: str,
        hive_port: int,
        ssh_user: str = "rbee",
        git_repo_url: str = DEFAULT_GIT_REPO_URL,
        git_branch: str = "main",
        install_path: str = "/opt/rbee",
        auth: Auth = USE_TOKEN,
        timeout: float | None = None,
    ) -> R:
        """``POST /v2/registry/beehives/add``: a hive at ``http://{ssh_host}:{hive_port}``.

        A name already present is 409 ``NODE_ALREADY_EXISTS`` (D15); an ``ssh_host`` containing
        ``unreachable`` fails the mock SSH check with 400.
        """
        body = {
            "node_name": node_name,
            "ssh_host": ssh_host,
            "hive_port": hive_port,
            "ssh_user": ssh_user,
            "git_repo_url": git_repo_url,
            "git_branch": git_branch,
            "install_path": install_path,
        }
        return self._post(
            "add_beehive", "/v2/registry/beehives/add", body, auth=auth, timeout=timeout
        )

    def list_beehives(self, *, auth: Auth = USE_TOKEN, timeout: float | None = None) -> R:
        """``GET /v2/registry/beehives/list``: ``{"nodes": [BeehiveNode]}`` by name."""
        return self._get("list_beehives", "/v2/registry/beehives/list", auth=auth, timeout=timeout)

    def remove_beehive(
        self, node_name: str, *, auth: Auth = USE_TOKEN, timeout: float | None = None
    ) -> R:
        """``POST /v2/registry/beehives/remove``: unknown name 404."""
        body = {"node_name": node_name}
        return self._post(
            "remove_beehive", "/v2/registry/beehives/remove", body, auth=auth, timeout=timeout
        )

    # -- work -----------------------------------------------------------------------------------
    def tasks(
        self,
        *,
        node: str,
        model: str,
        prompt: str,
        max_tokens: int,
        temperature: float = 0.7,
        auth: Auth = USE_TOKEN,
        timeout: float | None = None,
    ) -> R:
        """``POST /v2/tasks``: run a prompt on ``node``, spawning a worker if none is idle (SSE).

        It may spawn and wait for a worker: give a ``timeout`` longer than the ready wait.
        """
        body = {
            "node": node,
            "model": model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        return self._post("tasks", "/v2/tasks", body, auth=auth, timeout=timeout)

    def inference(
        self,
        *,
        prompt: str,
        model: str | None = None,
        max_tokens: int = 8,
        temperature: float = 0.7,
        auth: Auth = USE_TOKEN,
        timeout: float | None = None,
    ) -> R:
        """``POST /v1/inference``: an idle worker of ``model`` streams the tokens (SSE).

        ``model=None`` leaves the field out of the body (the queen then takes any idle worker).
        """
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if model is not None:
            body["model"] = model
        return self._post("inference", "/v1/inference", body, auth=auth, timeout=timeout)


class QueenClient(QueenRoutes[Op, httpx.BaseTransport], _SyncClient):
    """Synchronous queen client on ``httpx.Client``: each call returns its recorded Op.

    Args:
        base_url: the queen, e.g. ``stack.urls["queen"]``.
        token: the stack token, sent as ``Authorization: Bearer <token>`` unless ``auth=`` says
            otherwise; recorded headers show ``Bearer <token>``.
        history: where every call is recorded; the token is added to its redactor.
        lane: the concurrent "process" the ops belong to (the checker splits by lane).
        timeout: default seconds per call (connect, read and write each).
        service: the service name recorded in each op (default ``"queen"``).
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
    """


class AsyncQueenClient(
    QueenRoutes[Coroutine[Any, Any, Op], httpx.AsyncBaseTransport], _AsyncClient
):
    """Asynchronous queen client on ``httpx.AsyncClient``; same arguments as QueenClient."""
