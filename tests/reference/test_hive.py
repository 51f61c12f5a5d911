"""Conformance tests of the reference hive (contract §4, §5.2, §6, §7, §11) with real processes.

Every test starts its hives (and, where the queen matters, a real queen) as processes and spawns
real workers; the ``lab`` fixture kills all of them, workers included, however the test ends.
Negative timing properties ("stays listed") are checked by polling for the whole window.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from ._procs import Program, free_port, healthy, wait_for, worker_processes
from ._procs import test_env as make_env

TOKEN = "hive-conformance-token-7c1e9b"
SRC = Path(__file__).resolve().parents[2] / "src"
MISSING = {"error": {"code": "MISSING_API_KEY", "message": "Missing API key"}}
INVALID = {"error": {"code": "INVALID_API_KEY", "message": "Invalid or missing API key"}}
FAST = {
    "health_interval": "0.2",
    "health_timeout": "0.5",
    "health_failures": "2",
    "kill_grace": "1",
    "load_delay": "0.2",
    "shutdown_timeout": "5",
}
GRACE = (2 + 1) * 0.2 + 1 + 1  # G = (N + 1) x interval + kill grace + 1 s
SPAWN = {"model_ref": "hf:tiny/llama", "backend": "cpu", "device": 0}
WORKER_ID = re.compile(
    r"worker-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)


# -- helpers ---------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports below the ephemeral range."""
    for _ in range(200):
        base = random.randrange(20000, 30000 - count)
        if all(port_free(p) for p in range(base, base + count)):
            return base
    raise AssertionError("no block of free ports found")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stays(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Assert ``predicate`` holds at every poll for ``seconds``."""
    deadline = time.monotonic() + seconds
    wait_for(lambda: not predicate() or time.monotonic() >= deadline, seconds + 5, what)
    assert predicate(), what


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", body["error"]["code"]), body
    assert isinstance(body["error"]["message"], str), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


class Hive:
    """One hive process and an httpx client that carries the token."""

    def __init__(self, lab: Lab, program: Program, port: int, data_dir: Path, ports: str) -> None:
        self.lab = lab
        self.program = program
        self.port = port
        self.ports = ports
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = data_dir
        self.client = httpx.Client(base_url=self.url, timeout=10, trust_env=False)
        lab.clients.append(self.client)

    def request(
        self, method: str, path: str, *, token: str | None = TOKEN, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        resp = self.client.request(method, path, headers=headers, **kw)
        assert TOKEN[:8] not in resp.text and TOKEN[:8] not in str(resp.headers)
        return resp

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=body, **kw)

    def workers(self) -> dict[str, dict[str, Any]]:
        resp = self.get("/v1/workers/list")
        assert resp.status_code == 200, resp.text
        return {w["id"]: w for w in resp.json()["workers"]}

    def spawn(self, **over: Any) -> dict[str, Any]:
        resp = self.post("/v1/workers/spawn", {**SPAWN, **over})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_state(self, wid: str, state: str, timeout: float = 10) -> dict[str, Any]:
        wait_for(
            lambda: self.workers().get(wid, {}).get("state") == state, timeout, f"{wid} {state}"
        )
        return self.workers()[wid]

    def wait_gone(self, wid: str, timeout: float = GRACE + 2) -> None:
        wait_for(lambda: wid not in self.workers(), timeout, f"{wid} off the hive")

    def spawn_idle(self, **over: Any) -> dict[str, Any]:
        return self.wait_state(self.spawn(**over)["worker_id"], "idle")

    def log(self) -> str:
        return self.program.log.read_text(errors="replace")

    def pid_file(self, wid: str) -> Path:
        return self.data_dir / "workers" / f"{wid}.pid"


class Lab:
    """Processes of one test (or module); ``close`` kills all of them, workers included."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp.resolve()
        self.token_file = self.tmp / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.programs: list[Program] = []
        self.clients: list[httpx.Client] = []

    def env(self, bugs: tuple[str, ...] = ()) -> dict[str, str]:
        env = make_env(self.tmp)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
        if bugs:
            env["RBEE_REF_BUGS"] = ",".join(bugs)
        return env

    def hive_args(self, port: int, data_dir: Path, ports: str, **kw: Any) -> list[str]:
        args = [
            "--addr", f"127.0.0.1:{port}", "--name", kw.pop("name", "hive-a"),
            "--queen-url", kw.pop("queen_url", f"http://127.0.0.1:{free_port()}"),
            "--token-file", str(kw.pop("token_file", self.token_file)),
            "--data-dir", str(data_dir), "--worker-ports", ports,
        ]  # fmt: skip
        for name, value in {**FAST, **kw}.items():
            args += ["--" + name.replace("_", "-"), str(value)]
        return args

    def hive(
        self,
        *,
        bugs: tuple[str, ...] = (),
        port: int | None = None,
        data_dir: Path | None = None,
        ports: str | None = None,
        **kw: Any,
    ) -> Hive:
        """Start a hive with the fast timings (overridden by ``kw``) and wait for its health."""
        port = port or free_port()
        data_dir = data_dir or self.tmp / f"hive-{port}"
        if ports is None:
            base = free_ports(8)
            ports = f"{base}-{base + 7}"
        log = self.tmp / f"hive-{port}.log"
        args = self.hive_args(port, data_dir, ports, **kw)
        program = Program("hive", args, self.env(bugs), log)
        self.programs.append(program.start())
        url = f"http://127.0.0.1:{port}/v1/health"
        wait_for(lambda: healthy(url) or program.proc.poll() is not None, 15, "hive health")
        assert program.proc.poll() is None, log.read_text()
        return Hive(self, program, port, data_dir, ports)

    def queen(self, port: int) -> Program:
        args = ["--port", str(port), "--database", str(self.tmp / "beehives.db")]
        args += ["--token-file", str(self.token_file), "--health-interval", "0.2"]
        log = self.tmp / f"queen-{port}.log"
        program = Program("queen", args, self.env(), log)
        self.programs.append(program.start())
        url = f"http://127.0.0.1:{port}/health"
        wait_for(lambda: healthy(url) or program.proc.poll() is not None, 15, "queen health")
        assert program.proc.poll() is None, log.read_text()
        return program

    def workers(self) -> list[psutil.Process]:
        return worker_processes(str(self.tmp))

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for program in self.programs:
            program.stop()
        leftovers = self.workers()
        for proc in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=5)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def hive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hive]:
    """One long-lived hive for the route, auth and validation tables (they spawn nothing)."""
    lab = Lab(tmp_path_factory.mktemp("shared-hive"))
    try:
        yield lab.hive()
    finally:
        lab.close()


