"""``rbee-props fuzz`` end to end: a clean campaign, a planted bug found and replayed, bad input.

Each campaign starts its own reference stack through the command (budgets of seconds, a few
examples per operation, fixed seeds) and must leave no process behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rbee_props.cli import main
from rbee_props.config import load_config
from rbee_props.redact import Redactor
from rbee_props.stack import LocalStack
from tests.fuzz._cli import (
    TOKEN,
    external_config,
    free_port,
    processes_of,
    rbee_props,
    token_config,
)

pytestmark = pytest.mark.stack

SUMMARY = re.compile(
    r"fuzz campaign ended after \d+s of [\d.]+s .*?: (\d+) requests "
    r".* operations covered (\d+)/(\d+)"
)


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))


def _no_token_in(directory) -> None:
    redactor = Redactor([TOKEN])
    for path in directory.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert not redactor.contains_secret(text), f"the token leaked into {path}"


def test_fuzz_of_the_correct_queen_finds_nothing_and_exits_0(tmp_path, env):
    out = tmp_path / "findings"
    result = rbee_props(
        "fuzz", "--service", "queen", "--budget", "8s", "--examples", "2", "--seed", "11",
        "--db", str(tmp_path / "db"), "--out", str(out), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seed 11" in result.stdout
    summary = SUMMARY.search(result.stdout)
    assert summary is not None, result.stdout
    requests, covered, total = map(int, summary.groups())
    assert requests > 0
    assert 1 <= covered <= total == 10  # how many within 8 s depends on the machine's load
    assert "no finding" in result.stdout
    assert not out.exists() or not any(out.iterdir())
    assert processes_of(env["RBEE_PROPS_HOME"]) == []


def test_fuzz_finds_text_errors_with_a_tokenless_curl_that_shows_it_and_replays_it_first(
    tmp_path, env
):
    config, token_file = token_config(tmp_path)
    common = ["--config", str(config), "--bugs", "text-errors", "--service", "queen"]
    db = str(tmp_path / "db")
    first = rbee_props(
        "fuzz", *common, "--budget", "12s", "--examples", "3", "--seed", "5", "--db", db,
        "--out", str(tmp_path / "first"), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 1, first.stdout + first.stderr
    found = sorted((tmp_path / "first").glob("error_envelope-queen.*-4xx"))
    assert found, first.stdout
    finding = found[0]
    assert {p.name for p in finding.iterdir()} >= {
        "REPORT.md", "repro.sh", "finding.json", "schemathesis",
    }  # fmt: skip
    _no_token_in(tmp_path / "first")

    stack = LocalStack(load_config(config, overrides={"bugs": ["text-errors"]}))
    try:
        stack.start()
        script_env = dict(env, QUEEN_URL=stack.urls["queen"], RBEE_TOKEN_FILE=str(token_file))
        shown = subprocess.run(
            ["bash", str(finding / "repro.sh")],
            capture_output=True, text=True, env=script_env, timeout=60,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        sent = shown.stdout.split("\n== ")[0]  # the fuzzer's own request, before any re-send
        assert re.search(r"HTTP/1\.1 4\d\d", sent), shown.stdout
        assert "content-type: text/plain" in sent.lower(), shown.stdout
        replay = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "replay", str(finding / "schemathesis"),
             "--url", stack.urls["queen"],
             "-H", f"Authorization: Bearer {TOKEN}", "--keep"],
            capture_output=True, text=True, timeout=120,
            env=dict(env, SCHEMATHESIS_HOOKS="rbee_props.fuzz.checks"), cwd=tmp_path,
        )  # fmt: skip
        assert replay.returncode == 1, replay.stdout + replay.stderr
        assert "FAILED" in replay.stdout
    finally:
        stack.stop()

    second = rbee_props(
        "fuzz", *common, "--budget", "1s", "--examples", "3", "--seed", "6", "--db", db,
        "--out", str(tmp_path / "second"), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert second.returncode == 1, second.stdout + second.stderr
    found_lines = [line for line in second.stdout.splitlines() if line.startswith("FOUND")]
    assert found_lines, second.stdout
    assert "replayed from the database" in found_lines[0]
    assert any("error_envelope" in line and "replayed" in line for line in found_lines)
    _no_token_in(tmp_path / "second")
    assert processes_of(env["RBEE_PROPS_HOME"]) == []


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--service", "quen"], 2, "unknown rbee service 'quen' (did you mean 'queen'?)"),
        (["--service", "queen", "--spec", "missing.yaml"], 2, "cannot read OpenAPI document"),
        (["--service", "queen", "--spec", "{swagger}"], 2, "is not an OpenAPI 3 document"),
        (["--db", "redis://127.0.0.1:{port}"], 2, "cannot reach the example database"),
        (["--config", "{external}", "--service", "queen"], 3, "did not answer its health route"),
    ],
    ids=["unknown-service", "missing-spec", "not-a-spec", "redis-unreachable", "stack-unreachable"],
)
def test_bad_input_is_one_readable_line_and_leaves_nothing_running(
    tmp_path, env, monkeypatch, args, code, says
):
    """In-process through click's runner: each fails before or while reaching the stack."""
    monkeypatch.chdir(tmp_path)
    swagger = tmp_path / "swagger.yaml"
    swagger.write_text('swagger: "2.0"\npaths: {}\n')
    filled = [
        a.format(port=free_port(), external=external_config(tmp_path), swagger=swagger)
        for a in args
    ]
    handler = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(main, ["fuzz", "--budget", "5s", *filled], env=env)
    assert result.exit_code == code, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0]
    assert signal.getsignal(signal.SIGTERM) is handler
    assert processes_of(env["RBEE_PROPS_HOME"]) == []


def test_ctrl_c_ends_a_two_worker_campaign_with_a_summary_and_leaves_nothing_running(tmp_path, env):
    args = ["--service", "queen", "--workers", "2", "--budget", "5m", "--examples", "3"]
    with subprocess.Popen(
        [sys.executable, "-m", "rbee_props.cli", "fuzz", *args,
         "--db", str(tmp_path / "db"), "--out", str(tmp_path / "findings")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    ) as campaign:  # fmt: skip
        assert "fuzzing queen" in campaign.stdout.readline()
        for line in campaign.stdout:  # the first progress line: the workers are fuzzing
            if line.startswith(("warm-up", "replay", "round")):
                break
        campaign.send_signal(signal.SIGINT)
        rest, stderr = campaign.communicate(timeout=120)
        assert campaign.returncode == 130, stderr
        assert "fuzz campaign interrupted after" in rest
        assert stderr.strip().splitlines() == [
            "error: interrupted; everything this command started has been stopped"
        ]
    assert processes_of(env["RBEE_PROPS_HOME"]) == []
