"""One finding per property, claimed once by whichever worker of whichever run gets there first.

A property a buggy stack breaks is met again and again: by every worker, in every round, and
by every later campaign on the same findings directory. Shrinking it each time would spend the
night on one bug, and a shrunk program's signature (``<property>:<operation kinds>``) depends on
the path the search took, so two workers could export the same bug under two names. So a
campaign keys a state-machine finding by its **property** (``S02``, ``C01``...): the first
worker to meet it claims the key with an atomic ``mkdir`` in ``findings/.claims/`` and shrinks
and exports it; every other meeting is counted, and the example is dropped so the search goes
on past it (``MachineContext.already_found``). The price, written in ``docs/campaigns.md``: a
second bug that breaks the same property shows up once the first is fixed (or listed as known).
Fuzz findings keep their own signatures (``check:service.operation:status``), one directory
each, as ``rbee-props fuzz`` writes them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rbee_props.findings import Violation

__all__ = ["Claims", "property_key"]


def property_key(violation: Violation) -> str:
    """The campaign's de-duplication key of a state-machine violation."""
    return f"property-{violation.invariant}"


class Claims:
    """The claims under ``<findings>/.claims`` (safe between processes: ``mkdir`` is atomic)."""

    def __init__(self, findings: Path) -> None:
        self.root = findings / ".claims"
        self.root.mkdir(parents=True, exist_ok=True)

    def claim(self, key: str) -> bool:
        """Take ``key``; False when some worker (of this campaign or an earlier one) has it."""
        try:
            os.mkdir(self.root / key)
        except FileExistsError:
            return False
        return True

    def held(self, key: str) -> bool:
        return (self.root / key).is_dir()

    def keys(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if p.is_dir()}

    def release(self, key: str) -> None:
        """Give ``key`` back (its finding could not be kept, e.g. its export failed)."""
        with contextlib.suppress(OSError):
            os.rmdir(self.root / key)
