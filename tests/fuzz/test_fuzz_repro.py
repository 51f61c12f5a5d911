"""repro.sh of a fuzz finding, and finding signatures: no stack, milliseconds.

The script is run for real (bash + curl) against a tiny local HTTP server that records what it
received, so "the script sends what was recorded, with the token read at run time" is checked on
the wire, not by reading the script.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from rbee_props.fuzz._curl import Exchange, curl_script
from rbee_props.fuzz.signature import FuzzFinding, status_class
from rbee_props.redact import Redactor

TOKEN = "s3cr3t-" + "Tk9pQ2xv" * 3


class _Recorder(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.received.append((self.command, self.path, dict(self.headers.items()), body))
        self.send_response(418)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"recorded")

    do_GET = do_POST = _record

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.received = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _script(tmp_path, exchanges):
    text, files = curl_script(
        exchanges, comments=["sig", f"a message quoting {TOKEN}"], service="queen",
        base_url="http://127.0.0.1:1", token=TOKEN, redactor=Redactor([TOKEN]),
    )  # fmt: skip
    (tmp_path / "repro.sh").write_text(text)
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return text


def test_the_script_holds_no_token_and_sends_the_recorded_requests_with_it(tmp_path, server):
    json_body = b'{"node_name": "it\'s $HOME `x`", "n": 1}'
    binary = b"\x00\xff@raw"
    exchanges = [
        Exchange("sent", "POST", "http://127.0.0.1:1/v2/x?a=1&b=%20", {
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
            "X-Empty": "", "User-Agent": "python-requests",
        }, json_body, 400),
        Exchange("re-sent, no Authorization", "POST", "http://127.0.0.1:1/v2/x", {}, binary, 401),
        Exchange("re-sent with a wrong token", "GET", "http://127.0.0.1:1/v2/y[1]", {
            "Authorization": "Bearer " + "x" * len(TOKEN)}, b"@file-looking", 401),
    ]  # fmt: skip
    text = _script(tmp_path, exchanges)
    assert not Redactor([TOKEN]).contains_secret(text)
    for path in tmp_path.iterdir():
        assert TOKEN.encode()[:8] not in path.read_bytes()

    run = subprocess.run(
        ["bash", str(tmp_path / "repro.sh")], capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "QUEEN_URL": server, "RBEE_TOKEN": TOKEN},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("418") == 3
    first, second, third = _Recorder.received
    assert first[:2] == ("POST", "/v2/x?a=1&b=%20")
    assert first[2]["Authorization"] == f"Bearer {TOKEN}"
    assert first[2]["X-Empty"] == "" and first[3] == json_body
    assert "Authorization" not in second[2] and second[3] == binary
    assert third[:2] == ("GET", "/v2/y[1]") and third[3] == b"@file-looking"
    assert third[2]["Authorization"] == "Bearer " + "x" * len(TOKEN)


def test_the_script_without_a_token_says_how_to_give_one(tmp_path, server):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    exchange = Exchange("sent", "GET", "http://127.0.0.1:1/v2/z", headers, b"", 200)
    _script(tmp_path, [exchange])
    run = subprocess.run(
        ["bash", str(tmp_path / "repro.sh")], capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "QUEEN_URL": server},
    )  # fmt: skip
    assert run.returncode != 0
    assert "set RBEE_TOKEN, or RBEE_TOKEN_FILE" in run.stderr
    assert _Recorder.received == []


@pytest.mark.parametrize(
    ("status", "cls"), [(200, "2xx"), (404, "4xx"), (503, "5xx"), (None, "none")]
)
def test_a_signature_names_check_service_operation_and_status_class(status, cls):
    finding = FuzzFinding("error_envelope", "queen", "registerWorker", "POST /x", status, ("m",))
    assert status_class(status) == cls
    assert finding.signature == f"error_envelope:queen.registerWorker:{cls}"
    assert finding.slug == f"error_envelope-queen.registerWorker-{cls}"
    same_bug = FuzzFinding("error_envelope", "queen", "registerWorker", "POST /x", status, ("n",))
    assert same_bug.signature == finding.signature
