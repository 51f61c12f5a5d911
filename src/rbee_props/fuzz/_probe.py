"""The extra requests rbee checks send: a case re-sent with other credentials, a peer's list.

Kept apart from the checks so that what a check *sends* is easy to audit: nothing here carries
valid credentials to a route that changes state (the re-sends have none or a wrong token; the
list reads are GETs).
"""

from __future__ import annotations

import json
import ssl
from functools import cache
from typing import Any

import httpx
from schemathesis import Response

__all__ = ["error_code", "get_json", "resend", "worker_ids"]

TIMEOUT = 10.0
#: how much of a re-sent request's answer is read (a stream is cut there)
READ_LIMIT = 64 * 1024


@cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every probe: building one per client costs ~30 ms."""
    return ssl.create_default_context()


def _client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, trust_env=False, verify=_tls())


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
        _client() as client,
        client.stream(str(request.method), str(request.url), headers=headers, content=content) as r,
    ):
        read = b""
        for chunk in r.iter_raw():
            read += chunk
            if len(read) >= READ_LIMIT:
                break
        return r.status_code, read


def get_json(url: str, token: str | None) -> Any:
    """``GET url`` with the token; the JSON of a 200, else None (also when unreachable)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with _client() as client:
            reply = client.get(url, headers=headers)
        return reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


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
