"""The reference worker: loads a (fake) model, reports ready to its hive, serves SSE inference.

``python -m rbee_props.reference.worker --worker-id ID --model-ref REF --backend B --device D
--port P --callback-url URL --slots K --token-file F``

Contract §5.3 (intended): bind first, then load, then call the hive's ready callback with the
token and the real URL; ``k`` slots with an immediate 503 ``ALL_SLOTS_BUSY`` when full (D10);
tokens are produced by a deterministic generator, no model weights. Planted bug
``no-slot-admission`` (B10) makes requests wait for a slot instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from rbee_props.reference import _program as program
from rbee_props.reference._http import ApiError, build_app, read_json, sse, sse_response
from rbee_props.reference.validation import Field, Validator, parse_body

NAME = "worker"
LAYERS = 32
VOCAB = [
    "the",
    "bee",
    "hums",
    "over",
    "warm",
    "clover",
    "while",
    "queens",
    "plan",
    "and",
    "hives",
    "keep",
    "count",
    "of",
    "every",
    "worker",
    "that",
    "loads",
    "a",
    "model",
    "and",
    "answers",
    "its",
    "ready",
    "call",
]
log = logging.getLogger("rbee_props.reference.worker")


class Worker:
    """One worker's state: lifecycle, slots and loading progress."""

    def __init__(self, args: Any, startup: program.Startup) -> None:
        self.worker_id: str = args.worker_id
        self.model_ref: str = args.model_ref
        self.backend: str = args.backend
        self.device: int = args.device
        self.slots_total: int = args.slots
        self.url = f"http://{args.host}:{args.port}"
        self.callback_url: str = args.callback_url
        self.startup = startup
        self.t = startup.timings
        self.busy = 0
        self.state = "loading"
        self.layers_loaded = 0
        self.shutting_down = False
        self.exit_code = 0
        self.last_activity = time.time()
        self.changed = asyncio.Condition()
        self.tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------
    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def load(self) -> None:
        """Fake model load, then the ready callback; a failed callback exits non-zero."""
        for layer in range(1, LAYERS + 1):
            await asyncio.sleep(self.t["load_delay"] / LAYERS)
            self.layers_loaded = layer
            await self.notify()
        self.state = "idle"
        self.last_activity = time.time()
        await self.notify()
        if not await self.report_ready():
            self.exit_code = 1
            os.kill(os.getpid(), signal.SIGTERM)

    async def report_ready(self) -> bool:
        body = {
            "worker_id": self.worker_id,
            "url": self.url,
            "model_ref": self.model_ref,
            "backend": self.backend,
            "device": self.device,
        }
        headers = {"Authorization": f"Bearer {self.startup.token}"}
        delay = 0.05
        async with httpx.AsyncClient(timeout=5.0) as client:
            for _attempt in range(8):
                try:
                    response = await client.post(self.callback_url, json=body, headers=headers)
                except httpx.HTTPError as exc:
                    log.warning("ready callback failed: %s", type(exc).__name__)
                else:
                    if response.status_code < 300:
                        log.info("ready callback accepted")
                        return True
                    if response.status_code < 500:
                        log.error("ready callback refused with %d; exiting", response.status_code)
                        return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        log.error("ready callback undeliverable; exiting")
        return False

    async def shutdown_soon(self) -> None:
        """Let in-flight work finish (within the kill grace), then exit 0."""
        deadline = time.monotonic() + self.t["kill_grace"] * 0.8
        async with self.changed:
            while self.busy and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    # -- slots ---------------------------------------------------------------------------------
    def _update_state(self) -> None:
        if self.state != "loading":
            self.state = "busy" if self.busy >= self.slots_total else "idle"

    async def acquire(self) -> None:
        if self.shutting_down:
            raise ApiError(503, "SHUTTING_DOWN", "worker is shutting down")
        if self.state == "loading":
            raise ApiError(503, "NOT_READY", "model is still loading")
        if self.busy >= self.slots_total:
            if "no-slot-admission" not in self.startup.bugs:
                raise ApiError(503, "ALL_SLOTS_BUSY", "all slots are busy")
            async with self.changed:  # planted bug B10: queue instead of refusing
                await self.changed.wait_for(lambda: self.busy < self.slots_total)
        self.busy += 1
        self.last_activity = time.time()
        self._update_state()

    def release(self) -> None:
        self.busy -= 1
        self.last_activity = time.time()
        self._update_state()
        self.spawn(self.notify())


