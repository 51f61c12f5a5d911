"""Replay shrinking without a stack: which candidates it tries and what it keeps.

``fails`` here is a pure stand-in for "replay against the stack": it fails when the candidate
still holds what the (imaginary) bug needs, so the result of each pass is exact.
"""

from __future__ import annotations

from types import SimpleNamespace

from rbee_props import hunt as hunt_module
from rbee_props.config import load_config
from rbee_props.findings import Violation
from rbee_props.machines import StackMachine
from rbee_props.machines._context import Failure
from rbee_props.repro._substitute import single_steps
from rbee_props.repro.replay import shrink_program


def step(rule, binds=None, **args):
    entry = {"rule": rule, "args": args}
    if binds:
        entry["binds"] = binds
    return entry


def failure(invariant="S05"):
    violation = Violation(invariant, explains="", expected="404", observed="200")
    return Failure(violation=violation, program=[], history=[])


#: two workers, an inference, a kill of the second, a duplicate of the first (the failing step)
TWO_WORKERS = [
    step("first_worker", "v1", hive="hive1"),
    step("spawn", "v2", hive="hive2"),
    step("inference", max_tokens=3),
    step("kill_worker", worker_id={"$var": "v2"}),
    step("register_duplicate", worker_id={"$var": "v1"}),
]


def fails_with(*needed, invariant="S02"):
    """A stand-in replay that fails while every rule in ``needed`` is in the candidate, and
    the list of candidates (as rule names) it was asked about."""
    tried = []

    def fails(candidate):
        rules = [s["rule"] for s in candidate]
        tried.append(rules)
        return failure(invariant) if all(r in rules for r in needed) else None

    return fails, tried


def distinct(tried):
    """The candidates in the order first tried (the cores are replayed twice when they pass)."""
    return [c for i, c in enumerate(tried) if i == 0 or tried[i - 1] != c]


def test_the_failing_steps_dependency_core_is_tried_first():
    fails, tried = fails_with("first_worker", "register_duplicate")
    shrunk, best = shrink_program(TWO_WORKERS, fails, invariant="S02", budget=60)
    assert [s["rule"] for s in shrunk] == ["first_worker", "register_duplicate"]
    assert best is not None and best.violation.invariant == "S02"
    # the first candidate is the failing step with the spawn that bound its worker: the answer
    assert tried[0] == ["first_worker", "register_duplicate"]


def test_when_the_dependency_core_passes_chunks_are_dropped_with_their_dependents():
    fails, tried = fails_with("inference", "register_duplicate")
    shrunk, _ = shrink_program(TWO_WORKERS, fails, invariant="S02", budget=60)
    assert [s["rule"] for s in shrunk] == ["first_worker", "inference", "register_duplicate"]
    # the cores of the last step, of the last two, and of the workers pass without the inference
    assert tried[:2] == [["first_worker", "register_duplicate"]] * 2, "a core that holds: twice"
    assert distinct(tried)[:3] == [
        ["first_worker", "register_duplicate"],
        ["first_worker", "spawn", "kill_worker", "register_duplicate"],
        ["first_worker", "spawn", "register_duplicate"],
    ]
    # dropping the first two steps took the steps using v1 and v2 with them, in one candidate
    assert distinct(tried)[3] == ["inference"]


def test_another_invariant_does_not_count_as_still_failing():
    program = [step("first_worker", "v1", hive="hive1"), step("inference", max_tokens=1)]
    shrunk, best = shrink_program(
        program, lambda candidate: failure("S13"), invariant="S05", budget=60
    )
    assert shrunk == program and best is None


def test_a_candidate_whose_replay_raises_does_not_fail():
    program = [step("first_worker", "v1", hive="hive1"), step("inference", max_tokens=1)]

    def fails(candidate):
        if len(candidate) < 2:
            raise KeyError("worker_id")
        return failure()

    shrunk, _ = shrink_program(program, fails, invariant="S05", budget=60)
    assert shrunk == program


