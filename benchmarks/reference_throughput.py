"""Request throughput and start-up latency of the reference rbee programs (queen, hive, worker).

What is measured (all clocks are ``time.perf_counter``):

(a) ``GET /v2/workers/list`` on the queen of the default reference stack
    (``LocalStack(default_config())``, no workers registered): one keep-alive ``httpx.Client``
    sends the requests one after another (100 warm-up requests, then up to 2000 timed ones).
    Reported: requests/s over the timed run, p50/p99/max latency of one request, errors.
(b) ``POST /v1/inference`` ``{"prompt": "hello rbee", "max_tokens": 4}`` through the queen, with
    one idle worker present (spawned with ``POST /v1/workers/spawn`` on hive1 and waited for until
    the queen lists it). Same client and counts as (a); a request counts as an error unless it
    answers 200 with a stream that ends in ``data: [DONE]``; errors are counted by status and
    error code (e.g. ``503 NO_IDLE_WORKERS``) and listed under the table.
(c) Start-up time of each program, started directly as a subprocess with the command line of the
    README ("The reference stack") and the stack's timings as ``RBEE_*`` env vars: from just
    before ``Popen`` until its public health route (queen and worker ``/health``, hive
    ``/v1/health``) first answers 200, polled every 2 ms. The worker's ready callback goes to a
    tiny in-process HTTP server that answers 200. 5 repetitions each, fresh data directories;
    median and max, plus the time from SIGTERM to exit.

How to read it: (a) is the floor of every check a test makes against the queen (auth middleware,
routing, JSON); (b) adds the queen's worker choice and the relayed SSE stream from the worker;
(c) is mostly Python interpreter plus import time, and bounds how fast a restart fault can heal.
A latency p50 near 40-44 ms on loopback is not computation: it is Nagle's algorithm on the
server's socket meeting the client's delayed ACK (a response written in two segments waits for
the ACK of the first); it hits back-to-back requests, while one sent after a pause of 50 ms or
more takes a few ms. Timed runs stop early after ``--budget`` seconds per phase (the table says
so), to stay within about two minutes on two cores. Figures vary by machine; compare runs made on
the same machine. The last stdout line is the same figures as JSON (``--json FILE`` also writes
them to a file); times in JSON are seconds.

Run: ``.venv/bin/python benchmarks/reference_throughput.py [--requests N] [--json FILE]``.
Every process it starts is stopped on exit, on error and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _bench
import httpx

from rbee_props.config import default_config
from rbee_props.stack import LocalStack

SPAWN_BODY = {"model_ref": "hf:demo/model", "backend": "cpu", "device": 0}
INFERENCE_BODY = {"prompt": "hello rbee", "max_tokens": 4}
POLL_INTERVAL = 0.002
STARTUP_TIMEOUT = 30.0


# -- (a) and (b): sequential requests from one client ----------------------------------------------
def measure_requests(
    call: Callable[[], str], *, n: int, warmup: int, budget: float
) -> dict[str, Any]:
    """Warm up, then time up to ``n`` sequential calls (stopping after ``budget`` seconds).

    ``call`` returns "ok" or a short description of what went wrong (counted by kind).
    """
    warm_errors = sum(call() != "ok" for _ in range(warmup))
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        outcome = call()
        t1 = time.perf_counter()
        latencies.append(t1 - t0)
        if outcome != "ok":
            kinds[outcome] = kinds.get(outcome, 0) + 1
        if t1 - start >= budget:
            break
    total = time.perf_counter() - start
    stats = _bench.summary(latencies)
    return {
        "requests": len(latencies),
        "requested": n,
        "warmup": warmup,
        "warmup_errors": warm_errors,
        "stopped_by_budget": len(latencies) < n,
        "seconds": total,
        "req_per_s": len(latencies) / total if total else None,
        "p50": stats["median"],
        "p99": stats["p99"],
        "max": stats["max"],
        "errors": sum(kinds.values()),
        "error_kinds": kinds,
    }


def outcome(response: httpx.Response, *, stream: bool = True) -> str:
    """ "ok", or the status and error code of a failed request ("503 NO_IDLE_WORKERS")."""
    if response.status_code == 200:
        if not stream or "data: [DONE]" in response.text:
            return "ok"
        return "200 without [DONE]"
    code = ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        code = str(response.json()["error"]["code"])
    return f"{response.status_code} {code}".strip()


def queen_ids(client: httpx.Client, queen: str) -> dict[str, str]:
    workers = client.get(queen + "/v2/workers/list").json()["workers"]
    return {w["worker_id"]: w.get("state", "") for w in workers}


def bench_stack(args: Any) -> dict[str, Any]:
    """(a) and (b) on one default reference stack."""
    out: dict[str, Any] = {}
    with LocalStack(default_config()) as stack:
        queen, hive = stack.urls["queen"], stack.urls[stack.hives[0]]
        headers = {"Authorization": f"Bearer {stack.token}"}
        with httpx.Client(headers=headers, timeout=30.0) as client:

            def list_workers() -> str:
                return outcome(client.get(queen + "/v2/workers/list"), stream=False)

            print("(a) GET /v2/workers/list on the queen ...", file=sys.stderr, flush=True)
            out["queen_list"] = measure_requests(
                list_workers, n=args.requests, warmup=args.warmup, budget=args.budget
            )
            out["queen_list"]["workers_listed"] = len(queen_ids(client, queen))

            spawned = client.post(hive + "/v1/workers/spawn", json=SPAWN_BODY)
            spawned.raise_for_status()
            worker_id = spawned.json()["worker_id"]
            took = stack.wait_until(
                lambda: queen_ids(client, queen).get(worker_id) == "idle",
                10.0,
                what="the spawned worker listed idle at the queen",
            )
            out["spawn_to_listed_idle"] = took

            def infer() -> str:
                return outcome(client.post(queen + "/v1/inference", json=INFERENCE_BODY))

            print("(b) POST /v1/inference through the queen ...", file=sys.stderr, flush=True)
            out["inference"] = measure_requests(
                infer, n=args.requests, warmup=args.warmup, budget=args.budget
            )
            out["inference"]["max_tokens"] = INFERENCE_BODY["max_tokens"]
    return out


# -- (c): start-up of each program -------------------------------------------------------------
class _Answer200(http.server.BaseHTTPRequestHandler):
    """Answers every request 200 with a small JSON body (stands in for the hive's callback)."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"message":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def component_env() -> dict[str, str]:
    """The user's environment without rbee variables, plus the stack's timings (as LocalStack)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RBEE_", "LLORCH_"))}
    env.update(default_config().timings.as_env())
    return env


def _tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return ""


def start_until_healthy(argv: list[str], health_url: str, log: Path) -> tuple[float, float | None]:
    """Start ``argv``; return (seconds until ``health_url`` answered 200, SIGTERM-to-exit).

    SIGTERM-to-exit is None when the program did not exit within 15 s (it is then SIGKILLed).
    """
    with log.open("wb") as log_file, httpx.Client(timeout=1.0, trust_env=False) as client:
        proc: subprocess.Popen[bytes] | None = None
        try:
            start = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                env=component_env(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            while True:
                if proc.poll() is not None:
                    msg = f"{argv[2]} exited with {proc.returncode} before healthy: {_tail(log)}"
                    raise RuntimeError(msg)
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(health_url).status_code == 200:
                        break
                if time.perf_counter() - start > STARTUP_TIMEOUT:
                    msg = f"{argv[2]} not healthy within {STARTUP_TIMEOUT:g}s: {_tail(log)}"
                    raise RuntimeError(msg)
                time.sleep(POLL_INTERVAL)
            healthy = time.perf_counter() - start
            stop_start = time.perf_counter()
            proc.terminate()
            stopped: float | None = None
            while time.perf_counter() - stop_start < 15.0:
                if proc.poll() is not None:  # Popen.wait(timeout) would sleep up to 50 ms
                    stopped = time.perf_counter() - stop_start
                    break
                time.sleep(POLL_INTERVAL)
            return healthy, stopped
        finally:
            if proc is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5.0)


def bench_startup(reps: int) -> dict[str, Any]:
    """(c): queen, hive and worker, each started ``reps`` times on fresh directories."""
    py = sys.executable
    results: dict[str, dict[str, list[Any]]] = {
        name: {"healthy": [], "sigterm_to_exit": []} for name in ("queen", "hive", "worker")
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer200)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="callback", daemon=True)
    thread.start()
    callback = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory(prefix="rbee-bench-") as tmp:
            root = Path(tmp)
            token_file = root / "token"
            token_file.write_text("bench-token-" + "x" * 24 + "\n")
            token_file.chmod(0o600)
            for rep in range(reps):
                print(f"(c) start-up, repetition {rep + 1}/{reps} ...", file=sys.stderr, flush=True)
                for name in ("queen", "hive", "worker"):
                    data = root / f"{name}-{rep}"
                    data.mkdir()
                    port = free_port()
                    if name == "queen":
                        argv = [py, "-m", "rbee_props.reference.queen", "--port", str(port),
                                "--database", str(data / "beehives.db"),
                                "--token-file", str(token_file)]  # fmt: skip
                        health = "/health"
                    elif name == "hive":
                        argv = [py, "-m", "rbee_props.reference.hive",
                                "--addr", f"127.0.0.1:{port}", "--name", "hive1",
                                "--queen-url", callback, "--token-file", str(token_file),
                                "--data-dir", str(data),
                                "--worker-ports", "20000-20039"]  # fmt: skip
                        health = "/v1/health"
                    else:
                        argv = [py, "-m", "rbee_props.reference.worker",
                                "--worker-id", f"bench-worker-{rep}", "--model-ref", "hf:org/m",
                                "--backend", "cpu", "--device", "0", "--port", str(port),
                                "--callback-url", callback + "/v1/workers/ready",
                                "--slots", "1", "--token-file", str(token_file)]  # fmt: skip
                        health = "/health"
                    healthy, stopped = start_until_healthy(
                        argv, f"http://127.0.0.1:{port}{health}", data / "log"
                    )
                    results[name]["healthy"].append(healthy)
                    results[name]["sigterm_to_exit"].append(stopped)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)
    return {
        name: {
            "healthy": _bench.summary(r["healthy"]),
            "sigterm_to_exit": _bench.summary([x for x in r["sigterm_to_exit"] if x is not None]),
            "sigterm_no_exit_within_15s": sum(x is None for x in r["sigterm_to_exit"]),
            "healthy_runs": r["healthy"],
        }
        for name, r in results.items()
    }


# -- report --------------------------------------------------------------------------------------
def report(result: dict[str, Any]) -> None:
    rows = []
    for key, label in (("queen_list", "GET /v2/workers/list"), ("inference", "POST /v1/inference")):
        r = result[key]
        note = "budget" if r["stopped_by_budget"] else ""
        rows.append(
            [
                label,
                r["requests"],
                f"{r['req_per_s']:.1f}",
                _bench.ms(r["p50"]),
                _bench.ms(r["p99"]),
                _bench.ms(r["max"]),
                r["errors"] + r["warmup_errors"],
                note,
            ]
        )
    _bench.table(
        "Queen, one sequential keep-alive client (latency in ms)",
        ["request", "n", "req/s", "p50", "p99", "max", "errors", "stopped by"],
        rows,
    )
    rows = [
        [
            name,
            r["healthy"]["n"],
            _bench.ms(r["healthy"]["median"]),
            _bench.ms(r["healthy"]["max"]),
            _bench.ms(r["sigterm_to_exit"]["median"]),
            _bench.ms(r["sigterm_to_exit"]["max"]),
        ]
        for name, r in result["startup"].items()
    ]
    _bench.table(
        "Process start to healthy, direct subprocess (ms)",
        ["program", "runs", "median", "max", "SIGTERM->exit med", "SIGTERM->exit max"],
        rows,
    )
    for key in ("queen_list", "inference"):
        for kind, count in sorted(result[key]["error_kinds"].items()):
            print(f"{key} errors: {count} x {kind}")
    print(
        f"worker spawn to listed idle at the queen: {_bench.ms(result['spawn_to_listed_idle'])} ms"
    )
    print(f"total wall time: {result['wall_seconds']:.1f} s")


def main() -> None:
    p = _bench.parser(__doc__)
    p.add_argument("--requests", type=int, default=2000, help="timed requests per phase (2000)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up requests per phase (100)")
    p.add_argument(
        "--budget", type=float, default=25.0, help="stop a timed phase after this many s (25)"
    )
    p.add_argument("--reps", type=int, default=5, help="start-up repetitions per program (5)")
    args = p.parse_args()
    wall = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "reference_throughput", "env": _bench.environment()}
    result.update(bench_stack(args))
    result["startup"] = bench_startup(args.reps)
    result["wall_seconds"] = time.perf_counter() - wall
    report(result)
    _bench.emit(_bench.rounded(result), args.json)


if __name__ == "__main__":
    _bench.run(main)
