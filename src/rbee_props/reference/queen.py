"""The reference queen-rbee: beehive registry, worker registry, inference and task routing.

``python -m rbee_props.reference.queen --port P --database FILE --token-file F``

Contract §5.1 (intended): beehives in SQLite (``_beehives``), workers in memory with eviction by
health checks and hive reconciliation (``_queen_workers``), inference and tasks relayed to
workers as SSE (``_queen_routing``). The beehive add's SSH check is pluggable; the reference one
is ``MOCK_SSH`` (D15). Planted bugs: ``dup-register``, ``ghost-after-kill``,
``hive-restart-no-reconcile``, ``text-errors`` (and the shared ``lenient-validation``,
``dev-mode-bypass``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rbee_props.reference import _program as program
from rbee_props.reference._beehives import BeehiveStore, SshCheck, StorageError, mock_ssh_check
from rbee_props.reference._http import ApiError, build_app, read_json
from rbee_props.reference._queen_routing import Upstream, hive_url
from rbee_props.reference._queen_workers import Monitor, WorkerEntry, WorkerRegistry
from rbee_props.reference.validation import Field, Validator, parse_body

__all__ = ["Queen", "main", "make_app"]

NAME = "queen"
VERSION = "0.1.0"
TIMING_NAMES = (
    "health_interval",
    "health_timeout",
    "health_failures",
    "task_ready_wait",
    "spawn_timeout",
    "inference_timeout",
    "kill_grace",
)
log = logging.getLogger("rbee_props.reference.queen")


class Queen:
    """The queen's state: stores, client, background sweep."""

    def __init__(
        self,
        startup: program.Startup,
        store: BeehiveStore,
        *,
        ssh_check: SshCheck = mock_ssh_check,
    ) -> None:
        self.startup = startup
        self.bugs = startup.bugs
        self.t = startup.timings
        self.store = store
        self.ssh_check = ssh_check
        self.registry = WorkerRegistry()
        self.check = Validator(startup.bugs)
        self.client: httpx.AsyncClient | None = None
        self.upstream: Upstream | None = None
        check = self.check
        self.add_node = {
            "node_name": Field(check.node_name),
            "ssh_host": Field(check.safe_word),
            "ssh_user": Field(check.safe_word),
            "git_repo_url": Field(check.repo_url),
            "git_branch": Field(check.safe_word),
            "install_path": Field(check.abs_path),
            "ssh_port": Field(check.port, 22),
            "ssh_key_path": Field(check.abs_path, None),
            "backends": Field(check.opt_text, None),
            "devices": Field(check.opt_text, None),
            "hive_port": Field(check.port, 9200),
        }
        self.register_worker = {
            "worker_id": Field(check.worker_id),
            "url": Field(check.url),
            "model_ref": Field(check.model_ref),
            "backend": Field(check.backend),
            "node_name": Field(check.node_name),
            "device": Field(check.u32),
            "slots_total": Field(check.slots, 1),
            "vram_bytes": Field(check.integer(0, 2**64 - 1), None),
        }
        self.inference = {
            "model": Field(check.model_ref, None),
            "prompt": Field(check.prompt),
            "max_tokens": Field(check.max_tokens, 100),
            "temperature": Field(check.number(0, 2), 0.7),
        }
        self.task = {
            "node": Field(check.node_name),
            "model": Field(check.model_ref),
            "prompt": Field(check.prompt),
            "max_tokens": Field(check.max_tokens),
            "temperature": Field(check.number(0, 2)),
        }

    def client_or_503(self) -> Upstream:
        if self.upstream is None:
            raise ApiError(503, "SHUTTING_DOWN", "the queen is not serving")
        return self.upstream

    async def beehives(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.store.list)

    # -- beehive registry -----------------------------------------------------------------------
    async def beehive_add(self, request: Request) -> Response:
        node = parse_body(await read_json(request), self.add_node)
        name = node["node_name"]
        if not await asyncio.to_thread(self.ssh_check, node):
            log.info("beehive %s not added: SSH check failed", name)
            raise ApiError(400, "SSH_UNREACHABLE", "SSH connection to the node failed")
        if not await asyncio.to_thread(self.store.add, node):
            raise ApiError(409, "NODE_ALREADY_EXISTS", "a node of that name is already registered")
        log.info("beehive %s added", name)
        return JSONResponse(
            {"success": True, "message": f"Node '{name}' added successfully", "node_name": name}
        )

    async def beehive_list(self, request: Request) -> Response:
        return JSONResponse({"nodes": await self.beehives()})

    async def beehive_remove(self, request: Request) -> Response:
        body = parse_body(await read_json(request), {"node_name": Field(self.check.node_name)})
        name = body["node_name"]
        if not await asyncio.to_thread(self.store.remove, name):
            raise ApiError(404, "NODE_NOT_FOUND", "no node of that name is registered")
        log.info("beehive %s removed", name)
        return JSONResponse({"success": True, "message": f"Node '{name}' removed successfully"})

    # -- worker registry ------------------------------------------------------------------------
    async def worker_register(self, request: Request) -> Response:
        body = parse_body(await read_json(request), self.register_worker)
        worker_id = body["worker_id"]
        if self.registry.get(worker_id) is not None and "dup-register" not in self.bugs:
            raise ApiError(
                409, "WORKER_ALREADY_REGISTERED", "a worker of that id is already registered"
            )
        self.registry.put(WorkerEntry(**body, state="idle", slots_available=body["slots_total"]))
        log.info("worker %s registered on node %s", worker_id, body["node_name"])
        return JSONResponse(
            {
                "success": True,
                "message": f"Worker '{worker_id}' registered successfully",
                "worker_id": worker_id,
            }
        )

    async def worker_list(self, request: Request) -> Response:
        return JSONResponse({"workers": [w.summary() for w in self.registry.all()]})

    async def worker_health(self, request: Request) -> Response:
        if "node" not in request.query_params:
            raise ApiError(400, "VALIDATION_ERROR", "missing query parameter node")
        node = self.check.node_name("node", request.query_params["node"])
        workers = [
            {"worker_id": w.worker_id, "state": w.state, "ready": w.state == "idle"}
            for w in self.registry.all()
            if w.node_name == node
        ]
        return JSONResponse({"status": "ok", "workers": workers})

    async def worker_shutdown(self, request: Request) -> Response:
        body = parse_body(await read_json(request), {"worker_id": Field(self.check.worker_id)})
        worker_id = body["worker_id"]
        entry = self.registry.get(worker_id)
        if entry is None:
            raise ApiError(404, "WORKER_NOT_FOUND", "no worker of that id is registered")
        await self.client_or_503().shutdown(entry)
        return JSONResponse(
            {"success": True, "message": f"Worker '{worker_id}' shutdown command sent"}
        )

    # -- work -----------------------------------------------------------------------------------
    async def infer(self, request: Request) -> Response:
        body = parse_body(await read_json(request), self.inference)
        upstream = self.client_or_503()
        candidates = self.registry.idle(model=body["model"])
        if not candidates:
            raise ApiError(503, "NO_IDLE_WORKERS", "no idle worker serves that model")
        return await upstream.infer(candidates[0], body)

    async def tasks(self, request: Request) -> Response:
        body = parse_body(await read_json(request), self.task)
        upstream = self.client_or_503()
        node = await asyncio.to_thread(self.store.get, body["node"])
        if node is None:
            raise ApiError(404, "NODE_NOT_FOUND", "no node of that name is registered")
        candidates = self.registry.idle(model=body["model"], node=body["node"])
        if candidates:  # S12: an idle worker of the model on the node takes the task
            entry = candidates[0]
        else:
            hive = hive_url(node)
            worker_id = await upstream.spawn(hive, body["model"])
            entry = await upstream.wait_registered(hive, worker_id)
        return await upstream.infer(entry, body)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": VERSION})

    # -- lifecycle ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        token = self.startup.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        async with httpx.AsyncClient(headers=headers, limits=limits, trust_env=False) as client:
            self.client = client
            self.upstream = Upstream(client, self.registry, timings=self.t, bugs=self.bugs)
            monitor = Monitor(self.registry, client, self.beehives, timings=self.t, bugs=self.bugs)
            sweep = asyncio.create_task(monitor.run(), name="queen-sweep")
            log.info("queen %s serving", VERSION)
            try:
                yield
            finally:
                sweep.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweep
                self.upstream = None


