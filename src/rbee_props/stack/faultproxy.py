"""A small asyncio TCP fault proxy that sits on the links between components.

``python -m rbee_props.stack.faultproxy --control-port C --link NAME=LISTEN:HOST:PORT ...``

Each link listens on its own port and forwards to its target. Components reach each other only
through their links (the queen reaches hive1 through link ``queen->hive1``, hive1 reaches the
queen through ``hive1->queen``), while the test client talks to every component directly. So a
partition cuts queen<->hive traffic without hiding either from the test.

Faults, sent as one JSON line on the control port:

- ``{"op": "partition", "links": [...]}``: open connections are reset; new ones are accepted and
  then held without an answer until healed (packets dropped: the peer sees a timeout).
- ``{"op": "slow", "links": [...], "ms": N}``: every forwarded chunk waits N ms.
- ``{"op": "heal"}``: every link forwards normally again.
- ``{"op": "status"}``: the state of every link.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from typing import Any

__all__ = ["ProxyControl", "main"]


class Link:
    """One proxied direction: listen port -> target, with its fault state."""

    def __init__(self, name: str, listen: int, host: str, port: int) -> None:
        self.name = name
        self.listen = listen
        self.target = (host, port)
        self.cut = False
        self.delay_ms = 0
        self.healed = asyncio.Event()
        self.writers: set[asyncio.StreamWriter] = set()

    def partition(self) -> None:
        self.cut = True
        self.healed.clear()
        for writer in list(self.writers):
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        self.writers.clear()

    def heal(self) -> None:
        self.cut = False
        self.delay_ms = 0
        self.healed.set()

    def status(self) -> dict[str, Any]:
        return {"cut": self.cut, "delay_ms": self.delay_ms, "listen": self.listen}

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.delay_ms:
                    await asyncio.sleep(self.delay_ms / 1000)
                if self.cut:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.cut:  # dropped: hold the connection, answer nothing, close once healed
            self.writers.add(writer)
            await self.healed.wait()
            self.writers.discard(writer)
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers.update((writer, up_writer))
        try:
            await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer))
        finally:
            self.writers.discard(writer)
            self.writers.discard(up_writer)


class Proxy:
    """All links plus the control server."""

    def __init__(self, links: list[Link]) -> None:
        self.links = {link.name: link for link in links}

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        names = request.get("links", [])
        unknown = [n for n in names if n not in self.links]
        if unknown:
            return {"ok": False, "error": f"unknown links {unknown}; known {sorted(self.links)}"}
        if op == "partition":
            for name in names:
                self.links[name].partition()
        elif op == "slow":
            for name in names:
                self.links[name].delay_ms = int(request.get("ms", 0))
        elif op == "heal":
            for link in self.links.values():
                link.heal()
        elif op != "status":
            return {"ok": False, "error": f"unknown op {op!r}"}
        return {"ok": True, "links": {n: link.status() for n, link in self.links.items()}}

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    answer = self.apply(json.loads(line))
                except ValueError:
                    answer = {"ok": False, "error": "expected one JSON object per line"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def run(self, control_port: int) -> None:
        servers = [await asyncio.start_server(self.control, "127.0.0.1", control_port)]
        for link in self.links.values():
            servers.append(await asyncio.start_server(link.serve_client, "127.0.0.1", link.listen))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for server in servers:
            server.close()


def _link(text: str) -> Link:
    try:
        name, rest = text.split("=", 1)
        listen, host, port = rest.split(":")
        return Link(name, int(listen), host, int(port))
    except ValueError:
        msg = f"expected NAME=LISTEN:HOST:PORT, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rbee-faultproxy", description=__doc__.splitlines()[0])
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--link", type=_link, action="append", default=[])
    args = parser.parse_args(argv)
    try:
        asyncio.run(Proxy(args.link).run(args.control_port))
    except OSError as exc:
        sys.stderr.write(f"error: rbee-faultproxy: cannot listen: {exc.strerror}\n")
        raise SystemExit(3) from None


class ProxyControl:
    """The controller's side of the control port: one JSON line out, one back."""

    def __init__(self, port: int, *, timeout: float = 5.0) -> None:
        self.port = port
        self.timeout = timeout

    def send(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer: dict[str, Any] = json.loads(data or b"{}")
        return answer


if __name__ == "__main__":
    main()