# -- public routes, auth, framework errors ----------------------------------------------------


def test_public_routes_answer_without_a_token(hive: Hive) -> None:
    resp = hive.get("/v1/health", token=None)
    assert resp.status_code == 200
    assert resp.json() == {"status": "alive", "version": "0.1.0", "api_version": "v1"}
    resp = hive.get("/health/live", token=None)
    assert (resp.status_code, resp.json()) == (200, {"status": "alive"})
    assert_error(hive.get("/health/ready", token=None), 503, "NOT_READY")
    resp = hive.get("/metrics", token=None)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    for state in ("loading", "idle", "busy"):
        assert f'rbee_hive_workers_total{{state="{state}"}} 0' in resp.text.splitlines()


PROTECTED = [
    ("POST", "/v1/workers/spawn", SPAWN),
    ("POST", "/v1/workers/ready", {}),
    ("GET", "/v1/workers/list", None),
    ("POST", "/v1/models/download", {"model_ref": "hf:x/y"}),
    ("GET", "/v1/models/download/progress?id=abc", None),
    ("GET", "/v1/no/such/route", None),
    ("DELETE", "/v1/health", None),
]
AUTH_CASES = [
    ({}, MISSING),
    ({"Authorization": f"bearer {TOKEN}"}, MISSING),
    ({"Authorization": f"BEARER {TOKEN}"}, MISSING),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, MISSING),
    ({"Authorization": "Bearer"}, MISSING),
    ({"Authorization": "Bearer " + "x" * 9000}, MISSING),
    ({"Authorization": "Bearer wrong-token-value"}, INVALID),
    ({"Authorization": f"Bearer {TOKEN}x"}, INVALID),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize(("headers", "expected"), AUTH_CASES)
def test_protected_routes_refuse_missing_and_wrong_tokens(
    hive: Hive, method: str, path: str, body: Any, headers: dict[str, str], expected: Any
) -> None:
    resp = hive.request(method, path, token=None, headers=headers, json=body)
    assert resp.status_code == 401
    assert resp.json() == expected
    assert hive.workers() == {}


