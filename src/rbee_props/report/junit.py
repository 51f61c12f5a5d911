"""``junit.xml``: the campaign for CI systems, one test case per state machine or fuzz suite.

The layout CI servers read (Jenkins, GitLab, GitHub annotations): ``<testsuites>`` holding one
``<testsuite>``, whose ``<testcase>`` elements are the suites. A suite with new findings fails
with one ``<failure>`` (JUnit allows one per case) whose message lists the signatures and whose
text carries each finding's REPORT.md; a suite that could not run is an ``<error>``, one that
did not run at all ``<skipped>``. Known deviations (``known`` in the config) do not fail a case;
they are listed in its ``<system-out>``. Findings no suite claims get a test case named after
the suite they name.
"""

from __future__ import annotations

import datetime
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from rbee_props.report.result import CampaignResult, FindingReport, SuiteResult

__all__ = ["render_junit"]

#: characters XML 1.0 cannot carry (a recorded body may hold them)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _finding_text(finding: FindingReport) -> str:
    lines = [
        f"{finding.signature}: {finding.title}",
        f"reproduction rate: {finding.rate}; seed: {finding.seed}; "
        f"times met: {finding.occurrences}",
    ]
    if finding.directory is not None:
        lines.append(f"reproduction: {finding.directory}")
    if finding.report_md:
        lines += ["", finding.report_md.rstrip()]
    return "\n".join(lines)


def _case(
    parent: ET.Element,
    name: str,
    kind: str,
    seconds: float,
    findings: Sequence[FindingReport],
    suite: SuiteResult | None,
) -> tuple[int, int, int]:
    """Append one ``<testcase>``; return (failures, errors, skipped) it adds."""
    case = ET.SubElement(
        parent, "testcase", classname=f"rbee_props.{kind}", name=name, time=f"{seconds:.3f}"
    )
    new = [f for f in findings if not f.known]
    known = [f for f in findings if f.known]
    counts = (0, 0, 0)
    if new:
        failure = ET.SubElement(
            case,
            "failure",
            message=_text(f"{len(new)} finding(s): {', '.join(f.signature for f in new)}"),
            type=new[0].signature,
        )
        failure.text = _text("\n\n".join(_finding_text(f) for f in new))
        counts = (1, 0, 0)
    elif suite is not None and suite.error:
        error = ET.SubElement(case, "error", message=_text(suite.error), type="error")
        error.text = _text(suite.error)
        counts = (0, 1, 0)
    elif suite is not None and suite.skipped:
        ET.SubElement(case, "skipped", message=_text(suite.skipped))
        counts = (0, 0, 1)
    if known:
        out = ET.SubElement(case, "system-out")
        out.text = _text(
            "known deviations met:\n" + "\n".join(f"{f.signature}: {f.title}" for f in known)
        )
    return counts


def render_junit(result: CampaignResult) -> bytes:
    """The JUnit XML document (UTF-8 bytes with an XML declaration)."""
    moment = datetime.datetime.fromtimestamp(result.started_unix, tz=datetime.UTC)
    root = ET.Element("testsuites", name=result.title)
    suite_el = ET.SubElement(
        root,
        "testsuite",
        name=result.title,
        timestamp=moment.strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=socket.gethostname(),
    )
    props = ET.SubElement(suite_el, "properties")
    for key, value in (
        ("stack", result.config_source),
        ("planted_bugs", ",".join(result.bugs)),
        ("interrupted", str(result.interrupted).lower()),
        *((str(k), str(v)) for k, v in result.summary.items()),
    ):
        ET.SubElement(props, "property", name=key, value=_text(value))
    totals = [0, 0, 0]
    tests = 0
    for suite in result.suites:
        added = _case(
            suite_el, suite.name, suite.kind, suite.seconds, result.findings_of(suite.name), suite
        )
        totals = [a + b for a, b in zip(totals, added, strict=True)]
        tests += 1
    orphans: dict[str, list[FindingReport]] = {}
    for finding in result.orphan_findings():
        orphans.setdefault(finding.suite, []).append(finding)
    for name, findings in orphans.items():
        added = _case(suite_el, name, "finding", 0.0, findings, None)
        totals = [a + b for a, b in zip(totals, added, strict=True)]
        tests += 1
    for element in (root, suite_el):
        element.set("tests", str(tests))
        element.set("failures", str(totals[0]))
        element.set("errors", str(totals[1]))
        element.set("skipped", str(totals[2]))
        element.set("time", f"{result.seconds:.3f}")
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
