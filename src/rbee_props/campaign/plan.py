"""What a campaign runs: its suites, budget, slices, and where it keeps its state."""

from __future__ import annotations

from pathlib import Path

import attrs

from rbee_props.errors import UsageError, did_you_mean
from rbee_props.machines import MACHINES

__all__ = ["DEFAULT_SUITES", "FUZZ_SERVICES", "CampaignPlan", "parse_suites"]

FUZZ_SERVICES = ("queen", "hive", "worker")
#: the state machines and the fuzz suites, taking turns: the rounds go through them in order,
#: and with two workers one starts on a machine and the other on a fuzz suite
DEFAULT_SUITES: tuple[str, ...] = tuple(
    suite
    for pair in zip(MACHINES, (f"fuzz:{s}" for s in FUZZ_SERVICES), strict=True)
    for suite in pair
)


def parse_suites(text: str | None) -> tuple[str, ...]:
    """``--suites``: ``all``, or a comma-separated list of machine names and ``fuzz:<service>``.

    Raises:
        UsageError: an unknown suite name.
    """
    if text is None or text.strip() in ("", "all"):
        return DEFAULT_SUITES
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in DEFAULT_SUITES:
            msg = (
                f"--suites: unknown suite {name!r}{did_you_mean(name, DEFAULT_SUITES)}; "
                f"known: {', '.join(DEFAULT_SUITES)}"
            )
            raise UsageError(msg)
    return names


@attrs.frozen
class CampaignPlan:
    """Everything a campaign worker needs (picklable: it crosses to worker processes).

    Attributes:
        seconds: the budget.
        out: the campaign directory: ``findings/``, ``report.html``, ``junit.xml``,
            ``campaign.json``, ``logs/`` and (by default) the example database ``db/``.
        seed: the campaign seed; worker ``i``'s runs derive theirs from it.
        workers: how many worker processes (each with its own stack).
        db: the example database: a directory or ``redis://...`` (None: ``out/db``).
        suites: state machine names and ``fuzz:<service>`` suites, in round order.
        machine_slice, fuzz_slice: seconds a worker gives one suite before the next one's turn.
        examples: examples per Hypothesis run of a machine (a slice holds several runs).
        steps: steps per example (the ``overnight`` profile's 50 by default).
        shrink_seconds: longest shrink of one new finding.
        attempts: replays of a finding for its reproduction rate.
    """

    seconds: float
    out: str
    seed: int
    workers: int = 1
    db: str | None = None
    suites: tuple[str, ...] = DEFAULT_SUITES
    machine_slice: float = 180.0
    fuzz_slice: float = 90.0
    examples: int = 10
    steps: int = 50
    shrink_seconds: float = 60.0
    attempts: int = 3

    @property
    def root(self) -> Path:
        return Path(self.out)

    @property
    def findings_dir(self) -> Path:
        return self.root / "findings"

    @property
    def database(self) -> str:
        return self.db if self.db is not None else str(self.root / "db")

    def slice_of(self, suite: str) -> float:
        return self.fuzz_slice if suite.startswith("fuzz:") else self.machine_slice

    def suites_for(self, index: int) -> list[str]:
        """Worker ``index``'s round order: the suites rotated, so workers start on different
        suites and together cover all of them early."""
        count = len(self.suites)
        return [self.suites[(index + k) % count] for k in range(count)]
