"""repro.sh: the recorded HTTP exchange as a bash script of curl lines, one per op, in order.

Why a script next to the pytest file: a maintainer of rbee can read and run it without
rbee-props' Python side. Each HTTP op becomes one ``curl`` line against ``$<SERVICE>_URL``;
each fault op becomes an ``rbee-props <verb> <target>`` line; a worker id that a ``spawn``
returned is captured into a shell variable and used wherever the recorded id appeared later
(paths, JSON bodies, headers, fault targets), since a new run gets new ids.

The token is read from ``$RBEE_TOKEN_FILE`` when the script runs; an op recorded without an
``Authorization`` header (or with a custom one, as the auth probes send) keeps exactly that.
Every value is quoted with :func:`shlex.quote`; the exporter redacts the ops before they get
here, so a masked secret is quoted like any other text.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from rbee_props.redact import MASK
from rbee_props.repro._finding import Finding
from rbee_props.repro._steps import Capture, captures, is_controller

__all__ = ["TOKEN_HEADER", "render_script"]

TOKEN_HEADER: Final = '-H "Authorization: Bearer $(cat "${RBEE_TOKEN_FILE:?set RBEE_TOKEN_FILE}")"'
_PLAIN = re.compile(r"[A-Za-z0-9_./:?=&%+,@~-]*")
_FIELD = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{field}\"])'"
#: fault verbs whose first argument is implied: the machines cut links between queen and a hive
_LINKS: Final = ("partition", "slow")

Piece = tuple[bool, str]  # (is a shell variable, text or variable name)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def env_name(service: str) -> str:
    """The environment variable holding a service's base URL: ``hive1`` -> ``HIVE1_URL``."""
    name = re.sub(r"[^A-Z0-9]+", "_", service.upper()).strip("_") or "SERVICE"
    return f"{name}_URL" if name[0].isalpha() else f"S_{name}_URL"


