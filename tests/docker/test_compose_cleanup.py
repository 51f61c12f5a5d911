"""Nothing labelled by a compose run is left: after stop, after a failed start, after Ctrl-C of
``rbee-props up``, after the controller is SIGKILLed (the watchdog), and the next start reaps
what a dead controller left (the reaper by label)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rbee_props.errors import ComponentDidNotStart
from rbee_props.stack import poll_until
from rbee_props.stack._docker import OWNER_LABEL, RUN_LABEL
from rbee_props.stack.compose import ComposeStack
from tests.docker.conftest import compose_config, labelled

pytestmark = pytest.mark.docker


def nothing_left(client, run_id: str) -> bool:
    return not any(labelled(client, run_id).values())


def run_ids(client) -> set[str]:
    containers = client.containers.list(all=True, filters={"label": RUN_LABEL})
    return {c.labels[RUN_LABEL] for c in containers}


def test_start_reaps_a_dead_controllers_leftovers_and_stop_removes_everything(engine, stack_image):
    dead_owner = f"999999999:1.000@{socket.gethostname()}"  # no such process
    labels = {RUN_LABEL: "leftover-run", OWNER_LABEL: dead_owner}
    engine.networks.create("rbee-props-leftover", labels=labels)
    engine.containers.create(stack_image, ["sleep", "600"], labels=labels)
    stack = ComposeStack(compose_config()).start()
    run_id = stack.run_id
    try:
        assert nothing_left(engine, "leftover-run")  # the reaper removed them at start
        assert len(labelled(engine, run_id)["containers"]) == 3
    finally:
        stack.stop()
    assert labelled(engine, run_id) == {"containers": [], "networks": [], "volumes": []}
    assert not stack.run_dir.exists()


def test_a_start_that_fails_leaves_nothing(engine, stack_image):
    stack = ComposeStack(compose_config(startup_timeout=0.0))  # nothing can be healthy in 0 s
    with pytest.raises(ComponentDidNotStart):
        stack.start()
    assert stack.run_id and nothing_left(engine, stack.run_id)


def test_ctrl_c_of_up_removes_everything(engine, stack_image, tmp_path):
    before = run_ids(engine)
    env = dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))
    env["RBEE_PROPS_STACK_IMAGE"] = stack_image
    proc = subprocess.Popen(
        [sys.executable, "-m", "rbee_props.cli", "up", "--backend", "compose"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "press Ctrl-C" in line:
            break
    new = run_ids(engine) - before
    assert len(new) == 1, "".join(lines)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert nothing_left(engine, new.pop())


def test_a_killed_controller_is_cleaned_up_by_its_watchdog(engine, stack_image, tmp_path):
    script = (
        "import sys, time\n"
        "from tests.docker.conftest import compose_config\n"
        "from rbee_props.stack.compose import ComposeStack\n"
        "stack = ComposeStack(compose_config()).start()\n"
        "print(stack.run_id, flush=True)\n"
        "time.sleep(600)\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"), PYTHONPATH=root)
    env["RBEE_PROPS_STACK_IMAGE"] = stack_image  # the child must not rebuild and prune it
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id and labelled(engine, run_id)["containers"]
        proc.kill()
    poll_until(lambda: nothing_left(engine, run_id), 60, what="watchdog clean-up")
