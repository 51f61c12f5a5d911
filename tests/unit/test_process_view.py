"""The cheap process view of a local run: run membership and listening ports, on real processes.

``RunMembership`` remembers its answers and ``Listeners`` reads sockets through netlink; both
must agree with the plain, uncached way (every process's environment; psutil per process).
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from rbee_props.stack._listeners import Listeners, _psutil_ports
from rbee_props.stack._processes import RUN_ENV, RunMembership

LISTEN_THEN_WAIT = """
import socket, sys, time
s = socket.socket(socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET)
s.bind(("::1" if sys.argv[1] == "6" else "127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)
"""


def start(run_id: str | None, family: str = "4") -> tuple[subprocess.Popen[str], int]:
    """A child that listens on an ephemeral port, with ``RBEE_PROPS_RUN=run_id`` if given."""
    env = {k: v for k, v in os.environ.items() if k != RUN_ENV}
    if run_id is not None:
        env[RUN_ENV] = run_id
    child = subprocess.Popen(
        [sys.executable, "-c", LISTEN_THEN_WAIT, family], env=env, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    return child, int(child.stdout.readline())


@pytest.fixture
def children():
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        stop(child)


def stop(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.wait()
    assert child.stdout is not None
    child.stdout.close()


def test_listeners_agree_with_psutil(children):
    for family in ("4", "6"):
        child, port = start(None, family)
        children.append(child)
        listeners = Listeners.now()
        assert listeners.ports_of(child.pid) == (port,)
        assert listeners.ports_of(child.pid) == _psutil_ports(child.pid)
    assert Listeners.now().ports_of(os.getpid()) == _psutil_ports(os.getpid())


def test_listeners_are_one_moment(children):
    before = Listeners.now()
    child, port = start(None)
    children.append(child)
    assert before.ports_of(child.pid) == ()  # the socket came after the observation
    assert Listeners.now().ports_of(child.pid) == (port,)


def test_a_gone_process_listens_on_nothing(children):
    child, _ = start(None)
    stop(child)
    assert Listeners.now().ports_of(child.pid) == ()


def test_membership_finds_the_run_and_only_the_run(children):
    members = RunMembership("run-a", settle_seconds=0.0)
    ours, _ = start("run-a")
    theirs, _ = start("run-b")
    plain, _ = start(None)
    children.extend([theirs, plain])
    for _ in range(2):  # the second pass answers from what the first remembered
        assert [p.pid for p in members.processes()] == [ours.pid]
    stop(ours)
    assert members.processes() == []
    late, _ = start("run-a")  # a process after the first scan is asked about
    children.append(late)
    assert [p.pid for p in members.processes()] == [late.pid]


def test_a_young_or_own_child_is_asked_again(children):
    """A "no" is not remembered while the process may still be exec'ing into a member."""
    members = RunMembership("run-a", settle_seconds=3600.0)
    plain, _ = start(None)
    children.append(plain)
    assert members.processes() == []
    assert plain.pid not in members._known  # young: asked again next time
    old = RunMembership("run-a", settle_seconds=0.0)
    old.processes()
    assert plain.pid not in old._known  # our own child: asked again next time
    init = psutil.Process(1)  # settled and not our child: its "no" is remembered
    assert old._known.get(1) == (init.create_time(), False)


def test_ports_besides_a_process_are_every_other_listener(children):
    mine, my_port = start(None)
    other, other_port = start(None, "6")
    children.extend([mine, other])
    listeners = Listeners.now()
    assert {my_port, other_port} <= listeners.ports_besides([])
    besides = listeners.ports_besides([mine.pid])
    assert other_port in besides
    assert my_port not in besides
