"""HTTP plumbing the three reference services share: auth, error envelope, JSON bodies, SSE.

- Auth (contract §4, D7, D14): one middleware; public routes are ``(method, path)`` pairs; every
  other method and path needs ``Authorization: Bearer <token>``. A missing or malformed header is
  401 ``MISSING_API_KEY``, a wrong token 401 ``INVALID_API_KEY``; an empty configured token fails
  closed. Logs carry the token's 6-hex SHA-256 fingerprint, never the token (D8).
- Errors (D12): ``{"error": {"code": ..., "message": ...}}`` for every 4xx/5xx, framework errors
  (404, 405, 413, 415) included; bad input never becomes a 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "MAX_BODY_BYTES",
    "ApiError",
    "build_app",
    "error_response",
    "fingerprint",
    "read_json",
    "sse",
    "sse_response",
]

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_AUTH_HEADER = 8192

log = logging.getLogger("rbee_props.reference.http")

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "MISSING_API_KEY",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
    502: "UPSTREAM_ERROR",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error a handler answers with: status, UPPER_SNAKE_CASE code, a message without input."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def fingerprint(token: str) -> str:
    """First 6 hex digits of SHA-256(token): safe to log (contract §4)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def error_response(status: int, code: str, message: str, *, text_errors: bool = False) -> Response:
    """The error envelope, or plain text when the ``text-errors`` bug is switched on."""
    if text_errors:
        return PlainTextResponse(message, status_code=status)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def read_json(request: Request) -> dict[str, Any]:
    """Read a JSON object body: 415 without a JSON content type, 413 over 2 MiB, 400 otherwise."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "expected Content-Type: application/json")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body exceeds {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "body must be a JSON object")
    return body


def sse(obj: Any) -> str:
    """One SSE event: ``data: <json>`` and a blank line (``[DONE]`` passes through as is)."""
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {data}\n\n"


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    """A ``text/event-stream`` response with ``Cache-Control: no-cache``."""
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def parse_bearer(header: str | None) -> str | None:
    """The shared bearer parser (D7): trim, case-sensitive ``Bearer ``, trim, non-empty."""
    if header is None or len(header) > MAX_AUTH_HEADER:
        return None
    if any(not (0x20 <= ord(ch) <= 0x7E) and ch != "\t" for ch in header):
        return None
    header = header.strip()
    if not header.startswith("Bearer "):
        return None
    token = header[len("Bearer ") :].strip()
    if not token or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in token):
        return None
    return token


class AuthMiddleware:
    """Bearer-token auth on every route except the public ``(method, path)`` pairs."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        public: Iterable[tuple[str, str]],
        dev_mode_bypass: bool,
        text_errors: bool,
    ) -> None:
        self.app = app
        self.token = token
        self.public = frozenset(public)
        self.bypass = dev_mode_bypass and not token
        self.text_errors = text_errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.public:
            await self.app(scope, receive, send)
            return
        if self.bypass:  # planted bug dev-mode-bypass (B04): empty token disables auth
            await self.app(scope, receive, send)
            return
        raw = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                raw = value.decode("latin-1")
                break
        presented = parse_bearer(raw)
        if presented is None:
            log.warning('auth failed reason=missing path="%s"', scope["path"])
            response = error_response(
                401, "MISSING_API_KEY", "Missing API key", text_errors=self.text_errors
            )
        elif not self.token or not hmac.compare_digest(
            presented.encode("utf-8", "surrogatepass"), self.token.encode("utf-8", "surrogatepass")
        ):
            log.warning('auth failed identity="token:%s"', fingerprint(presented))
            response = error_response(
                401, "INVALID_API_KEY", "Invalid or missing API key", text_errors=self.text_errors
            )
        else:
            log.debug('authenticated identity="token:%s"', fingerprint(presented))
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


class CorrelationIdMiddleware:
    """``X-Correlation-ID`` on every response: a UUID from the request echoed, else a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = None
        for key, value in scope["headers"]:
            if key == b"x-correlation-id":
                try:
                    cid = str(uuid.UUID(value.decode("latin-1")))
                except ValueError:
                    cid = None
        cid = cid or str(uuid.uuid4())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-correlation-id", cid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def build_app(
    routes: Sequence[BaseRoute],
    *,
    token: str,
    public: Iterable[tuple[str, str]],
    bugs: frozenset[str],
    lifespan: Any = None,
) -> ASGIApp:
    """A Starlette app with the shared error handlers, auth and correlation ids."""
    text_errors = "text-errors" in bugs

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, text_errors=text_errors)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _STATUS_CODES.get(exc.status_code, "ERROR")
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, code, message, text_errors=text_errors)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "INTERNAL_ERROR", "internal error", text_errors=text_errors)

    app = Starlette(
        routes=list(routes),
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
        lifespan=lifespan,
    )
    authed = AuthMiddleware(
        app,
        token=token,
        public=public,
        dev_mode_bypass="dev-mode-bypass" in bugs,
        text_errors=text_errors,
    )
    return CorrelationIdMiddleware(authed)