def test_bearer_parsing_trims_like_upstream(hive: Hive) -> None:
    header = {"Authorization": f"Bearer  {TOKEN}"}  # D7: `Bearer  x` -> `x`
    assert hive.get("/v1/workers/list", token=None, headers=header).status_code == 200


def test_unknown_path_and_wrong_method_are_json_with_a_token(hive: Hive) -> None:
    assert_error(hive.get("/v1/no/such/route"), 404, "NOT_FOUND")
    assert_error(hive.get("/v1/workers/spawn"), 405)
    assert_error(hive.post("/v1/workers/list", {}), 405)
    assert_error(hive.post("/v1/health", {}), 405)


def test_body_errors_are_415_400_and_413_json(hive: Hive) -> None:
    plain = {"Content-Type": "text/plain"}
    js = {"Content-Type": "application/json"}
    for path in ("/v1/workers/spawn", "/v1/workers/ready", "/v1/models/download"):
        assert_error(hive.post(path, content=b"{}", headers=plain), 415, "UNSUPPORTED_MEDIA_TYPE")
        assert_error(hive.post(path, content=b"{not json", headers=js), 400, "INVALID_JSON")
        assert_error(hive.post(path, content=b"[1, 2]", headers=js), 400, "VALIDATION_ERROR")
        big = b'{"model_ref": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        assert_error(hive.post(path, content=big, headers=js), 413)
    assert hive.workers() == {}


# -- validation -------------------------------------------------------------------------------

READY = {
    "worker_id": "worker-1",
    "url": "http://127.0.0.1:9001",
    "model_ref": "hf:tiny/llama",
    "backend": "cpu",
    "device": 0,
}
BAD_INPUT = [
    ("/v1/workers/spawn", SPAWN, "model_ref", "hf:../../etc/passwd"),
    ("/v1/workers/spawn", SPAWN, "model_ref", "no-colon-model"),
    ("/v1/workers/spawn", SPAWN, "model_ref", "hf:tiny;rm -rf /"),
    ("/v1/workers/spawn", SPAWN, "model_ref", "hf:a:b-two-colons"),
    ("/v1/workers/spawn", SPAWN, "model_ref", 12345678),
    ("/v1/workers/spawn", SPAWN, "backend", "tpu-accelerator"),
    ("/v1/workers/spawn", SPAWN, "device", -1),
    ("/v1/workers/spawn", SPAWN, "device", 2**32),
    ("/v1/workers/spawn", SPAWN, "device", "zero-device"),
    ("/v1/workers/spawn", SPAWN, "device", True),
    ("/v1/workers/spawn", SPAWN, "slots_total", 0),
    ("/v1/workers/spawn", SPAWN, "model_path", "/etc/passwd-abs"),
    ("/v1/workers/spawn", SPAWN, "model_path", "models/../../escape"),
    ("/v1/workers/ready", READY, "worker_id", "bad_worker_underscore"),
    ("/v1/workers/ready", READY, "worker_id", "w" * 65),
    ("/v1/workers/ready", READY, "url", "ftp://somewhere.example:21"),
    ("/v1/workers/ready", READY, "url", "http://user:pw@host.example:1"),
    ("/v1/workers/ready", READY, "backend", "quantum-cpu"),
    ("/v1/workers/ready", READY, "device", -7),
    ("/v1/models/download", {"model_ref": "hf:x"}, "model_ref", "hf:bad model ref"),
    ("/v1/models/download", {"model_ref": "hf:x"}, "model_ref", "hf:$(reboot-now)"),
]


@pytest.mark.parametrize(("path", "base", "field", "value"), BAD_INPUT)
def test_invalid_fields_are_400_without_echo(
    hive: Hive, path: str, base: dict[str, Any], field: str, value: Any
) -> None:
    body = assert_error(hive.post(path, {**base, field: value}), 400, "VALIDATION_ERROR")
    if isinstance(value, str) and len(value) >= 8:
        assert value not in str(body)
    assert hive.workers() == {}


@pytest.mark.parametrize(
    ("path", "base"), [("/v1/workers/spawn", SPAWN), ("/v1/workers/ready", READY)]
)
def test_missing_fields_are_400(hive: Hive, path: str, base: dict[str, Any]) -> None:
    for field in base:
        body = {k: v for k, v in base.items() if k != field}
        assert_error(hive.post(path, body), 400, "VALIDATION_ERROR")
    assert hive.workers() == {}


