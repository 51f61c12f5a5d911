"""The OpenAPI documents of the three rbee services, loaded as Schemathesis schemas.

rbee publishes no OpenAPI document, so rbee-props ships its own, written from the *intended*
contract (rbee-contract.md): ``openapi/queen.yaml``, ``hive.yaml`` and ``worker.yaml`` next to
this module. :func:`load_spec` reads one, points it at a live service and wraps it in the
Schemathesis configuration of :mod:`rbee_props.fuzz.settings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import schemathesis
import yaml
from schemathesis.core.errors import LoaderError
from schemathesis.core.result import Err
from schemathesis.schemas import BaseSchema

from rbee_props.errors import UsageError, did_you_mean
from rbee_props.fuzz.settings import (
    GRACE_KEY,
    PEERS_KEY,
    TARGET_KEY,
    FuzzSettings,
    schemathesis_config,
)

__all__ = ["SERVICES", "aim", "call_kwargs", "load_spec", "read_spec", "spec_path"]

SERVICES = ("queen", "hive", "worker")
#: libyaml's safe loader when present: the pure-Python one takes ~0.3 s per document
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SPEC_DIR = Path(__file__).with_name("openapi")


def spec_path(service: str) -> Path:
    """Where the document of ``service`` lives (inside the installed package).

    Raises:
        UsageError: ``service`` is not one of :data:`SERVICES`.
    """
    if service not in SERVICES:
        msg = (
            f"unknown rbee service {service!r}{did_you_mean(service, SERVICES)}; "
            f"known: {', '.join(SERVICES)}"
        )
        raise UsageError(msg, service=service)
    return SPEC_DIR / f"{service}.yaml"


def read_spec(path: str | Path) -> dict[str, Any]:
    """The raw OpenAPI document at ``path``, checked to be an OpenAPI 3.x mapping with paths.

    Raises:
        UsageError: the file is missing, unreadable, not YAML, or not an OpenAPI 3 document.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        msg = f"cannot read OpenAPI document {str(path)!r}: {reason}; pass an existing YAML file"
        raise UsageError(msg, path=str(path)) from None
    try:
        raw = yaml.load(text, Loader=_LOADER)  # a safe loader (C or Python)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        msg = f"OpenAPI document {str(path)!r} is not valid YAML{line}; fix its syntax"
        raise UsageError(msg, path=str(path)) from None
    version = raw.get("openapi") if isinstance(raw, dict) else None
    if not isinstance(version, str) or not version.startswith("3."):
        msg = (
            f"{str(path)!r} is not an OpenAPI 3 document (openapi: {version!r}); "
            "expected a mapping with 'openapi: 3.1.0' and 'paths'"
        )
        raise UsageError(msg, path=str(path))
    if not isinstance(raw.get("paths"), dict) or not raw["paths"]:
        msg = f"OpenAPI document {str(path)!r} has no paths; describe at least one route"
        raise UsageError(msg, path=str(path))
    return dict(raw)


def load_spec(
    service: str,
    base_url: str,
    *,
    token: str | None = None,
    peers: Mapping[str, str] | None = None,
    settings: FuzzSettings | None = None,
    path: str | Path | None = None,
) -> BaseSchema:
    """The Schemathesis schema of ``service`` aimed at ``base_url``.

    Args:
        service: ``queen``, ``hive`` or ``worker``.
        base_url: the live service, e.g. ``stack.urls["queen"]``.
        token: sent as ``Authorization: Bearer <token>`` with every case (None: no header).
        peers: other services' URLs the rbee checks may consult (``{"queen": url}`` for a hive).
        settings: budget and phases (default :class:`~rbee_props.fuzz.settings.FuzzSettings`).
        path: another document instead of the shipped one.

    Raises:
        UsageError: unknown service, or a missing or invalid document.
    """
    file = Path(path) if path is not None else spec_path(service)
    raw = read_spec(file)
    settings = settings or FuzzSettings()
    config = schemathesis_config(raw, base_url=base_url, settings=settings)
    try:
        schema = schemathesis.openapi.from_dict(raw, config=config)
    except LoaderError as exc:
        msg = f"OpenAPI document {str(file)!r} cannot be loaded: {exc.message.splitlines()[0]}"
        raise UsageError(msg, path=str(file)) from None
    schema.location = file.absolute().as_uri()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            error = result.err()
            first = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            msg = f"OpenAPI document {str(file)!r} is invalid at {error.label}: {first}"
            raise UsageError(msg, path=str(file))
    return aim(schema, base_url, token=token, peers=peers, grace=settings.grace)


def aim(
    schema: BaseSchema,
    base_url: str,
    *,
    token: str | None,
    peers: Mapping[str, str] | None = None,
    grace: float | None = None,
) -> BaseSchema:
    """Point a loaded schema (and every clone of it) at ``base_url`` with ``token``.

    Schemathesis' pytest integration builds its tests when the module is collected, before any
    stack runs, and bakes the configured base URL and headers into them; so a fixture aims the
    schema once the stack is up and every call passes :func:`call_kwargs`. Clones share the
    raw document and the config, so all tests generated from the schema follow.
    """
    base_url = base_url.rstrip("/")
    config = schema.config
    config.update(base_url=base_url)
    headers = {k: v for k, v in (config.headers or {}).items() if k.lower() != "authorization"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    config.headers = headers
    schema.raw_schema[TARGET_KEY] = {"base_url": base_url, "token": token or None}
    schema.raw_schema[PEERS_KEY] = dict(peers or {})
    if grace is not None:
        schema.raw_schema[GRACE_KEY] = grace
    return schema


def call_kwargs(schema: BaseSchema) -> dict[str, Any]:
    """``base_url`` and ``headers`` for ``case.call()``: where :func:`aim` pointed the schema.

    Raises:
        UsageError: the schema was never aimed.
    """
    target = schema.raw_schema.get(TARGET_KEY)
    if not isinstance(target, dict):
        msg = "the schema is not aimed at a service; call rbee_props.fuzz.specs.aim() first"
        raise UsageError(msg)
    token = target.get("token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {"base_url": target["base_url"], "headers": headers}
