"""What an HTTP exchange becomes: an Ok, a Fail or an Indeterminate, never an exception.

The mapping (STYLE.md §5):

- a 2xx status -> ``Ok(status, body)``, any other status -> ``Fail(status, body)``;
- not sent at all (connection refused, connect or pool timeout, a request h11 refuses to
  write) -> ``Fail(None, reason=...)``; ``reason`` is ``"connection refused"`` for a refusal;
- anything after the request may have left (read/write timeout, reset, protocol error, a body
  or stream cut or undecodable after the status line, an async call cancelled by its caller)
  -> ``Indeterminate(reason)``.

The body is the parsed JSON for a JSON content type (the text if it does not parse), else the
text. A ``text/event-stream`` response is read event by event into
``{"events": [...], "complete": bool}``: each ``data:`` payload parsed as JSON (kept as text when
it is not JSON), ``"[DONE]"`` kept as the string, and ``complete`` says whether ``[DONE]`` came.
A stream that ends cleanly without ``[DONE]`` is still an Ok with ``complete`` False (the checker
judges it). A stream cut mid-way is ``Indeterminate`` whose reason starts with ``"stream cut"``
and ends with ``"events so far: <JSON list>"``: ``Indeterminate`` has no body, and this way the
partial events survive ``history.jsonl`` (read them with :func:`rbee_props.client.partial_events`).
"""

from __future__ import annotations

import json
from typing import Any, Final

import httpx

from rbee_props.history import Fail, Indeterminate, Ok, Outcome

__all__ = ["DONE", "EVENTS_MARKER", "OutcomeReader"]

DONE: Final = "[DONE]"
EVENTS_MARKER: Final = "events so far: "


class OutcomeReader:
    """Turns one response (read as a stream) or one transport error into an outcome."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.sse = False
        self.events: list[Any] = []
        self.complete = False
        self._data: list[str] = []

    def begin(self, response: httpx.Response) -> bool:
        """Note the status line; True when the body is an event stream to feed line by line."""
        self.status = response.status_code
        self.sse = _media_type(response) == "text/event-stream"
        return self.sse

    def feed(self, line: str) -> None:
        """One SSE line: ``data:`` lines gather, a blank line ends the event, ``:`` is a comment."""
        if not line:
            self._dispatch()
            return
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value.removeprefix(" "))

    def _dispatch(self) -> None:
        if not self._data:
            return
        data = "\n".join(self._data)
        self._data = []
        if data == DONE:
            self.complete = True
            self.events.append(DONE)
            return
        try:
            self.events.append(json.loads(data))
        except ValueError:
            self.events.append(data)

    def finish(self, response: httpx.Response) -> Outcome:
        """The outcome of a response read to its end."""
        status = response.status_code
        media = _media_type(response)
        body: Any
        if self.sse:
            self._dispatch()  # lenient: a last event without its blank line still counts
            body = {"events": list(self.events), "complete": self.complete}
        elif media == "application/json" or media.endswith("+json"):
            try:
                body = json.loads(response.content)
            except ValueError:
                body = response.text
        else:
            body = response.text
        return Ok(status, body) if 200 <= status < 300 else Fail(status, body)

    def cut(self, exc: httpx.RequestError) -> Outcome:
        """The outcome of a transport error: Fail only when the request surely never left."""
        name = type(exc).__name__
        if self.status is None:
            if isinstance(exc, httpx.ConnectError):
                text = str(exc)
                refused = not text or "refused" in text.lower()
                return Fail(None, reason="connection refused" if refused else f"{name}: {text}")
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                return Fail(None, reason=f"not sent: {name}")
            if isinstance(exc, httpx.LocalProtocolError | httpx.UnsupportedProtocol):
                return Fail(None, reason=f"not sent: {name}: {exc}")
            if isinstance(exc, httpx.TimeoutException):
                return Indeterminate(f"timeout: {name}")
            return Indeterminate(f"{name}: {exc}")
        if self.sse:
            self._dispatch()
            events = json.dumps(self.events)
            return Indeterminate(
                f"stream cut after {len(self.events)} events (status {self.status}, "
                f"{name}: {exc}); {EVENTS_MARKER}{events}"
            )
        return Indeterminate(f"response unread after status {self.status} ({name}: {exc})")


def _media_type(response: httpx.Response) -> str:
    value: str = response.headers.get("content-type", "")
    return value.split(";")[0].strip().lower()
