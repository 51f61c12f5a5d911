"""The linearizability checker: hand-written histories, then properties against brute force.

Two models: a tiny key-value register defined here (its state is a dict, so memoisation goes
through ``freeze``; ``WriteAny`` makes it nondeterministic), and the real rbee model
(``RegisterWorker``/``ShutdownWorker``, partitioned by worker id).
"""

from __future__ import annotations

import ast
import math
import pkgutil
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, event, given, note, settings
from hypothesis import strategies as st

import rbee_props.checker
from rbee_props.checker import (
    Entry,
    LinearizabilityChecker,
    Linearizable,
    NotLinearizable,
    Unknown,
    brute_force,
    check_linearizable,
    entries_from_ops,
    freeze,
    partitions,
    precedes,
)
from rbee_props.history import Fail, History, Indeterminate, Ok, Op, Outcome
from rbee_props.model import ClusterState, RegisterWorker, ShutdownWorker, step

# -- a tiny register model -----------------------------------------------------------------------


@attrs.frozen
class Write:
    key: str
    value: int


@attrs.frozen
class Read:
    key: str


@attrs.frozen
class WriteAny:
    """Writes one of ``values``; which one is not observed (a nondeterministic op)."""

    key: str
    values: tuple[int, ...]


Regs = Mapping[str, int]
EMPTY: Regs = {}


def reg_step(state: Regs, call: Any, outcome: Outcome) -> tuple[Regs, ...]:
    """Registers start at 0; a Fail changes nothing; an Indeterminate may or may not apply."""
    if isinstance(call, Read):
        seen = state.get(call.key, 0)
        if isinstance(outcome, Ok):
            return (state,) if outcome.body == seen else ()
        return (state,)
    values = (call.value,) if isinstance(call, Write) else call.values
    applied = tuple({**state, call.key: v} for v in values)
    if isinstance(outcome, Ok):
        return applied
    if isinstance(outcome, Fail):
        return (state,)
    return (state, *applied)


READ_ONLY = {  # ops that never change the state: the checker may take them at once
    "register": lambda call, outcome: isinstance(call, Read) or isinstance(outcome, Fail),
    "rbee": lambda call, outcome: isinstance(outcome, Fail),
}


def e(id_: int, call: Any, outcome: Outcome, invoke: float, complete: float) -> Entry[Any]:
    key = getattr(call, "key", None) or getattr(call, "worker_id", None)
    return Entry(id_, call, outcome, invoke, complete, key)


def regs(entries: Sequence[Entry[Any]], **kw: Any) -> Any:
    return LinearizabilityChecker(reg_step, EMPTY, **kw).check(entries)


def assert_witness(
    entries: Sequence[Entry[Any]], order: Sequence[Hashable], initial: Any, step_fn: Callable
) -> None:
    """``order`` is a real linearization: every determinate op once, real time, model-accepted."""
    by_id = {x.id: x for x in entries}
    assert len(set(order)) == len(order)
    assert {x.id for x in entries if not x.indeterminate} <= set(order) <= set(by_id)
    placed = [by_id[i] for i in order]
    for pos, later in enumerate(placed):
        assert not any(precedes(later, earlier) for earlier in placed[:pos]), later.id
    states = [initial]
    for op in placed:
        after: list[Any] = []
        for t in (t for s in states for t in step_fn(s, op.call, op.outcome)):
            if t not in after:
                after.append(t)
        states = after
        assert states, f"the model rejects op {op.id} in the witness"


# -- the register model by hand ------------------------------------------------------------------


def test_a_sequential_write_then_read_of_its_value_is_linearizable():
    h = [e(0, Write("x", 1), Ok(200), 0, 1), e(1, Read("x"), Ok(200, 1), 2, 3)]
    assert regs(h) == Linearizable([0, 1])


def test_a_stale_read_after_the_write_completed_is_not_linearizable():
    h = [e(0, Write("x", 1), Ok(200), 0, 1), e(1, Read("x"), Ok(200, 0), 2, 3)]
    result = regs(h)
    assert isinstance(result, NotLinearizable)
    assert result.window == (1,)
    assert result.prefix == (0,)
    assert "[1]" in result.explanation and "rejected" in result.explanation


