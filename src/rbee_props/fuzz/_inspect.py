"""What the rbee checks read from a Schemathesis case: credentials, the request sent, the schema.

Pure helpers over a ``Case``, its ``Response`` and the raw OpenAPI document: which token the run
uses, whether a route is protected, what the request carried, and which declared string fields
of the request break their schema (the "rejected values" of contract §8).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema_rs
from schemathesis import Case, Response

from rbee_props.fuzz.settings import TARGET_KEY

__all__ = [
    "Credentials",
    "client_mistake",
    "configured_token",
    "credentials_of",
    "is_protected",
    "json_body",
    "sent_authorization",
    "string_field_violations",
]

#: keywords that make a string field an "identifier" whose violation must be a 400 (§8)
_STRING_RULES = ("pattern", "enum", "const", "minLength", "maxLength")
MAX_AUTH_HEADER = 8192


def configured_token(case: Case[Any]) -> str | None:
    """The stack token this run sends: where the schema is aimed, else its configured header.

    A finding's document copy names no token (``st replay -H "Authorization: Bearer ..."``
    passes it), so the header is the fallback.
    """
    target = case.operation.schema.raw_schema.get(TARGET_KEY)
    if isinstance(target, dict) and target.get("token"):
        return str(target["token"])
    headers = case.operation.schema.config.headers_for(operation=case.operation) or {}
    for name, value in headers.items():
        if name.lower() == "authorization" and str(value).startswith("Bearer "):
            return str(value)[len("Bearer ") :].strip() or None
    return None


def is_protected(case: Case[Any]) -> bool:
    """Whether the operation requires credentials: its ``security`` or the document's."""
    raw = case.operation.definition.raw
    security = (
        raw["security"]
        if "security" in raw
        else case.operation.schema.raw_schema.get("security", [])
    )
    return bool(security) and all(requirement for requirement in security)


def sent_authorization(response: Response) -> str | None:
    """The ``Authorization`` header of the request that got ``response`` (None: none sent)."""
    value = response.request.headers.get("Authorization")
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class Credentials:
    """How a request presented itself, by the shared bearer parser of contract §4 (D7)."""

    MISSING = "MISSING_API_KEY"
    INVALID = "INVALID_API_KEY"
    VALID = "valid"


def credentials_of(header: str | None, token: str | None) -> str:
    """``VALID``, or the 401 code a protected route must answer ``header`` with."""
    if header is None or len(header) > MAX_AUTH_HEADER:
        return Credentials.MISSING
    if any(not (0x20 <= ord(ch) <= 0x7E) and ch != "\t" for ch in header):
        return Credentials.MISSING
    header = header.strip()
    if not header.startswith("Bearer "):
        return Credentials.MISSING
    presented = header[len("Bearer ") :].strip()
    if not presented or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in presented):
        return Credentials.MISSING
    return Credentials.VALID if token and presented == token else Credentials.INVALID


def json_body(response: Response) -> Any:
    """The JSON the request carried, or None when it sent no JSON (other media type, bad JSON)."""
    request = response.request
    ctype = str(request.headers.get("Content-Type", "")).split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        return None
    body = request.body
    if not isinstance(body, str | bytes):
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _resolve(node: Any, root: Mapping[str, Any], depth: int = 0) -> Any:
    """``node`` with every local ``$ref`` inlined (the rbee documents are not recursive)."""
    if depth > 32:
        return node
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
            target: Any = root
            for part in node["$ref"][2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _resolve(merged, root, depth + 1)
        return {key: _resolve(value, root, depth + 1) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, root, depth + 1) for item in node]
    return node


def _has_string_rules(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if any(key in schema for key in _STRING_RULES):
        return True
    return any(_has_string_rules(branch) for branch in schema.get("anyOf", []))


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(json.loads(schema_json))


def _body_schema(case: Case[Any]) -> dict[str, Any] | None:
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return _resolve(schema, case.operation.schema.raw_schema) if schema is not None else None


def client_mistake(case: Case[Any], response: Response) -> str | None:
    """Why the sent request is the client's mistake (a 4xx is owed), or None when it is valid.

    Judged on what was actually sent, not on how Schemathesis meant to generate it: a body
    that is missing, not JSON or breaks the body schema, or a query parameter that is missing,
    repeated or breaks its schema.
    """
    raw = case.operation.definition.raw
    request = response.request
    body_schema = _body_schema(case)
    if body_schema is not None:
        if not request.body:
            return "no body" if raw.get("requestBody", {}).get("required") else None
        body = json_body(response)
        if body is None:
            return "a body that is not JSON (or not sent as JSON)"
        if not _validator(json.dumps(body_schema, sort_keys=True)).is_valid(body):
            return "a body that breaks the schema"
    query = parse_qs(urlsplit(request.url or "").query, keep_blank_values=True)
    for location, name, schema, required in _fields(case):
        if location != "query":
            continue
        values = query.get(name, [])
        if (required and not values) or len(values) > 1:
            return f"query parameter {name} missing or repeated"
        if values and not _validator(json.dumps(schema, sort_keys=True)).is_valid(values[0]):
            return f"an invalid query parameter {name}"
    return None


def _fields(case: Case[Any]) -> Iterator[tuple[str, str, dict[str, Any], bool]]:
    """(location, name, resolved schema, required) of each body property and query parameter."""
    root = case.operation.schema.raw_schema
    raw = case.operation.definition.raw
    for param in raw.get("parameters", []):
        param = _resolve(param, root)
        if param.get("in") == "query":
            yield "query", param["name"], param.get("schema", {}), bool(param.get("required"))
    body_schema = _body_schema(case) or {}
    required = set(body_schema.get("required", []))
    for name, prop in body_schema.get("properties", {}).items():
        yield "body", name, prop, name in required


def string_field_violations(case: Case[Any], response: Response) -> list[tuple[str, str, str]]:
    """Declared string fields of the sent request whose value breaks their schema.

    Returns ``(location, name, value)`` for each string value that fails its field's pattern,
    enum or length (a rejected identifier, model ref, path or URL); other types are left to
    the framework's 400/422.
    """
    body = json_body(response)
    query = parse_qs(urlsplit(response.request.url or "").query, keep_blank_values=True)
    found = []
    for location, name, schema, _ in _fields(case):
        if location == "query":
            values = query.get(name, [])
            if len(values) != 1:
                continue
            value: Any = values[0]
        elif isinstance(body, dict) and name in body:
            value = body[name]
        else:
            continue
        if not isinstance(value, str) or not _has_string_rules(schema):
            continue
        if not _validator(json.dumps(schema, sort_keys=True)).is_valid(value):
            found.append((location, name, value))
    return found