def test_unknown_models_ids_and_downloads_are_404(hive: Hive) -> None:
    missing = "hf:missing-model/v1"
    assert_error(hive.post("/v1/workers/spawn", {**SPAWN, "model_ref": missing}), 404)
    assert_error(hive.post("/v1/models/download", {"model_ref": missing}), 404, "MODEL_NOT_FOUND")
    assert_error(hive.post("/v1/workers/ready", READY), 404, "WORKER_NOT_FOUND")
    for query in ("?id=no-such-download", "?id=cached"):
        assert_error(hive.get("/v1/models/download/progress" + query), 404, "DOWNLOAD_NOT_FOUND")
    for query in ("", "?id="):
        assert_error(hive.get("/v1/models/download/progress" + query), 400, "VALIDATION_ERROR")
    assert hive.workers() == {}


# -- lifecycle --------------------------------------------------------------------------------


def test_spawn_ready_busy_idle_shutdown_lifecycle(lab: Lab) -> None:
    hive = lab.hive(token_delay="0.02")
    body = hive.spawn(slots_total=2)
    assert set(body) == {"worker_id", "url", "state"} and body["state"] == "loading"
    wid = body["worker_id"]
    assert WORKER_ID.fullmatch(wid), wid
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", body["url"])
    entry = hive.workers()[wid]
    assert entry["state"] == "loading" and entry["url"] == body["url"]
    assert (entry["restart_count"], entry["last_restart"]) == (0, None)
    pid = entry["pid"]
    assert hive.pid_file(wid).read_text().strip() == str(pid)
    cmdline = psutil.Process(pid).cmdline()
    assert wid in cmdline and "--token-file" in cmdline and TOKEN not in " ".join(cmdline)

    entry = hive.wait_state(wid, "idle")
    assert (entry["slots_total"], entry["slots_available"], entry["pid"]) == (2, 2, pid)
    assert set(entry["last_activity"]) == {"secs_since_epoch", "nanos_since_epoch"}
    resp = hive.get("/health/ready", token=None)
    assert resp.json() == {"status": "ready", "workers_total": 1, "workers_ready": 1}
    metrics = hive.get("/metrics", token=None).text.splitlines()
    assert 'rbee_hive_workers_total{state="idle"} 1' in metrics
    assert 'rbee_hive_workers_total{state="loading"} 0' in metrics
    again = {**READY, "worker_id": wid, "url": body["url"]}
    assert_error(hive.post("/v1/workers/ready", again), 409, "ILLEGAL_TRANSITION")

    def still_idle() -> bool:
        current = hive.workers().get(wid, {})
        return current.get("state") == "idle" and current.get("failed_health_checks") == 0

    stays(still_idle, 3 * 0.2, "a healthy worker stays idle through several sweeps")

    # two long streams take both slots: the hive copies busy from the worker's health
    auth = {"Authorization": f"Bearer {TOKEN}"}
    job = {"prompt": "hello", "max_tokens": 2048}
    with httpx.Client(base_url=body["url"], timeout=10, headers=auth) as worker:
        with (
            worker.stream("POST", "/v1/inference", json={**job, "job_id": "a"}) as one,
            worker.stream("POST", "/v1/inference", json={**job, "job_id": "b"}) as two,
        ):
            assert one.status_code == 200 and two.status_code == 200
            lines = [one.iter_lines(), two.iter_lines()]  # keep them: closing one disconnects
            assert all(next(it).startswith("data: ") for it in lines)
            busy = hive.wait_state(wid, "busy")
            assert busy["slots_available"] == 0
            assert 'rbee_hive_workers_total{state="busy"} 1' in hive.get("/metrics").text
        hive.wait_state(wid, "idle")
        assert worker.post("/v1/admin/shutdown").status_code == 200
    hive.wait_gone(wid)
    assert not alive(pid)
    assert not hive.pid_file(wid).exists()
    assert_error(hive.get("/health/ready", token=None), 503, "NOT_READY")
    logs = [hive.log(), *(p.read_text() for p in (hive.data_dir / "workers").glob("*.log"))]
    assert not any(TOKEN[:8] in text for text in logs), "the token leaked into a log"


def test_sigkilled_worker_is_removed_and_its_port_reused(lab: Lab) -> None:
    hive = lab.hive()
    first = hive.spawn_idle()
    os.kill(first["pid"], signal.SIGKILL)
    hive.wait_gone(first["id"])
    assert not hive.pid_file(first["id"]).exists()
    assert hive.spawn()["url"] == first["url"]  # the lowest port, free again