def test_a_read_overlapping_a_write_may_see_either_value():
    for seen in (0, 1):
        h = [e(0, Write("x", 1), Ok(200), 0, 4), e(1, Read("x"), Ok(200, seen), 1, 2)]
        result = regs(h)
        assert isinstance(result, Linearizable)
        assert_witness(h, result.linearization, EMPTY, reg_step)


def test_two_concurrent_writes_then_reads_that_disagree_are_not_linearizable():
    h = [
        e(0, Write("x", 1), Ok(200), 0, 3),
        e(1, Write("x", 2), Ok(200), 1, 4),
        e(2, Read("x"), Ok(200, 2), 5, 6),
        e(3, Read("x"), Ok(200, 1), 7, 8),
    ]
    result = regs(h)
    assert isinstance(result, NotLinearizable)
    assert set(result.window) <= {0, 1, 2, 3} and 3 in result.window
    assert brute_force(h, EMPTY, reg_step).verdict == "invalid"


def test_an_indeterminate_write_may_land_after_its_recorded_completion():
    h = [
        e(0, Write("x", 1), Indeterminate("timeout"), 0, 1),
        e(1, Read("x"), Ok(200, 0), 2, 3),
        e(2, Read("x"), Ok(200, 1), 4, 5),
    ]
    result = regs(h)
    assert isinstance(result, Linearizable)
    assert result.linearization == (1, 0, 2)


def test_an_indeterminate_write_may_never_happen_but_cannot_be_undone():
    never = [e(0, Write("x", 1), Indeterminate("cut"), 0, 1), e(1, Read("x"), Ok(200, 0), 2, 3)]
    assert isinstance(regs(never), Linearizable)
    undone = [*never[:1], e(1, Read("x"), Ok(200, 1), 2, 3), e(2, Read("x"), Ok(200, 0), 4, 5)]
    assert isinstance(regs(undone), NotLinearizable)


def test_a_nondeterministic_op_keeps_every_possible_state():
    write = e(0, WriteAny("x", (1, 2)), Ok(200), 0, 1)
    for seen, ok in ((1, True), (2, True), (3, False)):
        result = regs([write, e(1, Read("x"), Ok(200, seen), 2, 3)])
        assert isinstance(result, Linearizable) is ok
    flip = [write, e(1, Read("x"), Ok(200, 1), 2, 3), e(2, Read("x"), Ok(200, 2), 4, 5)]
    assert isinstance(regs(flip), NotLinearizable)


def test_each_key_is_checked_alone_and_a_violation_in_one_fails_the_history():
    good = [
        e(0, Write("a", 1), Ok(200), 0, 2),
        e(1, Write("b", 5), Ok(200), 1, 3),
        e(2, Read("a"), Ok(200, 1), 4, 5),
        e(3, Read("b"), Ok(200, 5), 4, 6),
    ]
    assert [[x.id for x in p] for p in partitions(good)] == [[0, 2], [1, 3]]
    result = regs(good)
    assert isinstance(result, Linearizable)
    assert_witness(good, result.linearization, EMPTY, reg_step)
    bad = [*good, e(4, Read("b"), Ok(200, 7), 7, 8)]
    result = regs(bad)
    assert isinstance(result, NotLinearizable)
    assert result.key == "b" and result.window == (4,)


def test_the_merged_witness_respects_real_time_across_keys():
    h = [
        e(0, Write("a", 1), Ok(200), 0, 10),
        e(1, Write("b", 1), Ok(200), 1, 2),
        e(2, Read("a"), Ok(200, 0), 3, 4),  # before op 0 in a's order, invoked after op 1
        e(3, Read("b"), Ok(200, 1), 5, 6),
    ]
    result = regs(h)
    assert isinstance(result, Linearizable)
    assert_witness(h, result.linearization, EMPTY, reg_step)


