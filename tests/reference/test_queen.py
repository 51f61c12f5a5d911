"""Conformance of the reference queen (contract §3, §4, §5.1, §6, §8, §9, §11) on real processes.

Most tests share two queens: ``queen`` sweeps rarely (routing and registry tests see no
eviction) and ``fast_queen`` sweeps every 0.2 s (eviction and reconciliation). Workers and hives
are real reference processes where their normal behaviour is enough, and ``Stub`` peers where a
test needs a peer to misbehave on cue (5xx, garbage, death mid-stream).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reference._procs import Program, free_port, healthy, wait_for
from tests.reference._procs import test_env as base_env
from tests.reference._stub import Exchange, Stub, sse_worker

TOKEN = "queen-conformance-token-5e1d"
SRC = str(Path(__file__).resolve().parents[2] / "src")
MISSING = {"error": {"code": "MISSING_API_KEY", "message": "Missing API key"}}
INVALID = {"error": {"code": "INVALID_API_KEY", "message": "Invalid or missing API key"}}
FAST = ["--health-interval", "0.2", "--health-timeout", "0.5", "--health-failures", "2"]
SLOW = ["--health-interval", "60", "--task-ready-wait", "1", "--kill-grace", "2"]


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    env = base_env(tmp, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
    return env


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class QueenProc:
    """A queen process and an authenticated client for it."""

    def __init__(self, tmp: Path, args: list[str], *, bugs: str = "", token: str = TOKEN):
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp / "beehives.db"
        token_file = tmp / "token"
        token_file.write_text(token + "\n")
        self.log = tmp / f"queen-{self.port}.log"
        extra = {"RBEE_REF_BUGS": bugs} if bugs else {}
        self.program = Program(
            "queen",
            [
                "--port",
                str(self.port),
                "--database",
                str(self.db),
                "--token-file",
                str(token_file),
                *args,
            ],
            env_for(tmp, **extra),
            self.log,
        )
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def start(self) -> QueenProc:
        self.program.start()

        def up() -> bool:
            if self.program.proc is not None and self.program.proc.poll() is not None:
                raise AssertionError(f"queen exited at start:\n{self.log.read_text()}")
            return healthy(f"{self.url}/health")

        wait_for(up, timeout=20, what="queen healthy")
        return self

    def stop(self) -> None:
        self.http.close()
        self.program.stop()

    def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return self.http.post(path, json=body, **kw)

    def workers(self) -> dict[str, dict[str, Any]]:
        return {w["worker_id"]: w for w in self.http.get("/v2/workers/list").json()["workers"]}

    def register(self, worker_id: str, url: str, /, **fields: Any) -> httpx.Response:
        body = {
            "worker_id": worker_id,
            "url": url,
            "model_ref": "hf:org/m",
            "backend": "cpu",
            "node_name": "n1",
            "device": 0,
            **fields,
        }
        return self.post("/v2/workers/register", body)

    def add_node(self, name: str, **fields: Any) -> httpx.Response:
        return self.post("/v2/registry/beehives/add", node(name, **fields))

    def log_has(self, text: str) -> bool:
        return text in self.log.read_text()


def node(name: str, /, **fields: Any) -> dict[str, Any]:
    return {
        "node_name": name,
        "ssh_host": "127.0.0.1",
        "ssh_user": "rbee",
        "git_repo_url": "https://github.com/org/llama-orch.git",
        "git_branch": "main",
        "install_path": "/opt/rbee",
        "hive_port": free_port(),  # nobody listens: reconciliation leaves it alone
        **fields,
    }


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    error = resp.json()["error"]
    assert set(error) >= {"code", "message"}
    assert error["code"].isupper() or "_" in error["code"]
    if code is not None:
        assert error["code"] == code, resp.text


def sse_data(text: str) -> list[Any]:
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


@pytest.fixture(scope="module")
def queen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueenProc]:
    proc = QueenProc(tmp_path_factory.mktemp("queen"), SLOW)
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def fast_queen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueenProc]:
    proc = QueenProc(tmp_path_factory.mktemp("fast"), FAST)
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture
def start_queen(tmp_path: Path) -> Iterator[Any]:
    """Start queens for one test; all of them are killed afterwards."""
    started: list[QueenProc] = []

    def start(args: list[str] = FAST, *, bugs: str = "", token: str = TOKEN, sub: str = "q"):
        proc = QueenProc(tmp_path / sub, args, bugs=bugs, token=token)
        started.append(proc)
        return proc.start()

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def stubs() -> Iterator[Any]:
    """Create stub peers for one test; all are closed afterwards."""
    made: list[Stub] = []

    def make(stub: Stub | None = None) -> Stub:
        made.append(stub or Stub())
        return made[-1]

    try:
        yield make
    finally:
        for stub in made:
            stub.close()


@pytest.fixture(scope="module")
def callback() -> Iterator[Stub]:
    """The ready-callback target of hand-started workers: answers 200."""
    stub = Stub().reply("POST", "/v1/workers/ready", 200, {"message": "ok"})
    try:
        yield stub
    finally:
        stub.close()


@pytest.fixture
def workers(tmp_path: Path, callback: Stub) -> Iterator[Any]:
    """Start real reference workers (ready once their callback arrived); killed afterwards."""
    started: list[Program] = []
    token_file = tmp_path / "worker-token"
    token_file.write_text(TOKEN + "\n")

    def start(worker_id: str, model: str = "hf:org/m", *extra: str) -> tuple[Program, str]:
        port = free_port()
        args = [
            "--worker-id", worker_id, "--model-ref", model, "--backend", "cpu",
            "--device", "0", "--port", str(port), "--slots", "1",
            "--callback-url", f"{callback.url}/v1/workers/ready",
            "--token-file", str(token_file), "--load-delay", "0.05", "--kill-grace", "2", *extra,
        ]  # fmt: skip
        program = Program("worker", args, env_for(tmp_path), tmp_path / f"{worker_id}.log")
        started.append(program.start())
        wait_for(
            lambda: any(c[3]["worker_id"] == worker_id for c in callback.calls),
            timeout=20,
            what=f"{worker_id} ready",
        )
        return program, f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for program in started:
            program.stop()


# -- health, auth, framework errors ---------------------------------------------------------------

PROTECTED = [
    ("POST", "/v2/registry/beehives/add"),
    ("GET", "/v2/registry/beehives/list"),
    ("POST", "/v2/registry/beehives/remove"),
    ("POST", "/v2/workers/register"),
    ("GET", "/v2/workers/list"),
    ("GET", "/v2/workers/health"),
    ("POST", "/v2/workers/shutdown"),
    ("POST", "/v2/tasks"),
    ("POST", "/v1/inference"),
    ("POST", "/health"),
    ("GET", "/no/such/route"),
]


def test_health_is_public_and_exact(queen: QueenProc) -> None:
    resp = httpx.get(f"{queen.url}/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "version": "0.1.0"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, MISSING),
        (f"bearer {TOKEN}", MISSING),
        (f"BEARER {TOKEN}", MISSING),
        ("Basic cXVlZW46c2VjcmV0", MISSING),
        ("Bearer", MISSING),
        ("Bearer wrong-token-value", INVALID),
    ],
    ids=["none", "lower", "upper", "basic", "empty", "wrong"],
)
def test_protected_routes_refuse_without_the_token(
    queen: QueenProc, method: str, path: str, header: str | None, expected: dict[str, Any]
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    resp = httpx.request(method, f"{queen.url}{path}", headers=headers, json={})
    assert resp.status_code == 401
    assert resp.json() == expected
    assert TOKEN[:8] not in resp.text


def test_bearer_parsing_trims_inner_spaces(queen: QueenProc) -> None:
    resp = httpx.get(f"{queen.url}/v2/workers/list", headers={"Authorization": f"Bearer   {TOKEN}"})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/no/such/route", {}, 404, "NOT_FOUND"),
        ("GET", "/v2/workers/register", {}, 405, None),
        ("POST", "/health", {}, 405, None),
        ("POST", "/v2/workers/register", {"content": b"{}"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            "POST",
            "/v2/registry/beehives/add",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "INVALID_JSON",
        ),
        (
            "POST",
            "/v2/workers/register",
            {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}},
            400,
            "VALIDATION_ERROR",
        ),
        (
            "POST",
            "/v2/workers/register",
            {
                "content": b'{"pad": "' + b"x" * 2_200_000 + b'"}',
                "headers": {"Content-Type": "application/json"},
            },
            413,
            None,
        ),
    ],
    ids=["404", "405", "405-public", "415", "invalid-json", "not-object", "413"],
)
def test_framework_errors_are_json(
    queen: QueenProc, method: str, path: str, kwargs: dict[str, Any], status: int, code: str | None
) -> None:
    resp = queen.http.request(method, path, **kwargs)
    assert_error(resp, status, code)
    assert healthy(f"{queen.url}/health")


# -- beehive registry -----------------------------------------------------------------------------


def test_beehive_add_list_remove(queen: QueenProc) -> None:
    name = uid("hive")
    body = node(name, ssh_port=2222, ssh_key_path="/home/rbee/.ssh/id_ed25519", backends='["cpu"]')
    before = time.time()
    resp = queen.post("/v2/registry/beehives/add", body)
    assert resp.status_code == 200
    assert resp.json() == {
        "success": True,
        "message": f"Node '{name}' added successfully",
        "node_name": name,
    }
    nodes = queen.http.get("/v2/registry/beehives/list").json()["nodes"]
    assert [n["node_name"] for n in nodes] == sorted(n["node_name"] for n in nodes)
    (stored,) = (n for n in nodes if n["node_name"] == name)
    for key, value in body.items():
        assert stored[key] == value, key
    assert stored["devices"] is None
    assert stored["status"] == "reachable"
    assert int(before) <= stored["last_connected_unix"] <= time.time() + 1

    resp = queen.post("/v2/registry/beehives/remove", {"node_name": name})
    assert resp.status_code == 200
    assert resp.json()["success"] is True
    assert isinstance(resp.json()["message"], str)
    names = [n["node_name"] for n in queen.http.get("/v2/registry/beehives/list").json()["nodes"]]
    assert name not in names
    assert_error(queen.post("/v2/registry/beehives/remove", {"node_name": name}), 404)


def test_beehive_defaults(queen: QueenProc) -> None:
    name = uid("hive")
    body = node(name)
    del body["hive_port"]
    assert queen.post("/v2/registry/beehives/add", body).status_code == 200
    nodes = queen.http.get("/v2/registry/beehives/list").json()["nodes"]
    (stored,) = (n for n in nodes if n["node_name"] == name)
    assert stored["ssh_port"] == 22
    assert stored["hive_port"] == 9200
    assert stored["ssh_key_path"] is None


def test_beehive_readd_is_409_and_keeps_the_first(queen: QueenProc) -> None:
    name = uid("hive")
    assert queen.add_node(name, ssh_host="first-host").status_code == 200
    resp = queen.add_node(name, ssh_host="second-host")
    assert_error(resp, 409, "NODE_ALREADY_EXISTS")
    nodes = queen.http.get("/v2/registry/beehives/list").json()["nodes"]
    assert [n["ssh_host"] for n in nodes if n["node_name"] == name] == ["first-host"]


def test_beehive_unreachable_ssh_is_400_and_not_saved(queen: QueenProc) -> None:
    name = uid("hive")
    resp = queen.add_node(name, ssh_host="host-unreachable-1")
    assert_error(resp, 400, "SSH_UNREACHABLE")
    names = [n["node_name"] for n in queen.http.get("/v2/registry/beehives/list").json()["nodes"]]
    assert name not in names


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 400), ({"node_name": "bad_node_name"}, 400), ({"node_name": 7}, 400)],
    ids=["missing", "invalid", "wrong-type"],
)
def test_beehive_remove_bad_input(queen: QueenProc, body: dict[str, Any], status: int) -> None:
    resp = queen.post("/v2/registry/beehives/remove", body)
    assert_error(resp, status, "VALIDATION_ERROR")
    assert "bad_node_name" not in resp.text


ADD_NODE_BAD = [
    ("node_name", "bad_node_name"),
    ("node_name", "-leading-hyphen"),
    ("node_name", "a" * 64),
    ("node_name", 12345),
    ("ssh_host", "-oProxyCommand=evil"),
    ("ssh_host", "host;rm -rf /"),
    ("ssh_host", "two words host"),
    ("ssh_user", "-rootuser"),
    ("ssh_user", "user$(id)x"),
    ("git_branch", "-delete-branch"),
    ("git_branch", "branch`id`x"),
    ("install_path", "relative/path/rbee"),
    ("install_path", "/opt/../etc/passwd"),
    ("install_path", "/opt/rbee;rm -rf /"),
    ("ssh_key_path", "keys/id_rsa_relative"),
    ("git_repo_url", "https://x/y.git;touch /tmp/pwned"),
    ("git_repo_url", "https://x/y z.git"),
    ("ssh_port", 0),
    ("ssh_port", 65536),
    ("ssh_port", "22"),
    ("hive_port", -1),
    ("hive_port", 70000),
    ("backends", 123),
]


@pytest.mark.parametrize(("field", "value"), ADD_NODE_BAD)
def test_beehive_add_validates_each_field(queen: QueenProc, field: str, value: Any) -> None:
    name = uid("hive")
    resp = queen.post("/v2/registry/beehives/add", node(name, **{field: value}))
    assert_error(resp, 400, "VALIDATION_ERROR")
    if isinstance(value, str) and len(value) >= 8:
        assert value not in resp.text
    names = [n["node_name"] for n in queen.http.get("/v2/registry/beehives/list").json()["nodes"]]
    assert name not in names


@pytest.mark.parametrize(
    "field", ["node_name", "ssh_host", "ssh_user", "git_repo_url", "git_branch", "install_path"]
)
def test_beehive_add_requires_each_field(queen: QueenProc, field: str) -> None:
    body = node(uid("hive"))
    del body[field]
    assert_error(queen.post("/v2/registry/beehives/add", body), 400, "VALIDATION_ERROR")


def test_beehive_registry_survives_a_restart(start_queen: Any) -> None:
    first = start_queen(["--health-interval", "60"])
    assert first.add_node("kept-a").status_code == 200
    assert first.add_node("kept-b", ssh_host="other-host").status_code == 200
    first.program.signal(signal.SIGTERM)
    assert first.program.wait(10) == 0
    second = start_queen(["--health-interval", "60"])  # same directory, same database
    nodes = second.http.get("/v2/registry/beehives/list").json()["nodes"]
    assert [(n["node_name"], n["ssh_host"]) for n in nodes] == [
        ("kept-a", "127.0.0.1"),
        ("kept-b", "other-host"),
    ]
    assert_error(second.add_node("kept-a"), 409, "NODE_ALREADY_EXISTS")


def test_broken_database_is_503_and_recovers(start_queen: Any) -> None:
    queen = start_queen(["--health-interval", "60"])
    assert queen.add_node("stored").status_code == 200
    good = queen.db.read_bytes()
    queen.db.write_bytes(b"this is not a sqlite database at all" * 200)
    assert_error(queen.http.get("/v2/registry/beehives/list"), 503, "STORAGE_UNAVAILABLE")
    assert_error(queen.add_node("other"), 503, "STORAGE_UNAVAILABLE")
    assert healthy(f"{queen.url}/health")
    queen.db.write_bytes(good)
    nodes = queen.http.get("/v2/registry/beehives/list").json()["nodes"]
    assert [n["node_name"] for n in nodes] == ["stored"]


# -- worker registry ------------------------------------------------------------------------------


def test_register_then_list(queen: QueenProc) -> None:
    wid = uid("w")
    resp = queen.register(wid, "http://127.0.0.1:9999", slots_total=3, vram_bytes=1024)
    assert resp.status_code == 200
    assert resp.json() == {
        "success": True,
        "message": f"Worker '{wid}' registered successfully",
        "worker_id": wid,
    }
    assert queen.workers()[wid] == {
        "worker_id": wid,
        "node": "n1",
        "state": "idle",
        "model_ref": "hf:org/m",
        "url": "http://127.0.0.1:9999",
        "backend": "cpu",
        "device": 0,
        "slots_total": 3,
        "slots_available": 3,
    }


def test_duplicate_register_is_409_and_unchanged(queen: QueenProc) -> None:
    wid = uid("w")
    assert queen.register(wid, "http://127.0.0.1:9001").status_code == 200
    resp = queen.register(wid, "http://127.0.0.1:9002", model_ref="hf:org/other")
    assert_error(resp, 409, "WORKER_ALREADY_REGISTERED")
    entry = queen.workers()[wid]
    assert (entry["url"], entry["model_ref"]) == ("http://127.0.0.1:9001", "hf:org/m")


REGISTER_BAD = [
    ("worker_id", "bad_id_under"),
    ("worker_id", "x" * 65),
    ("worker_id", ""),
    ("worker_id", "id with spaces"),
    ("url", "ftp://127.0.0.1:9000"),
    ("url", "http://user:secretpw@127.0.0.1:9000"),
    ("url", "http://127.0.0.1"),
    ("url", "http://127.0.0.1:70000"),
    ("model_ref", "noprovidermodel"),
    ("model_ref", "hf:../etc/passwd"),
    ("model_ref", "hf:/abs/model"),
    ("model_ref", "hf:a:b:c-model"),
    ("model_ref", "hf:model;rm -rf"),
    ("backend", "tpu-backend"),
    ("node_name", "bad_node_name"),
    ("device", -1),
    ("device", 2**32),
    ("device", "0"),
    ("device", 1.5),
    ("slots_total", 0),
    ("slots_total", -3),
    ("vram_bytes", -5),
]


@pytest.mark.parametrize(("field", "value"), REGISTER_BAD)
def test_register_validates_each_field(queen: QueenProc, field: str, value: Any) -> None:
    wid = uid("w")
    resp = queen.register(wid, "http://127.0.0.1:9000", **{field: value})
    assert_error(resp, 400, "VALIDATION_ERROR")
    if isinstance(value, str) and len(value) >= 8:
        assert value not in resp.text
    assert wid not in queen.workers()


@pytest.mark.parametrize(
    "field", ["worker_id", "url", "model_ref", "backend", "node_name", "device"]
)
def test_register_requires_each_field(queen: QueenProc, field: str) -> None:
    body = {
        "worker_id": uid("w"),
        "url": "http://127.0.0.1:9000",
        "model_ref": "hf:org/m",
        "backend": "cpu",
        "node_name": "n1",
        "device": 0,
    }
    del body[field]
    assert_error(queen.post("/v2/workers/register", body), 400, "VALIDATION_ERROR")


def test_workers_health_by_node(queen: QueenProc) -> None:
    name = uid("node")
    a, b = uid("w"), uid("w")
    queen.register(a, "http://127.0.0.1:9000", node_name=name)
    queen.register(b, "http://127.0.0.1:9001", node_name=name)
    resp = queen.http.get("/v2/workers/health", params={"node": name})
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ok",
        "workers": [{"worker_id": w, "state": "idle", "ready": True} for w in sorted((a, b))],
    }
    empty = queen.http.get("/v2/workers/health", params={"node": uid("none")})
    assert empty.json() == {"status": "ok", "workers": []}


@pytest.mark.parametrize("params", [{}, {"node": "bad_node_query"}, {"node": ""}])
def test_workers_health_needs_a_valid_node(queen: QueenProc, params: dict[str, str]) -> None:
    resp = queen.http.get("/v2/workers/health", params=params)
    assert_error(resp, 400, "VALIDATION_ERROR")
    assert "bad_node_query" not in resp.text


# -- shutdown -------------------------------------------------------------------------------------


def test_shutdown_real_worker(queen: QueenProc, workers: Any) -> None:
    wid = uid("w")
    program, url = workers(wid)
    assert queen.register(wid, url).status_code == 200
    resp = queen.post("/v2/workers/shutdown", {"worker_id": wid})
    assert resp.status_code == 200
    assert resp.json() == {"success": True, "message": f"Worker '{wid}' shutdown command sent"}
    assert wid not in queen.workers()
    assert program.wait(5) == 0
    assert_error(queen.post("/v2/workers/shutdown", {"worker_id": wid}), 404, "WORKER_NOT_FOUND")


@pytest.mark.parametrize(
    ("reply", "status", "kept"),
    [(None, 503, True), (500, 502, True), (404, 404, True)],
    ids=["unreachable", "worker-500", "worker-404"],
)
def test_shutdown_failures(
    queen: QueenProc, stubs: Any, reply: int | None, status: int, kept: bool
) -> None:
    wid = uid("w")
    if reply is None:
        url = dead_url()
    else:
        stub = stubs().reply(
            "POST", "/v1/admin/shutdown", reply, {"error": {"code": "BOOM", "message": "no"}}
        )
        url = stub.url
    queen.register(wid, url)
    assert_error(queen.post("/v2/workers/shutdown", {"worker_id": wid}), status)
    assert (wid in queen.workers()) is kept


@pytest.mark.parametrize("body", [{}, {"worker_id": "bad_id_under"}, {"worker_id": 5}])
def test_shutdown_bad_input(queen: QueenProc, body: dict[str, Any]) -> None:
    resp = queen.post("/v2/workers/shutdown", body)
    assert_error(resp, 400, "VALIDATION_ERROR")
    assert "bad_id_under" not in resp.text


# -- inference ------------------------------------------------------------------------------------


def test_inference_streams_from_a_real_worker(queen: QueenProc, workers: Any) -> None:
    wid, model = uid("w"), f"hf:org/{uid('m')}"
    _, url = workers(wid, model)
    queen.register(wid, url, model_ref=model)
    resp = queen.post("/v1/inference", {"model": model, "prompt": "hello bees", "max_tokens": 5})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_data(resp.text)
    assert events[-1] == "[DONE]"
    tokens = [e for e in events[:-1] if e["type"] == "token"]
    assert [e["i"] for e in tokens] == list(range(5))
    assert events[-2]["type"] == "end"
    assert events[-2]["tokens_out"] == 5
    assert queen.workers()[wid]["state"] == "idle"


def test_busy_worker_gets_no_more_work_and_disconnect_frees_it(
    queen: QueenProc, workers: Any
) -> None:
    wid, model = uid("w"), f"hf:org/{uid('m')}"
    _, url = workers(wid, model, "--token-delay", "0.05")
    queen.register(wid, url, model_ref=model)
    long_job = {"model": model, "prompt": "p", "max_tokens": 2000}
    with queen.http.stream("POST", "/v1/inference", json=long_job) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()  # kept: a closed iterator would close the stream
        assert next(lines).startswith("data: ")
        assert queen.workers()[wid]["state"] == "busy"
        assert_error(queen.post("/v1/inference", long_job), 503, "NO_IDLE_WORKERS")
    # the client went away: the queen lets go of the worker, and the worker of its slot
    wait_for(lambda: queen.workers()[wid]["state"] == "idle", timeout=5, what="queen idle")
    wait_for(
        lambda: httpx.get(f"{url}/health").json()["slots_available"] == 1,
        timeout=5,
        what="worker slot freed",
    )


def test_inference_sends_job_id_and_token(queen: QueenProc, stubs: Any) -> None:
    wid, model = uid("w"), f"hf:org/{uid('m')}"
    stub = stubs(sse_worker(wid, ["x", "y"]))
    queen.register(wid, stub.url, model_ref=model)
    resp = queen.post("/v1/inference", {"model": model, "prompt": "p"})
    assert resp.status_code == 200
    assert [e["t"] for e in sse_data(resp.text) if isinstance(e, dict) and "t" in e] == ["x", "y"]
    ((_, _, headers, body),) = stub.calls_to("POST", "/v1/inference")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert uuid.UUID(body["job_id"])
    assert body == {"job_id": body["job_id"], "prompt": "p", "max_tokens": 100, "temperature": 0.7}


def test_inference_without_matching_worker_is_503(queen: QueenProc) -> None:
    resp = queen.post("/v1/inference", {"model": f"hf:org/{uid('nobody')}", "prompt": "p"})
    assert_error(resp, 503, "NO_IDLE_WORKERS")


def test_inference_without_model_uses_any_idle_worker(start_queen: Any, stubs: Any) -> None:
    queen = start_queen(["--health-interval", "60"])
    assert_error(queen.post("/v1/inference", {"prompt": "p"}), 503, "NO_IDLE_WORKERS")
    stub = stubs(sse_worker("any-w"))
    queen.register("any-w", stub.url, model_ref="hf:org/whatever")
    assert queen.post("/v1/inference", {"prompt": "p"}).status_code == 200


def test_inference_relays_as_it_arrives(queen: QueenProc, stubs: Any) -> None:
    wid, model = uid("w"), f"hf:org/{uid('m')}"
    gate = threading.Event()

    def infer(ex: Exchange) -> None:
        ex.start_sse()
        ex.send_event({"type": "started", "job_id": ex.body["job_id"]})
        gate.wait(10)
        ex.send_event({"type": "token", "t": "late", "i": 0})
        ex.send_event("[DONE]")
        ex.end_sse()

    stub = stubs().on("POST", "/v1/inference", infer)
    queen.register(wid, stub.url, model_ref=model)
    seen: list[str] = []
    with queen.http.stream("POST", "/v1/inference", json={"model": model, "prompt": "p"}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                seen.append(line)
                if len(seen) == 1:
                    assert not gate.is_set()  # the first event came before the worker finished
                    gate.set()
    assert len(seen) == 3
    assert seen[-1] == "data: [DONE]"


def test_inference_worker_death_mid_stream_ends_without_done(queen: QueenProc, stubs: Any) -> None:
    wid, model = uid("w"), f"hf:org/{uid('m')}"

    def infer(ex: Exchange) -> None:
        ex.start_sse()
        ex.send_event({"type": "started", "job_id": ex.body["job_id"]})
        ex.send_event({"type": "token", "t": "only", "i": 0})
        ex.die()

    stub = stubs().on("POST", "/v1/inference", infer)
    queen.register(wid, stub.url, model_ref=model)
    resp = queen.post("/v1/inference", {"model": model, "prompt": "p"})
    assert resp.status_code == 200
    events = sse_data(resp.text)
    assert events[-1] == {"type": "token", "t": "only", "i": 0}
    assert "[DONE]" not in events
    assert not any(isinstance(e, dict) and e.get("type") == "end" for e in events)


@pytest.mark.parametrize(
    ("status", "body", "expected", "code"),
    [
        (400, {"error": {"code": "VALIDATION_ERROR", "message": "m"}}, 400, "VALIDATION_ERROR"),
        (404, {"error": {"code": "NOT_FOUND", "message": "m"}}, 404, "NOT_FOUND"),
        (503, {"error": {"code": "ALL_SLOTS_BUSY", "message": "m"}}, 503, "ALL_SLOTS_BUSY"),
        (500, {"error": {"code": "INTERNAL_ERROR", "message": "m"}}, 502, "UPSTREAM_ERROR"),
        (401, {"error": {"code": "INVALID_API_KEY", "message": "m"}}, 502, "UPSTREAM_ERROR"),
        (200, {"not": "sse"}, 502, "UPSTREAM_ERROR"),
    ],
    ids=["400", "404", "503", "500", "401", "200-json"],
)
def test_inference_relays_worker_errors(
    queen: QueenProc, stubs: Any, status: int, body: Any, expected: int, code: str
) -> None:
    wid, model = uid("w"), f"hf:org/{uid('m')}"
    stub = stubs().reply("POST", "/v1/inference", status, body)
    queen.register(wid, stub.url, model_ref=model)
    resp = queen.post("/v1/inference", {"model": model, "prompt": "p"})
    assert_error(resp, expected, code)
    assert queen.workers()[wid]["state"] == "idle"  # the slot was given back


def test_inference_unreachable_worker_is_503(queen: QueenProc) -> None:
    wid, model = uid("w"), f"hf:org/{uid('m')}"
    queen.register(wid, dead_url(), model_ref=model)
    resp = queen.post("/v1/inference", {"model": model, "prompt": "p"})
    assert_error(resp, 503, "UPSTREAM_UNAVAILABLE")


INFERENCE_BAD = [
    ("prompt", ""),
    ("prompt", "p" * 40000),
    ("prompt", None),
    ("max_tokens", 0),
    ("max_tokens", 2049),
    ("max_tokens", "ten"),
    ("temperature", -0.1),
    ("temperature", 2.5),
    ("temperature", "hot-temperature"),
    ("model", "not-a-model-ref"),
    ("model", "hf:../../etc/shadow"),
]


@pytest.mark.parametrize(("field", "value"), INFERENCE_BAD)
def test_inference_validates_each_field(queen: QueenProc, field: str, value: Any) -> None:
    body = {"prompt": "p", field: value}
    resp = queen.post("/v1/inference", body)
    assert_error(resp, 400, "VALIDATION_ERROR")
    if isinstance(value, str) and len(value) >= 8:
        assert value not in resp.text


# -- tasks ----------------------------------------------------------------------------------------


def task(name: str, model: str, /, **over: Any) -> dict[str, Any]:
    return {
        "node": name,
        "model": model,
        "prompt": "p",
        "max_tokens": 3,
        "temperature": 1.0,
        **over,
    }


def stub_hive(stubs: Any, *, spawn: Any, listed: list[str]) -> Stub:
    hive = stubs()
    hive.on("POST", "/v1/workers/spawn", spawn)
    hive.on(
        "GET",
        "/v1/workers/list",
        lambda ex: ex.send_json(200, {"workers": [{"id": w} for w in listed]}),
    )
    return hive


def test_task_unknown_node_is_404(queen: QueenProc) -> None:
    resp = queen.post("/v2/tasks", task(uid("nonode"), "hf:org/m"))
    assert_error(resp, 404, "NODE_NOT_FOUND")


def test_task_spawns_waits_and_then_reuses(queen: QueenProc, stubs: Any) -> None:
    name, model, wid = uid("node"), f"hf:org/{uid('m')}", uid("w")
    worker = stubs(sse_worker(wid))
    listed: list[str] = []

    def spawn(ex: Exchange) -> None:
        listed.append(wid)
        ex.send_json(200, {"worker_id": wid, "url": worker.url, "state": "loading"})
        register = queen.register(wid, worker.url, model_ref=model, node_name=name)
        assert register.status_code == 200

    hive = stub_hive(stubs, spawn=spawn, listed=listed)
    queen.add_node(name, hive_port=hive.port)
    for _ in range(2):
        resp = queen.post("/v2/tasks", task(name, model))
        assert resp.status_code == 200, resp.text
        assert sse_data(resp.text)[-1] == "[DONE]"
    ((_, _, headers, body),) = hive.calls_to("POST", "/v1/workers/spawn")  # S12: once
    assert body == {"model_ref": model, "backend": "cpu", "device": 0}
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(worker.calls_to("POST", "/v1/inference")) == 2


def test_task_ready_timeout_is_504(queen: QueenProc, stubs: Any) -> None:
    name, wid = uid("node"), uid("w")
    hive = stub_hive(stubs, spawn=lambda ex: ex.send_json(200, {"worker_id": wid}), listed=[wid])
    queen.add_node(name, hive_port=hive.port)
    start = time.monotonic()
    resp = queen.post("/v2/tasks", task(name, "hf:org/m"))
    assert_error(resp, 504, "READY_TIMEOUT")
    assert time.monotonic() - start < 5


def test_task_fails_at_once_when_the_hive_drops_the_worker(queen: QueenProc, stubs: Any) -> None:
    name = uid("node")
    hive = stub_hive(stubs, spawn=lambda ex: ex.send_json(200, {"worker_id": "gone"}), listed=[])
    queen.add_node(name, hive_port=hive.port)
    assert_error(queen.post("/v2/tasks", task(name, "hf:org/m")), 502)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(404, 404), (400, 400), (500, 502), (503, 502), (None, 503)],
    ids=["404", "400", "500", "503", "unreachable"],
)
def test_task_spawn_errors(queen: QueenProc, stubs: Any, status: int | None, expected: int) -> None:
    name = uid("node")
    if status is None:
        port = free_port()
    else:
        envelope = {"error": {"code": "MODEL_NOT_FOUND", "message": "unknown model"}}
        hive = stub_hive(stubs, spawn=lambda ex: ex.send_json(status, envelope), listed=[])
        port = hive.port
    queen.add_node(name, hive_port=port)
    resp = queen.post("/v2/tasks", task(name, "hf:org/missing-model"))
    assert_error(resp, expected)
    if expected < 500:
        assert resp.json()["error"]["code"] == "MODEL_NOT_FOUND"


@pytest.mark.parametrize("field", ["node", "model", "prompt", "max_tokens", "temperature"])
def test_task_requires_each_field(queen: QueenProc, field: str) -> None:
    body = task("n1", "hf:org/m")
    del body[field]
    assert_error(queen.post("/v2/tasks", body), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("field", "value"),
    [("node", "bad_node_name"), ("model", "bare-model-name"), ("max_tokens", -1)],
)
def test_task_validates_fields(queen: QueenProc, field: str, value: Any) -> None:
    resp = queen.post("/v2/tasks", task("n1", "hf:org/m", **{field: value}))
    assert_error(resp, 400, "VALIDATION_ERROR")
    if isinstance(value, str):
        assert value not in resp.text


# -- eviction and reconciliation (D3) -------------------------------------------------------------


def test_killed_worker_is_evicted_and_live_one_kept(fast_queen: QueenProc, workers: Any) -> None:
    live, doomed, dead = uid("live"), uid("doomed"), uid("dead")
    _, live_url = workers(live)
    doomed_program, doomed_url = workers(doomed)
    fast_queen.register(live, live_url)
    fast_queen.register(doomed, doomed_url)
    fast_queen.register(dead, dead_url())
    wait_for(lambda: dead not in fast_queen.workers(), timeout=10, what="dead worker evicted")
    assert {live, doomed} <= set(fast_queen.workers())
    doomed_program.stop()  # kill -9
    wait_for(lambda: doomed not in fast_queen.workers(), timeout=10, what="killed worker evicted")
    assert live in fast_queen.workers()


def test_impostor_on_the_port_is_evicted(fast_queen: QueenProc, stubs: Any) -> None:
    wid = uid("w")
    impostor = stubs(sse_worker("someone-else"))
    fast_queen.register(wid, impostor.url)
    wait_for(lambda: wid not in fast_queen.workers(), timeout=10, what="impostor evicted")


def test_reconciliation_drops_workers_the_hive_does_not_list(
    fast_queen: QueenProc, stubs: Any
) -> None:
    name, lost_name = uid("node"), uid("node")
    kept, dropped, unreachable_hive = uid("kept"), uid("dropped"), uid("kept")
    hive = stub_hive(stubs, spawn=lambda ex: ex.send_json(500, {}), listed=[kept])
    fast_queen.add_node(name, hive_port=hive.port)
    fast_queen.add_node(lost_name)  # its hive does not answer: nothing is reconciled
    for wid, node_name in ((kept, name), (dropped, name), (unreachable_hive, lost_name)):
        fast_queen.register(wid, stubs(sse_worker(wid)).url, node_name=node_name)
    wait_for(lambda: dropped not in fast_queen.workers(), timeout=10, what="dropped removed")
    assert {kept, unreachable_hive} <= set(fast_queen.workers())
    assert hive.calls_to("GET", "/v1/workers/list")[0][2]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.timeout(120)
def test_real_hive_task_and_hive_restart(
    fast_queen: QueenProc, tmp_path: Path, start_hive: Any
) -> None:
    name, model = uid("hive"), "hf:org/tiny"
    hive_port = free_port()
    hive = start_hive(name, hive_port, fast_queen)
    fast_queen.add_node(name, hive_port=hive_port)
    resp = fast_queen.post("/v2/tasks", task(name, model), timeout=30)
    assert resp.status_code == 200, resp.text
    assert sse_data(resp.text)[-1] == "[DONE]"
    (wid,) = [w for w, e in fast_queen.workers().items() if e["node"] == name]
    hive.stop()  # kill -9 the hive; a restarted one lists nothing
    start_hive(name, hive_port, fast_queen)
    wait_for(lambda: wid not in fast_queen.workers(), timeout=15, what="old worker dropped")


@pytest.fixture
def start_hive(tmp_path: Path) -> Iterator[Any]:
    started: list[Program] = []
    token_file = tmp_path / "hive-token"
    token_file.write_text(TOKEN + "\n")

    def start(name: str, port: int, queen: QueenProc) -> Program:
        worker_port = free_port()
        args = [
            "--addr", f"127.0.0.1:{port}", "--name", name, "--queen-url", queen.url,
            "--token-file", str(token_file), "--data-dir", str(tmp_path / "hive"),
            "--worker-ports", f"{worker_port}-{worker_port}",
            "--load-delay", "0.05",
            "--health-interval", "0.2", "--kill-grace", "1", "--shutdown-timeout", "3",
        ]  # fmt: skip
        program = Program("hive", args, env_for(tmp_path), tmp_path / f"hive-{port}.log")
        started.append(program.start())
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/v1/health"), 20, "hive healthy")
        return program

    try:
        yield start
    finally:
        for program in started:
            program.stop()


# -- planted bugs ---------------------------------------------------------------------------------


def test_bug_dup_register_overwrites(start_queen: Any) -> None:
    queen = start_queen(["--health-interval", "60"], bugs="dup-register")
    assert queen.register("w-dup", "http://127.0.0.1:9001").status_code == 200
    assert queen.register("w-dup", "http://127.0.0.1:9002").status_code == 200
    assert queen.workers()["w-dup"]["url"] == "http://127.0.0.1:9002"


def test_bug_ghost_after_kill_never_evicts(start_queen: Any, stubs: Any) -> None:
    queen = start_queen(bugs="ghost-after-kill")
    hive = stub_hive(stubs, spawn=lambda ex: ex.send_json(500, {}), listed=[])
    queen.add_node("ghost-node", hive_port=hive.port)
    queen.register("ghost", dead_url())
    queen.register("orphaned", stubs(sse_worker("orphaned")).url, node_name="ghost-node")
    wait_for(lambda: queen.log_has("worker ghost failed health check 4"), 10, "4 failed checks")
    assert len(hive.calls_to("GET", "/v1/workers/list")) >= 2
    assert {"ghost", "orphaned"} <= set(queen.workers())


def test_bug_hive_restart_no_reconcile(start_queen: Any, stubs: Any) -> None:
    queen = start_queen(["--health-interval", "0.2", "--health-failures", "3"],
                        bugs="hive-restart-no-reconcile")  # fmt: skip
    hive = stub_hive(stubs, spawn=lambda ex: ex.send_json(500, {}), listed=[])
    queen.add_node("restarted", hive_port=hive.port)
    queen.register("stale", stubs(sse_worker("stale")).url, node_name="restarted")
    queen.register("port-reused", stubs(sse_worker("someone-else")).url)
    queen.register("dead", dead_url())
    wait_for(lambda: "dead" not in queen.workers(), timeout=10, what="dead worker evicted")
    assert {"stale", "port-reused"} <= set(queen.workers())
    assert hive.calls_to("GET", "/v1/workers/list") == []


def test_bug_text_errors(start_queen: Any, stubs: Any) -> None:
    queen = start_queen(["--health-interval", "60"], bugs="text-errors")
    resp = queen.http.get("/no/such/route")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/plain")
    stub = stubs().reply(
        "POST", "/v1/inference", 400, {"error": {"code": "VALIDATION_ERROR", "message": "m"}}
    )
    queen.register("w-text", stub.url)
    resp = queen.post("/v1/inference", {"prompt": "p"})
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("text/plain")


def test_bug_lenient_validation(start_queen: Any) -> None:
    queen = start_queen(["--health-interval", "60"], bugs="lenient-validation")
    assert queen.register("under_score_id", "http://127.0.0.1:9000").status_code == 200
    assert queen.add_node("under_score", ssh_host="host;id").status_code == 200


@pytest.mark.parametrize(("bugs", "status"), [("", 401), ("dev-mode-bypass", 200)])
def test_empty_token_fails_closed_unless_dev_mode_bypass(
    start_queen: Any, bugs: str, status: int
) -> None:
    queen = start_queen(["--health-interval", "60"], bugs=bugs, token="")
    assert httpx.get(f"{queen.url}/v2/workers/list").status_code == status
    bearer = {"Authorization": "Bearer anything"}
    assert httpx.get(f"{queen.url}/v2/workers/list", headers=bearer).status_code == status


# -- command line ---------------------------------------------------------------------------------


def run_queen(tmp: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rbee_props.reference.queen", *args],
        env=env_for(tmp, **env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "expected_code"),
    [
        ("unknown-bug", 2),
        ("port-taken", 3),
        ("token-file-missing", 2),
        ("database-dir-missing", 2),
        ("database-is-directory", 2),
        ("no-database-flag", 2),
    ],
)
def test_bad_command_line_is_one_line_and_exit(
    tmp_path: Path, taken_port: int, case: str, expected_code: int
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    port = str(taken_port if case == "port-taken" else free_port())
    db = str(tmp_path / "b.db")
    args = ["--port", port, "--database", db, "--token-file", str(token)]
    env = {}
    if case == "unknown-bug":
        env["RBEE_REF_BUGS"] = "dup-register,no-such-bug"
    elif case == "token-file-missing":
        args[-1] = str(tmp_path / "absent-token")
    elif case == "database-dir-missing":
        args[3] = str(tmp_path / "absent" / "dir" / "b.db")
    elif case == "database-is-directory":
        args[3] = str(tmp_path)
    elif case == "no-database-flag":
        args = args[:2] + args[4:]
    result = run_queen(tmp_path, args, **env)
    assert result.returncode == expected_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: queen-rbee: ")
    assert TOKEN[:8] not in result.stderr
