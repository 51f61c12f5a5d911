"""The one place secrets are masked: everything that leaves the process passes through here.

Logs, REPORT.md, ``repro.sh`` and ``history.jsonl`` never contain the stack token nor any of its
prefixes of 8 or more characters (contract D8); they show ``<token>`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "Redactor"]

MASK = "<token>"
MIN_PREFIX = 8


class Redactor:
    """Masks the given secrets, and every prefix of them of ``MIN_PREFIX`` or more characters."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        parts = []
        for secret in self.secrets:
            if len(secret) < MIN_PREFIX:
                parts.append(re.escape(secret))
                continue
            # the whole secret, or any prefix of it with at least MIN_PREFIX characters
            head = re.escape(secret[:MIN_PREFIX])
            tail = "".join(f"(?:{re.escape(ch)}" for ch in secret[MIN_PREFIX:])
            parts.append(head + tail + ")?" * (len(secret) - MIN_PREFIX))
        self._pattern = re.compile("|".join(parts)) if parts else None

    def text(self, value: str) -> str:
        """``value`` with every secret (and long prefix) replaced by ``<token>``."""
        return self._pattern.sub(MASK, value) if self._pattern else value

    def obj(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.obj(v) for v in value]
        return value

    def contains_secret(self, value: str) -> bool:
        """Whether ``value`` holds a secret or one of its long prefixes."""
        return bool(self._pattern and self._pattern.search(value))
