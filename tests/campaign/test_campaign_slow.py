"""The campaign's long budgets (``-m slow``): three planted bugs found, each reported once.

The half-hour soak against the correct stack (zero findings, the runner's memory flat, nothing
left running after the end or a Ctrl-C) is ``benchmarks/campaign_soak.py``: it measures rather
than asserts, and its figures are quoted in the project's notes.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.campaign.test_campaign_command import campaign, junit_cases
from tests.fuzz._cli import processes_of

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]

#: planted bug -> the property its finding must name (each breaks exactly one)
BUGS = {"dup-register": "S02", "ready-unknown-200": "S05", "evict-without-kill": "S20"}


def test_a_two_worker_campaign_finds_three_planted_bugs_each_reported_once(tmp_path):
    env = dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))
    out = tmp_path / "camp"
    result = campaign(
        "--budget", "12m", "--workers", "2", "--seed", "11", "--bugs", ",".join(BUGS),
        "--out", str(out), env=env, cwd=tmp_path, timeout=1500,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    findings = json.loads((out / "campaign.json").read_text())["findings"]
    assert sorted(findings) == sorted(f"property-{p}" for p in BUGS.values()), result.stdout
    directories = [p for p in (out / "findings").iterdir() if (p / "finding.json").is_file()]
    assert sorted(p.name.split("-")[0] for p in directories) == sorted(BUGS.values())
    assert all(f["path"] and not f["earlier"] for f in findings.values())
    failed = [n for n, c in junit_cases(out).items() if c.find("failure") is not None]
    assert failed, "junit.xml shows no failing suite"
    assert processes_of(env["RBEE_PROPS_HOME"]) == []
