"""Durations and fault schedules: what ``--duration`` and ``--faults`` accept, and fault windows."""

from __future__ import annotations

import asyncio
import time

import pytest

from rbee_props.errors import UsageError
from rbee_props.load.schedule import (
    FaultRecord,
    FaultWindow,
    check_targets,
    fault_windows,
    parse_duration,
    parse_schedule,
    required_faults,
    run_faults,
)
from rbee_props.stack import Fault, Stack


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60", 60.0), ("60s", 60.0), ("250ms", 0.25), ("1.5m", 90.0), ("2h", 7200.0), (" 3s ", 3.0)],
)
def test_durations_in_every_unit(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5s", "5 s", "5d", "0s", "1e3"])
def test_a_bad_duration_says_what_is_expected(text):
    with pytest.raises(UsageError, match=r"--duration expects a duration .* like 250ms"):
        parse_duration(text)


def test_zero_is_a_time_but_not_a_duration():
    assert parse_duration("0s", option="at", allow_zero=True) == 0.0
    with pytest.raises(UsageError, match="more than 0"):
        parse_duration("0s")


def test_a_held_fault_is_undone_after_its_hold_and_steps_come_in_time_order():
    steps = parse_schedule("restart:queen@20s,kill:hive1@10s+5s,pause:hive2@1s+250ms")
    assert [(s.action, s.target, s.at) for s in steps] == [
        ("pause", "hive2", 1.0),
        ("resume", "hive2", 1.25),
        ("kill", "hive1", 10.0),
        ("start", "hive1", 15.0),
        ("restart", "queen", 20.0),
    ]
    assert [s.is_undo for s in steps] == [False, True, False, True, False]
    assert steps[3].undoes == steps[2].key


def test_links_slow_delays_and_heal():
    partition, slow, heal, heal_undo = parse_schedule(
        "partition:queen/hive1@1s,slow:queen/hive2:200ms@2s+1s,heal@2.5s"
    )[:4]
    assert (partition.action, partition.components) == ("partition", ("queen", "hive1"))
    assert (slow.action, slow.components, slow.delay_ms) == ("slow", ("queen", "hive2"), 200)
    assert slow.label == "slow queen/hive2 200ms"
    assert (heal.action, heal.target, heal.at) == ("heal", None, 2.5)
    assert (heal_undo.action, heal_undo.at) == ("heal", 3.0)
    assert required_faults([partition, slow, heal]) == {Fault.PARTITION, Fault.SLOW}


def test_no_schedule_is_no_fault():
    assert parse_schedule(None) == parse_schedule("  ") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("explode:hive1@1s", "has no action 'explode'"),
        ("kil:hive1@1s", "did you mean 'kill'"),
        ("kill@1s", "names no target for kill"),
        ("kill:hive1", "is not a fault step"),
        ("kill:hive1@soon", "expects a duration"),
        ("restart:queen@1s+2s", "holds restart, which nothing undoes"),
        ("partition:queen@1s", "needs a link a/b"),
        ("kill:queen/hive1@1s", "needs one component"),
        ("heal:queen@1s", "takes none"),
        ("slow:queen/hive1@1s", "gives slow no delay"),
        ("kill:hive1@1s,,kill:hive2@2s", "is empty"),
    ],
)
def test_a_bad_step_is_one_readable_error_with_the_syntax(text, says):
    with pytest.raises(UsageError) as info:
        parse_schedule(text)
    assert says in info.value.message
    assert "ACTION[:TARGET]@TIME[+HOLD]" in info.value.message or "expects" in info.value.message
    assert "\n" not in info.value.message


def test_targets_must_be_components_of_the_stack():
    components = ("queen", "hive1", "hive2")
    check_targets(parse_schedule("kill:hive2@1s,partition:queen/hive1@2s"), components)
    with pytest.raises(UsageError, match=r"names 'hive3'.*components are queen, hive1, hive2"):
        check_targets(parse_schedule("kill:hive3@1s"), components)
    with pytest.raises(UsageError, match="links a component to itself"):
        check_targets(parse_schedule("partition:hive1/hive1@1s"), components)


def record(action, target, started, finished=None):
    label = f"{action} {target}" if target else action
    return FaultRecord(action, target, label, started, started if finished is None else finished)


def test_windows_pair_each_fault_with_what_ended_it():
    records = [
        record("kill", "hive1", 1.0),
        record("pause", "queen", 2.0),
        record("partition", "queen/hive2", 2.5),
        record("resume", "queen", 3.0),
        record("start", "hive1", 4.0, 4.6),
        record("restart", "queen", 5.0, 5.8),
        record("heal", None, 6.0, 6.1),
        record("kill", "hive2", 7.0),
    ]
    assert fault_windows(records, end=9.0) == [
        FaultWindow("kill hive1", 1.0, 4.6),
        FaultWindow("pause queen", 2.0, 3.0),
        FaultWindow("partition queen/hive2", 2.5, 6.1),
        FaultWindow("restart queen", 5.0, 5.8),
        FaultWindow("kill hive2", 7.0, 9.0),
    ]


def test_a_restart_of_a_killed_component_ends_its_kill_window():
    records = [record("kill", "queen", 1.0), record("restart", "queen", 2.0, 2.5)]
    assert fault_windows(records, end=5.0) == [FaultWindow("kill queen", 1.0, 2.5)]


class SlowRestartStack(Stack):
    """Records the faults it is asked for; a restart takes 0.3 s, as a real one takes a while."""

    capabilities = frozenset(Fault)

    def __init__(self):
        self.calls = []

    def restart(self, component):
        time.sleep(0.3)
        self.calls.append(("restart", component))

    def pause(self, component):
        self.calls.append(("pause", component))

    def resume(self, component):
        self.calls.append(("resume", component))


def test_a_late_fault_is_still_held_for_its_full_hold():
    """The pause is due at 0.1 s but the restart before it runs until 0.3 s: the resume waits
    0.2 s after the pause really began, not until 0.3 s."""
    stack = SlowRestartStack()

    async def main():
        loop = asyncio.get_running_loop()
        steps = parse_schedule("restart:queen@0s,pause:hive1@0.1s+0.2s")
        return await run_faults(stack, steps, start=loop.time(), clock=loop.time)

    restart, pause, resume = asyncio.run(main())
    assert stack.calls == [("restart", "queen"), ("pause", "hive1"), ("resume", "hive1")]
    assert pause.started >= 0.29
    assert resume.started - pause.started >= 0.2
    assert restart.error is pause.error is resume.error is None
