"""Exporting a finding: the files, what they say, that the script runs, and that no secret leaks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rbee_props.findings import Violation
from rbee_props.redact import Redactor
from rbee_props.repro import Finding, current_versions, export_finding
from rbee_props.repro._finding import MAX_SLUG, slug_for

TOKEN = "s3cr3t-TOKEN-7f9a2b4c6d8e0f1a"
WORKER = "worker-4f1c2d9e-recorded"
WORKER_URL = "http://127.0.0.1:8081"
FILES = ("finding.json", "history.jsonl", "REPORT.md", "test_repro.py", "repro.sh")
JSON = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}


def op(index: int, kind: str, service: str, method: str, path: str, **fields: Any) -> dict:
    """An ``Op.to_json()`` dict; by default an Ok 200 sent with the stack token, as recorded."""
    data = {
        "index": index,
        "lane": 0,
        "kind": kind,
        "service": service,
        "method": method,
        "path": path,
        "args": {},
        "invoke": 10.0 + index,
        "complete": 10.2 + index,
        "outcome": "Ok",
        "status": 200,
        "body": None,
        "reason": "",
        "request": None,
        "headers": {"Authorization": f"Bearer {TOKEN}"},
    }
    data.update(fields)
    return data


def fault(index: int, kind: str, target: str) -> dict:
    return op(
        index, kind, "controller", "FAULT", target, args={"target": target}, status=0, headers={}
    )


def history() -> list[dict]:
    """spawn -> ready -> kill it -> duplicate register (409) -> SSE inference -> timeout..."""
    spawn_body = {"worker_id": WORKER, "url": WORKER_URL, "state": "loading"}
    ready = {
        "worker_id": WORKER,
        "url": WORKER_URL,
        "model_ref": "hf:a/b",
        "backend": "cpu",
        "device": 0,
    }
    register = {**ready, "node_name": "hive1", "slots_total": 1, "note": 'it\'s a "dup" $HOME'}
    conflict = {"error": {"code": "WORKER_ALREADY_REGISTERED", "message": f"{WORKER} present"}}
    events = [{"type": "started"}, {"type": "token", "t": "hi", "i": 0}, {"type": "end"}, "[DONE]"]
    return [
        op(
            0,
            "spawn",
            "hive1",
            "POST",
            "/v1/workers/spawn",
            headers=JSON,
            body=spawn_body,
            request={"model_ref": "hf:a/b", "backend": "cpu", "device": 0},
        ),
        op(
            1,
            "ready",
            "hive1",
            "POST",
            "/v1/workers/ready",
            headers=JSON,
            request=ready,
            body={"message": "Worker registered as ready"},
        ),
        fault(2, "kill_worker", WORKER),
        op(
            3,
            "register_worker",
            "queen",
            "POST",
            "/v2/workers/register",
            headers=JSON,
            request=register,
            outcome="Fail",
            status=409,
            body=conflict,
        ),
        op(
            4,
            "inference",
            "queen",
            "POST",
            "/v2/tasks",
            headers=JSON,
            request={"node": "hive1", "model": "hf:a/b", "prompt": f"say {TOKEN}", "max_tokens": 1},
            body={"events": events, "complete": True},
        ),
        op(
            5,
            "list_workers",
            "queen",
            "GET",
            "/v2/workers/list",
            lane=1,
            outcome="Indeterminate",
            status=None,
            reason="read timeout",
        ),
        op(
            6,
            "auth_lowercase-bearer",
            "queen",
            "GET",
            "/v2/workers/list",
            args={"auth": "custom"},
            headers={"Authorization": f"bearer {TOKEN}"},
            outcome="Fail",
            status=401,
        ),
        op(
            7,
            "auth_none",
            "hive1",
            "GET",
            "/v1/workers/list",
            args={"auth": "none"},
            headers={},
            outcome="Fail",
            status=401,
            body={"error": {"code": "MISSING_API_KEY"}},
        ),
        fault(8, "partition", "hive1"),
        fault(9, "heal", ""),
        op(
            10,
            "shutdown_worker",
            "queen",
            "POST",
            "/v2/workers/shutdown",
            headers=JSON,
            request={"worker_id": WORKER},
            outcome="Fail",
            status=404,
        ),
    ]


PROGRAM = [
    {"rule": "spawn", "args": {"hive": 0}, "at": 0.12, "binds": "v1"},
    {"rule": "kill_worker", "args": {"worker_id": {"$var": "v1"}}, "at": 0.31},
    {"rule": "register_duplicate", "args": {"worker_id": {"$var": "v1"}}, "at": 0.52},
    {"rule": "probe_auth", "args": {"route": 0, "variant": TOKEN[:12]}, "at": 0.9},
]


def make_finding(**fields: Any) -> Finding:
    violation = Violation(
        "S02",
        explains="A worker id is registered at most once: a second register is 409 CONFLICT.",
        expected="409 WORKER_ALREADY_REGISTERED and no change",
        observed=f"200 and two entries (Authorization: Bearer {TOKEN})",
        op_kinds=[step["rule"] for step in PROGRAM],
        step=2,
        waited=2.5,
        details={"op": 3},
    )
    defaults: dict[str, Any] = {
        "bugs": ("dup-register",),
        "seed": 1234,
        "reproduced": 3,
        "attempts": 4,
        "waited": 2.5,
    }
    return Finding(
        violation,
        fields.pop("program", PROGRAM),
        fields.pop("history", history()),
        **(defaults | fields),
    )


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    return export_finding(make_finding(), tmp_path / "rbee-findings", secrets=(TOKEN,))


def commands(script: str) -> list[str]:
    """The lines of a script that run something (no comments, no blank lines)."""
    return [line for line in script.splitlines() if line.strip() and not line.startswith("#")]


# -- the directory --------------------------------------------------------------------------------
def test_export_writes_every_file_under_the_slug(exported, tmp_path):
    assert (
        exported
        == tmp_path / "rbee-findings" / "S02-spawn-kill_worker-register_duplicate-probe_auth"
    )
    for name in FILES:
        assert (exported / name).is_file(), name
    assert os.access(exported / "repro.sh", os.X_OK)
    lines = (exported / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(11))


def test_exporting_again_overwrites_the_same_directory(tmp_path):
    first = export_finding(make_finding(), tmp_path, secrets=(TOKEN,))
    second = export_finding(make_finding(reproduced=4), tmp_path, secrets=(TOKEN,))
    assert first == second
    assert "**4/4**" in (second / "REPORT.md").read_text()


def test_no_file_contains_the_token_nor_a_long_prefix_of_it(exported):
    redactor = Redactor([TOKEN])
    for name in FILES:
        text = (exported / name).read_text()
        assert TOKEN[:8] not in text, name
        assert not redactor.contains_secret(text), name
    assert "<token>" in (exported / "history.jsonl").read_text()


def test_a_redactor_given_instead_of_secrets_is_used_too(tmp_path):
    directory = export_finding(make_finding(), tmp_path, redactor=Redactor([TOKEN]))
    assert not any(TOKEN[:8] in (directory / name).read_text() for name in FILES)


# -- finding.json and slugs ----------------------------------------------------------------------
def test_finding_json_round_trips(exported):
    data = json.loads((exported / "finding.json").read_text())
    again = Finding.from_json(data)
    assert again.to_json() == data
    assert again.signature == "S02:spawn,kill_worker,register_duplicate,probe_auth"
    assert (again.seed, again.rate, again.bugs, again.waited) == (
        1234,
        "3/4",
        ("dup-register",),
        2.5,
    )
    assert again.violation.details == {"op": 3}


def test_a_finding_round_trips_in_memory_without_loss():
    finding = make_finding(config_path="rbee-props.toml", backend="compose", seed=None)
    again = Finding.from_json(json.loads(json.dumps(finding.to_json())))
    assert again == finding
    assert again.to_json() == finding.to_json()


def test_current_versions_name_the_tools_and_python():
    versions = current_versions()
    assert {"rbee-props", "hypothesis", "python"} <= set(versions)
    assert make_finding().versions == versions


@pytest.mark.parametrize(
    "signature",
    [
        "S02:register_worker,register_duplicate",
        "S02:",
        "../../etc:passwd",
        "-rf:x y/z\\w",
        "F01:probe_auth,é,日本",
        "S03:" + ",".join(["register_worker"] * 40),
        "",
        ":::",
        "..",
        "S02:a;rm -rf /,$(id)",
    ],
)
def test_slugs_are_stable_and_safe_for_any_signature(signature):
    slug = slug_for(signature)
    assert slug == slug_for(signature)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", slug), slug
    assert len(slug) <= MAX_SLUG
    assert ".." not in slug


def test_a_plain_signature_reads_as_itself_and_odd_ones_do_not_collide():
    assert slug_for("S02:register_worker,register_duplicate") == (
        "S02-register_worker-register_duplicate"
    )
    assert slug_for("S02:a b") != slug_for("S02:a/b")
    long = "S03:" + ",".join(["register_worker"] * 40)
    assert slug_for(long) != slug_for(long + ",spawn")


# -- REPORT.md ------------------------------------------------------------------------------------
def test_report_says_what_broke_the_steps_the_run_and_how_to_reproduce(exported):
    report = (exported / "REPORT.md").read_text()
    assert report.startswith("# S02: A worker id is registered at most once")
    assert "`409 WORKER_ALREADY_REGISTERED and no change`" in report
    assert "**Observed:** `200 and two entries" in report
    assert "2.50 s" in report
    assert "1. `v1 = spawn(hive=0)`" in report
    assert "2. `kill_worker(worker_id=v1)`" in report
    assert "3. `register_duplicate(worker_id=v1)` ← violated here" in report
    assert "**3/4**" in report
    assert "`dup-register`" in report and "`1234`" in report
    assert "built-in reference stack" in report and "hypothesis" in report
    slug = exported.name
    for command in (
        f"rbee-props replay rbee-findings/{slug}",
        f"pytest rbee-findings/{slug}/test_repro.py",
        f"bash rbee-findings/{slug}/repro.sh",
    ):
        assert command in report


def test_report_table_shows_each_op_briefly(exported):
    rows = [
        line
        for line in (exported / "REPORT.md").read_text().splitlines()
        if re.match(r"\| \d+ \|", line)
    ]
    assert len(rows) == 11
    assert "| 409 |" in rows[3] and "WORKER_ALREADY_REGISTERED" in rows[3]
    assert "`SSE: 4 events, ends [DONE]`" in rows[4]
    assert "| Indeterminate |" in rows[5] and "read timeout" in rows[5]
    assert "`kill_worker`" in rows[2] and "| done |" in rows[2]
    assert all(row.count(" | ") == 6 for row in rows)  # no pipe inside a cell splits it


# -- test_repro.py --------------------------------------------------------------------------------
def test_test_repro_is_valid_python_calling_assert_program_holds(exported):
    source = (exported / "test_repro.py").read_text()
    compile(source, "test_repro.py", "exec")
    assert "from rbee_props.repro.replay import assert_program_holds" in source
    assert "def test_repro()" in source
    assert "bugs=BUGS, config=CONFIG, backend=BACKEND" in source
    assert "S02" in source.split('"""')[1] and "fails" in source.split('"""')[1]
    namespace: dict[str, Any] = {}
    stubbed = source.replace("from rbee_props.repro.replay import assert_program_holds", "")
    exec(compile(stubbed, "test_repro.py", "exec"), namespace)  # its literals, not its test
    assert namespace["PROGRAM"][1] == {
        "rule": "kill_worker",
        "args": {"worker_id": {"$var": "v1"}},
        "at": 0.31,
    }
    assert (namespace["BUGS"], namespace["CONFIG"], namespace["BACKEND"]) == (
        ("dup-register",),
        None,
        "local",
    )


@pytest.mark.parametrize(
    ("reproduced", "attempts", "replays"), [(4, 4, None), (3, 4, 5), (1, 3, 5), (0, 0, None)]
)
def test_a_finding_that_reproduced_only_sometimes_is_replayed_several_times(
    tmp_path, reproduced, attempts, replays
):
    finding = make_finding(reproduced=reproduced, attempts=attempts)
    source = (export_finding(finding, tmp_path, secrets=(TOKEN,)) / "test_repro.py").read_text()
    if replays is None:
        assert "ATTEMPTS" not in source
    else:
        assert f"ATTEMPTS = {replays}  # failed {reproduced}/{attempts} times when found" in source
        assert "attempts=ATTEMPTS" in source


def test_test_repro_compiles_with_awkward_values(tmp_path):
    program = [
        {
            "rule": "odd",
            "args": {
                "q": "'''\"\"\"\\",
                "nan": float("nan"),
                "inf": float("-inf"),
                "none": None,
                "list": [1, 2.5, True],
            },
            "at": 0.0,
        }
    ]
    violation = Violation(
        "S99", explains='ends with """ and a \\', expected="x", observed="y", op_kinds=["odd"]
    )
    finding = Finding(violation, program, [], config_path="/p/it's.toml")
    source = (export_finding(finding, tmp_path) / "test_repro.py").read_text()
    compile(source, "test_repro.py", "exec")


