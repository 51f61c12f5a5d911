"""Auth rules: protected routes refuse a missing, malformed or wrong token, changing nothing.

Each probe sends a request that *would* change the stack if it got through (a registration, a
spawn), so a route that lets it pass is caught twice: by the status here (F01/F02) and by the
registries no longer matching the model.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from rbee_props.findings import Violation
from rbee_props.invariants import explain
from rbee_props.machines._core import StackMachineBase, recorded

__all__ = ["PROTECTED_ROUTES", "AuthRules"]

#: (service, method, path, body) of protected routes; "hive" means the first hive
PROTECTED_ROUTES: tuple[tuple[str, str, str, Any], ...] = (
    ("queen", "GET", "/v2/workers/list", None),
    ("queen", "POST", "/v2/workers/register",
     {"worker_id": "intruder", "url": "http://127.0.0.1:9", "model_ref": "hf:a/b",
      "backend": "cpu", "node_name": "hive1", "device": 0}),
    ("queen", "POST", "/v2/workers/shutdown", {"worker_id": "intruder"}),
    ("queen", "GET", "/v2/registry/beehives/list", None),
    ("queen", "POST", "/v2/registry/beehives/remove", {"node_name": "hive1"}),
    ("hive", "GET", "/v1/workers/list", None),
    ("hive", "POST", "/v1/workers/spawn", {"model_ref": "hf:a/b", "backend": "cpu", "device": 0}),
)  # fmt: skip

#: header variant -> (Authorization header or None, the 401 code the contract requires)
VARIANTS: dict[str, tuple[str | None, str]] = {
    "none": (None, "MISSING_API_KEY"),
    "basic": ("Basic dXNlcjpwYXNz", "MISSING_API_KEY"),
    "lowercase-bearer": ("bearer {token}", "MISSING_API_KEY"),
    "wrong": ("Bearer wrong-{token}", "INVALID_API_KEY"),
}


class AuthRules(StackMachineBase):
    """F01/F02 probes on protected routes of the queen and a hive."""

    @rule(
        route=st.integers(min_value=0, max_value=len(PROTECTED_ROUTES) - 1),
        variant=st.sampled_from(sorted(VARIANTS)),
    )
    @recorded
    def probe_auth(self, route: int, variant: str) -> None:
        """F01/F02: the exact 401 code, and nothing changes."""
        service, method, path, body = PROTECTED_ROUTES[route]
        header, code = VARIANTS[variant]
        client = self.queen if service == "queen" else self.hive_clients[self.stack.hives[0]]
        reachable = self.model.queen_reachable if service == "queen" else self.model.hives[
            self.stack.hives[0]].reachable  # fmt: skip
        if not reachable:
            return
        auth = None if header is None else header.replace("{token}", self.stack.token)
        op = client.request(f"auth_{variant}", method, path, json=body, auth=auth, timeout=2.0)
        got = op.body.get("error", {}).get("code") if isinstance(op.body, dict) else None
        if op.status is None:
            return  # no answer (a fault in progress): nothing to judge
        if op.status != 401 or got != code:
            prop = "F02" if variant in ("wrong", "lowercase-bearer") else "F01"
            self.fail(
                Violation(
                    prop,
                    explains=explain(prop),
                    expected=f"401 {code} from {method} {path} ({variant} credentials)",
                    observed=f"{op.status} {str(op.body)[:160]!r}",
                )
            )