def test_the_window_stays_near_the_stuck_ops_in_a_long_history():
    h = []
    for i in range(200):  # each write overlaps the next one and is read back right after
        h.append(e(2 * i, Write("x", i), Ok(200), 2 * i, 2 * i + 3))
        h.append(e(2 * i + 1, Read("x"), Ok(200, i), 2 * i + 3.1, 2 * i + 3.2))
    h[301] = attrs.evolve(h[301], outcome=Ok(200, 7))
    result = regs(h)
    assert isinstance(result, NotLinearizable)
    assert 301 in result.window and len(result.window) <= 4
    assert len(result.prefix) >= 290


def test_timeouts_are_named_but_kept_out_of_the_window():
    # (cost: every subset of the 7 pending timeouts may have taken effect, 2**7 of them)
    h = [e(i, Write("x", 10 + i), Indeterminate("timeout"), i, i + 0.5) for i in range(7)]
    h += [e(20, Write("x", 1), Ok(200), 30, 31), e(21, Read("x"), Ok(200, 2), 32, 33)]
    result = regs(h, read_only=READ_ONLY["register"])
    assert isinstance(result, NotLinearizable)
    assert result.window == (21,)
    assert "7 timed-out op(s)" in result.explanation and "..." in result.explanation


# -- results, budget, input checks ---------------------------------------------------------------


def test_verdicts_have_explicit_truth_and_unknown_is_never_a_pass():
    assert Linearizable([]) and Linearizable([]).verdict == "valid"
    assert not NotLinearizable([1], "x") and NotLinearizable([1], "x").verdict == "invalid"
    unknown = Unknown("budget")
    assert unknown.verdict == "unknown"
    with pytest.raises(TypeError, match="neither true nor false"):
        bool(unknown)
    with pytest.raises(TypeError):
        assert unknown


def concurrent_writes(n: int, key: str = "x", start: int = 0) -> list[Entry[Any]]:
    ids = range(start, start + n)
    return [e(i, Write(key, i), Ok(200), 0, 10) for i in ids]


def test_an_exhausted_budget_is_unknown_and_a_violation_elsewhere_still_fails():
    many = [*concurrent_writes(6), e(6, Read("x"), Ok(200, 99), 11, 12)]
    result = regs(many, max_states=5)
    assert isinstance(result, Unknown)
    assert "'x'" in result.reason and result.explored == 5
    assert "furthest unplaced op 6" in regs(many, max_states=40).reason
    assert isinstance(regs(many), NotLinearizable)
    other = [e(7, Read("y"), Ok(200, 1), 20, 21)]
    assert isinstance(regs(many + other, max_states=5), NotLinearizable)
    assert isinstance(
        regs([*concurrent_writes(6), e(9, Read("y"), Ok(200, 0), 0, 1)]), Linearizable
    )


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="invoke <= complete"):
        Entry(0, Read("x"), Ok(200, 0), 2.0, 1.0)
    with pytest.raises(ValueError, match="invoke <= complete"):
        Entry(0, Read("x"), Ok(200, 0), math.nan, 1.0)
    with pytest.raises(ValueError, match="id 0"):
        regs([e(0, Read("x"), Ok(200, 0), 0, 1), e(0, Read("y"), Ok(200, 0), 0, 1)])
    with pytest.raises(ValueError, match="max_states"):
        LinearizabilityChecker(reg_step, EMPTY, max_states=0)


def test_freeze_is_canonical_and_tells_kinds_apart():
    assert freeze({"a": 1, "b": [1, 2]}) == freeze({"b": [1, 2], "a": 1})
    assert freeze([1, 2]) != freeze({1, 2}) and freeze([1, 2]) == freeze((1, 2))
    assert freeze({"a": 1}) != freeze({"a": 2})
    [one] = step(ClusterState(), register("w1"), Ok(201))
    assert hash(freeze(one)) == hash(freeze(attrs.evolve(one, workers=dict(one.workers))))
    assert freeze(one) != freeze(ClusterState())

    class Opaque:
        __hash__ = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="cannot freeze"):
        freeze({"a": Opaque()})