# -- repro.sh -------------------------------------------------------------------------------------
def test_repro_sh_is_valid_bash(exported):
    result = subprocess.run(
        ["bash", "-n", str(exported / "repro.sh")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    script = (exported / "repro.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script
    assert "rbee-props status --json" in script


def test_repro_sh_has_one_line_per_op_in_order(exported):
    lines = commands((exported / "repro.sh").read_text())
    runs = [line for line in lines if line.startswith(("curl", "V1_RESPONSE=", "rbee-props"))]
    assert len(runs) == 11
    assert runs[0].startswith("V1_RESPONSE=$(curl") and "/v1/workers/spawn" in runs[0]
    assert runs[2] == 'rbee-props kill-worker "${V1}"'
    assert runs[8] == "rbee-props partition queen hive1"
    assert runs[9] == "rbee-props heal"
    assert '"${QUEEN_URL}/v2/workers/register"' in runs[3]
    assert " -N " in runs[4]  # the event stream is shown as it comes
    assert "--max-time 1" in runs[5] and runs[5].endswith("|| true")


def test_spawned_worker_id_becomes_a_variable_in_later_lines(exported):
    script = (exported / "repro.sh").read_text()
    lines = commands(script)
    capture = next(i for i, line in enumerate(lines) if line.startswith("V1="))
    assert '["worker_id"]' in lines[capture]
    for line in lines[capture:]:
        assert WORKER not in line and WORKER_URL not in line, line
    body_lines = [line for line in lines if "/v2/workers/register" in line]
    assert '"worker_id":"\'"${V1}"\'"' in body_lines[0]
    assert '"url":"\'"${V1_URL}"\'"' in body_lines[0]
    assert any("/v2/workers/shutdown" in line and "${V1}" in line for line in lines)


def test_auth_is_read_at_run_time_unless_the_op_sent_no_or_a_custom_header(exported):
    lines = commands((exported / "repro.sh").read_text())
    runtime = '-H "Authorization: Bearer $(cat "${RBEE_TOKEN_FILE:?set RBEE_TOKEN_FILE}")"'
    assert runtime in lines[lines.index(next(x for x in lines if "/v1/workers/spawn" in x))]
    custom = next(line for line in lines if "bearer <token>" in line)
    assert runtime not in custom and "-H 'Authorization: bearer <token>'" in custom
    hive_list = next(line for line in lines if "/v1/workers/list" in line)
    assert "Authorization" not in hive_list


def test_program_spawns_that_do_not_pair_with_the_history_are_numbered_in_order(tmp_path):
    ops = history()
    second = op(
        11,
        "spawn",
        "hive2",
        "POST",
        "/v1/workers/spawn",
        headers=JSON,
        body={"worker_id": "worker-second", "url": "http://127.0.0.1:8082"},
    )
    ops.append(second)
    ops.append(fault(12, "kill_worker", "worker-second"))
    directory = export_finding(make_finding(history=ops), tmp_path, secrets=(TOKEN,))
    lines = commands((directory / "repro.sh").read_text())
    assert 'rbee-props kill-worker "${V2}"' in lines
    assert '"${HIVE2_URL}/v1/workers/spawn"' in next(x for x in lines if x.startswith("V2_RESP"))
    report = (directory / "REPORT.md").read_text()
    assert "`$V2` in `repro.sh`" in report


def test_a_spawned_worker_is_reached_at_the_url_its_spawn_returned(tmp_path):
    ops = history()
    ops.insert(2, op(2, "ready", f"worker:{WORKER}", "GET", "/v1/ready", body={"ready": True}))
    directory = export_finding(make_finding(history=ops), tmp_path, secrets=(TOKEN,))
    script = (directory / "repro.sh").read_text()
    assert "curl -sS -w '  [HTTP %{http_code}]\\n' \"${V1_URL}/v1/ready\"" in script
    assert "_URL:?" in script and not re.search(r"WORKER_\w*_URL", script)
    assert subprocess.run(["bash", "-n", str(directory / "repro.sh")], check=False).returncode == 0


# -- end to end: the script against a real HTTP server -------------------------------------------
class _Recorder(BaseHTTPRequestHandler):
    """Answers the recorded routes; a spawn gets a new id, as a new run would."""

    seen: list[dict[str, Any]]
    new_id = "worker-fresh-0001"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "body": raw,
                "auth": self.headers.get("Authorization"),
            }
        )
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        routes: dict[tuple[str, str], tuple[int, str, Any]] = {
            ("POST", "/v1/workers/spawn"): (200, "json", {"worker_id": self.new_id, "url": host}),
            ("POST", "/v1/workers/ready"): (200, "json", {"message": "ok"}),
            ("POST", "/v2/workers/register"): (409, "json", {"error": {"code": "CONFLICT"}}),
            ("POST", "/v2/tasks"): (200, "sse", None),
            ("GET", "/v2/workers/list"): (200, "json", {"workers": []}),
            ("GET", "/v1/workers/list"): (401, "json", {"error": {"code": "MISSING_API_KEY"}}),
            ("POST", "/v2/workers/shutdown"): (404, "json", {"error": {"code": "NOT_FOUND"}}),
        }
        status, kind, body = routes.get((self.command, self.path), (404, "json", {}))
        if kind == "sse":
            data = b'data: {"type":"token","t":"hi"}\n\ndata: [DONE]\n\n'
            content_type = "text/event-stream"
        else:
            data = json.dumps(body).encode()
            content_type = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``seen`` instead."""


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.mark.skipif(shutil.which("curl") is None, reason="repro.sh needs curl, not installed")
def test_repro_sh_runs_against_a_live_server(exported, server, tmp_path):
    url, seen = server
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "faults.log"
    stub = bin_dir / "rbee-props"
    stub.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "QUEEN_URL": url,
        "HIVE1_URL": url,
        "RBEE_TOKEN_FILE": str(token_file),
    }
    result = subprocess.run(
        ["bash", str(exported / "repro.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "V1=worker-fresh-0001" in result.stdout
    assert "[HTTP 409]" in result.stdout and "[DONE]" in result.stdout
    assert log.read_text().splitlines() == [
        "kill-worker worker-fresh-0001",
        "partition queen hive1",
        "heal",
    ]
    by_path = [(r["method"], r["path"]) for r in seen]
    assert by_path[0] == ("POST", "/v1/workers/spawn") and len(seen) == 8
    assert seen[0]["auth"] == f"Bearer {TOKEN}"
    register = json.loads(next(r["body"] for r in seen if r["path"] == "/v2/workers/register"))
    assert register["worker_id"] == "worker-fresh-0001" and register["url"] == url
    assert register["note"] == 'it\'s a "dup" $HOME'
    probes = [r["auth"] for r in seen if r["path"].endswith("/workers/list")]
    assert probes == [f"Bearer {TOKEN}", "bearer <token>", None]
    shutdown = json.loads(seen[-1]["body"])
    assert shutdown == {"worker_id": "worker-fresh-0001"}
