"""``rbee-props run`` and ``rbee-props replay`` as a user runs them, and Ctrl-C in the middle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from rbee_props._cli_hunt import hunt_for_budget
from rbee_props.config import default_config
from tests._processes import leftover_processes as leftovers

pytestmark = pytest.mark.stack


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))


def rbee_props(*args, env, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "rbee_props.cli", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip


def test_run_finds_a_planted_bug_exports_it_and_replay_confirms_it(tmp_path, env):
    out = tmp_path / "findings"
    result = rbee_props(
        "run", "--budget", "60s", "--bugs", "ready-unknown-200", "--seed", "7", "--out", str(out),
        env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FOUND S05:ready_unknown" in result.stdout
    assert "seed 7" in result.stdout
    [finding] = list(out.iterdir())
    assert {p.name for p in finding.iterdir()} >= {
        "REPORT.md", "test_repro.py", "repro.sh", "history.jsonl", "finding.json",
    }  # fmt: skip
    still = rbee_props("replay", str(finding), "--attempts", "1", env=env)
    assert still.returncode == 1 and "still fails" in still.stdout, still.stdout + still.stderr
    fixed = rbee_props("replay", str(finding), "--attempts", "1", "--bugs", "", env=env)
    assert fixed.returncode == 0 and "no longer fails" in fixed.stdout, fixed.stdout
    assert leftovers(env) == []


def test_run_against_the_correct_stack_ends_with_no_finding(tmp_path, env):
    result = rbee_props(
        "run", "--budget", "15s", "--seed", "1", "--out", str(tmp_path / "f"), env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no finding" in result.stdout
    assert not (tmp_path / "f").exists()


def test_ctrl_c_during_run_stops_everything(tmp_path, env):
    with subprocess.Popen(
        [sys.executable, "-m", "rbee_props.cli", "run", "--budget", "5m"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as run:  # fmt: skip
        assert "budget" in run.stdout.readline()
        # wait until the stack is up and examples run: the first round line
        for line in run.stdout:
            if line.startswith("round"):
                break
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)  # reads both pipes: a full one cannot block it
        assert run.returncode == 130, stderr
        assert "interrupted" in stderr
    assert leftovers(env) == []


def test_a_lost_ctrl_c_still_ends_the_run_at_the_next_example(tmp_path, env, monkeypatch):
    """The KeyboardInterrupt a signal handler raises can be lost (one that lands in a garbage-
    collection callback is printed as "Exception ignored" and dropped: the run went on for its
    whole budget). The flag the handler also sets ends the run at the next example; here it is
    set from a timer, with no KeyboardInterrupt at all."""
    monkeypatch.setenv("RBEE_PROPS_HOME", env["RBEE_PROPS_HOME"])
    stop = threading.Event()
    timer = threading.Timer(5.0, stop.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        hunt_for_budget(600, "stack", default_config(), 1, tmp_path / "f", stop=stop)
    timer.cancel()
    assert time.monotonic() - started < 300, "the run went on after the stop flag was set"
    assert leftovers(env) == []


def test_ctrl_c_while_shrinking_keeps_the_finding_so_far(tmp_path, env):
    out = tmp_path / "findings"
    with subprocess.Popen(
        [sys.executable, "-m", "rbee_props.cli", "run", "--budget", "5m", "--seed", "7",
         "--bugs", "ready-unknown-200", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as run:  # fmt: skip
        for line in run.stdout:
            if line.startswith("shrinking"):  # a failure is recorded; replays take seconds
                break
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)  # reads both pipes: a full one cannot block it
        assert run.returncode == 130, stderr
        assert "interrupted" in stderr
    (finding,) = out.glob("*/finding.json")
    data = json.loads(finding.read_text())
    assert data["violation"]["invariant"] == "S05"
    assert data["attempts"] == 0  # written at the interrupt, not replayed
    assert (finding.parent / "REPORT.md").exists()
    assert leftovers(env) == []


def test_bad_budget_is_a_usage_error(env):
    result = rbee_props("run", "--budget", "soon", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --budget expects a duration like 60s, 5m or 8h, got 'soon'"
    ]