def test_entries_are_built_from_recorded_ops():
    history = History()
    common = {"service": "queen", "method": "POST", "path": "/v2/workers/register"}
    history.record(
        lane=0,
        kind="register_worker",
        args={"worker_id": "w1"},
        invoke=0.0,
        complete=1.0,
        outcome=Ok(201),
        **common,
    )
    history.record(
        lane=1, kind="queen_health", args={}, invoke=0.5, complete=0.6, outcome=Ok(200), **common
    )
    history.record(
        lane=1,
        kind="register_worker",
        args={"worker_id": "w1"},
        invoke=0.7,
        complete=2.0,
        outcome=Fail(409),
        **common,
    )
    entries = entries_from_ops(history, rbee_call, key=lambda op: op.args["worker_id"])
    assert [(x.id, x.key, x.outcome) for x in entries] == [(0, "w1", Ok(201)), (2, "w1", Fail(409))]
    assert isinstance(check_linearizable(entries, ClusterState(), step), Linearizable)


def test_the_checker_does_no_io():
    forbidden = {"httpx", "docker", "subprocess", "socket", "psutil", "time", "random"}
    package = rbee_props.checker
    for info in pkgutil.iter_modules(package.__path__):
        path = Path(package.__path__[0]) / f"{info.name}.py"
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        assert not names & forbidden, (path, names & forbidden)


# -- the rbee model by hand ----------------------------------------------------------------------


def register(worker_id: str = "w1") -> RegisterWorker:
    return RegisterWorker(worker_id, "phantom-node", f"http://127.0.0.1:9/{worker_id}")


def rbee_call(op: Op) -> RegisterWorker | ShutdownWorker | None:
    if op.kind == "register_worker":
        return register(op.args["worker_id"])
    if op.kind == "shutdown_worker":
        return ShutdownWorker(op.args["worker_id"])
    return None


def rbee(entries: Sequence[Entry[Any]]) -> Any:
    result = check_linearizable(entries, ClusterState(), step)
    if isinstance(result, Linearizable):
        assert_witness(entries, result.linearization, ClusterState(), step)
    assert result.verdict == brute_force(entries, ClusterState(), step).verdict
    return result


def test_two_concurrent_registers_of_one_id_one_ok_one_409_is_linearizable():
    h = [e(0, register(), Ok(201), 0, 2), e(1, register(), Fail(409), 1, 3)]
    assert isinstance(rbee(h), Linearizable)
    h = [e(0, register(), Fail(409), 0, 3), e(1, register(), Ok(201), 1, 2)]
    assert rbee(h) == Linearizable([1, 0])


def test_two_concurrent_registers_of_one_id_both_ok_is_not_linearizable():
    result = rbee([e(0, register(), Ok(201), 0, 2), e(1, register(), Ok(200), 1, 3)])
    assert isinstance(result, NotLinearizable)
    assert result.window == (0, 1)
    assert "RegisterWorker" in result.explanation


def test_a_timed_out_register_then_a_duplicate_409_is_linearizable():
    h = [e(0, register(), Indeterminate("timeout"), 0, 5), e(1, register(), Fail(409), 6, 7)]
    assert isinstance(rbee(h), Linearizable)


def test_a_timed_out_register_then_a_register_ok_is_linearizable():
    h = [e(0, register(), Indeterminate("timeout"), 0, 5), e(1, register(), Ok(201), 6, 7)]
    assert isinstance(rbee(h), Linearizable)
    # but not once a 409 showed that the timed-out one took effect
    h.insert(1, e(2, register(), Fail(409), 5.5, 5.8))
    assert isinstance(rbee(h), NotLinearizable)


def test_a_404_shutdown_overlapping_a_register_orders_before_it():
    h = [e(0, register(), Ok(201), 0, 3), e(1, ShutdownWorker("w1"), Fail(404), 1, 2)]
    assert rbee(h) == Linearizable([1, 0])
    h[1] = attrs.evolve(h[1], invoke=3.5, complete=4)  # after the register: must be 2xx
    result = rbee(h)
    assert isinstance(result, NotLinearizable) and result.window == (1,)


