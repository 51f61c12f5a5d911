"""rbee-hive of the reference stack: spawns workers, watches them, keeps the model catalog.

Run as ``python -m rbee_props.reference.hive --addr HOST:PORT --name NAME --queen-url URL
--token-file F --data-dir D --worker-ports A-B`` plus the timing flags (contract §5.2, §6, §7,
D3, D4). Workers are real child processes; their pid files under ``D/workers/`` let a restarted
hive reap the workers of a killed predecessor. The registry and process handling live in
:mod:`rbee_props.reference._hive_workers`, the catalog and downloads in
:mod:`rbee_props.reference._catalog`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from rbee_props.reference._catalog import Catalog, Downloads, check_model_known
from rbee_props.reference._hive_procs import ALL_INTERFACES, reap_previous_workers
from rbee_props.reference._hive_workers import HiveConfig, WorkerRegistry
from rbee_props.reference._http import ApiError, build_app, read_json, sse_response
from rbee_props.reference._program import (
    OneLineParser,
    add_timing_flags,
    bind_socket,
    configure_logging,
    fail,
    load_bugs,
    load_token,
    parse_host_port,
    resolve_timings,
    serve,
)
from rbee_props.reference.validation import DNS_LABEL, Field, Validator, parse_body

__all__ = ["build_hive_app", "main"]

PROGRAM = "rbee-hive"
VERSION = "0.1.0"
TIMING_NAMES = (
    "health_interval",
    "health_timeout",
    "health_failures",
    "ready_timeout",
    "idle_timeout",
    "kill_grace",
    "shutdown_timeout",
    "load_delay",
    "token_delay",
)
PUBLIC = frozenset(
    {("GET", "/v1/health"), ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics")}
)
#: part of the shutdown cap given to uvicorn for open connections; the rest is the cascade
GRACEFUL_SHARE = 0.2


def build_hive_app(cfg: HiveConfig) -> Any:
    """The hive's ASGI app: routes, auth, and a lifespan that runs the monitor and the cascade."""
    registry = WorkerRegistry(cfg)
    catalog = Catalog(cfg.data_dir)
    downloads = Downloads(catalog)
    check = Validator(cfg.bugs)
    spawn_fields = {
        "model_ref": Field(check.model_ref),
        "backend": Field(check.backend),
        "device": Field(check.u32),
        "model_path": Field(check.rel_path, ""),
        "slots_total": Field(check.slots, cfg.default_slots),
    }
    ready_fields = {
        "worker_id": Field(check.worker_id),
        "url": Field(check.url),
        "model_ref": Field(check.model_ref),
        "backend": Field(check.backend),
        "device": Field(check.u32),
    }
    download_fields = {"model_ref": Field(check.model_ref)}

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "alive", "version": VERSION, "api_version": "v1"})

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def ready_check(request: Request) -> Response:
        workers = list(registry.workers.values())
        ready = sum(1 for w in workers if w.state in ("idle", "busy"))
        if ready == 0:
            raise ApiError(503, "NOT_READY", "no worker is ready")
        return JSONResponse(
            {"status": "ready", "workers_total": len(workers), "workers_ready": ready}
        )

    async def metrics(request: Request) -> Response:
        workers = list(registry.workers.values())
        lines = [
            "# HELP rbee_hive_workers_total Workers in the hive registry by state.",
            "# TYPE rbee_hive_workers_total gauge",
        ]
        for state in ("loading", "idle", "busy"):
            count = sum(1 for w in workers if w.state == state)
            lines.append(f'rbee_hive_workers_total{{state="{state}"}} {count}')
        failed = sum(w.failed_health_checks for w in workers)
        lines += [
            "# HELP rbee_hive_failed_health_checks Failed health checks in a row, all workers.",
            "# TYPE rbee_hive_failed_health_checks gauge",
            f"rbee_hive_failed_health_checks {failed}",
            "# HELP rbee_hive_restart_count Worker restarts (the hive never restarts workers).",
            "# TYPE rbee_hive_restart_count gauge",
            "rbee_hive_restart_count 0",
            "# HELP rbee_hive_health_sweeps_total Health sweeps completed since start.",
            "# TYPE rbee_hive_health_sweeps_total counter",
            f"rbee_hive_health_sweeps_total {registry.sweeps}",
        ]
        return PlainTextResponse(
            "\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def spawn(request: Request) -> Response:
        body = parse_body(await read_json(request), spawn_fields)
        check_model_known(body["model_ref"])
        catalog.add(body["model_ref"])
        worker = await registry.spawn(
            body["model_ref"], body["backend"], body["device"], body["slots_total"]
        )
        return JSONResponse({"worker_id": worker.id, "url": worker.url, "state": "loading"})

    async def ready(request: Request) -> Response:
        body = parse_body(await read_json(request), ready_fields)
        await registry.ready(body["worker_id"])
        return JSONResponse(
            {"message": "Worker registered as ready", "worker_id": body["worker_id"]}
        )

    async def list_workers(request: Request) -> Response:
        return JSONResponse({"workers": [w.info() for w in registry.workers.values()]})

    async def download(request: Request) -> Response:
        body = parse_body(await read_json(request), download_fields)
        return JSONResponse(downloads.start(body["model_ref"]))

    async def download_progress(request: Request) -> Response:
        download_id = request.query_params.get("id")
        if not download_id:
            raise ApiError(400, "VALIDATION_ERROR", "missing query parameter id")
        return sse_response(downloads.get(download_id).stream())

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await registry.start()
        try:
            yield
        finally:
            cap = cfg.timings["shutdown_timeout"]
            await downloads.close()
            await registry.close(cap * (1 - GRACEFUL_SHARE) - 0.2)

    routes = [
        Route("/v1/health", health, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready_check, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/workers/spawn", spawn, methods=["POST"]),
        Route("/v1/workers/ready", ready, methods=["POST"]),
        Route("/v1/workers/list", list_workers, methods=["GET"]),
        Route("/v1/models/download", download, methods=["POST"]),
        Route("/v1/models/download/progress", download_progress, methods=["GET"]),
    ]
    return build_app(routes, token=cfg.token, public=PUBLIC, bugs=cfg.bugs, lifespan=lifespan)


def _worker_ports(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,5})-(\d{1,5})", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]) <= 65535:
        fail(PROGRAM, f"--worker-ports expects A-B with 1 <= A <= B <= 65535, got {text!r}")
    return int(match[1]), int(match[2])


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:9200", help="HOST:PORT to listen on")
    parser.add_argument("--name", default="localhost", help="this hive's node_name at the queen")
    parser.add_argument(
        "--queen-url", default="http://127.0.0.1:8080", help="how to reach the queen"
    )
    parser.add_argument("--token-file", default=None, help="file holding the stack token")
    parser.add_argument("--data-dir", default=str(Path.home() / ".rbee"), help="catalog, pid files")
    parser.add_argument("--worker-ports", default="8081-9000", help="port range A-B for workers")
    parser.add_argument("--worker-slots", type=int, default=1, help="slots of a spawned worker")
    parser.add_argument(
        "--advertise-host",
        default=None,
        help="host name the queen reaches this hive's workers at (e.g. a compose network "
        "alias); workers then listen on all interfaces (default: 127.0.0.1 only)",
    )
    add_timing_flags(parser, TIMING_NAMES)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Start the hive; one stderr line and a non-zero exit if it cannot."""
    args = _parser().parse_args(argv)
    bugs = load_bugs(PROGRAM)
    timings = resolve_timings(PROGRAM, args, TIMING_NAMES)
    token = load_token(PROGRAM, args.token_file)
    host, port = parse_host_port(PROGRAM, args.addr)
    ports = _worker_ports(args.worker_ports)
    if not DNS_LABEL.fullmatch(args.name):
        fail(PROGRAM, f"--name must be a DNS label (letters, digits, -), got {args.name!r}")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", args.queen_url):
        fail(PROGRAM, f"--queen-url must be an http(s) URL, got {args.queen_url!r}")
    if not 1 <= args.worker_slots <= 1024:
        fail(PROGRAM, "--worker-slots must be in 1..1024")
    if args.advertise_host is not None and not re.fullmatch(r"[A-Za-z0-9.-]+", args.advertise_host):
        fail(PROGRAM, f"--advertise-host must be a host name or IP, got {args.advertise_host!r}")
    data_dir = Path(args.data_dir).resolve()
    try:
        (data_dir / "workers").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(PROGRAM, f"cannot create --data-dir {args.data_dir!r}: {exc.strerror}")
    token_file = str(Path(args.token_file).resolve()) if args.token_file else None
    sock = bind_socket(PROGRAM, host, port)
    configure_logging(PROGRAM)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe is noise
    reap_previous_workers(data_dir / "workers")
    callback_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    cfg = HiveConfig(
        name=args.name,
        queen_url=args.queen_url.rstrip("/"),
        callback_url=f"http://{callback_host}:{port}/v1/workers/ready",
        token=token,
        token_file=token_file,
        data_dir=data_dir,
        ports=ports,
        default_slots=args.worker_slots,
        timings=timings,
        bugs=bugs,
    )
    if args.advertise_host:
        cfg.worker_bind, cfg.advertise_host = ALL_INTERFACES, args.advertise_host
    serve(build_hive_app(cfg), sock, graceful_timeout=timings["shutdown_timeout"] * GRACEFUL_SHARE)


if __name__ == "__main__":
    main()