def make_app(queen: Queen) -> Any:
    """The queen's ASGI app: the routes of contract §5.1 behind the shared middleware."""
    routes = [
        Route("/health", queen.health, methods=["GET"]),
        Route("/v2/registry/beehives/add", queen.beehive_add, methods=["POST"]),
        Route("/v2/registry/beehives/list", queen.beehive_list, methods=["GET"]),
        Route("/v2/registry/beehives/remove", queen.beehive_remove, methods=["POST"]),
        Route("/v2/workers/register", queen.worker_register, methods=["POST"]),
        Route("/v2/workers/list", queen.worker_list, methods=["GET"]),
        Route("/v2/workers/health", queen.worker_health, methods=["GET"]),
        Route("/v2/workers/shutdown", queen.worker_shutdown, methods=["POST"]),
        Route("/v2/tasks", queen.tasks, methods=["POST"]),
        Route("/v1/inference", queen.infer, methods=["POST"]),
    ]
    return build_app(
        routes,
        token=queen.startup.token,
        public={("GET", "/health")},
        bugs=queen.bugs,
        lifespan=queen.lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    parser = program.OneLineParser(prog="queen-rbee", description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--database", required=True)
    parser.add_argument("--token-file")
    parser.add_argument("--host", default="127.0.0.1")
    program.add_timing_flags(parser, TIMING_NAMES)
    args = parser.parse_args(argv)
    prog = parser.prog
    if not 0 < args.port < 65536:
        program.fail(prog, f"--port must be in 1..65535, got {args.port}")
    startup = program.Startup(
        prog,
        token=program.load_token(prog, args.token_file),
        bugs=program.load_bugs(prog),
        timings=program.resolve_timings(prog, args, TIMING_NAMES),
    )
    program.configure_logging(NAME)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe otherwise
    store = BeehiveStore(args.database)
    try:
        store.create()
    except StorageError as exc:
        program.fail(prog, f"cannot use --database {args.database!r}: {exc}")
    sock = program.bind_socket(prog, args.host, args.port)
    queen = Queen(startup, store)
    program.serve(make_app(queen), sock, graceful_timeout=startup.timings["kill_grace"])


if __name__ == "__main__":
    main()