@pytest.mark.parametrize("bugs", [(), ("evict-without-kill",)], ids=["intended", "bug"])
def test_unresponsive_worker_is_evicted_together_with_its_process(
    lab: Lab, bugs: tuple[str, ...]
) -> None:
    hive = lab.hive(bugs=bugs, kill_grace="0.5", health_timeout="0.25")
    entry = hive.spawn_idle()
    os.kill(entry["pid"], signal.SIGSTOP)  # answers nothing, so every probe fails
    wait_for(lambda: hive.workers()[entry["id"]]["failed_health_checks"] >= 1, 5, "a failure")
    hive.wait_gone(entry["id"])
    assert not hive.pid_file(entry["id"]).exists()
    if bugs:
        assert alive(entry["pid"]), "evict-without-kill leaves the process running"
    else:
        assert not alive(entry["pid"]), "the entry left before its process"


def test_ready_timeout_kills_a_stuck_loader(lab: Lab) -> None:
    hive = lab.hive(load_delay="60", ready_timeout="1")
    wid = hive.spawn()["worker_id"]
    pid = hive.workers()[wid]["pid"]
    wait_for(lambda: healthy(hive.workers()[wid]["url"] + "/health"), 10, "worker bound")
    assert hive.workers()[wid]["state"] == "loading"
    hive.wait_gone(wid, timeout=5)
    assert not alive(pid)


def test_idle_timeout_stops_an_idle_worker(lab: Lab) -> None:
    hive = lab.hive(idle_timeout="1")
    entry = hive.spawn_idle()
    hive.wait_gone(entry["id"], timeout=6)
    assert not alive(entry["pid"])
    assert not hive.pid_file(entry["id"]).exists()


def test_worker_dying_during_start_up_leaves_no_entry(lab: Lab) -> None:
    token_file = lab.tmp / "vanishing-token"
    token_file.write_text(TOKEN)
    hive = lab.hive(token_file=token_file)
    token_file.unlink()  # the worker cannot read it and exits
    body = hive.spawn()
    hive.wait_gone(body["worker_id"], timeout=10)
    token_file.write_text(TOKEN)
    assert hive.spawn()["url"] == body["url"]  # the port is free again


@pytest.mark.parametrize("bugs", [(), ("port-reuse-orphan",)], ids=["intended", "bug"])
def test_port_choice_skips_a_port_held_by_a_foreign_listener(
    lab: Lab, bugs: tuple[str, ...]
) -> None:
    base = free_ports(2)
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", base))
        foreign.listen()
        hive = lab.hive(bugs=bugs, ports=f"{base}-{base + 1}")
        body = hive.spawn()
        if bugs:
            assert body["url"].endswith(f":{base}"), "the bug hands out the held port"
            hive.wait_gone(body["worker_id"])  # the worker cannot bind and exits
            return
        assert body["url"].endswith(f":{base + 1}")
        hive.wait_state(body["worker_id"], "idle")
        assert_error(hive.post("/v1/workers/spawn", SPAWN), 503, "NO_PORTS_AVAILABLE")
        assert len(hive.workers()) == 1


# -- hive shutdown and restart (D4) -----------------------------------------------------------


@pytest.mark.parametrize("bugs", [(), ("sigterm-orphans",)], ids=["intended", "bug"])
def test_hive_sigterm_stops_its_workers(lab: Lab, bugs: tuple[str, ...]) -> None:
    hive = lab.hive(bugs=bugs)
    first, second = hive.spawn()["worker_id"], hive.spawn()["worker_id"]
    pids = [hive.wait_state(wid, "idle")["pid"] for wid in (first, second)]
    started = time.monotonic()
    hive.program.signal(signal.SIGTERM)
    hive.program.wait(timeout=5 + 1)
    assert time.monotonic() - started < 5 + 0.5
    if bugs:
        assert all(alive(pid) for pid in pids), "sigterm-orphans leaves the workers running"
    else:
        assert not any(alive(pid) for pid in pids)
        assert lab.workers() == []
        assert not list((hive.data_dir / "workers").glob("*.pid"))


