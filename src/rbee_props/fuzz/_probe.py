"""The extra requests rbee checks send: a case re-sent with other credentials, a peer's list.

Kept apart from the checks so that what a check *sends* is easy to audit: nothing here carries
valid credentials to a route that changes state (the re-sends have none or a wrong token; the
list reads are GETs).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import httpx
from schemathesis import Response

from rbee_props.client._base import shared_tls

__all__ = [
    "Probe",
    "client",
    "current_probes",
    "error_code",
    "get_json",
    "recording_probes",
    "resend",
    "worker_ids",
]


@attrs.frozen
class Probe:
    """One request a check sent and the status it got (None: no answer): what a reproduction
    must replay besides the case itself."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    status: int | None


_PROBES: contextvars.ContextVar[list[Probe] | None] = contextvars.ContextVar(
    "rbee_fuzz_probes", default=None
)


def current_probes() -> list[Probe] | None:
    """The list :func:`recording_probes` is filling in this context, if any."""
    return _PROBES.get()


@contextlib.contextmanager
def recording_probes() -> Iterator[list[Probe]]:
    """Collect every :func:`resend` made inside the block (in this thread) into a list."""
    probes: list[Probe] = []
    token = _PROBES.set(probes)
    try:
        yield probes
    finally:
        _PROBES.reset(token)


TIMEOUT = 10.0
#: how much of a re-sent request's answer is read (a stream is cut there)
READ_LIMIT = 64 * 1024


def client(timeout: float = TIMEOUT) -> httpx.Client:
    """An httpx client for the fuzz layer's own requests (sharing one TLS context)."""
    return httpx.Client(timeout=timeout, trust_env=False, verify=shared_tls())


def error_code(body: bytes) -> str | None:
    """``error.code`` of an error envelope, or None when ``body`` is not one."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return code if isinstance(code, str) else None


def resend(response: Response, authorization: str | None) -> tuple[int, bytes]:
    """Re-send the request of ``response`` with another ``Authorization`` (None: without one).

    Returns the status and at most :data:`READ_LIMIT` bytes of the body.
    """
    request = response.request
    headers = {
        k: v if isinstance(v, str) else v.decode("latin-1")
        for k, v in request.headers.items()
        if k.lower() != "authorization"
    }
    if authorization is not None:
        headers["Authorization"] = authorization
    body = request.body
    content = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
    with (
        client() as http,
        http.stream(str(request.method), str(request.url), headers=headers, content=content) as r,
    ):
        read = b""
        for chunk in r.iter_raw():
            read += chunk
            if len(read) >= READ_LIMIT:
                break
    log = _PROBES.get()
    if log is not None:
        log.append(Probe(str(request.method), str(request.url), headers, content, r.status_code))
    return r.status_code, read


def get_json(url: str, token: str | None) -> Any:
    """``GET url`` with the token; the JSON of a 200, else None (also when unreachable)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status: int | None = None
    try:
        with client() as http:
            reply = http.get(url, headers=headers)
        status = reply.status_code
        return reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    finally:
        log = _PROBES.get()
        if log is not None:
            log.append(Probe("GET", url, headers, b"", status))


def worker_ids(body: Any, key: str, *, states: tuple[str, ...] | None = None) -> set[str]:
    """Ids (under ``key``) of a ``{"workers": [...]}`` list, only those in ``states`` if given."""
    workers = body.get("workers") if isinstance(body, dict) else None
    if not isinstance(workers, list):
        return set()
    return {
        str(w.get(key))
        for w in workers
        if isinstance(w, dict) and (states is None or w.get("state") in states)
    }