class SlotStream(StreamingResponse):
    """A streaming response that frees its slot however the stream ends (S17)."""

    def __init__(self, worker: Worker, events: AsyncIterator[str]) -> None:
        super().__init__(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
        self.worker = worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.worker.release()


def tokens_for(prompt: str, seed: int, n: int) -> list[str]:
    """The deterministic token generator: same prompt and seed, same tokens."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return [VOCAB[(digest[i % len(digest)] + i) % len(VOCAB)] for i in range(n)]


def make_app(worker: Worker) -> Any:
    check = Validator(worker.startup.bugs)
    execute = {
        "job_id": Field(check.job_id),
        "prompt": Field(check.prompt),
        "max_tokens": Field(check.max_tokens),
        "temperature": Field(check.number(0, 2), 1.0),
        "top_p": Field(check.number(0, 1), 1.0),
        "top_k": Field(check.integer(0, 2**31 - 1), 0),
        "repetition_penalty": Field(check.number(0, 2), 1.0),
        "min_p": Field(check.number(0, 1), 0.0),
        "stop": Field(check.stop, []),
        "seed": Field(check.integer(0, 2**64 - 1), 42),
    }

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "shutting_down" if worker.shutting_down else "healthy",
                "worker_id": worker.worker_id,
                "vram_bytes": 0,
                "state": worker.state,
                "slots_total": worker.slots_total,
                "slots_available": max(worker.slots_total - worker.busy, 0),
                "last_activity_unix": worker.last_activity,
            }
        )

    async def ready(request: Request) -> Response:
        if worker.state == "loading":
            return JSONResponse(
                {"ready": False, "state": "loading", "progress_url": "/v1/loading/progress"}
            )
        return JSONResponse({"ready": True, "state": worker.state, "model_loaded": True})

    async def progress(request: Request) -> Response:
        async def events() -> AsyncIterator[str]:
            sent = -1
            while worker.state == "loading":
                if worker.layers_loaded != sent:
                    sent = worker.layers_loaded
                    yield sse({"stage": "loading", "layers_loaded": sent, "layers_total": LAYERS})
                async with worker.changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(worker.changed.wait(), 1.0)
            yield sse({"stage": "ready"})
            yield sse("[DONE]")

        return sse_response(events())

    async def inference(request: Request) -> Response:
        req = parse_body(await read_json(request), execute)
        await worker.acquire()
        words = tokens_for(req["prompt"], req["seed"], req["max_tokens"])

        async def events() -> AsyncIterator[str]:
            started = time.monotonic()
            yield sse({"type": "started", "job_id": req["job_id"], "model": worker.model_ref})
            for i, word in enumerate(words):
                if worker.t["token_delay"]:
                    await asyncio.sleep(worker.t["token_delay"])
                yield sse({"type": "token", "t": word, "i": i})
            decode_ms = int((time.monotonic() - started) * 1000)
            yield sse(
                {
                    "type": "end",
                    "tokens_out": len(words),
                    "decode_time_ms": decode_ms,
                    "stop_reason": "MAX_TOKENS",
                }
            )
            yield sse("[DONE]")

        return SlotStream(worker, events())

    async def shutdown(request: Request) -> Response:
        if not worker.shutting_down:
            worker.shutting_down = True
            worker.spawn(worker.shutdown_soon())
        return JSONResponse({"status": "shutting_down", "worker_id": worker.worker_id})

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        worker.spawn(worker.load())
        yield
        for task in list(worker.tasks):
            task.cancel()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/ready", ready, methods=["GET"]),
        Route("/v1/loading/progress", progress, methods=["GET"]),
        Route("/v1/inference", inference, methods=["POST"]),
        Route("/v1/admin/shutdown", shutdown, methods=["POST"]),
        Route("/v1/shutdown", shutdown, methods=["POST"]),
    ]
    return build_app(
        routes,
        token=worker.startup.token,
        public={("GET", "/health")},
        bugs=worker.startup.bugs,
        lifespan=lifespan,
    )


TIMING_NAMES = ("load_delay", "token_delay", "kill_grace")


def main(argv: list[str] | None = None) -> None:
    parser = program.OneLineParser(prog="rbee-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--model-ref", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--device", required=True, type=int)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--callback-url", required=True)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--token-file")
    parser.add_argument("--host", default="127.0.0.1")
    program.add_timing_flags(parser, TIMING_NAMES)
    args = parser.parse_args(argv)
    prog = parser.prog
    if args.slots < 1:
        program.fail(prog, f"--slots must be at least 1, got {args.slots}")
    startup = program.Startup(
        prog,
        token=program.load_token(prog, args.token_file),
        bugs=program.load_bugs(prog),
        timings=program.resolve_timings(prog, args, TIMING_NAMES),
    )
    program.configure_logging(f"worker[{args.worker_id}]")
    sock = program.bind_socket(prog, args.host, args.port)
    worker = Worker(args, startup)
    program.serve(make_app(worker), sock, graceful_timeout=startup.timings["kill_grace"])
    raise SystemExit(worker.exit_code)


if __name__ == "__main__":
    main()