class _Substitutions:
    """Recorded values (worker ids, their URLs) -> shell variables, for the ops after a spawn."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def bind(self, value: str, name: str) -> None:
        self._names[value] = name  # a later spawn answering the same id takes the name over
        alternatives = sorted(self._names, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))

    def variable(self, value: str) -> str | None:
        """The variable bound to the recorded ``value``, if any."""
        return self._names.get(value)

    def bound(self, name: str) -> bool:
        """Whether the shell variable ``name`` has been set by an earlier line."""
        return name in self._names.values()

    def split(self, text: str) -> list[Piece]:
        """``text`` cut into literal pieces and variables, wherever a bound value appears."""
        if self._pattern is None:
            return [(False, text)]
        pieces: list[Piece] = []
        last = 0
        for match in self._pattern.finditer(text):
            pieces.append((False, text[last : match.start()]))
            pieces.append((True, self._names[match.group()]))
            last = match.end()
        pieces.append((False, text[last:]))
        return [p for p in pieces if p[0] or p[1]]


def word(pieces: Sequence[Piece]) -> str:
    """One shell word: literal pieces quoted, variables expanded (``"$HIVE1_URL/v1/x"``)."""
    if not any(is_var for is_var, _ in pieces):
        return shlex.quote("".join(text for _, text in pieces))
    if all(is_var or _PLAIN.fullmatch(text) for is_var, text in pieces):
        return '"' + "".join(f"${{{t}}}" if is_var else t for is_var, t in pieces) + '"'
    return "".join(f'"${{{t}}}"' if is_var else shlex.quote(t) for is_var, t in pieces)


def _body(request: Any) -> str:
    """The request body as sent: a string as is (raw content), anything else as JSON."""
    if isinstance(request, str):
        return request
    return json.dumps(request, ensure_ascii=False, separators=(",", ":"))


def _outcome(op: Mapping[str, Any]) -> str:
    if is_controller(op):
        return "done"
    outcome = op.get("outcome")
    reason = _one_line(op.get("reason") or "")[:120]
    if outcome == "Indeterminate":
        return f"Indeterminate ({reason})" if reason else "Indeterminate"
    if op.get("status") is None:
        return f"no answer ({reason})" if reason else "no answer"
    return str(op.get("status"))


def _comment(position: int, op: Mapping[str, Any]) -> str:
    where = f"{op.get('service')} {op.get('kind')}"
    return f"# op {op.get('index', position)} (lane {op.get('lane', 0)}): {where} -> {_outcome(op)}"


class _Script:
    """Builds the script line by line, keeping track of captured variables and needed URLs."""

    def __init__(self, caught: Iterable[Capture]) -> None:
        self.subs = _Substitutions()
        self.captures = {c.index: c for c in caught}
        self.urls: list[str] = []
        self.token = False
        self.lines: list[str] = []

    def base(self, service: str) -> str:
        worker = service.removeprefix("worker:")
        name = self.subs.variable(worker) if worker != service else None
        if name is not None and self.subs.bound(f"{name}_URL"):
            return f"{name}_URL"
        name = env_name(service)
        if name not in self.urls:
            self.urls.append(name)
        return name

    def headers(self, op: Mapping[str, Any]) -> list[str]:
        args = op.get("args") or {}
        out = []
        for name, value in (op.get("headers") or {}).items():
            default = args.get("auth") not in ("none", "custom")
            if name.lower() == "authorization" and value == f"Bearer {MASK}" and default:
                self.token = True
                out.append(TOKEN_HEADER)
            else:
                out += ["-H", word(self.subs.split(f"{name}: {value}"))]
        return out

    def curl(self, op: Mapping[str, Any], *, capture: bool) -> str:
        method = str(op.get("method") or "GET").upper()
        parts = ["curl", "-sS"]
        body = op.get("body")
        if isinstance(body, Mapping) and "events" in body:
            parts.append("-N")  # an event stream: show events as they come
        if op.get("outcome") == "Indeterminate":
            took = float(op.get("complete", 0.0)) - float(op.get("invoke", 0.0))
            parts += ["--max-time", str(max(1, math.ceil(took)))]
        if not capture:
            parts += ["-w", shlex.quote(r"  [HTTP %{http_code}]\n")]
        request = op.get("request")
        if method == "HEAD":
            parts.append("--head")
        elif method != "GET" or request is not None:
            parts += ["-X", shlex.quote(method)]
        url: list[Piece] = [(True, self.base(str(op.get("service"))))]
        parts.append(word(url + self.subs.split(str(op.get("path") or "/"))))
        parts += self.headers(op)
        if request is not None:
            parts += ["--data-binary", word(self.subs.split(_body(request)))]
        line = " ".join(parts)
        return f"{line} || true" if op.get("status") is None and not capture else line

    def fault(self, op: Mapping[str, Any]) -> str:
        args = op.get("args") or {}
        kind = str(op.get("kind") or "fault")
        target = str(args.get("target") or op.get("path") or "")
        parts = ["rbee-props", shlex.quote(kind.replace("_", "-"))]
        if kind in _LINKS:
            parts.append("queen")
        if target:
            parts.append(word(self.subs.split(target)))
        if kind == "slow" and "ms" in args:
            parts.append(shlex.quote(str(args["ms"])))
        return " ".join(parts)

    def add(self, position: int, op: Mapping[str, Any]) -> None:
        self.lines.append(_comment(position, op))
        if is_controller(op):
            self.lines.append(self.fault(op))
            return
        capture = self.captures.get(position)
        if capture is None:
            self.lines.append(self.curl(op, capture=False))
            return
        name = capture.name
        self.lines.append(f"{name}_RESPONSE=$({self.curl(op, capture=True)})")
        self.lines.append(f"printf '%s\\n' \"${{{name}_RESPONSE}}\"")
        pipe = f"printf '%s' \"${{{name}_RESPONSE}}\" | "
        self.lines.append(f"{name}=$({pipe}{_FIELD.format(field='worker_id')})")
        self.subs.bind(capture.worker_id, name)
        if capture.url is not None:
            self.lines.append(f"{name}_URL=$({pipe}{_FIELD.format(field='url')})")
            self.subs.bind(capture.url, f"{name}_URL")
        self.lines.append(f'echo "{name}=${{{name}}}"')


def _header(finding: Finding, script: _Script) -> list[str]:
    violation = finding.violation
    example = " ".join(f"{name}=http://127.0.0.1:PORT" for name in script.urls) or "..."
    lines = [
        "#!/usr/bin/env bash",
        f"# rbee-props reproduction of {_one_line(finding.signature)}",
        f"# {violation.invariant}: {_one_line(violation.explains)}",
        f"# expected: {_one_line(violation.expected)}",
        f"# observed: {_one_line(violation.observed)}",
        "#",
        "# Replays the recorded HTTP exchange, in order, against a running stack; each line",
        "# prints the answer and its status, to compare with the recorded outcome above it.",
        "# Set the base URL of each service first, e.g. from `rbee-props status --json`:",
        f"#   export {example}",
    ]
    if script.token:
        lines.append("#   export RBEE_TOKEN_FILE=/path/to/the/stack/token")
    lines += [
        "# `rbee-props <fault> ...` lines inject the recorded faults into a stack started with",
        "# `rbee-props up --detach`; against a stack run some other way, inject them by hand.",
        "set -euo pipefail",
    ]
    lines += [
        f': "${{{name}:?set {name} to the base URL of that service}}"' for name in script.urls
    ]
    if script.token:
        lines.append(': "${RBEE_TOKEN_FILE:?set RBEE_TOKEN_FILE to the stack token file}"')
    return lines


def render_script(finding: Finding, history: Sequence[Mapping[str, Any]]) -> str:
    """The text of ``repro.sh`` for ``finding``, from its (redacted) ``history``."""
    script = _Script(captures(finding.program, history))
    for position, op in enumerate(history):
        script.add(position, op)
    return "\n".join([*_header(finding, script), "", *script.lines, ""])
