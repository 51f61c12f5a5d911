"""What a campaign hands to the report: its summary, each suite's result, findings, load series.

A campaign fills a :class:`CampaignResult` as it goes (so a Ctrl-C can still write a report of
what it has) and gives it to :func:`rbee_props.report.write_report`. Findings are read back from
their exported directories (:meth:`FindingReport.from_directory`): the stateful machines' layout
(``finding.json`` of :class:`rbee_props.repro.Finding`) and the fuzz suites' one (a plain
``finding.json`` with ``signature`` and ``check``), each with its ``REPORT.md`` and any PNG
picture beside it (the timeline of a concurrent finding).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from rbee_props.errors import UsageError
from rbee_props.load.stats import Series
from rbee_props.repro import Finding

__all__ = ["CampaignResult", "FindingReport", "SuiteResult", "findings_from"]


@attrs.frozen
class SuiteResult:
    """One state machine or fuzz suite over the whole campaign (one JUnit test case).

    Attributes:
        name: ``stack``, ``registry``, ``fuzz:queen``...
        kind: ``machine``, ``fuzz`` or ``load``.
        examples, steps: how much it ran (steps: state-machine steps; 0 for fuzz).
        seconds: time spent in it.
        findings: signatures of the findings it made (their details are in the findings).
        error: it could not run (a crash of rbee-props, a stack that did not start).
        skipped: why it did not run at all (e.g. the backend lacks a fault).
    """

    name: str
    kind: str = "machine"
    examples: int = 0
    steps: int = 0
    seconds: float = 0.0
    findings: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    error: str | None = None
    skipped: str | None = None


def _pictures(directory: Path) -> tuple[Path, ...]:
    """PNG files of a finding directory, ``timeline.png`` first."""
    found = sorted(directory.glob("*.png"), key=lambda p: (p.name != "timeline.png", p.name))
    return tuple(found)


@attrs.frozen
class FindingReport:
    """One finding as the report shows it.

    Attributes:
        signature: the finding's signature (what de-duplicates it).
        title: one line saying what broke.
        suite: the machine or fuzz suite that found it.
        report_md: the ``REPORT.md`` text of its directory.
        directory: where it was exported (None when it was not).
        pictures: PNG files beside it (a concurrent finding's timeline).
        finding: the stateful :class:`~rbee_props.repro.Finding`, when it is one.
        reproduced, attempts: replays that failed out of those made (None: not replayed).
        seed: the Hypothesis seed, when known.
        occurrences: how often the campaign met it (the report shows it once).
        known: listed in the config's ``known`` deviations.
    """

    signature: str
    title: str
    suite: str
    report_md: str = ""
    directory: Path | None = None
    pictures: tuple[Path, ...] = attrs.field(default=(), converter=tuple)
    finding: Finding | None = None
    reproduced: int | None = None
    attempts: int | None = None
    seed: int | None = None
    bugs: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    occurrences: int = 1
    known: bool = False

    @property
    def rate(self) -> str:
        """The reproduction rate ``k/n`` (``not replayed`` when unknown)."""
        if self.reproduced is None or self.attempts is None:
            return "not replayed"
        return f"{self.reproduced}/{self.attempts}"

    @classmethod
    def from_finding(
        cls, finding: Finding, *, directory: Path | None = None, **fields: Any
    ) -> FindingReport:
        """From a stateful finding (and its exported directory, for REPORT.md and pictures)."""
        report_file = directory / "REPORT.md" if directory else None
        report = report_file.read_text() if report_file and report_file.is_file() else ""
        values: dict[str, Any] = {
            "title": finding.violation.summary,
            "suite": finding.machine,
            "report_md": report,
            "directory": directory,
            "pictures": _pictures(directory) if directory else (),
            "finding": finding,
            "reproduced": finding.reproduced,
            "attempts": finding.attempts,
            "seed": finding.seed,
            "bugs": finding.bugs,
        }
        values.update(fields)
        return cls(finding.signature, **values)

    @classmethod
    def from_directory(cls, directory: Path, **fields: Any) -> FindingReport:
        """Read an exported finding directory (stateful or fuzz layout).

        Raises:
            UsageError: it holds no readable ``finding.json``.
        """
        try:
            data = json.loads((directory / "finding.json").read_text())
        except (OSError, ValueError) as exc:
            msg = f"{directory} holds no readable finding.json ({exc}); pass a finding directory"
            raise UsageError(msg) from exc
        if "violation" in data:
            return cls.from_finding(Finding.from_json(data), directory=directory, **fields)
        report = directory / "REPORT.md"
        messages = data.get("messages") or []
        values: dict[str, Any] = {
            "title": f"{data.get('check', 'check')}: {messages[0] if messages else ''}".strip(),
            "suite": f"fuzz:{data['service']}" if data.get("service") else "fuzz",
            "report_md": report.read_text() if report.is_file() else "",
            "directory": directory,
            "pictures": _pictures(directory),
            "seed": data.get("seed"),
        }
        values.update(fields)
        return cls(str(data.get("signature", directory.name)), **values)


@attrs.frozen
class CampaignResult:
    """Everything the report shows.

    Attributes:
        title: the heading of the report.
        started_unix: when the campaign started (seconds since the epoch).
        seconds: how long it ran.
        budget: the time budget it was given (None: none).
        interrupted: it was stopped by Ctrl-C (the report shows what was found until then).
        summary: figures for the summary table, in order (workers, examples/s, stack restarts,
            seed...); any JSON-like values.
        suites: one entry per state machine or fuzz suite.
        findings: the de-duplicated findings.
        series: throughput and latency over time, with fault windows (load phases).
        config_source, bugs: the stack that was tested.
    """

    title: str = "rbee-props campaign"
    started_unix: float = 0.0
    seconds: float = 0.0
    budget: float | None = None
    interrupted: bool = False
    summary: Mapping[str, Any] = attrs.field(factory=dict)
    suites: tuple[SuiteResult, ...] = attrs.field(default=(), converter=tuple)
    findings: tuple[FindingReport, ...] = attrs.field(default=(), converter=tuple)
    series: tuple[Series, ...] = attrs.field(default=(), converter=tuple)
    config_source: str = "built-in reference stack"
    bugs: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def new_findings(self) -> list[FindingReport]:
        """Findings not listed as known deviations."""
        return [f for f in self.findings if not f.known]

    def findings_of(self, suite: str) -> list[FindingReport]:
        """The findings ``suite`` made: those it names, and those naming it as their suite."""
        named = {s.name: set(s.findings) for s in self.suites}
        return [
            f for f in self.findings if f.signature in named.get(suite, set()) or f.suite == suite
        ]

    def status_of(self, suite: SuiteResult) -> str:
        """``failed`` (new findings), ``error``, ``skipped`` or ``passed`` (known deviations
        do not fail a suite)."""
        if any(not f.known for f in self.findings_of(suite.name)):
            return "failed"
        if suite.error:
            return "error"
        return "skipped" if suite.skipped else "passed"

    def orphan_findings(self) -> list[FindingReport]:
        """Findings no suite of the result claims (they get a test case of their own)."""
        names = {s.name for s in self.suites}
        claimed = {sig for s in self.suites for sig in s.findings}
        return [f for f in self.findings if f.signature not in claimed and f.suite not in names]


def findings_from(root: Path, *, signatures: Sequence[str] | None = None) -> list[FindingReport]:
    """Every finding directory under ``root`` (those of ``signatures`` only, when given)."""
    found = []
    for directory in sorted(p for p in root.iterdir() if (p / "finding.json").is_file()):
        report = FindingReport.from_directory(directory)
        if signatures is None or report.signature in signatures:
            found.append(report)
    return found
