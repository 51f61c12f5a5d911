"""``rbee-props load`` as a user runs it: figures as text, JSON and a picture; bad input as one
line before anything starts; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageStat

from rbee_props.cli import main
from tests._processes import leftover_processes

pytestmark = pytest.mark.stack


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))


def rbee_props(*args, env, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "rbee_props.cli", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip


def test_a_short_run_prints_tables_and_writes_json_and_a_plot(tmp_path, env):
    """~7 s: 150 requests/s on the queen's worker list for 3 s."""
    figures, picture = tmp_path / "load.json", tmp_path / "load.png"
    result = rbee_props(
        "load", "--rate", "150", "--duration", "3s", "--route", "list",
        "--json", str(figures), "--plot", str(picture), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "latency (ms, from the intended send time)" in result.stdout
    assert "leak check" in result.stdout
    data = json.loads(figures.read_text())
    stats = data["stats"]
    assert (data["model"], data["rate"], data["route"]["path"]) == ("open", 150, "/v2/workers/list")
    assert stats["requests"] == 450
    assert stats["outcomes"] == {"200": 450}
    latency = stats["latency_ok"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert {row["name"] for row in data["resources"]} >= {"queen", "hive1", "hive2"}
    assert all(row["before"]["rss"] > 0 for row in data["resources"])
    image = Image.open(picture)
    assert image.size == (1000, 600)
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 10  # lines and text, not blank
    assert leftover_processes(env) == []


def test_a_closed_model_run_reports_its_concurrency(tmp_path, env):
    """~5 s: 20 requests in flight on the health route for 1 s."""
    figures = tmp_path / "load.json"
    result = rbee_props(
        "load", "--concurrency", "20", "--duration", "1s", "--route", "health",
        "--json", str(figures), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(figures.read_text())
    assert (data["model"], data["concurrency"]) == ("closed", 20)
    assert data["stats"]["max_in_flight"] == 20
    assert data["stats"]["ok"] == data["stats"]["requests"] > 20


def assert_one_error_line(code, stderr, expected_code, says):
    assert code == expected_code, (code, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert says in lines[0]
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rate", "10", "--duration", "soon"], "--duration expects a duration"),
        (["--rate", "10", "--route", "lst"], "did you mean 'list'"),
        (["--rate", "10", "--faults", "kill:hive1"], "ACTION[:TARGET]@TIME[+HOLD]"),
        (["--rate", "10", "--faults", "kill:hive1@9s"], "not before the end"),
        (["--timeout", "5s"], "give --rate R"),
        (["--rate", "10", "--json", "/nonexistent/dir/x.json"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_before_anything_starts(env, monkeypatch, args, says):
    """Milliseconds each: in-process, as these fail before a stack or a signal handler is set."""
    monkeypatch.setenv("RBEE_PROPS_HOME", env["RBEE_PROPS_HOME"])
    result = CliRunner().invoke(main, ["load", "--duration", "1s", *args])
    assert_one_error_line(result.exit_code, result.stderr, 2, says)
    assert not Path(env["RBEE_PROPS_HOME"]).exists()  # no stack was started


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--faults", "kill:hive9@0.5s"], 2, "names 'hive9'"),
        (["--config", "PORTS"], 3, "free port(s) left in stack.ports"),
    ],
)
def test_bad_input_found_once_the_stack_starts_stops_it(tmp_path, env, args, code, says):
    """~2 s each. PORTS: a config whose port range has one port free, too few for a stack."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = tmp_path / "rbee-props.toml"
        config.write_text(f"[stack]\nports = '{port}-{port + 1}'\n")
        args = [str(config) if a == "PORTS" else a for a in args]
        result = rbee_props("load", "--rate", "10", "--duration", "1s", *args, env=env)
    assert_one_error_line(result.returncode, result.stderr, code, says)
    assert leftover_processes(env) == []


def test_ctrl_c_in_the_middle_stops_the_stack_and_exits_130(env):
    """~4 s: interrupted one second into a 60 s run."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rbee_props.cli", "load", "--rate", "50", "--duration", "60s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        line = proc.stdout.readline()  # "stack up ...": the load is running now
        assert line.startswith("stack up"), line + proc.stderr.read()
        time.sleep(1.0)  # let it run a moment (not a wait for a condition: the run goes on)
        assert time.monotonic() < deadline
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "error: interrupted; everything this command started has been stopped"
    ]
    assert leftover_processes(env) == []