def test_substitution_replaces_a_run_of_steps_by_the_one_step_the_bug_needs():
    # a ready callback for an id the hive does not know answers 200: the bug needs one step
    program = [
        step("first_worker", "v1", hive="hive2"),
        step("shutdown_worker", worker_id={"$var": "v1"}),
        step("ready_again", worker_id={"$var": "v1"}),
    ]

    def fails(candidate):
        rules = [s["rule"] for s in candidate]
        if rules == ["ready_unknown"] or rules[-2:] == ["shutdown_worker", "ready_again"]:
            return failure()
        return None

    without, _ = shrink_program(program, fails, invariant="S05", budget=60)
    assert len(without) == 3  # deleting alone cannot get there
    shrunk, best = shrink_program(program, fails, invariant="S05", budget=60, machine=StackMachine)
    assert [s["rule"] for s in shrunk] == ["ready_unknown"]
    assert shrunk[0]["args"] == {"hive": "hive2"}  # the hive the replaced steps used
    assert best is not None


def test_substitution_turns_steps_that_only_took_time_into_a_wait():
    # the hive evicts a served worker after its monitor's sweeps: any three steps after the
    # spawn take long enough, and deleting steps can never turn them into let_time_pass
    program = [
        step("first_worker", "v1", hive="hive1"),
        step("crash_restart", component="hive2"),
        step("remove_beehive", name="hive9"),
        step("spawn", "v2", hive="hive2"),
    ]
    took = {"let_time_pass": 3}

    def fails(candidate):
        rules = [s["rule"] for s in candidate]
        waited = sum(took.get(rule, 1) for rule in rules[1:])
        return failure("S21") if rules[:1] == ["first_worker"] and waited >= 3 else None

    without, _ = shrink_program(program, fails, invariant="S21", budget=60)
    assert len(without) == 4
    shrunk, best = shrink_program(program, fails, invariant="S21", budget=60, machine=StackMachine)
    assert [s["rule"] for s in shrunk] == ["first_worker", "let_time_pass"]
    assert best is not None


def test_single_steps_come_from_the_failing_operations_family_and_use_bound_variables():
    window = [
        step("shutdown_worker", worker_id={"$var": "v1"}),
        step("ready_again", worker_id={"$var": "v1"}),
    ]
    candidates = list(single_steps(StackMachine, window, bound=["v1"]))
    assert [c["rule"] for c in candidates] == ["ready_again", "ready_unknown", "let_time_pass"]
    assert candidates[0]["args"] == {"worker_id": {"$var": "v1"}}
    assert candidates[1]["args"] == {"hive": 0}
    kills = list(
        single_steps(StackMachine, [step("kill_worker", worker_id={"$var": "v1"})], ["v1"])
    )
    assert {c["rule"] for c in kills} >= {"kill_worker", "kill_component"}


def test_a_bundle_argument_without_a_bound_variable_is_not_offered():
    window = [
        step("first_worker", "v1", hive="hive1"),
        step("register_duplicate", worker_id={"$var": "v1"}),
    ]
    names = {c["rule"] for c in single_steps(StackMachine, window, bound=[])}
    assert "register_duplicate" not in names
    assert "register_worker" in names or "register_phantom" in names


def test_a_fault_judged_at_the_next_step_keeps_both_in_the_core():
    program = [
        step("first_worker", "v1", hive="hive1"),
        step("spawn", "v2", hive="hive2"),
        step("probe_auth", route=2, variant="none"),
        step("pause_worker", worker_id={"$var": "v1"}),
        step("inference", max_tokens=1),  # its convergence judged the pause
    ]
    fails, tried = fails_with("pause_worker", invariant="C01")
    shrunk, _ = shrink_program(program, fails, invariant="C01", budget=60)
    assert distinct(tried)[:2] == [["inference"], ["first_worker", "pause_worker", "inference"]]
    assert [s["rule"] for s in shrunk] == ["first_worker", "pause_worker"]


