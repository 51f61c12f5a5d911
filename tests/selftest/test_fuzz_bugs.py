"""The fuzz layer finds the planted bugs that are its to find (contract §11), each by its check.

For every bug a reference stack with only that bug starts (and is always stopped), the fuzz suite
runs programmatically (:func:`rbee_props.fuzz.runner.fuzz`) with a fixed seed and budget, and the
named rbee check must be among the failed ones. The finding it writes holds no token, and its
``repro.sh``, run against the same stack, shows the bug again (:func:`replayed`):

=====================  ==================================  ==================================
bug                    check that must fail                how
=====================  ==================================  ==================================
lenient-validation     invalid_identifiers_rejected (F04)  negative ids, hosts, paths accepted
text-errors            error_envelope (F10)                any 4xx is plain text
dev-mode-bypass        auth_enforced (F01)                 components started with an empty
                                                           token serve requests without one
no-auth-internal       ready_workers_reach_queen (S21)     a worker idle at the hive never
                                                           reaches the queen
=====================  ==================================  ==================================

Why no-auth-internal is found by a check and not by the links alone: the bug is in the hive's call
to the queen, so only a comparison of the two services shows it, and OpenAPI links stay inside one
document. The check runs on every hive list (operation suite and the spawn -> ready -> list
scenarios) and asks the queen. A scenario's own ``ready`` call makes the worker's later callback a
409, and a worker whose callback is refused exits (§5.3), so such a worker soon leaves the hive and
is no longer owed; a worker that reported ready itself (the suites' live worker, and the one here)
stays, and must reach the queen within G.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from rbee_props.config import Config, load_config
from rbee_props.fuzz.housekeeping import spawn_worker
from rbee_props.fuzz.runner import FuzzReport, fuzz
from rbee_props.fuzz.settings import FuzzSettings
from rbee_props.fuzz.specs import load_spec
from rbee_props.fuzz.targets import Tidy
from rbee_props.redact import Redactor
from rbee_props.stack import LocalStack

pytestmark = pytest.mark.stack

SEED = 20261125
QUEEN_INPUT_OPERATIONS = (
    "registerWorker",
    "addBeehive",
    "removeBeehive",
    "shutdownWorker",
    "workersHealth",
)
PROTECTED_READS = ("listWorkers", "listBeehives", "workersHealth", "registerWorker")


class StackWithoutBeehives(LocalStack):
    """A LocalStack that does not add its hives as beehives at start-up.

    With an empty token the controller's own ``beehives/add`` call cannot succeed: httpx refuses
    to send the header ``Authorization: Bearer `` (trailing space), and a correct queen would
    answer 401 anyway. The dev-mode-bypass test needs no beehives, so it skips that step.
    """

    def add_beehives(self) -> None:
        return None


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBEE_PROPS_HOME", str(tmp_path / "home"))
    return tmp_path


@contextlib.contextmanager
def started(stack: LocalStack) -> Iterator[LocalStack]:
    """The stack, started; always stopped, also when the start fails half-way."""
    try:
        yield stack.start()
    finally:
        stack.stop()


def _fuzz_queen(
    stack: LocalStack, operations: tuple[str, ...], examples: int, out: Path
) -> FuzzReport:
    schema = load_spec("queen", stack.urls["queen"], token=stack.token or None)
    return fuzz(
        schema,
        operations=operations,
        max_examples=examples,
        seed=SEED,
        keep_nodes=stack.hives,
        after=Tidy(stack, keep_nodes=stack.hives),
        service="queen",
        out=out,
    )


def replayed(stack: LocalStack, report: FuzzReport, check: str) -> list[str]:
    """Run the repro.sh written for ``check`` against ``stack``: the answers, one per request.

    The script must run as written (token from the environment, none stored in any file) and
    its first request must get the status the fuzzer recorded: the bug shows again.
    """
    directory = report.directories[check]
    if stack.token:
        redactor = Redactor([stack.token])
        for path in directory.rglob("*"):
            assert not (path.is_file() and redactor.contains_secret(path.read_text())), path
    env = dict(os.environ, QUEEN_URL=stack.urls["queen"], HIVE_URL=stack.urls["hive1"])
    env["RBEE_TOKEN"] = stack.token
    run = subprocess.run(
        ["bash", str(directory / "repro.sh")], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 0, run.stderr
    answers = run.stdout.split("\n== ")
    recorded = json.loads((directory / "finding.json").read_text())["status"]
    assert _status(answers[0]) == recorded, run.stdout
    return answers


def _status(answer: str) -> int:
    match = re.search(r"HTTP/1\.1 (\d{3})", answer)
    assert match is not None, answer
    return int(match.group(1))


def _with_bug(bug: str) -> Config:
    return load_config(overrides={"bugs": [bug]})


def test_lenient_validation_is_found_by_invalid_identifiers_rejected(isolated_home):
    with started(LocalStack(_with_bug("lenient-validation"))) as stack:
        report = _fuzz_queen(stack, QUEEN_INPUT_OPERATIONS, 15, isolated_home / "findings")
        assert "invalid_identifiers_rejected" in report.failed_checks, report.summary()
        answers = replayed(stack, report, "invalid_identifiers_rejected")
        assert _status(answers[0]) != 400  # an invalid identifier accepted, not refused


def test_text_errors_is_found_by_error_envelope(isolated_home):
    with started(LocalStack(_with_bug("text-errors"))) as stack:
        report = _fuzz_queen(stack, ("registerWorker", "removeBeehive"), 5, isolated_home / "f")
        assert "error_envelope" in report.failed_checks, report.summary()
        answers = replayed(stack, report, "error_envelope")
        assert 400 <= _status(answers[0]) < 500
        assert "content-type: text/plain" in answers[0].lower()


@pytest.mark.parametrize(
    ("bugs", "found"), [(["dev-mode-bypass"], True), ([], False)], ids=["bug", "fail-closed"]
)
def test_dev_mode_bypass_is_found_by_auth_enforced(isolated_home, bugs, found):
    empty = isolated_home / "empty-token"
    empty.write_text("")
    config = attrs.evolve(load_config(overrides={"bugs": bugs}), token_file=str(empty))
    with started(StackWithoutBeehives(config)) as stack:
        assert stack.token == ""
        report = _fuzz_queen(stack, PROTECTED_READS, 5, isolated_home / "findings")
        assert ("auth_enforced" in report.failed_checks) is found, report.summary()
        if found:
            answers = replayed(stack, report, "auth_enforced")
            script = (report.directories["auth_enforced"] / "repro.sh").read_text()
            assert "RBEE_TOKEN}" not in script  # no valid credentials sent, and still served
            assert 200 <= _status(answers[0]) < 300


@pytest.mark.parametrize(
    ("bugs", "found"), [(["no-auth-internal"], True), ([], False)], ids=["bug", "correct"]
)
def test_no_auth_internal_is_found_by_ready_workers_reach_queen(isolated_home, bugs, found):
    config = load_config(overrides={"bugs": bugs})
    with started(LocalStack(config)) as stack:
        worker = spawn_worker(stack, hive="hive1", at_queen=False)
        schema = load_spec(
            "hive",
            stack.urls["hive1"],
            token=stack.token,
            peers={"queen": stack.urls["queen"]},
            settings=FuzzSettings(grace=config.grace_seconds),
        )
        report = fuzz(
            schema, operations=("listHiveWorkers",), max_examples=3, seed=SEED,
            service="hive", out=isolated_home / "findings",
        )  # fmt: skip
        assert ("ready_workers_reach_queen" in report.failed_checks) is found, report.summary()
        if found:
            answers = replayed(stack, report, "ready_workers_reach_queen")
            at_queen = [a for a in answers[1:] if "/v2/workers/list" in a.splitlines()[0]]
            assert worker.worker_id in answers[0]  # the hive lists it ready...
            assert at_queen and worker.worker_id not in at_queen[-1]  # ...the queen does not
