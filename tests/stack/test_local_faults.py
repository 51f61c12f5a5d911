"""Each fault of LocalStack really happens, against real reference processes."""

from __future__ import annotations

import httpx
import psutil
import pytest

from rbee_props.stack import Fault, WaitTimedOut
from rbee_props.stack._processes import processes_of_run

pytestmark = pytest.mark.stack


def auth(stack):
    return {"Authorization": f"Bearer {stack.token}"}


def spawn_idle_worker(stack, hive="hive1"):
    response = httpx.post(
        stack.urls[hive] + "/v1/workers/spawn",
        json={"model_ref": "hf:org/model", "backend": "cpu", "device": 0},
        headers=auth(stack),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    worker_id = response.json()["worker_id"]
    stack.wait_until(lambda: worker_id in queen_worker_ids(stack), 10, what="queen lists worker")
    return worker_id


def queen_worker_ids(stack) -> set[str]:
    response = httpx.get(stack.urls["queen"] + "/v2/workers/list", headers=auth(stack), timeout=5)
    return {w["worker_id"] for w in response.json()["workers"]}


def hive_worker_ids(stack, hive="hive1") -> set[str]:
    response = httpx.get(stack.urls[hive] + "/v1/workers/list", headers=auth(stack), timeout=5)
    return {w["id"] for w in response.json()["workers"]}


def test_start_gives_urls_token_and_healthy_components(make_local_stack):
    stack = make_local_stack()
    assert stack.components == ("queen", "hive1", "hive2")
    assert len(stack.token) >= 24
    assert oct(stack.token_file.stat().st_mode & 0o777) == "0o600"
    assert stack.wait_healthy(5) < 5
    for name in stack.components:
        assert stack.is_healthy(name)
        assert (stack.run_dir / f"{name}.log").is_file()


def test_kill_removes_the_process_and_health_fails(make_local_stack):
    stack = make_local_stack()
    pid = stack.procs["hive2"].pid
    stack.kill("hive2")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not stack.is_healthy("hive2")
    assert stack.is_healthy("queen")


def test_pause_makes_requests_time_out_and_resume_answers_again(make_local_stack):
    stack = make_local_stack()
    stack.pause("queen")
    assert psutil.Process(stack.procs["queen"].pid).status() == psutil.STATUS_STOPPED
    with pytest.raises(httpx.TimeoutException):
        httpx.get(stack.urls["queen"] + "/health", timeout=0.5)
    stack.resume("queen")
    assert httpx.get(stack.urls["queen"] + "/health", timeout=5).status_code == 200


def test_partition_cuts_queen_and_hive_but_not_the_test_client(make_local_stack):
    stack = make_local_stack()
    stack.partition("queen", "hive1")
    status = stack.proxy_status()
    assert status["queen->hive1"]["cut"] and status["hive1->queen"]["cut"]
    assert not status["queen->hive2"]["cut"]
    # the test client still reaches both sides
    assert stack.is_healthy("queen") and stack.is_healthy("hive1")
    # a worker that becomes ready on hive1 cannot be registered at the queen ...
    response = httpx.post(
        stack.urls["hive1"] + "/v1/workers/spawn",
        json={"model_ref": "hf:org/model", "backend": "cpu", "device": 0},
        headers=auth(stack),
        timeout=10,
    )
    worker_id = response.json()["worker_id"]
    stack.wait_until(lambda: worker_id in hive_worker_ids(stack), 10, what="hive lists worker")
    with pytest.raises(WaitTimedOut):
        stack.wait_until(lambda: worker_id in queen_worker_ids(stack), 1.5, what="registration")
    # ... and the queen cannot reach hive1 through the proxy
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"http://127.0.0.1:{stack.links['queen->hive1']}/v1/health", timeout=0.5)
    # heal restores it: the hive's retries get through
    stack.heal()
    took = stack.wait_until(lambda: worker_id in queen_worker_ids(stack), 10, what="registration")
    assert took < 10


def test_slow_link_delays_traffic_through_the_proxy(make_local_stack):
    stack = make_local_stack()
    url = f"http://127.0.0.1:{stack.links['queen->hive1']}/v1/health"
    stack.slow("queen", "hive1", 300)
    slow = httpx.get(url, timeout=5).elapsed.total_seconds()
    stack.heal()
    fast = httpx.get(url, timeout=5).elapsed.total_seconds()
    assert slow >= 0.3 > fast


def test_restart_keeps_the_sqlite_beehive_registry(make_local_stack):
    stack = make_local_stack()
    old_pid = stack.procs["queen"].pid

    def nodes():
        response = httpx.get(
            stack.urls["queen"] + "/v2/registry/beehives/list", headers=auth(stack), timeout=5
        )
        return [n["node_name"] for n in response.json()["nodes"]]

    assert nodes() == ["hive1", "hive2"]
    stack.restart("queen")
    assert stack.procs["queen"].pid != old_pid
    assert nodes() == ["hive1", "hive2"]


def test_kill_worker_removes_the_process_and_the_stack_evicts_it(make_local_stack):
    stack = make_local_stack()
    worker_id = spawn_idle_worker(stack)
    [worker] = [w for w in stack.workers() if w.worker_id == worker_id]
    assert worker.hive == "hive1" and not worker.orphan and worker.ports
    stack.kill_worker(worker_id)
    assert not any(w.worker_id == worker_id for w in stack.workers())
    grace = stack.config.grace_seconds
    stack.wait_until(lambda: worker_id not in hive_worker_ids(stack), grace, what="hive evicts")
    stack.wait_until(lambda: worker_id not in queen_worker_ids(stack), grace, what="queen evicts")


def test_stop_leaves_no_process_of_the_run(make_local_stack):
    stack = make_local_stack()
    spawn_idle_worker(stack)
    run_id = stack.run_id
    assert len(processes_of_run(run_id)) >= 5  # queen, 2 hives, proxy, watchdog, worker
    stack.stop()
    assert processes_of_run(run_id) == []
    assert not stack.run_dir.exists()


def test_unsupported_fault_is_refused_clearly(make_local_stack):
    stack = make_local_stack()
    assert not stack.supports(Fault.MEMORY)
    with pytest.raises(Exception, match="cannot inject 'memory'"):
        stack.require(Fault.MEMORY)
    with pytest.raises(Exception, match="no link between 'hive1' and 'hive2'"):
        stack.partition("hive1", "hive2")