def test_workers_are_partitioned_by_id():
    h = [
        e(0, register("w1"), Ok(201), 0, 3),
        e(1, register("w2"), Ok(201), 1, 2),
        e(2, register("w2"), Fail(409), 2.5, 4),
        e(3, register("w1"), Fail(409), 3.5, 4),
        e(4, ShutdownWorker("w2"), Fail(404), 5, 6),
    ]
    result = rbee(h)
    assert isinstance(result, NotLinearizable) and result.key == "w2"
    assert result.window == (4,)


def test_a_timeout_that_changes_nothing_now_may_still_take_effect_later():
    # the shutdown timed out while w2 was unknown (no effect then), but may land after the
    # first register, which lets the second one succeed (the model allows 2xx while doomed)
    h = [
        e(1, register("w2"), Ok(201), 0, 0),
        e(5, register("w2"), Ok(201), 0, 0),
        e(6, ShutdownWorker("w2"), Indeterminate("timeout"), 0, 0),
    ]
    for hint in (None, READ_ONLY["rbee"]):
        assert check_linearizable(h, ClusterState(), step, read_only=hint).verdict == "valid"
    assert brute_force(h, ClusterState(), step).verdict == "valid"


def test_declared_read_only_ops_are_taken_at_once_and_checked():
    h = [e(0, Write("x", 1), Ok(200), 0, 1), e(1, Read("x"), Ok(200, 1), 2, 3)]
    assert regs(h, read_only=READ_ONLY["register"]) == Linearizable([0, 1])
    with pytest.raises(ValueError, match="declared read-only"):
        regs(h, read_only=lambda call, outcome: True)


# -- properties ----------------------------------------------------------------------------------

KEYS = ("x", "y")
REG_CALLS = st.one_of(
    st.builds(Write, st.sampled_from(KEYS), st.integers(1, 3)),
    st.builds(Read, st.sampled_from(KEYS)),
    st.builds(WriteAny, st.sampled_from(KEYS), st.just((1, 2))),
)
IDS = ("w1", "w2")
RBEE_CALLS = st.one_of(st.sampled_from(IDS).map(register), st.sampled_from(IDS).map(ShutdownWorker))
TIMEOUT = Indeterminate("timeout")


def reg_outcomes(call: Any) -> list[Outcome]:
    if isinstance(call, Read):
        return [*(Ok(200, v) for v in range(4)), Fail(500), TIMEOUT]
    return [Ok(200), Fail(500), TIMEOUT]


def rbee_outcomes(call: Any) -> list[Outcome]:
    if isinstance(call, RegisterWorker):
        return [Ok(201), Fail(409), TIMEOUT]
    return [Ok(200), Fail(404), TIMEOUT]


MODELS = {
    "register": (REG_CALLS, reg_outcomes, reg_step, EMPTY),
    "rbee": (RBEE_CALLS, rbee_outcomes, step, ClusterState()),
}


@st.composite
def sequential(
    draw: Any, model: str, max_ops: int, stretch: int, min_ops: int = 0
) -> list[Entry[Any]]:
    """Ops run one at a time against the model, each with an outcome it allows, then each
    interval widened by up to ``stretch`` time units each side (op i ran in [3i, 3i+1])."""
    calls_st, outcomes, step_fn, state = MODELS[model]
    entries: list[Entry[Any]] = []
    for i in range(draw(st.integers(min_ops, max_ops))):
        call = draw(calls_st)
        options = [(o, s) for o in outcomes(call) for s in step_fn(state, call, o)]
        assume(options)
        outcome, state = draw(st.sampled_from(options))
        lo, hi = draw(st.integers(0, stretch)), draw(st.integers(0, stretch))
        entries.append(e(i, call, outcome, 3 * i - lo, 3 * i + 1 + hi))
    return entries


@st.composite
def random_history(draw: Any, model: str, max_ops: int) -> list[Entry[Any]]:
    """Random calls, random (often wrong) outcomes, random overlapping intervals."""
    calls_st, outcomes, _, _ = MODELS[model]
    entries = []
    for i in range(draw(st.integers(0, max_ops))):
        call = draw(calls_st)
        invoke = draw(st.integers(0, 12))
        complete = invoke + draw(st.integers(0, 6))
        entries.append(e(i, call, draw(st.sampled_from(outcomes(call))), invoke, complete))
    return entries