def test_hive_kill9_then_restart_leaves_no_old_worker(lab: Lab) -> None:
    hive = lab.hive()
    first, second = hive.spawn()["worker_id"], hive.spawn()["worker_id"]
    entries = [hive.wait_state(wid, "idle") for wid in (first, second)]
    hive.program.signal(signal.SIGKILL)
    hive.program.wait()
    assert all(alive(e["pid"]) for e in entries), "orphans survive the hive's kill -9"
    again = lab.hive(port=hive.port, data_dir=hive.data_dir, ports=hive.ports)
    assert again.workers() == {}
    assert not any(alive(e["pid"]) for e in entries)
    assert not list((hive.data_dir / "workers").glob("*.pid"))
    assert again.spawn()["url"] == entries[0]["url"]  # the orphan's port is free again


# -- catalog and downloads --------------------------------------------------------------------


def test_download_is_shared_streams_progress_and_is_cached_after_restart(lab: Lab) -> None:
    hive = lab.hive()
    model = {"model_ref": "hf:org/fresh-model"}
    first = hive.post("/v1/models/download", model)
    assert first.status_code == 200
    download_id = first.json()["download_id"]
    assert first.json() == {"download_id": download_id, "local_path": None}
    assert re.fullmatch(r"[0-9a-f-]{36}", download_id)
    assert hive.post("/v1/models/download", model).json()["download_id"] == download_id

    path = f"/v1/models/download/progress?id={download_id}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with hive.client.stream("GET", path, headers=auth) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["cache-control"] == "no-cache"
        data = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert [e["stage"] for e in events[:-1]] == ["downloading"] * (len(events) - 1)
    assert len(events) >= 3 and events[-1]["stage"] == "complete"
    done = [e["bytes_downloaded"] for e in events[:-1]]
    totals = [e["bytes_total"] for e in events[:-1]]
    assert done == sorted(done) and all(d <= t for d, t in zip(done, totals, strict=True))
    local_path = events[-1]["local_path"]

    wait_for(lambda: hive.get(path).status_code == 404, 5, "finished download forgotten")
    assert_error(hive.get(path), 404, "DOWNLOAD_NOT_FOUND")
    cached = hive.post("/v1/models/download", model).json()
    assert cached == {"download_id": "cached", "local_path": local_path}

    hive.program.signal(signal.SIGTERM)
    hive.program.wait(timeout=6)
    again = lab.hive(port=hive.port, data_dir=hive.data_dir)
    assert again.post("/v1/models/download", model).json() == cached


def test_broken_catalog_is_503_and_recovers(lab: Lab) -> None:
    hive = lab.hive()
    store = hive.data_dir / "models.db"
    store.mkdir()  # a directory where the SQLite file should be
    model = {"model_ref": "hf:org/other-model"}
    assert_error(hive.post("/v1/models/download", model), 503, "STORAGE_UNAVAILABLE")
    assert_error(hive.post("/v1/workers/spawn", SPAWN), 503, "STORAGE_UNAVAILABLE")
    assert hive.workers() == {}
    assert hive.get("/v1/health", token=None).status_code == 200
    store.rmdir()
    assert hive.post("/v1/models/download", model).status_code == 200


# -- queen registration (D3, D5, D11) ---------------------------------------------------------

QUEEN_MISSING = not (SRC / "rbee_props" / "reference" / "queen.py").exists()


