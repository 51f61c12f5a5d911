"""The clients: plumbing on httpx.MockTransport, then the real reference stack (marker: stack).

MockTransport only checks what the client itself does (status -> outcome, transport errors,
SSE parsing, headers, auth option, recording); rbee behaviour is checked on real processes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rbee_props.client import (
    USE_TOKEN,
    AsyncHiveClient,
    AsyncQueenClient,
    AsyncWorkerClient,
    HiveClient,
    QueenClient,
    UnexpectedOutcome,
    WorkerClient,
    node_names,
    partial_events,
    sse_events,
    stream_complete,
    tokens,
    worker_ids,
    worker_states,
)
from rbee_props.history import Fail, History, Indeterminate, Ok, Op
from rbee_props.stack import Stack, open_stack, poll_until

TOKEN = "s3cret-token-0123456789abcdef"
BASE = "http://rbee.test"
Handler = Callable[[httpx.Request], httpx.Response]

SYNC = {"queen": QueenClient, "hive": HiveClient, "worker": WorkerClient}
ASYNC = {"queen": AsyncQueenClient, "hive": AsyncHiveClient, "worker": AsyncWorkerClient}


def json_reply(status: int = 200, body: Any = None) -> Handler:
    return lambda request: httpx.Response(status, json={"ok": True} if body is None else body)


def sync_client(which: str, handler: Handler, history: History | None = None, **kw: Any) -> Any:
    """A sync client of ``which`` service on a MockTransport (an empty History is falsy)."""
    history = History() if history is None else history
    transport = httpx.MockTransport(handler)
    return SYNC[which](BASE, TOKEN, history=history, transport=transport, **kw)


def one_op(service: str, handler: Handler, method: str = "list_workers", **kw: Any) -> Op:
    with sync_client(service, handler) as client:
        op = getattr(client, method)(**kw)
    assert isinstance(op, Op)
    return op


# -- routes: each one sends what the contract names, sync and async alike ----------------------

REGISTER = {
    "worker_id": "w1",
    "url": "http://127.0.0.1:8081",
    "model_ref": "hf:org/tiny",
    "backend": "cpu",
    "node_name": "node1",
    "device": 0,
    "slots_total": 1,
}
BEEHIVE = {
    "node_name": "node1",
    "ssh_host": "127.0.0.1",
    "hive_port": 9200,
    "ssh_user": "rbee",
    "git_repo_url": "https://github.com/veighnsche/llama-orch.git",
    "git_branch": "main",
    "install_path": "/opt/rbee",
}
READY = {k: REGISTER[k] for k in ("worker_id", "url", "model_ref", "backend", "device")}
TASK = {
    "node": "node1",
    "model": "hf:org/tiny",
    "prompt": "hi",
    "max_tokens": 3,
    "temperature": 0.7,
}

# (service, method, positional, keywords, kind, http method, path with query, JSON body)
ROUTES: list[tuple[str, str, tuple[Any, ...], dict[str, Any], str, str, str, Any]] = [
    ("queen", "health", (), {}, "queen_health", "GET", "/health", None),
    (
        "queen",
        "register_worker",
        ("w1",),
        {"url": REGISTER["url"], "model_ref": "hf:org/tiny", "node_name": "node1"},
        "register_worker",
        "POST",
        "/v2/workers/register",
        REGISTER,
    ),
    ("queen", "list_workers", (), {}, "list_workers", "GET", "/v2/workers/list", None),
    (
        "queen",
        "workers_health",
        ("node1",),
        {},
        "workers_health",
        "GET",
        "/v2/workers/health?node=node1",
        None,
    ),
    (
        "queen",
        "shutdown_worker",
        ("w1",),
        {},
        "shutdown_worker",
        "POST",
        "/v2/workers/shutdown",
        {"worker_id": "w1"},
    ),
    (
        "queen",
        "add_beehive",
        ("node1",),
        {"ssh_host": "127.0.0.1", "hive_port": 9200},
        "add_beehive",
        "POST",
        "/v2/registry/beehives/add",
        BEEHIVE,
    ),
    ("queen", "list_beehives", (), {}, "list_beehives", "GET", "/v2/registry/beehives/list", None),
    (
        "queen",
        "remove_beehive",
        ("node1",),
        {},
        "remove_beehive",
        "POST",
        "/v2/registry/beehives/remove",
        {"node_name": "node1"},
    ),
    ("queen", "tasks", (), dict(TASK), "tasks", "POST", "/v2/tasks", TASK),
    (
        "queen",
        "inference",
        (),
        {"prompt": "hi"},
        "inference",
        "POST",
        "/v1/inference",
        {"prompt": "hi", "max_tokens": 8, "temperature": 0.7},
    ),
    ("hive", "health", (), {}, "health", "GET", "/v1/health", None),
    ("hive", "health_live", (), {}, "health_live", "GET", "/health/live", None),
    ("hive", "health_ready", (), {}, "health_ready", "GET", "/health/ready", None),
    ("hive", "metrics", (), {}, "metrics", "GET", "/metrics", None),
    (
        "hive",
        "spawn",
        (),
        {"model_ref": "hf:org/tiny", "slots_total": 2},
        "spawn",
        "POST",
        "/v1/workers/spawn",
        {"model_ref": "hf:org/tiny", "backend": "cpu", "device": 0, "slots_total": 2},
    ),
    (
        "hive",
        "ready",
        ("w1",),
        {"url": REGISTER["url"], "model_ref": "hf:org/tiny"},
        "ready",
        "POST",
        "/v1/workers/ready",
        READY,
    ),
    ("hive", "list_workers", (), {}, "list_workers", "GET", "/v1/workers/list", None),
    (
        "hive",
        "download",
        ("hf:org/tiny",),
        {},
        "download",
        "POST",
        "/v1/models/download",
        {"model_ref": "hf:org/tiny"},
    ),
    (
        "hive",
        "download_progress",
        ("d-1",),
        {},
        "download_progress",
        "GET",
        "/v1/models/download/progress?id=d-1",
        None,
    ),
    ("worker", "health", (), {}, "health", "GET", "/health", None),
    ("worker", "ready", (), {}, "ready", "GET", "/v1/ready", None),
    ("worker", "loading_progress", (), {}, "loading_progress", "GET", "/v1/loading/progress", None),
    (
        "worker",
        "inference",
        (),
        {"job_id": "j1", "prompt": "hi", "max_tokens": 2, "seed": 7},
        "inference",
        "POST",
        "/v1/inference",
        {"job_id": "j1", "prompt": "hi", "max_tokens": 2, "seed": 7},
    ),
    ("worker", "shutdown", (), {}, "shutdown", "POST", "/v1/admin/shutdown", None),
]
ROUTE_IDS = [f"{r[0]}.{r[1]}" for r in ROUTES]


class Recorder:
    """A MockTransport handler that keeps every request it saw and answers ``{"ok": true}``."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return httpx.Response(200, json={"ok": True})


