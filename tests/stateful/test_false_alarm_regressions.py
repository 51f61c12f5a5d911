"""Programs that once raised a false alarm against the correct stack, replayed: each must hold.

Every entry is the minimal program of a finding that turned out to be a bug in rbee-props (the
model or a rule), not in the stack; the comment says what was wrong. Replayed with
``run_program``, exactly as ``rbee-props replay`` does.
"""

from __future__ import annotations

import pytest

from rbee_props.machines import StackMachine
from rbee_props.repro.replay import run_program

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

PROGRAMS = {
    # occupy_port took the port the hive had just handed to a worker that was still loading
    # (not yet bound): the worker died at start-up and S21 waited for it in vain
    "occupy_port-spares-a-loading-worker's-port": [
        {"rule": "first_worker", "args": {"hive": "hive1"}, "binds": "v1"},
        {"rule": "partition", "args": {"hive": "hive1"}},
        {"rule": "spawn", "args": {"hive": "hive1"}, "binds": "v2"},
        {"rule": "occupy_port", "args": {"hive": "hive1"}},
        {"rule": "heal", "args": {}},
    ],
    # SIGTERM to a hive already killed doomed its orphan in the model (S20)
    "a-signal-to-a-dead-hive-changes-nothing": [
        {"rule": "first_worker", "args": {"hive": "hive1"}, "binds": "v1"},
        {"rule": "kill_component", "args": {"component": "hive1"}},
        {"rule": "terminate_hive", "args": {"hive": "hive1"}},
        {"rule": "start_component", "args": {"pick": 0}},
    ],
    # a hive paused right after one of its workers was frozen kills nothing until it is resumed:
    # the model wanted the worker's process gone within G all the same (S20, 3/3)
    "a-paused-hive-kills-its-frozen-worker-only-once-resumed": [
        {"rule": "first_worker", "args": {"hive": "hive1"}, "binds": "v1"},
        {"rule": "pause_worker", "args": {"worker_id": {"$var": "v1"}}},
        {"rule": "pause_component", "args": {"component": "hive1"}},
        {"rule": "let_time_pass", "args": {}},
        {"rule": "resume_component", "args": {"pick": 0}},
    ],
    # a shutdown that timed out at a paused queen was read and served once the queen resumed;
    # the model had dropped that possibility at the first quiet step (S21, 3/3)
    "a-request-to-a-paused-queen-may-be-served-once-it-resumes": [
        {"rule": "first_worker", "args": {"hive": "hive1"}, "binds": "v1"},
        {"rule": "pause_component", "args": {"component": "queen"}},
        {"rule": "shutdown_worker", "args": {"worker_id": {"$var": "v1"}}},
        {"rule": "kill_component", "args": {"component": "hive2"}},
        {"rule": "resume_component", "args": {"pick": 0}},
    ],
    # pause_worker froze an orphan that had just been shut down and was on its way out: its
    # process stayed for good, unknown to the model (S20, 3/3 in the 300-example run)
    "no-freezing-a-worker-on-its-way-out": [
        {"rule": "first_worker", "args": {"hive": "hive2"}, "binds": "v1"},
        {"rule": "kill_component", "args": {"component": "hive2"}},
        {"rule": "shutdown_worker", "args": {"worker_id": {"$var": "v1"}}},
        {"rule": "pause_worker", "args": {"worker_id": {"$var": "v1"}}},
    ],
    # register_duplicate registered a worker that was still starting (the queen would list it
    # once quiet, not yet): the queen then listed a worker that did not listen yet, and its
    # shutdown was rightly 503 "unreachable" where the model wanted 200 (S04, 3/3, 300 examples)
    "a-duplicate-is-only-sent-for-a-worker-the-queen-lists-now": [
        {"rule": "crash_restart", "args": {"component": "hive2"}, "binds": "v1"},
        {"rule": "register_duplicate", "args": {"worker_id": {"$var": "v1"}}},
        {"rule": "shutdown_worker", "args": {"worker_id": {"$var": "v1"}}},
    ],
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_once_false_alarm_holds_against_the_correct_stack(rbee_context, name):
    failure = run_program(PROGRAMS[name], rbee_context, StackMachine)
    assert failure is None, failure.violation.summary if failure else ""