def queen_workers(port: int) -> dict[str, dict[str, Any]]:
    resp = httpx.get(
        f"http://127.0.0.1:{port}/v2/workers/list",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    return {w["worker_id"]: w for w in resp.json()["workers"]}


@pytest.mark.skipif(QUEEN_MISSING, reason="the reference queen is not written yet")
@pytest.mark.parametrize("bugs", [(), ("no-auth-internal",)], ids=["intended", "bug"])
def test_ready_worker_is_registered_at_the_queen_with_the_token(
    lab: Lab, bugs: tuple[str, ...]
) -> None:
    qport = free_port()
    queen = lab.queen(qport)
    hive = lab.hive(bugs=bugs, queen_url=f"http://127.0.0.1:{qport}", name="hive-q")
    wid = hive.spawn_idle()["id"]
    if bugs:
        wait_for(lambda: "queen refused to register" in hive.log(), 5, "refused register")
        assert wid not in queen_workers(qport)
        return
    wait_for(lambda: wid in queen_workers(qport), 5, "worker at the queen")
    assert queen_workers(qport)[wid]["node"] == "hive-q"
    queen.stop()  # D5: a restarted queen is rebuilt by the hive's re-registration
    lab.queen(qport)
    wait_for(lambda: wid in queen_workers(qport), GRACE, "worker back at the queen")


# -- the other planted bugs of the hive -------------------------------------------------------


def test_ready_unknown_200_bug_accepts_unknown_ids(lab: Lab) -> None:
    hive = lab.hive(bugs=("ready-unknown-200",))
    resp = hive.post("/v1/workers/ready", READY)
    assert resp.status_code == 200, "the bug answers 200 for an unknown id"
    assert hive.workers() == {}


def test_wrong_health_path_bug_evicts_a_healthy_worker(lab: Lab) -> None:
    hive = lab.hive(bugs=("wrong-health-path",), health_failures="5")
    wid = hive.spawn()["worker_id"]
    entry = hive.workers()[wid]
    wait_for(lambda: healthy(entry["url"] + "/health"), 10, "worker answers /health")
    wait_for(lambda: hive.workers().get(wid, {}).get("failed_health_checks", 1) >= 1, 5, "fail")
    hive.wait_gone(wid)
    assert not alive(entry["pid"])


def sweeps(hive: Hive) -> int:
    """Health sweeps the hive has completed (its ``rbee_hive_health_sweeps_total`` counter)."""
    text = hive.get("/metrics", token=None).text
    return int(re.search(r"^rbee_hive_health_sweeps_total (\d+)$", text, re.M)[1])


@pytest.mark.parametrize("bugs", [(), ("lost-update",)], ids=["intended", "bug"])
def test_ready_during_a_sweep_is_not_lost(lab: Lab, bugs: tuple[str, ...]) -> None:
    """A ready callback accepted while a sweep runs must survive that sweep.

    With ``lost-update`` the sweep writes back the entry it read at its start (loading), so the
    accepted loading -> idle is lost and the worker stays loading. Sweeps run back to back (0.02 s
    apart); after the first worker is SIGSTOPped each sweep lasts the 0.6 s probe timeout, so a
    callback almost surely lands inside one. The bug variant tries up to four workers.
    """
    hive = lab.hive(bugs=bugs, health_interval="0.02", health_timeout="0.6", health_failures="1000")
    stopped = False
    for _attempt in range(4 if bugs else 2):
        wid = hive.spawn()["worker_id"]
        line = f"worker {wid} ready"
        wait_for(lambda line=line: line in hive.log(), 10, "ready callback accepted")
        seen = sweeps(hive)
        wait_for(lambda seen=seen: sweeps(hive) >= seen + 2, 10, "two more sweeps")
        state = hive.workers()[wid]["state"]
        if not bugs:
            assert state == "idle", "an accepted ready callback was lost"
        elif state == "loading":
            return  # the accepted ready was overwritten: the bug is visible
        if not stopped:
            os.kill(hive.workers()[wid]["pid"], signal.SIGSTOP)  # every probe now hangs
            stopped = True
    if bugs:
        pytest.fail("lost-update never overwrote a ready callback in four tries")


# -- start-up errors --------------------------------------------------------------------------

BAD_STARTS = ["unknown-bug", "port-taken", "unreadable-token", "ports-reversed", "ports-garbage"]
BAD_STARTS += ["data-dir-uncreatable"]


@pytest.mark.parametrize("case", BAD_STARTS)
def test_bad_start_input_fails_with_one_stderr_line(lab: Lab, case: str) -> None:
    port = free_port()
    env = lab.env(("no-such-bug",) if case == "unknown-bug" else ())
    kw: dict[str, Any] = {}
    if case == "unreadable-token":
        kw["token_file"] = lab.tmp  # a directory
    if case == "ports-reversed":
        kw["ports"] = "9000-8000"
    if case == "ports-garbage":
        kw["ports"] = "abc"
    blocker = lab.tmp / "a-file"
    blocker.write_text("")
    data_dir = blocker / "sub" if case == "data-dir-uncreatable" else lab.tmp / "data"
    args = lab.hive_args(port, data_dir, kw.pop("ports", "20000-20007"), **kw)
    cmd = [sys.executable, "-m", "rbee_props.reference.hive", *args]
    with socket.socket() as taken:
        if case == "port-taken":
            taken.bind(("127.0.0.1", port))
            taken.listen()
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=20, check=False)
    lines = done.stderr.decode().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: rbee-hive: ")
    assert lab.workers() == []
    if case != "port-taken":
        assert port_free(port)
