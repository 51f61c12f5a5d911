"""Clean-up is total: after a SIGKILL of the controller, a Ctrl-C of `up`, and at the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from rbee_props.stack import poll_until
from rbee_props.stack._processes import RUN_ENV

pytestmark = pytest.mark.stack

CONTROLLER = textwrap.dedent(
    """
    import json, sys, httpx
    from rbee_props.stack import open_stack
    stack = open_stack()
    r = httpx.post(stack.urls["hive1"] + "/v1/workers/spawn",
                   json={"model_ref": "hf:a/b", "backend": "cpu", "device": 0},
                   headers={"Authorization": "Bearer " + stack.token}, timeout=10)
    r.raise_for_status()
    wid = r.json()["worker_id"]
    stack.wait_until(lambda: any(w.worker_id == wid for w in stack.workers()), 10)
    print(json.dumps({"run_id": stack.run_id}), flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def run_processes(run_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(RUN_ENV) == run_id:
                found.append(proc)
        except psutil.Error:
            pass
    return found


@pytest.fixture
def home(tmp_path):
    env = dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))
    return env


def test_sigkill_of_the_controlling_process_leaves_nothing_running(home):
    with subprocess.Popen(
        [sys.executable, "-c", CONTROLLER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=home,
        text=True,
    ) as controller:
        check_controller_death(controller)


def check_controller_death(controller):
    try:
        run_id = json.loads(controller.stdout.readline())["run_id"]
        assert len(run_processes(run_id)) >= 5  # queen, hives, proxy, watchdog, worker
        controller.kill()
        controller.wait(10)
        took = poll_until(lambda: not run_processes(run_id), 15, what="run processes gone")
        assert took < 15
    finally:
        controller.kill()
        controller.wait(10)


def test_ctrl_c_on_up_stops_everything_and_exits_130(home):
    with subprocess.Popen(
        [sys.executable, "-m", "rbee_props.cli", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=home,
        text=True,
    ) as up:
        check_ctrl_c(up, home)


def check_ctrl_c(up, home):
    try:
        for line in up.stdout:
            if "press Ctrl-C" in line:
                break
        home_dir = Path(home["RBEE_PROPS_HOME"]) / "runs"
        runs = list(home_dir.iterdir())
        assert len(runs) == 1
        run_id = runs[0].name
        assert run_processes(run_id)
        up.send_signal(signal.SIGINT)
        _, stderr = up.communicate(timeout=30)
        assert up.returncode == 130, stderr
        assert "interrupted" in stderr
        assert run_processes(run_id) == []
        assert not (home_dir / run_id).exists()
    finally:
        up.kill()
        up.wait(10)


def test_next_start_reaps_what_a_crashed_run_left(home, tmp_path):
    # a process that claims to belong to a run whose owner is long dead
    env = dict(home, RBEE_PROPS_RUN="crashed-run", RBEE_PROPS_OWNER="999999:1.000")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env) as p:
        check_reaped(p)


def check_reaped(leftover):
    try:
        from rbee_props.stack._processes import reap_orphaned_runs

        assert reap_orphaned_runs() >= 1
        assert not psutil.pid_exists(leftover.pid)  # killed and reaped
    finally:
        leftover.kill()
        leftover.wait(10)
