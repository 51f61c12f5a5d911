"""Input validation of the reference stack: the rules of contract §8, one function per field kind.

Each validator returns the value or raises :class:`~rbee_props.reference._http.ApiError` 400
``VALIDATION_ERROR``; no message echoes the rejected value (D13, F11). With the planted bug
``lenient-validation`` the identifier rules accept ``_``, shell metacharacters and long ids (B06).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from rbee_props.reference._http import ApiError

__all__ = ["Field", "Validator", "parse_body"]

WORKER_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
PROVIDER = re.compile(r"[A-Za-z0-9_-]+")
REF_PART = re.compile(r"[A-Za-z0-9._/-]+")
SAFE_WORD = re.compile(r"[A-Za-z0-9._-]+")
SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]+")
URL = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5})/?")
LENIENT_ID = re.compile(r"[\x21-\x7e]{1,256}")
SHELL_META = set(" \t\r\n'\"`$;|&<>(){}\\")
BACKENDS = ("cpu", "cuda", "metal")
U32_MAX = 2**32 - 1


def _host_ok(host: str) -> bool:
    """A host an HTTP client can connect to: bracketed IPv6, a dotted IPv4, or a DNS name.

    The pattern alone let ``[C]`` and ``999.999.999.999`` through; clients cannot parse them,
    and the queen's monitor died on the first probe of such a worker.
    """
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if host.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    labels = host.split(".")
    return all(DNS_LABEL.fullmatch(label) for label in labels)


def invalid(field: str, rule: str) -> ApiError:
    """A 400 that names the field and the rule, never the rejected value."""
    return ApiError(400, "VALIDATION_ERROR", f"invalid {field}: {rule}")


class Validator:
    """Field validators bound to one service's planted bugs."""

    def __init__(self, bugs: frozenset[str]) -> None:
        self.lenient = "lenient-validation" in bugs

    def _string(self, field: str, value: Any) -> str:
        if not isinstance(value, str):
            raise invalid(field, "must be a string")
        return value

    def _ident(self, field: str, value: Any, pattern: re.Pattern[str], rule: str) -> str:
        text = self._string(field, value)
        if self.lenient:
            if not LENIENT_ID.fullmatch(text):
                raise invalid(field, "must be 1..256 visible characters")
            return text
        if not pattern.fullmatch(text):
            raise invalid(field, rule)
        return text

    def worker_id(self, field: str, value: Any) -> str:
        return self._ident(field, value, WORKER_ID, "must match ^[A-Za-z0-9-]{1,64}$")

    def node_name(self, field: str, value: Any) -> str:
        return self._ident(field, value, DNS_LABEL, "must be a DNS label (letters, digits, -)")

    def model_ref(self, field: str, value: Any) -> str:
        text = self._string(field, value)
        rule = "must be provider:ref (ASCII, at most 512, one ':', no empty or '..' segment)"
        if self.lenient:
            if not 0 < len(text) <= 512 or ":" not in text:
                raise invalid(field, rule)
            return text
        if len(text) > 512 or not text.isascii() or text.count(":") != 1:
            raise invalid(field, rule)
        provider, ref = text.split(":")
        if not PROVIDER.fullmatch(provider) or not REF_PART.fullmatch(ref):
            raise invalid(field, rule)
        if ref.startswith("/") or any(seg in ("", ".", "..") for seg in ref.split("/")):
            raise invalid(field, rule)
        return text

    def backend(self, field: str, value: Any) -> str:
        text = self._string(field, value)
        if text not in BACKENDS:
            raise invalid(field, f"must be one of {', '.join(BACKENDS)}")
        return text

    def u32(self, field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
            raise invalid(field, f"must be an integer in 0..{U32_MAX}")
        return value

    def slots(self, field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
            raise invalid(field, "must be an integer in 1..1024")
        return value

    def url(self, field: str, value: Any) -> str:
        text = self._string(field, value)
        match = URL.fullmatch(text)
        if not match or not 1 <= int(match.group(2)) <= 65535 or not _host_ok(match.group(1)):
            raise invalid(field, "must be http(s)://host:port without userinfo or path")
        return text.rstrip("/")

    def safe_word(self, field: str, value: Any) -> str:
        text = self._ident(field, value, SAFE_WORD, "must match [A-Za-z0-9._-]+")
        if text.startswith("-") and not self.lenient:
            raise invalid(field, "must not start with '-'")
        return text

    def abs_path(self, field: str, value: Any) -> str:
        text = self._string(field, value)
        if self.lenient:
            return text
        if not text.startswith("/") or not SAFE_PATH.fullmatch(text) or ".." in text.split("/"):
            raise invalid(field, "must be an absolute path of [A-Za-z0-9._/-] without '..'")
        return text

    def rel_path(self, field: str, value: Any) -> str:
        text = self._string(field, value)
        if text and (
            text.startswith("/") or not SAFE_PATH.fullmatch(text) or ".." in text.split("/")
        ):
            raise invalid(field, "must be a relative path inside the model directory")
        return text

    def repo_url(self, field: str, value: Any) -> str:
        text = self._string(field, value)
        if not text or len(text) > 2048 or (SHELL_META & set(text) and not self.lenient):
            raise invalid(
                field, "must be non-empty without whitespace, quotes or shell metacharacters"
            )
        return text

    def port(self, field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise invalid(field, "must be an integer in 1..65535")
        return value

    def opt_text(self, field: str, value: Any) -> str | None:
        if value is None:
            return None
        text = self._string(field, value)
        if len(text) > 4096:
            raise invalid(field, "must be at most 4096 characters")
        return text

    def job_id(self, field: str, value: Any) -> str:
        text = self._string(field, value)
        if not 0 < len(text) <= 256 or not all(0x21 <= ord(c) <= 0x7E for c in text):
            raise invalid(field, "must be 1..256 visible ASCII characters")
        return text

    def prompt(self, field: str, value: Any) -> str:
        text = self._string(field, value)
        if not 1 <= len(text) <= 32768:
            raise invalid(field, "must be 1..32768 characters")
        return text

    def max_tokens(self, field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2048:
            raise invalid(field, "must be an integer in 1..2048")
        return value

    def number(self, low: float, high: float) -> Callable[[str, Any], float]:
        def check(field: str, value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid(field, f"must be a number in {low:g}..{high:g}")
            if not low <= value <= high:  # NaN fails this too
                raise invalid(field, f"must be a number in {low:g}..{high:g}")
            return float(value)

        return check

    def integer(self, low: int, high: int) -> Callable[[str, Any], int]:
        def check(field: str, value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise invalid(field, f"must be an integer in {low}..{high}")
            return value

        return check

    def stop(self, field: str, value: Any) -> list[str]:
        if not isinstance(value, list) or len(value) > 4:
            raise invalid(field, "must be a list of at most 4 strings")
        for item in value:
            if not isinstance(item, str) or not 1 <= len(item.encode()) <= 100:
                raise invalid(field, "each stop sequence must be 1..100 bytes")
        return value


class Field:
    """One body field: its validator, and a default when optional."""

    REQUIRED = object()

    def __init__(self, check: Callable[[str, Any], Any], default: Any = REQUIRED) -> None:
        self.check = check
        self.default = default


def parse_body(body: Mapping[str, Any], fields: Mapping[str, Field]) -> dict[str, Any]:
    """Validate ``body`` against ``fields``; unknown keys are ignored (contract §3)."""
    out: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in body or (body[name] is None and field.default is not Field.REQUIRED):
            if field.default is Field.REQUIRED:
                raise ApiError(400, "VALIDATION_ERROR", f"missing field {name}")
            out[name] = field.default
            continue
        out[name] = field.check(name, body[name])
    return out
