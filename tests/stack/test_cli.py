"""The `rbee-props` stack commands, and their one-line errors with documented exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

from tests._processes import leftover_processes

pytestmark = pytest.mark.stack


def rbee_props(*args, env, cwd=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "rbee_props.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))


def assert_one_error_line(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_up_detach_status_json_kill_partition_heal_down(env):
    up = rbee_props("up", "--detach", env=env)
    try:
        assert up.returncode == 0, up.stderr
        status = json.loads(rbee_props("status", "--json", env=env).stdout)
        rows = {row["component"]: row for row in status["components"]}
        assert set(rows) == {"queen", "hive1", "hive2"}
        assert all(row["healthy"] and row["pid"] for row in rows.values())
        assert rbee_props("partition", "queen", "hive1", env=env).returncode == 0
        assert rbee_props("heal", env=env).returncode == 0
        assert rbee_props("kill", "hive2", env=env).returncode == 0
        assert not psutil.pid_exists(rows["hive2"]["pid"])
        status = json.loads(rbee_props("status", "--json", env=env).stdout)
        assert {r["component"]: r["healthy"] for r in status["components"]}["hive2"] is False
        assert rbee_props("start", "hive2", env=env).returncode == 0
        assert rbee_props("slow", "queen", "hive1", "50", env=env).returncode == 0
        assert rbee_props("heal", env=env).returncode == 0
        assert rbee_props("restart", "hive2", env=env).returncode == 0
        status = json.loads(rbee_props("status", "--json", env=env).stdout)
        assert all(r["healthy"] for r in status["components"])
    finally:
        down = rbee_props("down", env=env)
    assert down.returncode == 0, down.stderr
    for row in rows.values():
        assert not psutil.pid_exists(row["pid"]) or psutil.Process(row["pid"]).status() == "zombie"


def test_status_without_a_running_stack(env):
    assert_one_error_line(rbee_props("status", env=env), 2, "no stack is running", "up --detach")


def write(tmp_path, text):
    path = tmp_path / "rbee-props.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("toml", "code", "fragments"),
    [
        ("[stack]\nbakend = 'local'\n", 2, ["unknown key stack.bakend", "did you mean 'backend'"]),
        ("[stack.hive]\ncount = 'two'\n", 2, ["stack.hive.count must be an integer", "'two'"]),
        (
            "[stack.queen]\ncommand = ['no-such-queen-rbee', '--port', '{port}']\n",
            2,
            ["cannot run the queen command 'no-such-queen-rbee'", "[stack.queen] command"],
        ),
        (
            "[stack.queen]\ncommand = ['queen-rbee', '--port', '{prot}']\n",
            2,
            ["unknown placeholder {prot}", "did you mean 'port'"],
        ),
        (
            "[stack]\nstartup_timeout = 1.5\n[stack.queen]\n"
            "command = ['{python}', '-c', 'print(\"queen booting, never healthy\"); "
            "import time; time.sleep(60)']\n",
            3,
            ["queen did not answer GET", "queen booting, never healthy"],
        ),
        ("[stack]\nports = '20000-20004'\n", 3, ["no", "free port(s) left in stack.ports"]),
        ("[stack]\nbugs = ['dup-registr']\n", 2, ["unknown planted bug", "dup-register"]),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "missing-binary",
        "placeholder-typo",
        "health-never-answers",
        "port-range-exhausted",
        "unknown-bug",
    ],
)
def test_bad_config_is_one_line_with_its_exit_code_and_leaves_nothing(
    tmp_path, env, toml, code, fragments
):
    config = write(tmp_path, toml)
    result = rbee_props("up", "--config", str(config), env=env)
    assert_one_error_line(result, code, *fragments)
    assert leftover_processes(env) == []
    runs = tmp_path / "home" / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_config_is_found_in_the_working_directory(tmp_path, env):
    write(tmp_path, "[stack]\nbakend = 'local'\n")
    result = rbee_props("up", env=env, cwd=tmp_path)
    assert_one_error_line(result, 2, str(tmp_path / "rbee-props.toml"))


def test_config_is_found_in_pyproject(tmp_path, env):
    (tmp_path / "pyproject.toml").write_text("[tool.rbee-props.stack]\nbakend = 'local'\n")
    result = rbee_props("up", env=env, cwd=tmp_path)
    assert_one_error_line(result, 2, "[tool.rbee-props]", "did you mean 'backend'")
