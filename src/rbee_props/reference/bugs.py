"""The planted bugs of the reference stack, switched on by name through ``RBEE_REF_BUGS``.

Each bug is a small, honest deviation in the code path it models (contract §11). With none
switched on, the reference stack follows the contract exactly.
"""

from __future__ import annotations

import os

__all__ = ["KNOWN_BUGS", "UnknownBug", "active_bugs", "parse_bugs"]

KNOWN_BUGS: dict[str, str] = {
    "dup-register": "queen overwrites a present worker id on register and answers 200 (B05)",
    "ghost-after-kill": "queen never evicts dead workers (B13, B17)",
    "evict-without-kill": "hive drops registry entries but leaves the processes running (B02, B17)",
    "wrong-health-path": "hive probes /v1/health on workers and evicts healthy ones (B01)",
    "ready-unknown-200": "hive answers 200 to a ready callback for an unknown id, a no-op (B07)",
    "lost-update": "hive monitor writes back the entries it read at sweep start (B14)",
    "no-auth-internal": "hive registers workers at the queen without the token (B03)",
    "dev-mode-bypass": "an empty or unset token disables auth (B04)",
    "lenient-validation": (
        "'_', shell metacharacters and ids over 64 characters accepted (B06, B22)"
    ),
    "text-errors": "plain-text error bodies; a peer's 4xx relayed as 500 (B24)",
    "no-slot-admission": "worker queues requests instead of answering 503 when full (B10)",
    "sigterm-orphans": "hive exits on SIGTERM leaving its workers running (B18)",
    "port-reuse-orphan": "hive picks worker ports from its registry only, not from the OS (B16)",
    "hive-restart-no-reconcile": (
        "queen neither reconciles with a restarted hive nor checks worker identity (B13)"
    ),
}

ENV_VAR = "RBEE_REF_BUGS"


class UnknownBug(ValueError):
    """A planted-bug name that the reference stack does not know."""


def parse_bugs(text: str | None) -> frozenset[str]:
    """Parse a comma-separated list of planted-bug names.

    Raises:
        UnknownBug: a name is not in :data:`KNOWN_BUGS`; the message lists the known ones.
    """
    names = frozenset(part.strip() for part in (text or "").split(",") if part.strip())
    unknown = sorted(names - KNOWN_BUGS.keys())
    if unknown:
        msg = (
            f"unknown planted bug {', '.join(map(repr, unknown))} in {ENV_VAR}; "
            f"known: {', '.join(sorted(KNOWN_BUGS))}"
        )
        raise UnknownBug(msg)
    return names


def active_bugs() -> frozenset[str]:
    """The planted bugs switched on in this process's environment."""
    return parse_bugs(os.environ.get(ENV_VAR))
