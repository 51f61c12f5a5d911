"""Findings read back from their exported directories, in the stateful and the fuzz layout."""

from __future__ import annotations

import pytest

from rbee_props.errors import UsageError
from rbee_props.report import CampaignResult, FindingReport, SuiteResult, findings_from
from rbee_props.repro import export_finding
from tests.report._campaign import fuzz_directory, stateful_finding, timeline_png


def test_a_stateful_finding_brings_its_report_rate_seed_and_timeline(tmp_path):
    finding = stateful_finding(
        "S02", ["register_worker", "register_duplicate"], machine="registry",
        reproduced=2, attempts=3, bugs=("dup-register",),
    )  # fmt: skip
    directory = export_finding(finding, tmp_path)
    (directory / "other.png").write_bytes(timeline_png())
    (directory / "timeline.png").write_bytes(timeline_png())
    report = FindingReport.from_directory(directory, occurrences=5)
    assert report.signature == "S02:register_worker,register_duplicate"
    assert report.suite == "registry"
    assert report.rate == "2/3"
    assert (report.seed, report.bugs, report.occurrences) == (4242, ("dup-register",), 5)
    assert report.report_md == (directory / "REPORT.md").read_text()
    assert "S02" in report.report_md
    assert [p.name for p in report.pictures] == ["timeline.png", "other.png"]
    assert report.finding is not None and report.finding.signature == report.signature
    assert report.title.startswith("S02: expected 409")


def test_a_fuzz_finding_is_read_from_its_plain_finding_json(tmp_path):
    report = FindingReport.from_directory(fuzz_directory(tmp_path))
    assert report.signature == "F10:queen:POST /v2/workers/register"
    assert report.suite == "fuzz:queen"
    assert report.rate == "not replayed"
    assert report.seed == 99
    assert report.title == "F10: the error body is text, not the JSON envelope"
    assert report.report_md.startswith("# F10")
    assert report.finding is None


def test_a_directory_without_a_finding_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"holds no readable finding\.json"):
        FindingReport.from_directory(tmp_path)


def test_findings_from_reads_every_finding_directory_and_skips_the_rest(tmp_path):
    export_finding(stateful_finding("S01", ["spawn"], machine="stack"), tmp_path)
    fuzz_directory(tmp_path)
    (tmp_path / "notes").mkdir()
    found = findings_from(tmp_path)
    assert sorted(f.signature for f in found) == [
        "F10:queen:POST /v2/workers/register",
        "S01:spawn",
    ]
    assert [f.signature for f in findings_from(tmp_path, signatures=["S01:spawn"])] == ["S01:spawn"]


@pytest.mark.parametrize(
    ("suite", "status"),
    [
        (SuiteResult("a", findings=["S01:x"], error="also broke"), "failed"),
        (SuiteResult("a", findings=["S05:y"]), "passed"),  # only a known deviation
        (SuiteResult("b"), "failed"),  # a finding names b as its suite
        (SuiteResult("a", error="crashed"), "error"),
        (SuiteResult("a", skipped="no docker"), "skipped"),
        (SuiteResult("a", examples=10), "passed"),
    ],
)
def test_a_suite_status_puts_new_findings_before_errors_before_skips(suite, status):
    findings = [
        FindingReport("S01:x", "x", "m"),
        FindingReport("S05:y", "y", "m", known=True),
        FindingReport("S09:z", "z", "b"),
    ]
    claimed = [f for f in findings if f.signature in suite.findings or f.suite == suite.name]
    result = CampaignResult(suites=[suite], findings=claimed)
    assert result.status_of(suite) == status
