"""The planted bugs only a concurrent burst shows are found, shrunk and exported.

For each bug: ``ConcurrentMachine`` runs against the reference stack with the bug switched on,
with a fixed seed and example budget. The finding must name the expected property, its failing
burst must be at most 4 ops on at most 3 lanes, its REPORT.md must show the burst's timeline,
and its exported ``test_repro.py`` (which replays the burst several times and says how many
replays reproduced it) must fail against the buggy stack and pass against the correct one.

- ``no-slot-admission`` (B10): a worker queues requests instead of answering 503 when its slots
  are taken. Two inferences on two lanes for a one-slot worker: both succeed, one after the
  other (S16).
- ``lost-update`` (B14): the hive's monitor writes back entries it read before its probes, so a
  ready callback landing in between is undone. Two workers spawned at once on one hive: the
  queen lists one that its hive shows loading again (S06).

Each takes several minutes on two cores (hunt, shrinking by replay, three replays for the rate,
then the exported test twice): ``-m slow``. The default run checks S16 both ways in
``tests/stateful/test_bursts.py``.
"""

from __future__ import annotations

import pytest

from rbee_props.config import load_config
from rbee_props.hunt import hunt, machine_settings
from rbee_props.machines import MachineContext
from rbee_props.machines.concurrency import ConcurrentMachine
from rbee_props.stack import LocalStack
from tests.selftest.test_stateful_bugs import run_repro

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]

#: bug -> properties that may name it
CASES = {"no-slot-admission": {"S16"}, "lost-update": {"S06"}}
EXAMPLES = 30
STEPS = 8
SEED = 20261125
MAX_OPS = 4
MAX_LANES = 3


def failing_burst(finding) -> list[dict]:
    """The ops the lanes of the failing burst sent (lane 0, the settle reads, left out)."""
    first, last = finding.violation.details["burst"]
    return [op for op in finding.history if first <= op["index"] <= last and op["lane"] > 0]


@pytest.mark.parametrize("bug", sorted(CASES))
def test_concurrency_bug_is_found_shrunk_and_exported(bug, tmp_path, monkeypatch):
    monkeypatch.setenv("RBEE_PROPS_HOME", str(tmp_path / "home"))
    config = load_config(overrides={"bugs": [bug]})
    stack = LocalStack(config).start()
    context = MachineContext(stack, config)
    try:
        result = hunt(
            ConcurrentMachine,
            context,
            config=machine_settings(max_examples=EXAMPLES, steps=STEPS),
            seed=SEED,
            machine_name="concurrent",
            out=tmp_path / "findings",
            shrink_budget=180,
        )
    finally:
        context.close()
        stack.stop()
    assert result.finding is not None, f"{bug} not found in {EXAMPLES} examples"
    finding = result.finding
    assert finding.violation.invariant in CASES[bug], finding.violation.summary
    ops = failing_burst(finding)
    lanes = {op["lane"] for op in ops}
    shown = [(op["lane"], op["kind"]) for op in ops]
    assert 1 <= len(ops) <= MAX_OPS and len(lanes) <= MAX_LANES, shown
    assert finding.reproduced >= 1, f"reproduced {finding.reproduced}/{finding.attempts}"
    assert (result.path / "timeline.png").read_bytes().startswith(b"\x89PNG")
    report = (result.path / "REPORT.md").read_text()
    assert "](timeline.png)" in report and finding.violation.invariant in report
    # the exported test replays the burst, fails while the bug is there and passes without it
    buggy = run_repro(result.path, bugs=None)
    assert buggy.returncode == 1, buggy.stdout[-2000:]
    assert finding.violation.invariant in buggy.stdout and "replays]" in buggy.stdout
    fixed = run_repro(result.path, bugs="")
    assert fixed.returncode == 0, fixed.stdout[-2000:]