def comparable(op: Op) -> tuple[Any, ...]:
    return (op.kind, op.service, op.method, op.path, dict(op.args), op.request, dict(op.headers))


@pytest.mark.parametrize(
    ("service", "name", "pos", "kw", "kind", "method", "path", "body"), ROUTES, ids=ROUTE_IDS
)
def test_each_route_sends_its_method_path_and_body_and_records_its_kind(
    service: str,
    name: str,
    pos: tuple[Any, ...],
    kw: dict[str, Any],
    kind: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    recorder = Recorder()
    with sync_client(service, recorder) as client:
        op = getattr(client, name)(*pos, **kw)
    [sent] = recorder.requests
    assert (sent.method, sent.url.raw_path.decode()) == (method, path)
    assert (json.loads(sent.content) if sent.content else None) == body
    assert (op.kind, op.method, op.path, op.request) == (kind, method, path, body)
    assert op.outcome == Ok(200, {"ok": True})
    if body is not None:
        assert sent.headers["content-type"] == "application/json"
        assert op.args == body  # a route records its parameters as the op's args


@pytest.mark.parametrize(("service", "name", "pos", "kw"), [r[:4] for r in ROUTES], ids=ROUTE_IDS)
def test_async_clients_send_and_record_exactly_what_sync_clients_do(
    service: str, name: str, pos: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    sync_recorder, async_recorder = Recorder(), Recorder()
    with sync_client(service, sync_recorder) as client:
        sync_op = getattr(client, name)(*pos, **kw)

    async def run() -> Op:
        transport = httpx.MockTransport(async_recorder)
        async with ASYNC[service](BASE, TOKEN, history=History(), transport=transport) as client:
            op: Op = await getattr(client, name)(*pos, **kw)
            return op

    async_op = asyncio.run(run())
    assert comparable(async_op) == comparable(sync_op)
    assert async_op.outcome == sync_op.outcome
    [a], [s] = async_recorder.requests, sync_recorder.requests
    assert (a.method, a.url, a.content, a.headers["authorization"]) == (
        s.method,
        s.url,
        s.content,
        s.headers["authorization"],
    )


def test_spawn_leaves_out_optional_fields_left_as_none() -> None:
    op = one_op("hive", json_reply(), "spawn", model_ref="hf:org/tiny")
    assert op.request == {"model_ref": "hf:org/tiny", "backend": "cpu", "device": 0}


def test_queen_inference_sends_model_only_when_given() -> None:
    op = one_op("queen", json_reply(), "inference", prompt="hi", model="hf:org/tiny")
    assert op.request["model"] == "hf:org/tiny"


# -- status and transport errors -> outcome -----------------------------------------------------


def test_a_2xx_status_is_ok_with_the_parsed_json_body() -> None:
    op = one_op("queen", json_reply(201, {"workers": []}))
    assert op.outcome == Ok(201, {"workers": []})
    assert op.ok and op.status == 201


@pytest.mark.parametrize("status", [400, 401, 404, 409, 500, 502, 503, 504])
def test_an_error_status_is_fail_with_its_body_and_never_raises(status: int) -> None:
    envelope = {"error": {"code": "SOME_CODE", "message": "no"}}
    op = one_op("queen", json_reply(status, envelope))
    assert op.outcome == Fail(status, envelope)
    assert isinstance(op.outcome, Fail) and op.outcome.code == "SOME_CODE"


def test_a_redirect_is_not_followed_and_is_a_fail() -> None:
    op = one_op("queen", lambda r: httpx.Response(307, headers={"location": "/elsewhere"}))
    assert op.outcome == Fail(307, "")


def test_a_non_json_body_is_kept_as_text() -> None:
    metrics = 'rbee_hive_workers_total{state="idle"} 1\n'
    op = one_op("hive", lambda r: httpx.Response(200, text=metrics), "metrics")
    assert op.outcome == Ok(200, metrics)


def test_a_json_content_type_with_a_broken_body_is_kept_as_text() -> None:
    reply = httpx.Response(502, content=b"{oops", headers={"content-type": "application/json"})
    op = one_op("queen", lambda r: reply)
    assert op.outcome == Fail(502, "{oops")


def raising(exc_type: type[httpx.TransportError], message: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return handler


def test_a_refused_connection_is_fail_without_status() -> None:
    op = one_op("queen", raising(httpx.ConnectError, "[Errno 111] Connection refused"))
    assert op.outcome == Fail(None, reason="connection refused")


@pytest.mark.parametrize("exc_type", [httpx.ConnectTimeout, httpx.PoolTimeout])
def test_a_request_that_never_left_is_fail_not_indeterminate(
    exc_type: type[httpx.TransportError],
) -> None:
    op = one_op("queen", raising(exc_type, "timed out"))
    assert isinstance(op.outcome, Fail) and op.outcome.status is None
    assert op.outcome.reason.startswith("not sent")


@pytest.mark.parametrize(
    "exc_type",
    [httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError],
)
def test_an_error_after_the_request_may_have_left_is_indeterminate(
    exc_type: type[httpx.TransportError],
) -> None:
    op = one_op("queen", raising(exc_type, "gone"), "shutdown_worker", worker_id="w1")
    assert isinstance(op.outcome, Indeterminate)
    assert exc_type.__name__ in op.outcome.reason
    assert op.status is None and op.body is None


def test_a_read_timeout_is_indeterminate_with_a_timeout_reason() -> None:
    op = one_op("queen", raising(httpx.ReadTimeout, "timed out"))
    assert op.outcome == Indeterminate("timeout: ReadTimeout")


def test_the_timeout_option_overrides_the_client_default_for_one_call() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={})

    with sync_client("queen", handler, timeout=5.0) as queen:
        queen.list_workers()
        queen.list_workers(timeout=0.25)
    assert [t["read"] for t in seen] == [5.0, 0.25]


# -- SSE ------------------------------------------------------------------------------------------

CANNED = (
    b": keep-alive\n\n"
    b'data: {"type":"started","job_id":"j1"}\n\n'
    b'data: {"type":"token","t":"the","i":0}\r\n\r\n'
    b'data: {"type":"token",\ndata: "t":"bee","i":1}\n\n'
    b"data: not json\n\n"
    b'data: {"type":"end","tokens_out":2,"stop_reason":"MAX_TOKENS"}\n\n'
    b"data: [DONE]\n\n"
)


def sse_reply(body: bytes, status: int = 200) -> Handler:
    headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
    return lambda request: httpx.Response(status, content=body, headers=headers)


def test_an_event_stream_is_read_into_events_and_complete() -> None:
    op = one_op("worker", sse_reply(CANNED), "inference", job_id="j1", prompt="p", max_tokens=2)
    assert isinstance(op.outcome, Ok)
    assert op.body == {
        "events": [
            {"type": "started", "job_id": "j1"},
            {"type": "token", "t": "the", "i": 0},
            {"type": "token", "t": "bee", "i": 1},
            "not json",
            {"type": "end", "tokens_out": 2, "stop_reason": "MAX_TOKENS"},
            "[DONE]",
        ],
        "complete": True,
    }
    assert tokens(op) == ["the", "bee"]
    assert stream_complete(op) and "[DONE]" not in sse_events(op)


def test_a_stream_ending_cleanly_without_done_is_ok_but_incomplete() -> None:
    body = b'data: {"type":"token","t":"x","i":0}\n\n'
    op = one_op("worker", sse_reply(body), "inference", job_id="j", prompt="p", max_tokens=1)
    assert op.outcome == Ok(
        200, {"events": [{"type": "token", "t": "x", "i": 0}], "complete": False}
    )
    assert not stream_complete(op)


def test_an_error_status_with_an_event_stream_is_a_fail_with_its_events() -> None:
    body = b'data: {"type":"error","code":"INFERENCE_FAILED"}\n\ndata: [DONE]\n\n'
    op = one_op("queen", sse_reply(body, 503), "inference", prompt="p")
    assert isinstance(op.outcome, Fail) and op.status == 503
    assert sse_events(op) == [{"type": "error", "code": "INFERENCE_FAILED"}]


class CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Sends some chunks, then the connection dies without ending the chunked body."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            yield chunk
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def cut_reply(request: httpx.Request) -> httpx.Response:
    stream = CutStream(b'data: {"type":"started"}\n\ndata: {"type":"token",', b'"t":"a","i":0}\n\n')
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


def test_a_stream_cut_midway_is_indeterminate_and_keeps_the_events_read() -> None:
    op = one_op("worker", cut_reply, "inference", job_id="j", prompt="p", max_tokens=4)
    assert isinstance(op.outcome, Indeterminate)
    assert op.outcome.reason.startswith(
        "stream cut after 2 events (status 200, RemoteProtocolError"
    )
    assert partial_events(op) == [{"type": "started"}, {"type": "token", "t": "a", "i": 0}]
    assert not stream_complete(op)


def test_partial_events_survive_a_round_trip_through_history_jsonl(tmp_path: Path) -> None:
    history = History()
    with sync_client("worker", cut_reply, history) as worker:
        worker.inference(job_id="j", prompt="p", max_tokens=4)
    history.to_jsonl(tmp_path / "history.jsonl")
    [op] = History.from_jsonl(tmp_path / "history.jsonl")
    assert partial_events(op) == [{"type": "started"}, {"type": "token", "t": "a", "i": 0}]


def test_async_stream_cut_is_indeterminate_too() -> None:
    async def run() -> Op:
        transport = httpx.MockTransport(cut_reply)
        async with AsyncWorkerClient(BASE, TOKEN, history=History(), transport=transport) as w:
            return await w.inference(job_id="j", prompt="p", max_tokens=4)

    op = asyncio.run(run())
    assert isinstance(op.outcome, Indeterminate) and op.outcome.reason.startswith("stream cut")
    assert len(partial_events(op)) == 2


def test_a_cancelled_async_call_is_recorded_as_indeterminate() -> None:
    history = History()

    async def run() -> None:
        started = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            started.set()
            await asyncio.Event().wait()  # never answers
            raise AssertionError

        transport = httpx.MockTransport(handler)
        async with AsyncQueenClient(BASE, TOKEN, history=history, transport=transport) as queen:
            task = asyncio.ensure_future(queen.shutdown_worker("w1"))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    [op] = history
    assert isinstance(op.outcome, Indeterminate) and "cancelled" in op.outcome.reason


# -- auth option and header redaction -------------------------------------------------------------


def sent_headers(**kw: Any) -> tuple[httpx.Headers, Op]:
    recorder = Recorder()
    with sync_client("queen", recorder) as queen:
        op = queen.list_workers(**kw)
    return recorder.requests[0].headers, op


def test_by_default_the_token_is_sent_and_recorded_masked() -> None:
    headers, op = sent_headers()
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert op.headers == {"Authorization": "Bearer <token>"}
    assert "auth" not in op.args
    _, explicit = sent_headers(auth=USE_TOKEN)
    assert explicit.headers == op.headers


def test_auth_none_sends_no_authorization_header() -> None:
    headers, op = sent_headers(auth=None)
    assert "authorization" not in headers
    assert op.headers == {} and op.args["auth"] == "none"


@pytest.mark.parametrize("value", ["Basic x", "bearer abc", "Bearer wrong-token"])
def test_an_auth_string_is_sent_as_the_exact_header_value(value: str) -> None:
    headers, op = sent_headers(auth=value)
    assert headers["authorization"] == value
    assert op.headers == {"Authorization": value} and op.args["auth"] == "custom"


def test_a_long_prefix_of_the_token_is_masked_but_marked_custom() -> None:
    headers, op = sent_headers(auth=f"Bearer {TOKEN[:12]}")
    assert headers["authorization"] == f"Bearer {TOKEN[:12]}"
    assert op.headers["Authorization"] == "Bearer <token>"
    assert op.args["auth"] == "custom"  # so the model does not take it for the right token


def test_a_non_ascii_auth_value_is_sent_as_utf8() -> None:
    headers, op = sent_headers(auth="Bearer tökén")
    assert dict(headers.raw)[b"Authorization"] == "Bearer tökén".encode()
    assert op.ok


def test_the_history_redactor_learns_the_token_so_jsonl_never_carries_it(tmp_path: Path) -> None:
    history = History()
    echo = json_reply(401, {"error": {"code": "X", "message": f"you sent {TOKEN}"}})
    with sync_client("queen", echo, history) as queen:
        queen.list_workers(auth=f"Bearer {TOKEN}x")
    history.to_jsonl(tmp_path / "h.jsonl")
    text = (tmp_path / "h.jsonl").read_text()
    assert TOKEN not in text and TOKEN[:8] not in text
    assert "<token>" in text


# -- recording ------------------------------------------------------------------------------------


def test_ops_are_recorded_in_completion_order_with_lanes_services_and_times() -> None:
    history = History()
    with (
        sync_client("queen", json_reply(), history, lane=0) as queen,
        sync_client("hive", json_reply(), history, lane=1, service="hive2") as hive,
        sync_client("worker", json_reply(), history, lane=2, service="worker:w1") as worker,
    ):
        queen.list_workers()
        hive.spawn(model_ref="hf:org/tiny")
        worker.health()
        queen.workers_health("node1")
    ops = list(history)
    assert [op.index for op in ops] == [0, 1, 2, 3]
    assert [(op.lane, op.service, op.kind) for op in ops] == [
        (0, "queen", "list_workers"),
        (1, "hive2", "spawn"),
        (2, "worker:w1", "health"),
        (0, "queen", "workers_health"),
    ]
    assert all(op.invoke <= op.complete for op in ops)
    assert all(a.complete <= b.invoke for a, b in itertools.pairwise(ops))
    assert ops[3].args == {"node": "node1"}


def test_the_escape_hatch_records_any_request_like_a_route() -> None:
    recorder = Recorder()
    with sync_client("queen", recorder) as queen:
        op = queen.request(
            "register_worker",
            "POST",
            "/v2/workers/register",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
            args={"worker_id": "w1"},
            auth="Bearer nope",
        )
    assert recorder.requests[0].content == b"{not json"
    assert (op.kind, op.path, op.request) == (
        "register_worker",
        "/v2/workers/register",
        "{not json",
    )
    assert op.args == {"worker_id": "w1", "auth": "custom"}
    assert op.headers == {"Content-Type": "application/json", "Authorization": "Bearer nope"}


def test_views_read_lists_and_refuse_an_op_that_is_not_a_listing() -> None:
    queen_list = {
        "workers": [{"worker_id": "w1", "state": "idle"}, {"worker_id": "w2", "state": "busy"}]
    }
    hive_list = {"workers": [{"id": "w3", "state": "loading"}]}
    assert worker_ids(one_op("queen", json_reply(200, queen_list))) == {"w1", "w2"}
    assert worker_states(one_op("hive", json_reply(200, hive_list))) == {"w3": "loading"}
    nodes = {"nodes": [{"node_name": "a"}, {"node_name": "b"}]}
    assert node_names(one_op("queen", json_reply(200, nodes), "list_beehives")) == {"a", "b"}
    with pytest.raises(UnexpectedOutcome, match=r"check op\.ok"):
        worker_ids(one_op("queen", json_reply(503, {"error": {"code": "X", "message": "m"}})))
    with pytest.raises(UnexpectedOutcome):
        worker_ids(one_op("queen", raising(httpx.ReadTimeout, "slow")))


# -- against the real reference stack -------------------------------------------------------------


@pytest.fixture(scope="module")
def live_stack() -> Iterator[Stack]:
    stack = open_stack()
    try:
        yield stack
    finally:
        stack.stop()


def listed(op: Op) -> set[str] | None:
    """The ids of a list op, or None when the list itself failed (poll again)."""
    return worker_ids(op) if op.ok else None


def state_of(op: Op, worker_id: str) -> str | None:
    return worker_states(op).get(worker_id) if op.ok else None


def error_of(op: Op) -> tuple[int | None, str | None]:
    assert isinstance(op.outcome, Fail), op
    return op.outcome.status, op.outcome.code


@pytest.mark.stack
def test_spawned_worker_goes_idle_is_listed_serves_sse_and_shuts_down_through_queen(
    live_stack: Stack,
) -> None:
    history = History()
    token = live_stack.token
    with (
        QueenClient(live_stack.urls["queen"], token, history=history) as queen,
        HiveClient(live_stack.urls["hive1"], token, history=history, lane=1) as hive,
    ):
        spawned = hive.spawn(model_ref="hf:props/client-test")
        assert isinstance(spawned.outcome, Ok), spawned
        worker_id, url = spawned.body["worker_id"], spawned.body["url"]
        assert spawned.body["state"] == "loading"

        poll_until(
            lambda: state_of(hive.list_workers(), worker_id) == "idle",
            20,
            what="hive lists the spawned worker idle",
        )
        poll_until(
            lambda: worker_id in (listed(queen.list_workers()) or set()),
            20,
            what="queen lists the spawned worker",
        )

        with WorkerClient(url, token, history=history, lane=2, service=f"worker:{worker_id}") as w:
            ready = w.ready()
            assert ready.ok and ready.body["ready"] is True
            op = w.inference(job_id="job-client-1", prompt="hello bees", max_tokens=5)
        assert isinstance(op.outcome, Ok), op
        assert stream_complete(op)
        events = sse_events(op)
        assert events[0]["type"] == "started" and events[0]["job_id"] == "job-client-1"
        assert [e["i"] for e in events if e["type"] == "token"] == list(range(5))
        assert events[-1]["type"] == "end" and events[-1]["tokens_out"] == 5

        shut = queen.shutdown_worker(worker_id)
        assert isinstance(shut.outcome, Ok), shut
        poll_until(
            lambda: (
                (h := listed(hive.list_workers())) is not None
                and worker_id not in h
                and (q := listed(queen.list_workers())) is not None
                and worker_id not in q
            ),
            30,
            what="the shut-down worker is off both registries",
        )
        gone = queen.shutdown_worker(worker_id)
        assert gone.status == 404, gone

    assert {op.service for op in history} == {"queen", "hive1", f"worker:{worker_id}"}
    assert all(op.headers.get("Authorization") == "Bearer <token>" for op in history)
    assert token not in json.dumps([op.to_json() for op in history])


@pytest.mark.stack
def test_live_auth_option_gets_the_contract_401s_and_public_routes_answer(
    live_stack: Stack,
) -> None:
    token = live_stack.token
    with QueenClient(live_stack.urls["queen"], token, history=History()) as queen:
        missing = queen.list_workers(auth=None)
        basic = queen.list_workers(auth="Basic x")
        wrong = queen.list_workers(auth=f"Bearer {token[:-1]}")
        right = queen.list_workers()
        public = queen.health(auth=None)
        unsendable = queen.list_workers(auth="Bearer ")  # h11 refuses trailing whitespace
    assert error_of(missing) == (401, "MISSING_API_KEY")
    assert error_of(basic) == (401, "MISSING_API_KEY")
    assert error_of(wrong) == (401, "INVALID_API_KEY")
    assert right.ok and public.ok and public.body["status"] == "ok"
    assert wrong.headers["Authorization"] == "Bearer <token>" and wrong.args["auth"] == "custom"
    assert isinstance(unsendable.outcome, Fail) and unsendable.status is None
    assert unsendable.outcome.reason.startswith("not sent: LocalProtocolError")


@pytest.mark.stack
def test_live_duplicate_registration_is_409_and_async_client_agrees(live_stack: Stack) -> None:
    token = live_stack.token
    history = History()
    register: dict[str, Any] = {
        "url": "http://127.0.0.1:9",
        "model_ref": "hf:props/dup-test",
        "node_name": "hive1",
    }
    with QueenClient(live_stack.urls["queen"], token, history=history) as queen:
        first = queen.register_worker("props-client-dup", **register)
        second = queen.register_worker("props-client-dup", **register)
    assert first.ok, first
    assert error_of(second) == (409, "WORKER_ALREADY_REGISTERED")

    async def run() -> tuple[Op, Op]:
        url = live_stack.urls["queen"]
        async with AsyncQueenClient(url, token, history=history, lane=1) as queen:
            again = await queen.register_worker("props-client-dup", **register)
            nodes = await queen.list_beehives()
            return again, nodes

    again, nodes = asyncio.run(run())
    # the queen may already have evicted the unreachable fake worker (its health checks fail)
    assert again.status in (200, 409), again
    assert set(live_stack.hives) <= node_names(nodes)
    assert [op.lane for op in history] == [0, 0, 1, 1]


def test_a_closed_port_gives_fail_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on ``port`` now (bound, never listened, closed)
    history = History()
    with HiveClient(f"http://127.0.0.1:{port}", TOKEN, history=history, timeout=2.0) as hive:
        op = hive.health()
    assert op.outcome == Fail(None, reason="connection refused")
    assert op.kind == "health" and op.invoke <= op.complete
