"""The queen routes a load run can drive (contract §5.1), and what counts as a success on each.

A route is a fixed request: the generator encodes it once and sends the same bytes every time,
so the measured cost is the server's. ``inference`` needs idle workers; the runner spawns them
through the hives before the run (see :mod:`rbee_props.load.workers`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

import attrs

from rbee_props.errors import UsageError, did_you_mean

__all__ = ["ROUTES", "Route", "route_named"]

#: the body of every inference request of a load run (a short answer: the stream is measured)
INFERENCE_BODY: Final = {"prompt": "hello rbee", "max_tokens": 4}


@attrs.frozen
class Route:
    """One request the generator repeats.

    Attributes:
        name: the ``--route`` value.
        method, path: the HTTP request line; ``{hive}`` in the path is the first hive's name.
        body: the JSON body (None: no body).
        needs_workers: the route only succeeds with idle workers registered at the queen.
        stream: the answer is SSE; a success must end with ``data: [DONE]`` (S15, D9).
    """

    name: str
    method: str
    path: str
    body: Mapping[str, object] | None = None
    needs_workers: bool = False
    stream: bool = False

    def target(self, hive: str) -> str:
        """The request target with ``{hive}`` filled in."""
        return self.path.format(hive=hive)

    def encoded_body(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body).encode()

    @property
    def idempotent(self) -> bool:
        return self.method == "GET"

    def outcome(self, status: int, body: bytes) -> str:
        """The label a response is counted under: its status, or ``200-incomplete`` for an SSE
        stream that did not end with ``[DONE]`` (a worker died mid-stream, D9)."""
        if self.stream and status == 200 and b"data: [DONE]" not in body:
            return "200-incomplete"
        return str(status)


ROUTES: Final[Mapping[str, Route]] = {
    route.name: route
    for route in (
        Route("health", "GET", "/health"),
        Route("list", "GET", "/v2/workers/list"),
        Route("beehives", "GET", "/v2/registry/beehives/list"),
        Route("workers-health", "GET", "/v2/workers/health?node={hive}"),
        Route(
            "inference", "POST", "/v1/inference", INFERENCE_BODY, needs_workers=True, stream=True
        ),
    )
}


def route_named(name: str) -> Route:
    """The route called ``name``.

    Raises:
        UsageError: no such route (the message lists them, with a "did you mean").
    """
    try:
        return ROUTES[name]
    except KeyError:
        msg = (
            f"--route expects one of {', '.join(ROUTES)}, got {name!r}{did_you_mean(name, ROUTES)}"
        )
        raise UsageError(msg) from None
