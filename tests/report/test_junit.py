"""junit.xml: one test case per suite, new findings as failures, parsed back as a CI would."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from rbee_props.report import CampaignResult, FindingReport, SuiteResult, render_junit
from tests.report._campaign import campaign


def cases(document: bytes) -> dict[str, ET.Element]:
    root = ET.fromstring(document)
    return {case.get("name"): case for case in root.iter("testcase")}


def test_one_case_per_suite_with_findings_as_failures(tmp_path):
    document = render_junit(campaign(tmp_path))
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(document)
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    for element in (root, suite):
        assert (element.get("tests"), element.get("failures")) == ("6", "3")
        assert (element.get("errors"), element.get("skipped")) == ("1", "1")
        assert element.get("time") == "1800.000"
    by_name = cases(document)
    assert list(by_name) == [
        "registry",
        "faults",
        "stack",
        "fuzz:queen",
        "fuzz:worker",
        "partitions",
    ]
    failure = by_name["registry"].find("failure")
    assert failure.get("message") == "1 finding(s): S02:register_worker,register_duplicate"
    assert "reproduction rate: 3/3" in failure.text
    assert "# " in failure.text  # the REPORT.md text is in it
    assert (
        by_name["fuzz:queen"].find("failure").get("type") == "F10:queen:POST /v2/workers/register"
    )
    assert by_name["stack"].find("failure") is None
    assert list(by_name["stack"]) == []
    assert "port in use" in by_name["fuzz:worker"].find("error").get("message")
    assert by_name["partitions"].find("skipped").get("message") == "the backend cannot partition"
    assert by_name["registry"].get("classname") == "rbee_props.machine"
    assert by_name["fuzz:queen"].get("classname") == "rbee_props.fuzz"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["planted_bugs"] == "dup-register"
    assert properties["stack restarts"] == "3"


def test_a_known_deviation_does_not_fail_its_suite_but_is_listed(tmp_path):
    by_name = cases(render_junit(campaign(tmp_path)))
    faults = by_name["faults"]
    assert faults.find("failure").get("message") == "1 finding(s): C01:spawn,kill_worker"
    assert "S05:ready_unknown" in faults.find("system-out").text
    assert "S05" not in faults.find("failure").text.split("\n")[0]


def test_a_finding_no_suite_claims_gets_its_own_case(tmp_path):
    finding = FindingReport("S09:spawn", "port shared", "churn", report_md="# S09")
    document = render_junit(CampaignResult(findings=[finding], seconds=5.0))
    [case] = cases(document).values()
    assert case.get("name") == "churn"
    assert case.find("failure").get("message") == "1 finding(s): S09:spawn"
    assert ET.fromstring(document).get("failures") == "1"


def test_control_characters_in_a_report_still_make_valid_xml():
    finding = FindingReport(
        "S03:list", "bad \x00 body", "stack", report_md="body \x1b[31m \x07 end"
    )
    document = render_junit(CampaignResult(suites=[SuiteResult("stack")], findings=[finding]))
    text = cases(document)["stack"].find("failure").text
    assert "\ufffd[31m" in text
    assert "\x1b" not in text


def test_an_empty_campaign_is_an_empty_passing_suite():
    root = ET.fromstring(render_junit(CampaignResult()))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("0", "0", "0")
