"""``rbee-props campaign`` as a user runs it: a real stack per worker, real processes, signals.

Budgets are seconds here (the half-hour runs are ``-m slow`` and ``benchmarks/campaign_soak.py``);
slices are short so that one test sees both a state machine and a fuzz suite take turns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from rbee_props.cli import main
from tests.fuzz._cli import external_config, free_port, processes_of

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

FAST = ["--slice", "15", "--steps", "8"]


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))


def campaign(*args: str, env, cwd, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rbee_props.cli", "campaign", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )  # fmt: skip


def wait_until_gone(home: str, seconds: float = 60.0) -> list:
    deadline = time.monotonic() + seconds
    while (left := processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def junit_cases(out) -> dict[str, ET.Element]:
    root = ET.parse(out / "junit.xml").getroot()
    return {case.get("name"): case for case in root.iter("testcase")}


def test_a_campaign_on_the_correct_stack_finds_nothing_and_writes_its_report(tmp_path, env):
    out = tmp_path / "camp"
    result = campaign(
        "--budget", "40s", "--suites", "registry,fuzz:queen", *FAST, "--seed", "3",
        "--out", str(out), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "campaign ended:" in result.stdout and "findings 0 new + 0 earlier" in result.stdout
    record = json.loads((out / "campaign.json").read_text())
    assert record["summary"]["examples"] > 0 and record["summary"]["fuzz requests"] > 0
    assert record["findings"] == {} and record["crashes"] == []
    cases = junit_cases(out)
    assert set(cases) >= {"registry", "fuzz:queen"}
    assert not any(c.find("failure") is not None or c.find("error") is not None
                   for c in cases.values())  # fmt: skip
    html = (out / "report.html").read_text()
    assert "registry" in html and "fuzz:queen" in html
    assert processes_of(env["RBEE_PROPS_HOME"]) == []


def test_a_planted_bug_is_reported_once_then_replayed_first_after_a_kill_9(tmp_path, env):
    """The finding is claimed once however often it is met; SIGKILL of the campaign leaves no
    process behind (workers and stacks notice), and the same command resumes from the directory."""
    out = tmp_path / "camp"
    # seed 7's first registry run meets the bug within 15 steps (live stacks vary; 5 min covers)
    args = ["--suites", "registry", "--steps", "15", "--slice", "60", "--bugs", "dup-register",
            "--out", str(out)]  # fmt: skip
    with subprocess.Popen(
        [sys.executable, "-m", "rbee_props.cli", "campaign", "--budget", "5m", "--seed", "7",
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    ) as run:  # fmt: skip
        for line in run.stdout:
            if line.startswith("  -> S02:"):  # shrunk, replayed and exported
                break
        else:
            pytest.fail(f"no finding: {run.stderr.read()}")
        time.sleep(5)  # the finding is met again and dropped meanwhile
        run.send_signal(signal.SIGKILL)
        run.wait(10)
    assert wait_until_gone(env["RBEE_PROPS_HOME"]) == []
    found = [p for p in (out / "findings").iterdir() if p.name.startswith("S02")]
    assert len(found) == 1 and (found[0] / "test_repro.py").is_file()

    again = campaign("--budget", "20s", "--seed", "8", *args, env=env, cwd=tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr
    lines = again.stdout.splitlines()
    replayed = [i for i, line in enumerate(lines) if line.startswith("replayed earlier finding")]
    assert replayed and "S02:" in lines[replayed[0]] and "still fails" in lines[replayed[0]]
    assert not any(line.startswith("FOUND") for line in lines)  # claimed: never found twice
    assert [p.name for p in (out / "findings").iterdir() if p.name.startswith("S02")] == [
        found[0].name
    ]
    failures = [c for c in junit_cases(out).values() if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["registry"]
    assert processes_of(env["RBEE_PROPS_HOME"]) == []


def test_ctrl_c_stops_a_two_worker_campaign_writes_the_report_and_leaves_nothing(tmp_path, env):
    out = tmp_path / "camp"
    with subprocess.Popen(
        [sys.executable, "-m", "rbee_props.cli", "campaign", "--budget", "10m", "--workers", "2",
         "--suites", "registry,fuzz:queen", *FAST, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    ) as run:  # fmt: skip
        assert run.stdout.readline().startswith("campaign for 600s")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # both workers are in a slice, stacks up and busy
            logs = list((out / "logs").glob("worker-*.log")) if (out / "logs").is_dir() else []
            in_slice = [log for log in logs if "slice of" in log.read_text()]
            if len(in_slice) == 2 and len(processes_of(env["RBEE_PROPS_HOME"])) > 8:
                break
            time.sleep(0.5)
        else:
            run.send_signal(signal.SIGINT)  # not left running for its 10-minute budget
            pytest.fail("the two workers did not both begin a slice within 120 s")
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=180)
        assert run.returncode == 130, stderr
        assert "campaign interrupted:" in stdout
        assert stderr.strip().splitlines() == [
            "error: interrupted; everything this command started has been stopped"
        ]
    assert json.loads((out / "campaign.json").read_text())["interrupted"] is True
    assert (out / "report.html").is_file() and (out / "junit.xml").is_file()
    assert processes_of(env["RBEE_PROPS_HOME"]) == []


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--suites", "registy"], 2, "unknown suite 'registy' (did you mean 'registry'?)"),
        (["--db", "redis://127.0.0.1:{port}"], 2, "cannot reach the example database"),
        (["--config", "{external}", "--workers", "2"], 2, "needs a stack of its own"),
        (["--budget", "soon"], 2, "--budget expects a duration"),
        (["--bugs", "dup-registr"], 2, "unknown planted bug 'dup-registr'"),
    ],
    ids=["unknown-suite", "redis-unreachable", "external-shared", "bad-budget", "unknown-bug"],
)
def test_bad_input_is_one_readable_line_and_leaves_nothing_running(
    tmp_path, env, monkeypatch, args, code, says
):
    monkeypatch.chdir(tmp_path)
    filled = [a.format(port=free_port(), external=external_config(tmp_path)) for a in args]
    result = CliRunner().invoke(main, ["campaign", "--budget", "5s", *filled], env=env)
    assert result.exit_code == code, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0]
    assert processes_of(env["RBEE_PROPS_HOME"]) == []


def test_an_unreachable_external_stack_is_exit_3_with_one_line(tmp_path, env):
    result = campaign(
        "--budget", "20s", "--suites", "registry", "--config", external_config(tmp_path),
        "--out", str(tmp_path / "camp"), env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not answer its health route" in lines[0], result.stderr