def verdicts(entries: Sequence[Entry[Any]], model: str) -> tuple[Any, Any, Any]:
    """The checker's verdict without and with read-only ops declared, and brute force's."""
    _, _, step_fn, initial = MODELS[model]
    fast = check_linearizable(entries, initial, step_fn)
    hinted = check_linearizable(entries, initial, step_fn, read_only=READ_ONLY[model])
    slow = brute_force(entries, initial, step_fn)
    note(f"checker: {fast!r}\nwith read_only: {hinted!r}\nbrute force: {slow!r}")
    return fast, hinted, slow


@pytest.mark.parametrize("model", sorted(MODELS))
@settings(deadline=None)
@given(data=st.data())
def test_a_history_run_one_op_at_a_time_is_linearizable_even_stretched(model, data):
    entries = data.draw(sequential(model, max_ops=40, stretch=data.draw(st.sampled_from([0, 4]))))
    _, _, step_fn, initial = MODELS[model]
    hint = READ_ONLY[model] if data.draw(st.booleans(), label="read_only") else None
    result = check_linearizable(entries, initial, step_fn, read_only=hint)
    assert isinstance(result, Linearizable), result
    assert_witness(entries, result.linearization, initial, step_fn)


@pytest.mark.parametrize("model", sorted(MODELS))
@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_one_corrupted_outcome_that_no_order_explains_is_found(model, data):
    entries = data.draw(sequential(model, max_ops=7, stretch=4, min_ops=2))
    _, outcomes, step_fn, initial = MODELS[model]
    wrong = [
        [*entries[:i], attrs.evolve(x, outcome=o), *entries[i + 1 :]]
        for i, x in enumerate(entries)
        for o in outcomes(x.call)
        if o != x.outcome
    ]
    # the first corruption (in a drawn order) that no order explains, by brute force
    order = data.draw(st.permutations(range(len(wrong))))
    brute = (
        wrong[j] for j in order if brute_force(wrong[j], initial, step_fn).verdict == "invalid"
    )
    corrupted = next(brute, None)
    assume(corrupted is not None)
    assert corrupted is not None
    hint = READ_ONLY[model] if data.draw(st.booleans(), label="read_only") else None
    result = check_linearizable(corrupted, initial, step_fn, read_only=hint)
    assert isinstance(result, NotLinearizable), result
    ids = [x.id for x in corrupted]
    assert result.window and set(result.window) <= set(ids)
    assert set(result.prefix) <= set(ids)
    # the prefix is a valid start of its partition: closed under real time, model-accepted
    by_id = {x.id: x for x in corrupted}
    prefix = [by_id[i] for i in result.prefix]
    assert all(p.key == result.key for p in prefix)
    assert_witness(prefix, result.prefix, initial, step_fn)
    part = [x for x in corrupted if x.key == result.key]
    assert all(x.id in result.prefix for p in prefix for x in part if precedes(x, p))
    assert any(w not in result.prefix for w in result.window)
    assert all(by_id[w].key == result.key for w in result.window)


@pytest.mark.parametrize("model", sorted(MODELS))
@settings(deadline=None, max_examples=150)
@given(data=st.data())
def test_the_checker_agrees_with_brute_force_on_small_random_histories(model, data):
    entries = data.draw(
        st.one_of(random_history(model, max_ops=7), sequential(model, max_ops=7, stretch=5))
    )
    fast, hinted, slow = verdicts(entries, model)
    event(f"verdict: {fast.verdict}, indeterminate ops: {sum(x.indeterminate for x in entries)}")
    assert fast.verdict == hinted.verdict == slow.verdict
    _, _, step_fn, initial = MODELS[model]
    for result in (fast, hinted):
        if isinstance(result, Linearizable):
            assert_witness(entries, result.linearization, initial, step_fn)