def test_a_fault_that_hits_a_worker_through_its_hive_keeps_the_workers_in_the_core():
    # the second crash-restart of hive2 finds the worker the first one respawned: no variable
    # links them, so the cores of the last steps alone pass
    program = [
        step("slow_link", hive="hive2", ms=50),
        step("crash_restart", "v1", component="hive2"),
        step("probe_auth", route=4, variant="none"),
        step("kill_component", component="hive1"),
        step("crash_restart", "v2", component="hive2"),
    ]

    def fails(candidate):
        restarts = [s for s in candidate if s["rule"] == "crash_restart"]
        tried.append([s["rule"] for s in candidate])
        return failure("C03") if len(restarts) == 2 else None

    tried: list[list[str]] = []
    shrunk, _ = shrink_program(program, fails, invariant="C03", budget=60)
    assert [s["rule"] for s in shrunk] == ["crash_restart", "crash_restart"]
    assert distinct(tried)[2] == ["crash_restart", "crash_restart"], "the third core is the answer"


def test_a_core_that_fails_only_sometimes_gets_a_second_replay():
    program = [
        step("first_worker", "v1", hive="hive1"),
        step("inference", max_tokens=2),
        step("register_duplicate", worker_id={"$var": "v1"}),
    ]
    answers = iter([None, failure("S02")])  # the race is lost once, then won

    def fails(candidate):
        return next(answers, None)

    shrunk, best = shrink_program(program, fails, invariant="S02", budget=60)
    assert [s["rule"] for s in shrunk] == ["first_worker", "register_duplicate"]
    assert best is not None


def test_the_workers_and_a_wait_are_tried_before_delta_debugging():
    # the monitor evicts a served worker: the restart that made it and the time are the bug
    program = [
        step("crash_restart", "v1", component="hive1"),
        step("restart_component", component="queen"),
        step("restart_component", component="hive2"),
    ]

    def fails(candidate):
        rules = [s["rule"] for s in candidate]
        tried.append(rules)
        enough = len(rules) == 3 or rules[-1:] == ["let_time_pass"]
        return failure("S21") if rules[:1] == ["crash_restart"] and enough else None

    tried = []
    shrunk, best = shrink_program(program, fails, invariant="S21", budget=60, machine=StackMachine)
    assert [s["rule"] for s in shrunk] == ["crash_restart", "let_time_pass"]
    assert best is not None
    # the cores that hold (the failing step alone, the last two, the failing step with the
    # worker's maker) come first, then the maker and a wait: the first candidate that fails
    assert distinct(tried)[:4] == [
        ["restart_component"],
        ["restart_component", "restart_component"],
        ["crash_restart", "restart_component"],
        ["crash_restart", "let_time_pass"],
    ]
    tried.clear()
    shrink_program(program, fails, invariant="S21", budget=60)  # no machine: no wait to offer
    assert ["crash_restart", "let_time_pass"] not in tried


def test_a_shrunk_program_that_never_fails_again_gives_way_to_one_that_does(monkeypatch):
    """A race fails the two-step core once; its rate replays never do: the finding is the
    original program, which fails every time, not a reproduction that reproduces nothing."""
    program = [
        step("first_worker", "v1", hive="hive1"),
        step("inference", max_tokens=2),
        step("kill_worker", worker_id={"$var": "v1"}),
    ]
    calls: dict[tuple[str, ...], int] = {}

    def run_program(candidate, context, machine):
        rules = tuple(s["rule"] for s in candidate)
        calls[rules] = calls.get(rules, 0) + 1
        once = rules == ("first_worker", "kill_worker") and calls[rules] == 1
        if rules == ("first_worker", "inference", "kill_worker") or once:
            return Failure(violation=failure("C01").violation, program=list(candidate), history=[])
        return None

    monkeypatch.setattr(hunt_module, "run_program", run_program)
    original = Failure(violation=failure("C01").violation, program=program, history=[])
    context = SimpleNamespace(config=load_config())
    finding, best = hunt_module.finish(
        original, StackMachine, context, machine_name="stack", shrink_budget=30, attempts=3
    )
    assert [s["rule"] for s in finding.program] == ["first_worker", "inference", "kill_worker"]
    assert (finding.reproduced, finding.attempts) == (3, 3)
    assert best.program == program
    assert calls[("first_worker", "kill_worker")] >= 4  # accepted once, then 3 rate replays
