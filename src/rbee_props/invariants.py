"""Named, registered invariants: what must hold between the model and what the stack shows.

Each invariant is a plain function ``(model, expectation, snapshot) -> list[Violation]``
registered with :func:`define_invariant` under a property id of the contract's catalogue
(rbee-contract.md §10) and one sentence a REPORT.md reader understands. ``eventually``
invariants must hold within the grace window G: machines poll them and report how long
convergence took; the others must hold at every snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import attrs

from rbee_props.findings import Violation
from rbee_props.model import ClusterState, Expectation
from rbee_props.snapshot import Listed, Snapshot

__all__ = ["INVARIANTS", "Invariant", "check_all", "define_invariant", "explain"]

Check = Callable[[ClusterState, Expectation, Snapshot], list[Violation]]


@attrs.frozen
class Invariant:
    """A registered invariant."""

    name: str
    prop: str
    explains: str
    eventually: bool
    check: Check


INVARIANTS: dict[str, Invariant] = {}

#: the sentence for each property id, used in reports
EXPLAINS: dict[str, str] = {
    "S01": "No worker id is listed twice, by the queen or by any hive.",
    "S02": "Registering an id that is already registered answers 409 and changes nothing.",
    "S03": (
        "Each registry lists exactly the workers the model says are there: none missing, none "
        "unknown."
    ),
    "S04": (
        "A worker that was shut down leaves both registries within the grace window, and its "
        "process exits."
    ),
    "S05": (
        "Workers only make the lifecycle moves of the contract: ready on an unknown id is 404, on"
        " a non-loading worker 409."
    ),
    "S08": "A spawned worker is listed as loading, then idle (or removed by the ready timeout).",
    "S09": (
        "No two live workers share a port, and a port another process holds is never handed out."
    ),
    "S13": "Work only goes to registered idle workers; with none, 503 NO_IDLE_WORKERS.",
    "S14": (
        "The beehive registry equals the model: duplicates 409, removals stick, and it survives a"
        " queen restart."
    ),
    "S15": (
        "An inference stream numbers its tokens 0..n-1, reports tokens_out = n <= max_tokens, and"
        " ends with [DONE]."
    ),
    "S18": "Queen and hives stay healthy after every step, and served workers stay registered.",
    "S20": (
        "Every listed worker has a live process, and every worker process is listed by its hive."
    ),
    "S21": (
        "Within the grace window, every idle hive worker is registered at the queen and the queen"
        " lists no worker its hive does not have."
    ),
    "C01": "A worker killed with SIGKILL leaves both registries within the grace window.",
    "C03": (
        "After a hive restart no worker of its previous incarnation runs or is listed past the "
        "grace window."
    ),
    "C09": "SIGTERM of a hive stops all of its workers before it exits.",
    "F01": (
        "Every protected route refuses a request without credentials with 401 MISSING_API_KEY, "
        "changing nothing."
    ),
    "F02": "A wrong token gets 401 INVALID_API_KEY; a malformed header 401 MISSING_API_KEY.",
}


def explain(prop: str) -> str:
    """The one-sentence explanation of property ``prop``."""
    return EXPLAINS.get(prop, prop)


def define_invariant(
    prop: str, *, explains: str | None = None, eventually: bool = True
) -> Callable[[Check], Check]:
    """Register an invariant under property id ``prop`` (e.g. ``"S01"``)."""

    def register(func: Check) -> Check:
        if explains:
            EXPLAINS.setdefault(prop, explains)
        INVARIANTS[func.__name__] = Invariant(
            name=func.__name__,
            prop=prop,
            explains=explain(prop),
            eventually=eventually,
            check=func,
        )
        return func

    return register


def violation(prop: str, expected: str, observed: str, **details: object) -> Violation:
    return Violation(
        prop, explains=explain(prop), expected=expected, observed=observed, details=dict(details)
    )


def _ids(entries: Sequence[Listed]) -> list[str]:
    return [e.worker_id for e in entries]


@define_invariant("S01", eventually=False)
def unique_worker_ids(model: ClusterState, exp: Expectation, seen: Snapshot) -> list[Violation]:
    """S01: no registry lists an id twice."""
    found = []
    registries = {"queen": seen.queen, **seen.hives}
    for where, entries in registries.items():
        if entries is None:
            continue
        twice = sorted(i for i, n in Counter(_ids(entries)).items() if n > 1)
        if twice:
            found.append(violation("S01", "each id listed once", f"{where} lists {twice} twice"))
    return found


def _compare(
    where: str,
    entries: Sequence[Listed],
    wanted: dict[str, str] | object,
    exp: Expectation,
    *,
    missing_prop: str,
    extra_prop: str,
    open_ids: bool,
) -> list[Violation]:
    assert isinstance(wanted, dict)
    listed = set(_ids(entries))
    found = []
    for worker_id, rule in sorted(wanted.items()):
        if rule == "must" and worker_id not in listed:
            found.append(
                violation(
                    missing_prop,
                    f"{where} lists {worker_id}",
                    f"{where} does not list it",
                    worker_id=worker_id,
                )
            )
        elif rule == "not" and worker_id in listed:
            prop = exp.property_for(worker_id, extra_prop)
            reason = exp.doomed.get(worker_id, "it is not there")
            found.append(
                violation(
                    prop,
                    f"{worker_id} gone from {where} ({reason})",
                    f"{where} still lists it",
                    worker_id=worker_id,
                )
            )
    unknown = sorted(listed - set(wanted))
    if unknown and not open_ids:
        found.append(
            violation(
                "S03", f"{where} lists only known workers", f"{where} lists unknown {unknown}"
            )
        )
    return found


@define_invariant("S03")
def registries_match_model(
    model: ClusterState, exp: Expectation, seen: Snapshot
) -> list[Violation]:
    """S03/S21/C01/C03/C09/S04: each registry lists what the model says, within G."""
    found = []
    if exp.queen is not None and seen.queen is not None:
        found += _compare(
            "the queen",
            seen.queen,
            dict(exp.queen),
            exp,
            missing_prop="S21",
            extra_prop="S21",
            open_ids=bool(exp.open_hives),
        )
    for hive, wanted in exp.hives.items():
        entries = seen.hives.get(hive)
        if entries is None:
            continue
        found += _compare(
            hive,
            entries,
            dict(wanted),
            exp,
            missing_prop="S03",
            extra_prop="S03",
            open_ids=hive in exp.open_hives,
        )
    return found


@define_invariant("S20")
def processes_match_registries(
    model: ClusterState, exp: Expectation, seen: Snapshot
) -> list[Violation]:
    """S20 (C09 after SIGTERM): every listed worker runs, every worker process is listed."""
    if seen.processes is None:
        return []
    running = {p.worker_id for p in seen.processes if p.worker_id}
    found = []
    for worker_id, rule in sorted(exp.processes.items()):
        if rule == "must" and worker_id not in running:
            found.append(
                violation(
                    "S20", f"a live process of {worker_id}", "no process runs", worker_id=worker_id
                )
            )
        elif rule == "not" and worker_id in running:
            reason = exp.doomed.get(worker_id, "")
            prop = "C09" if reason == "terminate_hive" else "S20"
            pids = [p.pid for p in seen.processes if p.worker_id == worker_id]
            found.append(
                violation(
                    prop,
                    f"the process of {worker_id} gone ({reason or 'not listed'})",
                    f"pid {pids} still runs",
                    worker_id=worker_id,
                )
            )
    unknown = sorted(running - set(exp.processes))
    if unknown and not exp.open_hives:
        found.append(
            violation(
                "S20", "only processes of known workers", f"unknown worker processes {unknown}"
            )
        )
    return found


@define_invariant("S14")
def beehives_match_model(model: ClusterState, exp: Expectation, seen: Snapshot) -> list[Violation]:
    """S14: the beehive registry lists exactly the model's nodes."""
    if exp.beehives is None or seen.beehives is None:
        return []
    if set(seen.beehives) == set(exp.beehives) and len(seen.beehives) == len(set(seen.beehives)):
        return []
    return [
        violation("S14", f"beehives {sorted(exp.beehives)}", f"beehives {sorted(seen.beehives)}")
    ]


def check_all(
    model: ClusterState, exp: Expectation, seen: Snapshot, *, eventually: bool | None = None
) -> list[Violation]:
    """Run every registered invariant (or only the eventually / immediate ones)."""
    found: list[Violation] = []
    for inv in INVARIANTS.values():
        if eventually is None or inv.eventually == eventually:
            found += inv.check(model, exp, seen)
    return found
