"""How rbee-props runs Schemathesis: budget, phases, generation modes and check tuning.

One :class:`FuzzSettings` value describes a run; :func:`schemathesis_config` turns it, together
with an OpenAPI document, into a ``schemathesis.Config``. Two contract decisions live here:

- A documented 503 or 504 is capacity or a peer (NO_IDLE_WORKERS, ALL_SLOTS_BUSY, READY_TIMEOUT),
  not a server error, so ``not_a_server_error`` accepts it on operations that list it. A 500 or
  502 always fails; :func:`~rbee_props.fuzz.checks.no_server_error_for_client_input` (F09) is
  stricter still for negative cases.
- Links are only the ones the documents declare: Schemathesis' link inference could chain
  ``list -> shutdown`` and shut down the suite's own live worker.
"""

from __future__ import annotations

from typing import Any

import attrs
import schemathesis

__all__ = [
    "ALLOWED_5XX",
    "GRACE_KEY",
    "PEERS_KEY",
    "TARGET_KEY",
    "FuzzSettings",
    "schemathesis_config",
]

#: extension key of the raw document holding the peers' URLs for the rbee checks
PEERS_KEY = "x-rbee-peers"
#: extension key of the raw document holding the grace window G in seconds
GRACE_KEY = "x-rbee-grace"
#: extension key of the raw document holding where the schema is aimed: base URL and token
TARGET_KEY = "x-rbee-target"
#: documented 5xx statuses that mean capacity or an unavailable peer, not a crash
ALLOWED_5XX = ("503", "504")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@attrs.frozen
class FuzzSettings:
    """A fuzz run's budget and shape.

    Attributes:
        max_examples: Hypothesis examples per operation in the fuzzing phase.
        phases: Schemathesis phases to run (``examples``, ``coverage``, ``fuzzing``,
            ``stateful``).
        modes: generation modes, ``positive`` and/or ``negative``.
        stateful_steps: most calls in one stateful scenario.
        seed: fixed seed (None: random); with ``deterministic`` the same cases every run.
        deterministic: derandomize Hypothesis.
        request_timeout: seconds per request, streams included.
        grace: the grace window G for eventually-consistent checks (contract §7), seconds.
    """

    max_examples: int = 25
    phases: tuple[str, ...] = ("coverage", "fuzzing", "stateful")
    modes: tuple[str, ...] = ("positive", "negative")
    stateful_steps: int = 6
    seed: int | None = None
    deterministic: bool = False
    request_timeout: float = 20.0
    grace: float = 5.0


def _operations(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for item in raw.get("paths", {}).values():
        for method in _METHODS:
            if isinstance(item, dict) and isinstance(item.get(method), dict):
                op = item[method]
                found.append((str(op.get("operationId", "")), op))
    return found


def _capacity_statuses(raw: dict[str, Any]) -> dict[str, list[str]]:
    """operationId -> the documented 503/504 statuses that ``not_a_server_error`` accepts."""
    out = {}
    for op_id, op in _operations(raw):
        documented = [code for code in ALLOWED_5XX if code in op.get("responses", {})]
        if op_id and documented:
            out[op_id] = documented
    return out


def schemathesis_config(
    raw: dict[str, Any], *, base_url: str, settings: FuzzSettings
) -> schemathesis.Config:
    """The Schemathesis configuration of one document aimed at ``base_url``."""
    generation: dict[str, Any] = {
        "max-examples": settings.max_examples,
        "database": "none",
        "deterministic": settings.deterministic,
        # unknown query parameters and body fields are ignored by contract (§3), not refused
        "allow-extra-parameters": False,
    }
    if set(settings.modes) >= {"positive", "negative"}:
        generation["mode"] = "all"
    else:
        generation["mode"] = settings.modes[0]
    phases: dict[str, dict[str, Any]] = {
        name: {"enabled": name in settings.phases}
        for name in ("examples", "coverage", "fuzzing", "stateful")
    }
    phases["stateful"].update(
        {
            "max-steps": max(settings.stateful_steps, 2),
            "inference": {"algorithms": []},
            # scenarios follow links with valid data; invalid input is the operation suites' job
            "generation": {"mode": "positive"},
        }
    )
    operations = [
        {
            "include-operation-id": op_id,
            "checks": {
                "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", *statuses]}
            },
        }
        for op_id, statuses in sorted(_capacity_statuses(raw).items())
    ]
    data: dict[str, Any] = {
        "base-url": base_url.rstrip("/"),
        "generation": generation,
        "phases": phases,
        "operations": operations,
        "request-timeout": settings.request_timeout,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    }
    if settings.seed is not None:
        data["seed"] = settings.seed
    return schemathesis.Config.from_dict(data)
