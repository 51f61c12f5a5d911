"""Typed httpx clients for queen, hive and worker: every call is recorded as an Op in a History.

A call never raises on what the service answers: 2xx is ``Ok``, another status or a refused
connection is ``Fail``, a timeout or a connection cut mid-request is ``Indeterminate`` (see
:mod:`rbee_props.client._outcome` for the exact mapping and how SSE bodies are read)::

    history = History()
    with QueenClient(stack.urls["queen"], stack.token, history=history) as queen:
        op = queen.register_worker("w1", url=url, model_ref="hf:a/b", node_name="hive1")
        match op.outcome:
            case Ok(body=body): ...
            case Fail(status=409): ...    # the service said no; status None: never sent
            case Indeterminate(reason): ...

``auth=USE_TOKEN`` (the default) sends the client's token, ``auth=None`` no header, a string that
exact header value. ``request()`` sends anything, recorded the same way.
"""

from rbee_props.client._base import USE_TOKEN, Auth, UseToken
from rbee_props.client._outcome import DONE
from rbee_props.client._views import (
    UnexpectedOutcome,
    node_names,
    partial_events,
    sse_events,
    stream_complete,
    tokens,
    worker_ids,
    worker_states,
    workers,
)
from rbee_props.client.hive import AsyncHiveClient, HiveClient
from rbee_props.client.queen import AsyncQueenClient, QueenClient
from rbee_props.client.worker import AsyncWorkerClient, WorkerClient

__all__ = [
    "DONE",
    "USE_TOKEN",
    "AsyncHiveClient",
    "AsyncQueenClient",
    "AsyncWorkerClient",
    "Auth",
    "HiveClient",
    "QueenClient",
    "UnexpectedOutcome",
    "UseToken",
    "WorkerClient",
    "node_names",
    "partial_events",
    "sse_events",
    "stream_complete",
    "tokens",
    "worker_ids",
    "worker_states",
    "workers",
]
