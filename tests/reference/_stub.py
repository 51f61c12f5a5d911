"""A scriptable HTTP peer in a thread of the test process: a stand-in worker, hive or callback.

Real reference programs cannot be made to answer 500, garble a reply or die in the middle of a
stream on cue; this small server can. It speaks real HTTP/1.1 over loopback, records every call
(method, path, headers, JSON body), and answers through handlers set per ``(method, path)``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[["Exchange"], None]


class Exchange(BaseHTTPRequestHandler):
    """One request: ``body`` is the parsed JSON body (or None); reply with the helpers."""

    protocol_version = "HTTP/1.1"
    server: _Server
    body: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            self.body = json.loads(raw) if raw else None
        except ValueError:
            self.body = raw
        path = self.path.split("?")[0]
        stub = self.server.stub
        with stub.lock:
            stub.calls.append((self.command, path, dict(self.headers.items()), self.body))
        handler = stub.routes.get((self.command, path))
        if handler is None:
            self.send_json(404, {"error": {"code": "NOT_FOUND", "message": "no such route"}})
        else:
            handler(self)

    do_GET = do_POST = _dispatch

    def send_json(self, status: int, obj: Any, *, content_type: str = "application/json") -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_event(self, data: Any) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        chunk = f"data: {text}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.flush()

    def end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def die(self) -> None:
        """Drop the connection at once, mid-response (a crashed peer)."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: Stub


class Stub:
    """A scriptable HTTP server on a free loopback port."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), Exchange)
        self.server.stub = self
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, method: str, path: str, handler: Handler) -> Stub:
        self.routes[(method, path)] = handler
        return self

    def reply(self, method: str, path: str, status: int, obj: Any) -> Stub:
        return self.on(method, path, lambda ex: ex.send_json(status, obj))

    def calls_to(self, method: str, path: str) -> list[tuple[str, str, dict[str, str], Any]]:
        with self.lock:
            return [c for c in self.calls if c[0] == method and c[1] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sse_worker(worker_id: str, tokens: Iterable[str] = ("a", "b", "c")) -> Stub:
    """A stub worker: healthy under its id, answers inference with a complete SSE stream."""
    words = list(tokens)

    def infer(ex: Exchange) -> None:
        ex.start_sse()
        ex.send_event({"type": "started", "job_id": ex.body["job_id"]})
        for i, word in enumerate(words):
            ex.send_event({"type": "token", "t": word, "i": i})
        ex.send_event({"type": "end", "tokens_out": len(words), "stop_reason": "MAX_TOKENS"})
        ex.send_event("[DONE]")
        ex.end_sse()

    stub = Stub()
    stub.reply("GET", "/health", 200, {"status": "healthy", "worker_id": worker_id})
    stub.on("POST", "/v1/inference", infer)
    stub.reply("POST", "/v1/admin/shutdown", 200, {"status": "shutting_down"})
    return stub
