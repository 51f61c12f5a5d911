"""Schemathesis suites for rbee: OpenAPI documents of the intended contract and rbee's checks.

``load_spec("queen" | "hive" | "worker", url, token=...)`` gives a Schemathesis schema of the
shipped document (``openapi/*.yaml``); :mod:`~rbee_props.fuzz.checks` registers the rbee checks
(F01/F02, F04/F05, F09, F10, F11, S21); :mod:`~rbee_props.fuzz.suite` picks the checks per case
and builds the link-driven state machine; :func:`~rbee_props.fuzz.runner.fuzz` runs a schema
without pytest. ``tests/fuzz`` runs them through Schemathesis' pytest integration.
"""

from __future__ import annotations

from rbee_props.fuzz.checks import RBEE_CHECKS
from rbee_props.fuzz.runner import FuzzReport, fuzz
from rbee_props.fuzz.settings import FuzzSettings
from rbee_props.fuzz.specs import SERVICES, aim, call_kwargs, load_spec
from rbee_props.fuzz.suite import all_checks, checks_for, state_machine

__all__ = [
    "RBEE_CHECKS",
    "SERVICES",
    "FuzzReport",
    "FuzzSettings",
    "aim",
    "all_checks",
    "call_kwargs",
    "checks_for",
    "fuzz",
    "load_spec",
    "state_machine",
]
