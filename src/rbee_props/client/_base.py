"""The client machinery: a call is described once, run sync or async, and recorded as an Op.

A route method of ``QueenRoutes``/``HiveRoutes``/``WorkerRoutes`` only builds a :class:`Call`
(kind, method, path, semantic args, JSON body, auth, timeout) and hands it to ``_run``, which
``_SyncClient`` implements on ``httpx.Client`` and ``_AsyncClient`` on ``httpx.AsyncClient``.
So every route is written once, and ``QueenClient`` and ``AsyncQueenClient`` cannot drift apart.
What each exchange becomes (Ok, Fail, Indeterminate; JSON, text or SSE body) is decided in
``_outcome.py``.

Recorded per op: the client's lane and service; the call's kind, method, path (with the query
string, as sent) and args; ``invoke``/``complete`` from ``time.monotonic()``; the JSON body
(or a raw body as text); and the headers the client set (``Content-Type``, ``Authorization``,
any given ``headers``), passed through the redactor so the token shows as ``Bearer <token>``.
httpx's own headers (Host, User-Agent, Accept*, Connection, Content-Length) are left out: they
are the same on every call. An op sent with ``auth`` other than the default also gets
``args["auth"]`` = ``"none"`` or ``"custom"``, because a redacted header cannot tell the real
token from one of its long prefixes.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Coroutine, Mapping
from functools import cache
from typing import Any, ClassVar, Final, Generic, Self, TypeVar

import attrs
import httpx

from rbee_props.client._outcome import OutcomeReader
from rbee_props.history import History, Op
from rbee_props.redact import Redactor

__all__ = ["USE_TOKEN", "Auth", "Call", "UseToken", "worker_fields"]

R = TypeVar("R")
T = TypeVar("T")


class UseToken:
    """Type of :data:`USE_TOKEN`: "send the client's own token", kept apart from ``None``."""

    def __repr__(self) -> str:
        return "USE_TOKEN"


USE_TOKEN: Final = UseToken()
"""Default of every ``auth=`` option (as httpx's ``USE_CLIENT_DEFAULT``).

``auth=USE_TOKEN`` sends ``Authorization: Bearer <client token>``; ``auth=None`` sends no
``Authorization`` header; any string is sent as the exact header value (``"Basic x"``,
``"bearer <t>"``, a wrong token...), which is how the F01/F02 auth properties are probed.
"""

Auth = str | None | UseToken


@attrs.frozen
class Call:
    """One HTTP operation described before it runs: what the sync and async clients share.

    ``args`` are the semantic arguments recorded in the Op (for a route method: its parameters);
    ``json`` is the JSON body (None: no body), ``content`` a raw body for malformed-input probes.
    ``timeout`` None means the client's default.
    """

    kind: str
    method: str
    path: str
    args: Mapping[str, Any] = attrs.field(factory=dict)
    json: Any = None
    content: bytes | None = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    auth: Auth = USE_TOKEN
    timeout: float | None = None


def worker_fields(
    worker_id: str, url: str, model_ref: str, backend: str, device: int
) -> dict[str, Any]:
    """What a worker says about itself: the hive's ready callback, the core of a registration."""
    return {
        "worker_id": worker_id,
        "url": url,
        "model_ref": model_ref,
        "backend": backend,
        "device": device,
    }


@attrs.define
class _Exchange:
    """A call on its way: the httpx request, the headers as recorded, the start time."""

    call: Call
    request: httpx.Request
    headers: dict[str, str]
    invoke: float
    reader: OutcomeReader = attrs.field(factory=OutcomeReader)


class _BaseClient(Generic[R, T]):
    """Configuration, request building and recording shared by every client.

    ``R`` is what a call returns (``Op``, or a coroutine of one) and ``T`` the transport type.
    Subclasses implement ``_connect`` (open the httpx client) and ``_run`` (execute a Call).

    The client adds its token to ``history.redactor`` when it is missing there, so that no
    ``history.jsonl`` written later can carry it.
    """

    service_name: ClassVar[str] = "service"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        history: History,
        lane: int = 0,
        timeout: float = 5.0,
        service: str | None = None,
        transport: T | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.history = history
        self.lane = lane
        self.timeout = timeout
        self.service = service or self.service_name
        known = history.redactor.secrets
        if token and token not in known:
            history.redactor = Redactor([*known, token])
        self._redactor = Redactor([*known, token])
        self._connect(transport)

    def _connect(self, transport: T | None) -> None:
        raise NotImplementedError

    def _run(self, call: Call) -> R:
        raise NotImplementedError

    def request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        args: Mapping[str, Any] | None = None,
        auth: Auth = USE_TOKEN,
        timeout: float | None = None,
    ) -> R:
        """Any request, recorded like the named routes: the escape hatch for fuzz-like calls.

        Args:
            kind: the op kind to record (snake_case).
            json: a JSON body; ``content``: raw bytes instead (e.g. malformed JSON, with a
                ``Content-Type`` in ``headers``).
            args: the semantic arguments to record; default: ``params``.
        """
        call = Call(
            kind,
            method,
            path,
            args=dict(params or {}) if args is None else dict(args),
            json=json,
            content=content,
            params=params,
            headers=dict(headers or {}),
            auth=auth,
            timeout=timeout,
        )
        return self._run(call)

    def _get(
        self,
        kind: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        args: Mapping[str, Any] | None = None,
        auth: Auth,
        timeout: float | None,
    ) -> R:
        args = dict(params or {}) if args is None else dict(args)
        return self._run(Call(kind, "GET", path, args, params=params, auth=auth, timeout=timeout))

    def _post(
        self,
        kind: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        auth: Auth,
        timeout: float | None,
    ) -> R:
        """A POST with ``body`` as JSON (None: no body), recorded with ``body`` as its args."""
        args = dict(body or {})
        payload = None if body is None else dict(body)
        call = Call(kind, "POST", path, args, json=payload, auth=auth, timeout=timeout)
        return self._run(call)

    def _exchange(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> _Exchange:
        """Build the httpx request for ``call`` and the redacted headers to record."""
        sent: dict[str, str] = {}
        if call.json is not None:
            sent["Content-Type"] = "application/json"
        sent.update(call.headers)
        if isinstance(call.auth, UseToken):
            sent["Authorization"] = f"Bearer {self.token}"
        elif call.auth is not None:
            sent["Authorization"] = call.auth
        # bytes, so that a non-ASCII probe value is sent as UTF-8 instead of failing to encode
        raw = {k.encode("ascii"): v.encode("utf-8") for k, v in sent.items()}
        request = http.build_request(
            call.method,
            self.base_url + call.path,
            json=call.json,
            content=call.content,
            params=call.params,
            headers=raw,
            timeout=self.timeout if call.timeout is None else call.timeout,
        )
        recorded = {k: self._redactor.text(v) for k, v in sent.items()}
        return _Exchange(call, request, recorded, time.monotonic())

    def _record(self, exchange: _Exchange, result: httpx.Response | httpx.RequestError) -> Op:
        """Append the finished exchange to the history as an Op."""
        if isinstance(result, httpx.Response):
            outcome = exchange.reader.finish(result)
        else:
            outcome = exchange.reader.cut(result)
        complete = time.monotonic()
        call = exchange.call
        query = exchange.request.url.query.decode("ascii")
        args = dict(call.args)
        if not isinstance(call.auth, UseToken):  # a redacted header alone can look right
            args["auth"] = "none" if call.auth is None else "custom"
        body = call.json
        if body is None and call.content is not None:
            body = call.content.decode("utf-8", "replace")
        return self.history.record(
            lane=self.lane,
            kind=call.kind,
            service=self.service,
            method=call.method,
            path=call.path + (f"?{query}" if query else ""),
            args=args,
            invoke=exchange.invoke,
            complete=complete,
            outcome=outcome,
            request=body,
            headers=exchange.headers,
        )


@cache
def shared_tls() -> ssl.SSLContext:
    """One TLS context for every client: httpx builds one per client otherwise, loading the CA
    bundle each time (~30 ms), which a burst of 16 lanes pays 50 times over."""
    return ssl.create_default_context()


class _SyncClient(_BaseClient[Op, httpx.BaseTransport]):
    """Runs calls on an ``httpx.Client``; each call returns its recorded Op."""

    _http: httpx.Client

    def _connect(self, transport: httpx.BaseTransport | None) -> None:
        self._http = httpx.Client(
            transport=transport, timeout=self.timeout, trust_env=False, verify=shared_tls()
        )

    def _run(self, call: Call) -> Op:
        exchange = self._exchange(self._http, call)
        try:
            response = self._http.send(exchange.request, stream=True)
            try:
                if exchange.reader.begin(response):
                    for line in response.iter_lines():
                        exchange.reader.feed(line)
                else:
                    response.read()
            finally:
                response.close()
        except httpx.RequestError as exc:
            return self._record(exchange, exc)
        return self._record(exchange, response)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _AsyncClient(_BaseClient[Coroutine[Any, Any, Op], httpx.AsyncBaseTransport]):
    """Runs calls on an ``httpx.AsyncClient``; each call is awaited for its recorded Op."""

    _http: httpx.AsyncClient

    def _connect(self, transport: httpx.AsyncBaseTransport | None) -> None:
        self._http = httpx.AsyncClient(
            transport=transport, timeout=self.timeout, trust_env=False, verify=shared_tls()
        )

    async def _run(self, call: Call) -> Op:
        exchange = self._exchange(self._http, call)
        try:
            response = await self._http.send(exchange.request, stream=True)
            try:
                if exchange.reader.begin(response):
                    async for line in response.aiter_lines():
                        exchange.reader.feed(line)
                else:
                    await response.aread()
            finally:
                await response.aclose()
        except httpx.RequestError as exc:
            return self._record(exchange, exc)
        except asyncio.CancelledError:  # the op may have been applied: keep it in the history
            self._record(exchange, httpx.RequestError("cancelled by the caller"))
            raise
        return self._record(exchange, response)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
