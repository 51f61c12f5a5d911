"""repro.sh of a fuzz finding: the request as sent, and the checks' own requests, as curl lines.

The script never holds the stack token: a request that carried it sends
``Authorization: Bearer ${RBEE_TOKEN}``, read from ``$RBEE_TOKEN`` or the file named by
``$RBEE_TOKEN_FILE`` when the script runs; anything else that looks like the token passes
:mod:`rbee_props.redact`. Each service's URL is a variable (``$QUEEN_URL``, ``$HIVE_URL``)
defaulting to the one recorded, since a new stack gets new ports. A body that a shell word
cannot carry (NUL bytes, not UTF-8, or a leading ``@`` that curl would read as a file name) is
written next to the script.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

import attrs

from rbee_props.redact import Redactor

__all__ = ["Exchange", "curl_script", "url_variable"]

#: headers curl writes itself (or that only describe the connection)
_SKIP = frozenset({"host", "content-length", "connection", "accept-encoding", "user-agent"})
TOKEN_LINE = (
    'RBEE_TOKEN="${RBEE_TOKEN:-$(cat "${RBEE_TOKEN_FILE:?set RBEE_TOKEN, or RBEE_TOKEN_FILE to '
    'the stack token file}")}"'
)


@attrs.frozen
class Exchange:
    """One request to replay: what was sent and the status it got (None: no answer)."""

    title: str
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    status: int | None


def url_variable(service: str) -> str:
    """The environment variable with a service's base URL: ``queen`` -> ``QUEEN_URL``."""
    return re.sub(r"[^A-Z0-9]+", "_", service.upper()).strip("_") + "_URL"


class _Script:
    def __init__(self, bases: Mapping[str, str], token: str, redactor: Redactor) -> None:
        # longest URL first, so that a base URL that prefixes another never takes its requests
        self.bases = sorted(
            ((url.rstrip("/"), var) for var, url in bases.items()), key=lambda b: -len(b[0])
        )
        self.token = token
        self.redactor = redactor
        self.needs_token = False
        self.files: dict[str, bytes] = {}

    def url(self, url: str) -> str:
        for base, var in self.bases:
            if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
                rest = self.redactor.text(url[len(base) :])
                return f'"${{{var}}}"' + (shlex.quote(rest) if rest else "")
        return shlex.quote(self.redactor.text(url))

    def header(self, name: str, value: str) -> str:
        if name.lower() == "authorization" and self.token and value == f"Bearer {self.token}":
            self.needs_token = True
            return f'"{name}: Bearer ${{RBEE_TOKEN}}"'
        value = self.redactor.text(value)
        return shlex.quote(f"{name}: {value}" if value else f"{name};")

    def body(self, body: bytes) -> list[str]:
        if not body:
            return []
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and "\x00" not in text and not text.startswith("@"):
            return ["--data-binary", shlex.quote(self.redactor.text(text))]
        name = f"body-{len(self.files) + 1}.bin"
        self.files[name] = body
        return ["--data-binary", f"@{name}"]

    def curl(self, exchange: Exchange) -> str:
        words = ["curl", "-sS", "-i", "-g", "--path-as-is", "--max-time", "30"]
        words += ["-X", shlex.quote(exchange.method), self.url(exchange.url)]
        for name, value in exchange.headers.items():
            if name.lower() not in _SKIP:
                words += ["-H", self.header(name, value)]
        words += self.body(exchange.body)
        return " ".join(words)


def curl_script(
    exchanges: Sequence[Exchange],
    *,
    comments: Sequence[str],
    service: str,
    base_url: str,
    token: str,
    redactor: Redactor,
    peers: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, bytes]]:
    """The bash script replaying ``exchanges``, and the body files it reads.

    Args:
        exchanges: the requests, in order (the case first, then the checks' re-sends).
        comments: lines for the header (what was found); redacted like everything else.
        service: the service they went to (names the URL variable).
        base_url: the URL they went to, the variable's default.
        token: the stack token, replaced by ``${RBEE_TOKEN}`` wherever it was sent.
        redactor: masks the token anywhere else.
        peers: other services the checks asked (``{"queen": url}``), as their own variables.
    """
    url_var = url_variable(service)
    bases = {url_var: base_url}
    bases.update({url_variable(name): url for name, url in (peers or {}).items()})
    script = _Script(bases, token, redactor)
    body: list[str] = []
    for exchange in exchanges:
        answered = "no answer" if exchange.status is None else f"answered {exchange.status}"
        body.append(f"echo {shlex.quote(f'== {exchange.title} (recorded: {answered})')}")
        body.append(script.curl(exchange))
        body.append("echo")
    lines = ["#!/usr/bin/env bash", *(f"# {redactor.text(c)}" for c in comments)]
    lines += [
        f"# Run: {url_var}=http://HOST:PORT RBEE_TOKEN_FILE=/path/to/token bash repro.sh",
        "# (or RBEE_TOKEN=...); the token is never stored in this file.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        *(f'{var}="${{{var}:-{url.rstrip("/")}}}"' for var, url in bases.items()),
    ]
    if script.needs_token:
        lines.append(TOKEN_LINE)
    return "\n".join([*lines, *body]) + "\n", script.files
