"""Phantom workers: rbee-props' own mock workers, for workers registered at the queen by hand.

A hand-registered worker needs a URL that answers the queen's health checks as that worker,
or the queen rightly evicts it (D3). Each phantom is a small HTTP server on its own port that
answers ``GET /health`` with the worker id it currently stands for, ``/v1/ready``, a short SSE
inference, and ``POST /v1/admin/shutdown`` (after which it stops answering as that worker). A
pool is started once per session and leased to ids, so examples pay nothing to start them.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Phantom", "PhantomPool"]


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client hangs up.

    Health checkers and the proxy close connections mid-reply all the time (timeouts, killed
    components); that is expected traffic for a phantom worker, not an error worth a traceback.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None


class Phantom:
    """One phantom worker server, listening on ``host`` (where the queen can reach it)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.worker_id: str | None = None
        self.lock = threading.Lock()
        phantom = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Silence: the stack's own logs are the ones that matter."""

            def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drain(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)

            def do_GET(self) -> None:
                current = phantom.worker_id
                if current is None:
                    self._send(404, {"error": {"code": "NOT_FOUND", "message": "no worker"}})
                elif self.path == "/health":
                    self._send(200, {"status": "healthy", "worker_id": current, "vram_bytes": 0})
                elif self.path == "/v1/ready":
                    self._send(200, {"ready": True, "state": "idle", "model_loaded": True})
                else:
                    self._send(404, {"error": {"code": "NOT_FOUND", "message": "no such route"}})

            def do_POST(self) -> None:
                self._drain()
                current = phantom.worker_id
                if current is None:
                    self._send(404, {"error": {"code": "NOT_FOUND", "message": "no worker"}})
                elif self.path in ("/v1/admin/shutdown", "/v1/shutdown"):
                    phantom.release(current)
                    self._send(200, {"status": "shutting_down", "worker_id": current})
                elif self.path == "/v1/inference":
                    events = [
                        {"type": "started", "job_id": "phantom"},
                        {"type": "token", "t": "phantom", "i": 0},
                        {
                            "type": "end",
                            "tokens_out": 1,
                            "decode_time_ms": 0,
                            "stop_reason": "MAX_TOKENS",
                        },
                    ]
                    body = (
                        "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                    )
                    self._send(200, body.encode(), "text/event-stream")
                else:
                    self._send(404, {"error": {"code": "NOT_FOUND", "message": "no such route"}})

        self.server = QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def release(self, worker_id: str) -> None:
        with self.lock:
            if self.worker_id == worker_id:
                self.worker_id = None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PhantomPool:
    """A fixed pool of phantoms leased to worker ids."""

    def __init__(self, size: int = 8, *, host: str = "127.0.0.1") -> None:
        self.size = size
        self.host = host
        self.phantoms: list[Phantom] = []

    def _ensure(self) -> None:
        if not self.phantoms:
            self.phantoms = [Phantom(self.host) for _ in range(self.size)]

    def lease(self, worker_id: str) -> str | None:
        """The URL of a free phantom now answering as ``worker_id``, or None when all are taken."""
        self._ensure()
        for phantom in self.phantoms:
            with phantom.lock:
                if phantom.worker_id is None:
                    phantom.worker_id = worker_id
                    return phantom.url
        return None

    def release_all(self) -> None:
        for phantom in self.phantoms:
            phantom.worker_id = None

    def close(self) -> None:
        for phantom in self.phantoms:
            phantom.close()
        self.phantoms = []
