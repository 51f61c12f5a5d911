"""A small HTTP/1.1 client for load runs: keep-alive connections on asyncio streams, framed by h11.

Why not httpx: on this project's reference queen (2 cores), ``httpx.AsyncClient`` reached about
420 requests/s with 10 requests in flight and about 60/s with 100, where the same loop on asyncio
streams reached 4,000-5,000/s, as fast as ``wrk`` against the same route (docs/load.md). A load
generator must not be the bottleneck it measures. h11 (the HTTP/1.1 state machine httpx itself
builds on) does the framing, so chunked SSE bodies and ``Connection: close`` are read correctly.

A failed exchange is not an exception for the caller to handle one by one: :class:`RequestFailed`
names the kind (``refused``, ``reset``, ``timeout``, ``protocol``, ``network``), which the
generator counts like a status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Sequence

import attrs
import h11

__all__ = ["HttpPool", "Reply", "Request", "RequestFailed"]

#: a request as h11 events: each connection's state machine encodes it when it is sent
Request = tuple[h11.Request | h11.Data | h11.EndOfMessage, ...]

_READ_SIZE = 65536


class RequestFailed(Exception):
    """No HTTP response: ``kind`` says why (refused, reset, timeout, protocol, network)."""

    def __init__(self, *, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


_KIND_OF_ERRNO = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",  # also while connecting: a listener killed with us in its backlog
    errno.ECONNABORTED: "reset",
    errno.EPIPE: "reset",
    errno.ETIMEDOUT: "timeout",
}


def _kind_of(exc: OSError) -> str:
    """The failure kind of a socket error; ``network`` for the ones without a closer name."""
    return _KIND_OF_ERRNO.get(exc.errno or 0, "network")


class _Stale(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


@attrs.frozen
class Reply:
    """A complete HTTP response: its status and body."""

    status: int
    body: bytes


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.reused = False
        self.peer_closed = False

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: Request) -> Reply:
        self.writer.write(b"".join(self.h11.send(event) or b"" for event in request))
        await self.writer.drain()
        status: int | None = None
        chunks: list[bytes] = []
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                if self.peer_closed:  # a server killed mid-exchange, not malformed HTTP
                    raise RequestFailed(kind="reset") from None
                raise
            if event is h11.NEED_DATA:
                data = await self.reader.read(_READ_SIZE)
                if not data and status is None and self.reused:
                    raise _Stale
                self.peer_closed = not data
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert status is not None
                return Reply(status, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise RequestFailed(kind="reset")

    def reusable(self) -> bool:
        """Whether both sides finished the exchange and keep the connection open."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.reused = True
            return True
        return False


class HttpPool:
    """Up to ``max_connections`` keep-alive connections to one ``host:port``.

    A request waits for a free connection when all are busy; that wait is part of its latency,
    as it would be for any client with that many connections. A GET that fails on a reused
    connection the server had closed meanwhile (after a restart) is sent once more on a new one,
    as browsers and httpx do; anything else is reported as it happened.
    """

    def __init__(self, host: str, port: int, *, max_connections: int) -> None:
        self.host = host
        self.port = port
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self.opened = 0

    def encode(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes = b""
    ) -> Request:
        """One request (framing headers added), built once and sent many times."""
        full = [("Host", f"{self.host}:{self.port}"), *headers]
        if body or method not in ("GET", "HEAD"):
            full.append(("Content-Length", str(len(body))))
        events: list[h11.Request | h11.Data | h11.EndOfMessage] = [
            h11.Request(method=method, target=target, headers=full)
        ]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        return tuple(events)

    async def request(self, request: Request, *, idempotent: bool) -> Reply:
        """Send ``request`` (from :meth:`encode`) and read the whole response.

        Raises:
            RequestFailed: no complete response (connection refused or reset, protocol error).
        """
        async with self._slots:
            try:
                return await self._send(request, fresh=False)
            except _Stale:
                if not idempotent:
                    raise RequestFailed(kind="reset") from None
                try:
                    return await self._send(request, fresh=True)
                except _Stale:
                    raise RequestFailed(kind="reset") from None

    async def _send(self, request: Request, *, fresh: bool) -> Reply:
        conn = await self._connection(fresh=fresh)
        self._busy.add(conn)
        keep = False
        try:
            reply = await conn.exchange(request)
            keep = conn.reusable()
            return reply
        except h11.ProtocolError as exc:
            raise RequestFailed(kind="protocol") from exc
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if conn.reused and isinstance(exc, ConnectionResetError | BrokenPipeError):
                raise _Stale from exc
            raise RequestFailed(kind="reset") from exc
        except OSError as exc:
            raise RequestFailed(kind=_kind_of(exc)) from exc
        finally:
            self._busy.discard(conn)
            if keep:
                self._idle.append(conn)
            else:
                conn.close()

    async def _connection(self, *, fresh: bool) -> _Connection:
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.reader.at_eof():
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise RequestFailed(kind=_kind_of(exc)) from exc
        self.opened += 1
        return _Connection(reader, writer)

    async def close(self) -> None:
        """Close every connection (idle or in use) and wait until they are closed."""
        conns = [*self._idle, *self._busy]
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(ConnectionError, OSError):
                await conn.writer.wait_closed()
