"""The pure model on its own: transitions, indeterminate outcomes, faults and expectations."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import rbee_props.model
from rbee_props.history import Fail, Indeterminate, Ok
from rbee_props.model import (
    AddBeehive,
    ClusterState,
    FaultOp,
    HiveState,
    Inference,
    ReadyCallback,
    RegisterWorker,
    RemoveBeehive,
    ShutdownWorker,
    Spawn,
    allowed,
    apply_fault,
    expect,
    fault_successors,
    settle,
    step,
)

HIVES = ("hive1", "hive2")
START = ClusterState(hives={h: HiveState() for h in HIVES})
IDS = st.sampled_from(["w1", "w2", "w3"])


def register(worker_id="w1"):
    return RegisterWorker(worker_id, "phantom-node", f"http://127.0.0.1:9/{worker_id}")


def test_a_new_id_registers_and_a_duplicate_is_409_unchanged():
    [after] = step(START, register(), Ok(200))
    assert "w1" in after.workers
    assert step(after, register(), Ok(200)) == ()  # S02: an overwrite is not allowed
    assert step(after, register(), Fail(409)) == (after,)
    assert "409" in allowed(after, register())


def test_indeterminate_keeps_both_the_unchanged_and_the_applied_state():
    states = step(START, register(), Indeterminate("timeout"))
    assert START in states
    assert any("w1" in s.workers for s in states)


def test_shutdown_of_an_unknown_id_is_404_and_of_a_known_one_dooms_it():
    assert step(START, ShutdownWorker("w1"), Fail(404)) == (START,)
    assert step(START, ShutdownWorker("w1"), Ok(200)) == ()
    [registered] = step(START, register(), Ok(200))
    [after] = step(registered, ShutdownWorker("w1"), Ok(200))
    assert after.workers["w1"].doomed == "shutdown"
    assert expect(after).queen == {"w1": "not"}
    assert "w1" not in settle(after).workers


def test_spawned_worker_must_be_listed_by_its_hive_the_queen_and_as_a_process():
    [after] = step(START, Spawn("hive1", "hf:a/b", "w1", "http://127.0.0.1:20000"), Ok(200))
    exp = expect(after)
    assert exp.hives["hive1"] == {"w1": "must"}
    assert exp.hives["hive2"] == {"w1": "not"}
    assert exp.queen == {"w1": "must"}
    assert exp.processes == {"w1": "must"}


def test_ready_callbacks_unknown_is_404_and_known_idle_is_409():
    assert step(START, ReadyCallback("hive1", "w9"), Fail(404)) == (START,)
    assert step(START, ReadyCallback("hive1", "w9"), Ok(200)) == ()  # ready-unknown-200
    [after] = step(START, Spawn("hive1", "hf:a/b", "w1", "u"), Ok(200))
    assert step(after, ReadyCallback("hive1", "w1"), Fail(409)) == (after,)


def test_inference_needs_an_idle_registered_worker():
    assert step(START, Inference(4), Fail(503)) == (START,)
    assert step(START, Inference(4), Ok(200)) == ()
    [after] = step(START, register(), Ok(201))
    assert step(after, Inference(4), Ok(200)) == (after,)


def test_kill_9_of_a_hive_orphans_its_workers_and_its_restart_dooms_them():
    [after] = step(START, Spawn("hive1", "hf:a/b", "w1", "u"), Ok(200))
    killed = apply_fault(after, FaultOp("kill", "hive1"))
    assert killed.workers["w1"].orphan and killed.workers["w1"].alive
    assert expect(killed).queen == {"w1": "may"}  # orphans may keep answering the queen
    assert "hive1" not in expect(killed).hives  # a dead hive is not read
    started = apply_fault(killed, FaultOp("start", "hive1"))
    assert started.workers["w1"].doomed == "hive_restart"
    assert expect(started).property_for("w1", "S03") == "C03"


def test_a_frozen_orphan_stays_until_its_hive_starts_again_and_reaps_it():
    [after] = step(START, Spawn("hive1", "hf:a/b", "w1", "u"), Ok(200))
    orphaned = apply_fault(after, FaultOp("kill", "hive1"))
    frozen = apply_fault(orphaned, FaultOp("pause_worker", "w1"))
    assert frozen.workers["w1"].alive and frozen.workers["w1"].orphan  # no hive to evict it
    assert expect(settle(frozen)).processes == {"w1": "may"}
    started = apply_fault(frozen, FaultOp("start", "hive1"))
    assert started.workers["w1"].doomed == "hive_restart"
    # a frozen worker whose hive runs is evicted and killed by that hive
    assert apply_fault(after, FaultOp("pause_worker", "w1")).workers["w1"].doomed


def test_a_hive_paused_after_freezing_a_worker_may_kill_it_only_once_resumed():
    [after] = step(START, Spawn("hive1", "hf:a/b", "w1", "u"), Ok(200))
    frozen = apply_fault(after, FaultOp("pause_worker", "w1"))
    assert expect(frozen).processes == {"w1": "not"}
    paused = settle(apply_fault(frozen, FaultOp("pause", "hive1")))
    assert "w1" in paused.workers, "settling must not forget a worker the hive has still to kill"
    assert expect(paused).processes == {"w1": "may"}
    assert expect(paused).queen == {"w1": "not"}  # the queen evicts it on its own checks
    resumed = apply_fault(paused, FaultOp("resume", "hive1"))
    assert expect(resumed).processes == {"w1": "not"}
    assert "w1" not in settle(resumed).workers


def test_a_call_that_timed_out_at_a_paused_queen_may_take_effect_once_it_is_resumed():
    [spawned] = step(START, Spawn("hive1", "hf:a/b", "w1", "u"), Ok(200))
    paused = apply_fault(spawned, FaultOp("pause", "queen"))
    [waiting] = step(paused, ShutdownWorker("w1"), Indeterminate("timeout"))
    assert waiting.workers["w1"].alive, "a frozen queen has not read the request yet"
    assert expect(waiting).processes == {"w1": "must"}
    resumed = fault_successors(waiting, FaultOp("resume", "queen"))
    assert sorted(s.workers["w1"].alive for s in resumed) == [False, True]
    assert all(not s.pending for s in resumed)
    # a SIGKILL discards the unread request; a pause elsewhere leaves it waiting
    assert [s.workers["w1"].alive for s in fault_successors(waiting, FaultOp("kill", "queen"))] == [
        True
    ]
    [other] = fault_successors(waiting, FaultOp("pause", "hive2"))
    assert other.pending == waiting.pending


def test_a_spawn_that_timed_out_at_a_paused_hive_leaves_it_open_once_resumed():
    paused = apply_fault(START, FaultOp("pause", "hive1"))
    [waiting] = step(paused, Spawn("hive1", "hf:a/b"), Indeterminate("timeout"))
    assert not waiting.hives["hive1"].uncertain
    resumed = fault_successors(waiting, FaultOp("resume", "hive1"))
    assert [s.hives["hive1"].uncertain for s in resumed] == [True]


def test_sigterm_of_a_hive_dooms_its_workers_under_c09():
    [after] = step(START, Spawn("hive2", "hf:a/b", "w1", "u"), Ok(200))
    terminated = apply_fault(after, FaultOp("terminate", "hive2"))
    assert expect(terminated).processes == {"w1": "not"}
    assert expect(terminated).property_for("w1", "S20") == "C09"


def test_a_queen_restart_forgets_phantoms_and_keeps_beehives():
    [after] = step(START, register(), Ok(200))
    [after] = step(after, AddBeehive("node-a", "127.0.0.1", 9), Ok(200))
    restarted = apply_fault(after, FaultOp("restart", "queen"))
    assert expect(restarted).queen == {"w1": "not"}
    assert expect(restarted).beehives == {"node-a"}
    assert step(restarted, AddBeehive("node-a", "127.0.0.1", 9), Fail(409)) == (restarted,)


def test_a_down_queen_refuses_connections():
    down = apply_fault(START, FaultOp("kill", "queen"))
    assert step(down, register(), Fail(None, reason="connection refused")) == (down,)
    assert step(down, register(), Fail(409)) == ()


# -- properties over random programs -------------------------------------------------------------

CALLS = st.one_of(
    IDS.map(register),
    IDS.map(ShutdownWorker),
    st.tuples(st.sampled_from(HIVES), IDS).map(lambda t: Spawn(t[0], "hf:a/b", t[1], "u")),
    st.tuples(st.sampled_from(HIVES), IDS).map(lambda t: ReadyCallback(*t)),
    st.integers(1, 4).map(Inference),
    st.sampled_from(["node-a", "node-b"]).map(lambda n: AddBeehive(n, "h", 9)),
    st.sampled_from(["node-a", "node-b"]).map(RemoveBeehive),
)
FAULTS = st.builds(
    FaultOp,
    kind=st.sampled_from(["kill", "terminate", "start", "restart", "pause", "resume"]),
    target=st.sampled_from(("queen", *HIVES)),
) | st.builds(FaultOp, kind=st.sampled_from(["kill_worker", "pause_worker"]), target=IDS)
OUTCOMES = st.sampled_from(
    [Ok(200), Fail(404), Fail(409), Fail(503), Fail(None), Indeterminate("timeout")]
)


@given(st.lists(st.one_of(st.tuples(CALLS, OUTCOMES), FAULTS), max_size=30))
def test_random_programs_keep_the_model_consistent(program):
    states = [START]
    for item in program:
        if isinstance(item, FaultOp):
            states = [apply_fault(s, item) for s in states]
            continue
        call, outcome = item
        nexts = [n for s in states for n in step(s, call, outcome)]
        if nexts:  # an outcome the model refuses is a finding, not a model bug
            states = nexts[:8]
    for state in states:
        exp = expect(state)
        ids = set(state.workers)
        assert set(exp.processes) <= ids
        assert exp.queen is None or set(exp.queen) == ids
        for wanted in exp.hives.values():
            assert set(wanted) == ids
            assert all(rule in ("must", "not") for rule in wanted.values())
        # a worker that must go never has to be listed anywhere
        for worker_id, reason in exp.doomed.items():
            assert exp.processes.get(worker_id, "not") == "not", reason
            assert exp.queen is None or exp.queen[worker_id] == "not"
        # settling keeps only live workers, and never brings a doomed one back
        assert all(w.alive for w in settle(state).workers.values())


@given(st.tuples(CALLS, OUTCOMES))
def test_indeterminate_never_narrows_what_is_possible(item):
    call, _ = item
    assert START in step(START, call, Indeterminate("cut")) or isinstance(call, Spawn)


def test_the_model_does_no_io():
    forbidden = {"httpx", "docker", "subprocess", "socket", "psutil", "time", "random"}
    for package in (rbee_props.model,):
        for info in pkgutil.iter_modules(package.__path__):
            path = Path(package.__path__[0]) / f"{info.name}.py"
            tree = ast.parse(path.read_text())
            names = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names.add(node.module.split(".")[0])
            assert not names & forbidden, (path, names & forbidden)


def test_signals_to_a_dead_hive_change_nothing_its_orphans_stay_orphans():
    """Found by StackMachine on the correct stack: spawn, freeze the worker, kill -9 its hive,
    SIGTERM the dead hive; the model had the SIGTERM doom the orphan, which lives on (S20)."""
    [after] = step(START, Spawn("hive1", "hf:a/b", "w1", "u"), Ok(200))
    killed = apply_fault(
        apply_fault(after, FaultOp("pause_worker", "w1")), FaultOp("kill", "hive1")
    )
    for kind in ("terminate", "kill", "pause", "resume"):
        assert apply_fault(killed, FaultOp(kind, "hive1")).workers == killed.workers
    assert apply_fault(killed, FaultOp("terminate", "hive1")).workers["w1"].orphan
