"""Every fault of the compose backend really happens, read back through the docker SDK.

One reference stack on compose serves the module (about 10 s to start with the image built);
each test undoes its faults (``recovered``). Container state, network membership, memory limits
and processes are read from the engine, not from ComposeStack's own bookkeeping.
"""

from __future__ import annotations

import httpx
import pytest

from rbee_props.stack import Fault, poll_until
from tests.docker.conftest import labelled

pytestmark = pytest.mark.docker

MODEL = "hf:rbee/tiny-model"


def inspect(stack, component):
    """The container as the engine reports it now."""
    return stack.client.containers.get(stack.containers[component].id)


def spawn(stack, hive: str) -> str:
    response = httpx.post(
        stack.urls[hive] + "/v1/workers/spawn",
        json={"model_ref": MODEL, "backend": "cpu", "device": 0},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    worker_id = response.json()["worker_id"]
    poll_until(lambda: worker_id in listed_processes(stack, hive), 10, what="worker process")
    return worker_id


def listed_processes(stack, hive: str) -> dict[str, str]:
    """worker id -> ps state, from ``docker top`` of the hive container."""
    top = inspect(stack, hive).top(ps_args="-eo pid,stat,args")
    out = {}
    for _, stat, args in top["Processes"]:
        parts = args.split()
        if "--worker-id" in parts:
            out[parts[parts.index("--worker-id") + 1]] = stat
    return out


def reaches(stack, source: str, url: str) -> bool:
    """Whether ``source``'s container gets an HTTP answer from ``url`` (a peer's view)."""
    code = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"
    return inspect(stack, source).exec_run(["python3", "-c", code]).exit_code == 0


def test_kill_sigkills_the_container_and_start_brings_it_back(recovered):
    stack = recovered
    stack.kill("hive1")
    state = inspect(stack, "hive1").attrs["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137  # 128 + SIGKILL
    assert not stack.is_healthy("hive1")
    stack.start_component("hive1")
    assert inspect(stack, "hive1").status == "running"
    assert stack.is_healthy("hive1")


def test_terminate_stops_the_hive_with_its_workers(recovered):
    stack = recovered
    spawn(stack, "hive2")
    stack.terminate("hive2")
    state = inspect(stack, "hive2").attrs["State"]
    assert state["Status"] == "exited" and state["ExitCode"] != 137  # it stopped on SIGTERM
    assert [w for w in stack.workers() if w.hive == "hive2"] == []


def test_restart_starts_a_new_container_process_and_keeps_the_beehives(recovered):
    stack = recovered
    before = inspect(stack, "queen").attrs["State"]["StartedAt"]
    stack.restart("queen")
    assert inspect(stack, "queen").attrs["State"]["StartedAt"] != before
    nodes = httpx.get(
        stack.urls["queen"] + "/v2/registry/beehives/list",
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=5,
    ).json()["nodes"]
    assert {n["node_name"] for n in nodes} >= {"hive1", "hive2"}  # the queen's volume kept them


def test_pause_freezes_the_container_and_resume_thaws_it(recovered):
    stack = recovered
    stack.pause("queen")
    assert inspect(stack, "queen").status == "paused"
    assert not stack.is_healthy("queen", timeout=0.5)
    stack.resume("queen")
    assert inspect(stack, "queen").status == "running"
    assert stack.is_healthy("queen")


def test_kill_worker_kills_only_that_process(recovered):
    stack = recovered
    victim, other = spawn(stack, "hive1"), spawn(stack, "hive1")
    assert {w.worker_id for w in stack.workers()} >= {victim, other}
    stack.kill_worker(victim)
    processes = listed_processes(stack, "hive1")
    assert victim not in processes and other in processes


def test_pause_worker_stops_its_process(recovered):
    stack = recovered
    worker_id = spawn(stack, "hive2")
    stack.pause_worker(worker_id)
    assert listed_processes(stack, "hive2")[worker_id].startswith("T")  # stopped by SIGSTOP


def test_partition_disconnects_the_hive_from_the_queen_and_heal_reconnects(recovered):
    stack = recovered
    attached = inspect(stack, "hive1").attrs["NetworkSettings"]["Networks"]
    link = next(name for name in attached if name.endswith("_link1"))
    assert reaches(stack, "queen", "http://hive1-link:9200/v1/health")
    stack.partition("queen", "hive1")
    assert link not in inspect(stack, "hive1").attrs["NetworkSettings"]["Networks"]
    assert not reaches(stack, "queen", "http://hive1-link:9200/v1/health")
    assert not reaches(stack, "hive1", "http://queen-link:8080/health")
    assert stack.is_healthy("hive1") and stack.is_healthy("queen")  # the test still sees both
    assert reaches(stack, "queen", "http://hive2-link:9200/v1/health")  # only that pair is cut
    stack.heal()
    networks = inspect(stack, "hive1").attrs["NetworkSettings"]["Networks"]
    assert "hive1-link" in (networks[link]["Aliases"] or [])
    assert reaches(stack, "queen", "http://hive1-link:9200/v1/health")


def test_a_cut_off_hive_still_reaches_its_workers_through_its_own_alias(recovered):
    """Docker drops ``extra_hosts`` from /etc/hosts on disconnect and reconnect; the backend
    writes them back, so the hive's alias stays 127.0.0.1 inside it and its health probes of
    its own workers keep answering while it is partitioned (a hive that evicted them was a
    false S03)."""
    stack = recovered
    worker_id = spawn(stack, "hive1")

    def idle_url() -> str | None:
        listed = httpx.get(
            stack.urls["hive1"] + "/v1/workers/list",
            headers={"Authorization": f"Bearer {stack.token}"}, timeout=5,
        ).json()["workers"]  # fmt: skip
        idle = [w["url"] for w in listed if w["id"] == worker_id and w["state"] == "idle"]
        return idle[0] if idle else None

    poll_until(lambda: idle_url() is not None, 10, what="the worker idle")
    port = str(idle_url()).rsplit(":", 1)[1]
    for fault in (lambda: stack.partition("queen", "hive1"), stack.heal):
        fault()
        assert reaches(stack, "hive1", f"http://hive1-link:{port}/health")
        hosts = inspect(stack, "hive1").exec_run(["getent", "hosts", "hive1-link"]).output
        assert hosts.decode().split()[0] == "127.0.0.1"


def test_memory_limit_is_applied_and_lifted(recovered):
    stack = recovered
    limit = 256 * 1024 * 1024
    stack.limit_memory("hive2", limit)
    host = inspect(stack, "hive2").attrs["HostConfig"]
    assert host["Memory"] == limit and host["MemorySwap"] == limit
    assert stack.memory_limit("hive2") == limit
    stack.recover()
    assert inspect(stack, "hive2").attrs["HostConfig"]["Memory"] != limit


def test_slow_link_adds_a_netem_delay(recovered):
    stack = recovered
    if not stack.supports(Fault.SLOW):
        pytest.skip("this kernel has no netem qdisc (sch_netem), so the backend offers no SLOW")
    stack.slow("queen", "hive1", 100)
    out = inspect(stack, "hive1").exec_run(["tc", "qdisc", "show"]).output.decode()
    assert "netem" in out and "100" in out
    stack.heal()
    assert "netem" not in inspect(stack, "hive1").exec_run(["tc", "qdisc", "show"]).output.decode()


def test_every_container_network_and_volume_carries_the_run_label(compose_stack):
    stack = compose_stack
    found = labelled(stack.client, stack.run_id)
    assert sorted(found["containers"]) == sorted(c.name for c in stack.containers.values())
    assert len(found["networks"]) == 3 and len(found["volumes"]) == 1  # control, 2 links; data
    project = {"label": f"com.docker.compose.project={stack.project}"}
    assert len(stack.client.networks.list(filters=project)) == len(found["networks"])


def test_ports_are_published_on_loopback_only(compose_stack):
    for component in compose_stack.components:
        ports = inspect(compose_stack, component).attrs["NetworkSettings"]["Ports"]
        bindings = [b for published in ports.values() if published for b in published]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
