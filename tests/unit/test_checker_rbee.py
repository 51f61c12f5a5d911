"""The rbee burst model and the op -> call mapping: hand-written histories, then properties.

Histories are recorded ops (as the clients record them) checked with ``check_burst``, so these
tests cover the mapping (which op says what about which worker id, and when) and the per-worker
model together. The properties compare the checker with brute force on the burst model, and
check that a sequential run of the model, stretched into overlap, is always linearizable.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from rbee_props.checker import (
    Entry,
    Linearizable,
    NotLinearizable,
    brute_force,
    check_linearizable,
)
from rbee_props.checker._burst_model import (
    UNKNOWN,
    InferAnswer,
    Ready,
    Register,
    SeenAtHive,
    SeenAtQueen,
    ShutdownCheck,
    ShutdownDone,
    SlotFreed,
    SlotTaken,
    Spawned,
    WorkerView,
    drift,
    step,
)
from rbee_props.checker.rbee import (
    BurstWorld,
    burst_entries,
    check_burst,
    model_call,
    op_indices,
    views_from_models,
)
from rbee_props.history import Fail, History, Indeterminate, Ok, Op, Outcome
from rbee_props.model import (
    ClusterState,
    HiveState,
    ReadyCallback,
    RegisterWorker,
    ShutdownWorker,
    Spawn,
    Worker,
)

PHANTOM = WorkerView(origin="phantom", queen=True, alive=True)
READY = WorkerView(origin="spawned", home="hive1", queen=True, hive="ready", alive=True, slots=1)
BUSY = Fail(503, {"error": {"code": "ALL_SLOTS_BUSY", "message": "all slots are busy"}})


class Recorder:
    """Records ops the way the clients do (the fields the mapping reads)."""

    def __init__(self) -> None:
        self.history = History()

    def op(
        self,
        service: str,
        method: str,
        path: str,
        invoke: float,
        complete: float,
        outcome: Outcome,
        lane: int = 1,
        kind: str = "op",
        **args: Any,
    ) -> Op:
        return self.history.record(
            lane=lane, kind=kind, service=service, method=method, path=path, args=args,
            invoke=invoke, complete=complete, outcome=outcome,
        )  # fmt: skip

    def queen_list(self, t0: float, t1: float, *ids: str) -> Op:
        body = {"workers": [{"worker_id": i} for i in ids]}
        return self.op("queen", "GET", "/v2/workers/list", t0, t1, Ok(200, body))

    def hive_list(self, t0: float, t1: float, **states: str) -> Op:
        body = {"workers": [{"id": i, "state": s} for i, s in states.items()]}
        return self.op("hive1", "GET", "/v1/workers/list", t0, t1, Ok(200, body))

    def spawn(self, t0: float, t1: float, worker_id: str) -> Op:
        body = {"worker_id": worker_id, "url": "http://127.0.0.1:1", "state": "loading"}
        return self.op(
            "hive1", "POST", "/v1/workers/spawn", t0, t1, Ok(200, body), model_ref="hf:a/b"
        )

    def register(self, t0: float, t1: float, outcome: Outcome, worker_id: str = "p1") -> Op:
        return self.op(
            "queen", "POST", "/v2/workers/register", t0, t1, outcome, worker_id=worker_id,
            url="http://127.0.0.1:2", model_ref="hf:rbee/phantom", node_name="phantom-node",
        )  # fmt: skip

    def shutdown(self, t0: float, t1: float, outcome: Outcome, worker_id: str = "p1") -> Op:
        return self.op(
            "queen", "POST", "/v2/workers/shutdown", t0, t1, outcome, worker_id=worker_id
        )

    def infer(self, t0: float, t1: float, outcome: Outcome, *, decode_ms: float = 0) -> Op:
        if isinstance(outcome, Ok):
            events = [{"type": "started"}, {"type": "end", "decode_time_ms": decode_ms}, "[DONE]"]
            outcome = Ok(200, {"events": events, "complete": True})
        return self.op("worker:w1", "POST", "/v1/inference", t0, t1, outcome, kind="inference")

    def check(self, world: BurstWorld | None = None) -> Any:
        return check_burst(self.history, world or BurstWorld())


def spawned_world(view: WorkerView = READY) -> BurstWorld:
    return BurstWorld({"w1": "hive1"}, {"w1": (view,)})


def phantom_world(view: WorkerView = PHANTOM) -> BurstWorld:
    return BurstWorld({"p1": None}, {"p1": (view,)})


# -- the lifecycle at queen and hive ------------------------------------------------------------


def test_a_worker_the_queen_lists_that_is_loading_again_at_its_hive_is_not_linearizable():
    r = Recorder()
    r.spawn(0, 1, "w1")
    r.queen_list(2, 3, "w1")
    seen = r.hive_list(4, 5, w1="loading")
    result = r.check()
    assert isinstance(result, NotLinearizable)
    assert op_indices(result.window) == [seen.index] and result.key == "w1"
    assert "SeenAtHive(hive='hive1', state='loading')" in result.explanation


def test_loading_then_registered_then_idle_is_linearizable():
    r = Recorder()
    r.spawn(0, 1, "w1")
    r.hive_list(0.5, 0.6)  # before the spawn took effect: not there yet
    r.hive_list(2, 3, w1="loading")
    r.queen_list(3, 4)
    r.queen_list(5, 6, "w1")
    r.hive_list(6, 7, w1="idle")
    assert isinstance(r.check(), Linearizable)


def test_a_queen_read_overlapping_the_hive_read_may_come_after_it():
    r = Recorder()
    r.spawn(0, 1, "w1")
    r.hive_list(2, 5, w1="loading")
    r.queen_list(3, 4, "w1")  # overlaps: the hive read may have happened first
    assert isinstance(r.check(), Linearizable)


def test_a_registered_worker_listed_by_its_hive_may_vanish_only_after_a_shutdown():
    r = Recorder()
    r.hive_list(0, 1)
    result = r.check(spawned_world())
    assert isinstance(result, NotLinearizable)
    r = Recorder()
    r.shutdown(0, 1, Ok(200), worker_id="w1")
    r.hive_list(2, 3)
    r.queen_list(3, 4)
    assert isinstance(r.check(spawned_world()), Linearizable)


def test_the_test_s_ready_callback_is_409_for_a_ready_worker_and_404_for_an_unknown_one():
    r = Recorder()
    r.op("hive1", "POST", "/v1/workers/ready", 0, 1, Fail(409), worker_id="w1")
    r.op("hive1", "POST", "/v1/workers/ready", 0, 1, Fail(404), worker_id="stray")
    assert isinstance(r.check(spawned_world()), Linearizable)
    r = Recorder()
    r.op("hive1", "POST", "/v1/workers/ready", 0, 1, Ok(200), worker_id="w1")
    assert isinstance(r.check(spawned_world()), NotLinearizable)


# -- register and shutdown at the queen ---------------------------------------------------------


def test_two_concurrent_registrations_of_a_new_id_one_200_one_409():
    r = Recorder()
    r.register(0, 2, Ok(200))
    r.register(1, 3, Fail(409))
    assert isinstance(r.check(), Linearizable)
    r = Recorder()
    r.register(0, 2, Ok(200))
    r.register(1, 3, Ok(200))
    result = r.check()
    assert isinstance(result, NotLinearizable) and op_indices(result.window) == [0, 1]


def test_two_overlapping_shutdowns_may_both_answer_200():
    r = Recorder()
    r.shutdown(0, 2, Ok(200))
    r.shutdown(1, 3, Ok(200))
    assert isinstance(r.check(phantom_world()), Linearizable)


def test_a_shutdown_after_a_completed_one_must_be_404():
    r = Recorder()
    r.shutdown(0, 1, Ok(200))
    second = r.shutdown(2, 3, Ok(200))
    result = r.check(phantom_world())
    assert isinstance(result, NotLinearizable) and op_indices(result.window) == [second.index]
    r = Recorder()
    r.shutdown(0, 1, Ok(200))
    r.shutdown(2, 3, Fail(404))
    r.queen_list(3, 4)
    assert isinstance(r.check(phantom_world()), Linearizable)


def test_a_shut_down_id_registered_again_is_listed_until_the_queen_drops_it():
    r = Recorder()
    r.shutdown(0, 1, Ok(200))
    r.register(2, 3, Ok(201))  # a new registration of a dead worker: allowed (D1)
    r.queen_list(3, 4, "p1")
    r.queen_list(5, 6)  # the queen's health checks dropped it
    r.register(7, 8, Ok(201))
    assert isinstance(r.check(phantom_world()), Linearizable)
    r.queen_list(9, 10)
    r.queen_list(11, 12, "p1")  # a dropped phantom does not come back on its own
    assert isinstance(r.check(phantom_world()), NotLinearizable)


def test_a_live_spawned_worker_may_drop_from_the_queen_and_its_hive_register_it_again():
    """Under load the queen's probes time out and it drops the worker; the hive, which still has
    it ready, registers it again (D3, D5). Its hive entry stays."""
    r = Recorder()
    r.queen_list(0, 1)
    r.register(1.5, 1.8, Ok(201), worker_id="w1")
    r.queen_list(2, 3, "w1")
    r.hive_list(3, 4, w1="idle")
    assert isinstance(r.check(spawned_world()), Linearizable)


def test_a_live_phantom_never_leaves_the_queen_on_its_own():
    r = Recorder()
    r.queen_list(0, 1)
    assert isinstance(r.check(phantom_world()), NotLinearizable)


def test_a_timed_out_registration_may_have_happened():
    r = Recorder()
    r.register(0, 1, Indeterminate("timeout"))
    r.register(2, 3, Fail(409))
    assert isinstance(r.check(), Linearizable)
    r = Recorder()
    r.register(0, 1, Indeterminate("timeout"))
    r.register(2, 3, Ok(201))
    assert isinstance(r.check(), Linearizable)


# -- slots (S16) --------------------------------------------------------------------------------


def test_one_slot_two_concurrent_inferences_one_runs_one_gets_503():
    r = Recorder()
    r.infer(0.0, 2.6, Ok(200), decode_ms=2500)
    r.infer(0.001, 0.02, BUSY)
    assert isinstance(r.check(spawned_world()), Linearizable)


def test_one_slot_two_concurrent_inferences_both_run_is_a_queue():
    r = Recorder()
    first = r.infer(0.0, 2.6, Ok(200), decode_ms=2500)
    second = r.infer(0.001, 5.2, Ok(200), decode_ms=2500)  # admitted only when the first ended
    result = r.check(spawned_world())
    assert isinstance(result, NotLinearizable)
    assert set(op_indices(result.window)) == {first.index, second.index}


def test_a_503_while_a_slot_is_free_is_not_linearizable():
    r = Recorder()
    r.infer(0, 0.1, BUSY)
    assert isinstance(r.check(spawned_world()), NotLinearizable)


def test_two_slots_admit_two_but_not_three():
    two = spawned_world(attrs.evolve(READY, slots=2))
    r = Recorder()
    r.infer(0.0, 2.6, Ok(200), decode_ms=2500)
    r.infer(0.0, 2.6, Ok(200), decode_ms=2500)
    r.infer(0.0, 0.05, BUSY)
    assert isinstance(r.check(two), Linearizable)
    r.infer(0.01, 5.2, Ok(200), decode_ms=2500)
    assert isinstance(r.check(two), NotLinearizable)


def test_inferences_one_after_the_other_share_a_slot():
    r = Recorder()
    r.infer(0.0, 2.6, Ok(200), decode_ms=2500)
    r.infer(2.7, 5.3, Ok(200), decode_ms=2500)
    assert isinstance(r.check(spawned_world()), Linearizable)


def test_a_slot_held_by_earlier_work_is_freed_at_some_point():
    held = spawned_world(attrs.evolve(READY, anon=1))
    r = Recorder()
    r.infer(0, 0.05, BUSY)
    r.infer(0.1, 2.7, Ok(200), decode_ms=2500)
    assert isinstance(r.check(held), Linearizable)


def test_a_shutting_down_worker_refuses_new_work_only_after_the_shutdown():
    refused = Fail(503, {"error": {"code": "SHUTTING_DOWN", "message": "bye"}})
    r = Recorder()
    r.shutdown(0, 1, Ok(200), worker_id="w1")
    r.infer(2, 2.1, refused)
    r.infer(3, 3.1, Fail(None, reason="connection refused"))
    assert isinstance(r.check(spawned_world()), Linearizable)
    r = Recorder()
    r.infer(0, 0.1, refused)
    assert isinstance(r.check(spawned_world()), NotLinearizable)


def test_an_inference_s_slot_is_bounded_by_admission_and_decode_time():
    r = Recorder()
    r.infer(10.0, 13.0, Ok(200), decode_ms=2500)
    taken, freed = burst_entries(r.history, spawned_world(), admission_bound=1.0)
    assert (taken.call, taken.invoke, taken.complete) == (SlotTaken(0), 10.0, 11.0)
    assert (freed.call, freed.invoke, freed.complete) == (SlotFreed(0), 12.5, 13.0)


# -- the mapping --------------------------------------------------------------------------------


def test_a_list_read_becomes_one_entry_per_worker_id_it_could_show():
    world = BurstWorld({"w1": "hive1", "w2": "hive2", "p1": None}, {})
    r = Recorder()
    r.queen_list(0, 1, "w1")
    r.hive_list(1, 2, w1="idle", stray="idle")
    calls = {(x.key, x.call) for x in burst_entries(r.history, world)}
    assert calls == {
        ("w1", SeenAtQueen(True)),
        ("w2", SeenAtQueen(False)),
        ("p1", SeenAtQueen(False)),
        ("w1", SeenAtHive("hive1", "ready")),
    }


def test_failed_reads_say_nothing_and_a_200_shutdown_is_two_steps():
    r = Recorder()
    r.op("queen", "GET", "/v2/workers/list", 0, 1, Fail(503))
    r.shutdown(1, 2, Ok(200))
    r.shutdown(2, 3, Fail(404))
    entries = burst_entries(r.history, phantom_world())
    assert [(x.id, x.call) for x in entries] == [
        ((1, "check", "p1"), ShutdownCheck(1)),
        ((1, "done", "p1"), ShutdownDone(1)),
        ((2, "check", "p1"), ShutdownCheck(2)),
    ]


def test_recorded_ops_map_to_the_global_model_s_calls():
    r = Recorder()
    reg = r.register(0, 1, Ok(201))
    shut = r.shutdown(0, 1, Ok(200))
    spawn = r.spawn(0, 1, "w9")
    ready = r.op("hive1", "POST", "/v1/workers/ready", 0, 1, Fail(409), worker_id="w9")
    read = r.queen_list(0, 1)
    assert model_call(reg) == RegisterWorker(
        "p1", "phantom-node", "http://127.0.0.1:2", "hf:rbee/phantom"
    )
    assert model_call(shut) == ShutdownWorker("p1")
    assert model_call(spawn) == Spawn("hive1", "hf:a/b", "w9", "http://127.0.0.1:1")
    assert model_call(ready) == ReadyCallback("hive1", "w9")
    assert model_call(read) is None


def test_start_views_come_from_the_global_model():
    state = ClusterState(
        workers={
            "p1": Worker("p1", "phantom-node", "phantom", "hf:rbee/phantom"),
            "w1": Worker("w1", "hive1", "spawned", "hf:a/b", url="u"),
        },
        hives={"hive1": HiveState()},
    )
    assert views_from_models([state], "p1") == (PHANTOM,)
    w1 = views_from_models([state], "w1", slots=(2, 1))
    assert w1 == (attrs.evolve(READY, slots=2, anon=1),)
    assert views_from_models([state], "nobody") == (UNKNOWN,)
    unsure = attrs.evolve(state, hives={"hive1": HiveState(partitioned=True)})
    views = views_from_models([unsure], "w1")
    assert {v.queen for v in views} == {True, False}
    assert {v.hive for v in views} == {"loading", "ready", "gone"}


def test_drift_only_moves_forward():
    loading = WorkerView(origin="spawned", home="hive1", hive="loading", alive=True)
    reachable = set(drift(loading))
    assert attrs.evolve(loading, hive="ready", queen=True) in reachable
    assert all(v.hive != "loading" for v in drift(attrs.evolve(loading, hive="ready")))
    assert drift(PHANTOM) == [PHANTOM]


# -- properties ---------------------------------------------------------------------------------

START = {
    "phantom": PHANTOM,
    "spawned": attrs.evolve(READY, slots=1),
    "loading": WorkerView(origin="spawned", home="hive1", hive="loading", alive=True, slots=1),
    "unknown": UNKNOWN,
}
CALLS = [
    SeenAtQueen(True),
    SeenAtQueen(False),
    SeenAtHive("hive1", "absent"),
    SeenAtHive("hive1", "loading"),
    SeenAtHive("hive1", "ready"),
    Register(fresh=True),
    Register(fresh=False),
    Spawned("hive1"),
    Ready("hive1"),
    InferAnswer(503, "ALL_SLOTS_BUSY"),
    InferAnswer(503, "SHUTTING_DOWN"),
]
OUTCOMES = [Ok(200), Fail(409), Fail(404), Fail(503), Indeterminate("timeout")]


@st.composite
def burst_histories(draw: st.DrawFn) -> tuple[str, list[Any]]:
    """A few ops on one worker id with random calls, outcomes and overlapping intervals."""
    start = draw(st.sampled_from(sorted(START)))
    entries = []
    for n in range(draw(st.integers(1, 6))):
        invoke = draw(st.integers(0, 8))
        length = draw(st.integers(0, 4))
        kind = draw(st.integers(0, len(CALLS) + 2))
        if kind < len(CALLS):
            call: Any = CALLS[kind]
        elif kind == len(CALLS):
            call = ShutdownCheck(n)
        elif kind == len(CALLS) + 1:
            call = SlotTaken(n)
        else:
            call = SlotFreed(draw(st.integers(0, n)))
        outcome = draw(st.sampled_from(OUTCOMES))
        entries.append(Entry(n, call, outcome, float(invoke), float(invoke + length), "w1"))
    return start, entries


@settings(max_examples=300, deadline=None)
@given(burst_histories())
def test_the_checker_agrees_with_brute_force_on_the_burst_model(case: tuple[str, list[Any]]):
    start, entries = case
    fast = check_linearizable(entries, UNKNOWN, step, initial_for=lambda _: [START[start]])
    slow = brute_force(entries, START[start], step)
    assert fast.verdict == slow.verdict


@settings(max_examples=200, deadline=None)
@given(burst_histories(), st.randoms(use_true_random=False))
def test_a_sequential_run_stretched_into_overlap_is_linearizable(
    case: tuple[str, list[Any]], rnd: Any
):
    """Outcomes from running the model op by op (each given one it allows), then every interval
    widened to overlap its neighbours: the original order is still a witness."""
    start, drawn = case
    state, entries = START[start], []
    for n, entry in enumerate(drawn):
        allowed = [
            o for o in OUTCOMES if not isinstance(o, Indeterminate) and step(state, entry.call, o)
        ]
        if not allowed:
            continue
        outcome = rnd.choice(allowed)
        state = rnd.choice(step(state, entry.call, outcome))
        entries.append(attrs.evolve(entry, outcome=outcome, invoke=float(n), complete=n + 2.5))
    result = check_linearizable(entries, UNKNOWN, step, initial_for=lambda _: [START[start]])
    assert isinstance(result, Linearizable)
