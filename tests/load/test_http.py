"""The load client against a real socket server: chunked SSE, Connection: close, stale keep-alive
connections (retried for GET only), refused connections, and connection reuse."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from rbee_props.load._http import HttpPool, RequestFailed, _kind_of

SSE = b'data: {"type":"token","t":"hi","i":0}\n\ndata: [DONE]\n\n'


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer requests on one connection; the path picks the behaviour."""
    doomed = False
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        lines = head.decode().split("\r\n")
        path = lines[0].split()[1]
        length = next(
            (int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length")), 0
        )
        body = await reader.readexactly(length)
        if doomed or path == "/vanish":  # read the request, close without an answer
            break
        if path == "/half":  # the head and part of the body, then gone: a server killed mid-reply
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
            await writer.drain()
            break
        if path == "/garbage":
            writer.write(b"this is not HTTP\r\n\r\n")
            await writer.drain()
            break
        if path == "/sse":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in SSE.split(b"\n\n")[:2])
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
            )
        elif path == "/close":
            writer.write(
                b"HTTP/1.1 503 Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy"
            )
        else:
            reply = b"echo:" + body
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(reply), reply))
        await writer.drain()
        if path == "/close":
            break
        doomed = path == "/drop"
    writer.close()


@pytest.fixture
def run():
    """Run a coroutine taking (pool, server) against a fresh server on a free port."""

    def runner(test, *, connections=4):
        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            pool = HttpPool("127.0.0.1", port, max_connections=connections)
            try:
                return await test(pool)
            finally:
                await pool.close()
                server.close()
                await server.wait_closed()

        return asyncio.run(main())

    return runner


def test_a_chunked_event_stream_is_read_to_its_end(run):
    async def test(pool):
        return await pool.request(pool.encode("GET", "/sse", []), idempotent=True)

    reply = run(test)
    assert reply.status == 200
    assert reply.body.endswith(b"data: [DONE]")


def test_keep_alive_connections_are_reused_and_bodies_are_sent(run):
    async def test(pool):
        request = pool.encode("POST", "/echo", [("Content-Type", "text/plain")], b"abc")
        replies = [await pool.request(request, idempotent=False) for _ in range(5)]
        return replies, pool.opened

    replies, opened = run(test)
    assert {(r.status, r.body) for r in replies} == {(200, b"echo:abc")}
    assert opened == 1


def test_connection_close_is_honoured(run):
    async def test(pool):
        request = pool.encode("GET", "/close", [])
        replies = [await pool.request(request, idempotent=True) for _ in range(3)]
        return replies, pool.opened

    replies, opened = run(test)
    assert {(r.status, r.body) for r in replies} == {(503, b"busy")}
    assert opened == 3


def test_a_get_on_a_connection_the_server_dropped_is_sent_again_but_a_post_is_not(run):
    """After /drop the server reads the next request on that connection and closes it unanswered,
    as a server does that restarted or timed the idle connection out just then."""

    async def test(pool):
        get = pool.encode("GET", "/drop", [])
        post = pool.encode("POST", "/drop", [], b"x")
        first = await pool.request(get, idempotent=True)
        second = await pool.request(get, idempotent=True)  # stale; sent again on a new one
        opened = pool.opened
        try:
            await pool.request(post, idempotent=False)  # stale too; not sent twice
        except RequestFailed as exc:
            return first, second, opened, exc.kind
        return first, second, opened, None

    first, second, opened, post_failure = run(test, connections=1)
    assert (first.status, second.status) == (200, 200)
    assert opened == 2
    assert post_failure == "reset"


def test_nothing_listening_is_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused

        async def main():
            pool = HttpPool("127.0.0.1", port, max_connections=1)
            try:
                await pool.request(pool.encode("GET", "/", []), idempotent=True)
            except RequestFailed as exc:
                return exc.kind
            finally:
                await pool.close()

        assert asyncio.run(main()) == "refused"


def test_requests_beyond_the_connection_cap_wait_for_a_free_connection(run):
    async def test(pool):
        request = pool.encode("GET", "/", [])
        replies = await asyncio.gather(*(pool.request(request, idempotent=True) for _ in range(20)))
        return replies, pool.opened

    replies, opened = run(test, connections=3)
    assert len(replies) == 20
    assert all(r.status == 200 for r in replies)
    assert opened <= 3


@pytest.mark.parametrize(
    ("path", "kind"), [("/vanish", "reset"), ("/half", "reset"), ("/garbage", "protocol")]
)
def test_a_server_gone_mid_exchange_is_a_reset_and_only_bad_http_is_a_protocol_error(
    run, path, kind
):
    """A killed server closes its connections without (the rest of) an answer: that is a reset,
    like a refused connection an expected outcome of a kill; ``protocol`` means malformed HTTP."""

    async def test(pool):
        try:
            await pool.request(pool.encode("GET", path, []), idempotent=True)
        except RequestFailed as exc:
            return exc.kind
        return None

    assert run(test) == kind


def test_socket_errors_are_named_by_their_errno():
    """A listener killed with our connection in its backlog resets it while we connect."""
    assert _kind_of(ConnectionResetError(errno.ECONNRESET, "Connect call failed")) == "reset"
    assert _kind_of(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) == "refused"
    assert _kind_of(TimeoutError(errno.ETIMEDOUT, "timed out")) == "timeout"
    assert _kind_of(OSError(errno.EHOSTUNREACH, "no route")) == "network"
    assert _kind_of(OSError("Multiple exceptions: ...")) == "network"
