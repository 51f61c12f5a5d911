"""Bursts without a stack: planning (generated lanes -> actions), shrinking inside a burst's
arguments, the timeline picture and what a burst finding exports."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings

from rbee_props.findings import Violation
from rbee_props.machines._burst import plan_burst, stream_tokens
from rbee_props.machines.concurrency import lanes as lanes_strategy
from rbee_props.model import ClusterState, HiveState, Worker
from rbee_props.repro import Finding, export_finding
from rbee_props.repro.replay import shrink_program
from rbee_props.repro.timeline import render_timeline, write_timeline

TIMINGS = {
    "spawn_timeout": 10.0,
    "kill_grace": 1.0,
    "health_timeout": 0.25,
    "inference_timeout": 30.0,
    "token_delay": 0.002,
}
PNG = b"\x89PNG\r\n\x1a\n"


def state(*workers: Worker) -> ClusterState:
    return ClusterState(
        workers={w.worker_id: w for w in workers},
        hives={"hive1": HiveState(), "hive2": HiveState()},
    )


W1 = Worker("w1", "hive1", "spawned", "hf:a/b", url="http://127.0.0.1:1")
P1 = Worker("p1", "phantom-node", "phantom", "hf:rbee/phantom", url="http://127.0.0.1:2")


def plan(lanes: Sequence[Sequence[Mapping[str, Any]]], *workers: Worker, **options: Any) -> Any:
    leased: list[str] = []
    ids = iter(range(1, 100))
    options.setdefault("slots", lambda worker: (1, 1))
    result = plan_burst(
        lanes,
        models=[state(*workers)],
        hives=("hive1", "hive2"),
        lease=lambda worker_id: leased.append(worker_id) or f"http://127.0.0.1:9{len(leased)}",
        fresh_id=lambda prefix: f"{prefix}-{next(ids)}",
        admission_bound=1.0,
        timings=TIMINGS,
        **options,
    )
    return result, leased


def labels(result: Any) -> list[list[str]]:
    return [[a.label for a in lane] for lane in result.lanes]


def test_ops_on_workers_are_skipped_when_there_is_none_and_empty_lanes_dropped():
    result, _ = plan([[{"op": "shutdown", "worker": 3}], [{"op": "list_queen"}]])
    assert labels(result) == [["list_queen"]]


def test_a_label_is_one_fresh_id_leased_once_per_burst():
    lanes = [
        [{"op": "register_new", "label": 1}],
        [{"op": "register_new", "label": 1}, {"op": "shutdown_new", "label": 1}],
        [{"op": "register_new", "label": 2}],
    ]
    result, leased = plan(lanes)
    assert labels(result) == [["register new"], ["register new", "shutdown new"], ["register new"]]
    assert leased == ["phantom-1", "phantom-2"]


def test_spawns_are_capped_per_burst_and_by_live_workers():
    spawn = {"op": "spawn", "hive": 1, "slots": 1}
    result, _ = plan([[spawn], [spawn], [spawn]], max_spawns=2)
    assert labels(result) == [["spawn hive2"], ["spawn hive2"]]
    result, _ = plan([[spawn], [spawn]], W1, max_live=2)
    assert result.spawns == 1


def test_inferences_target_spawned_workers_and_stream_long_when_oversubscribed():
    infer = {"op": "infer", "worker": 0}
    result, _ = plan([[infer], [infer], [{"op": "infer", "worker": 1}]], W1, P1)
    assert labels(result) == [["infer"]] * 3  # worker 1 of the spawned ones is w1 again
    assert plan([[infer]], P1)[0].lanes == []  # a phantom's slots cannot be read
    assert result.workers == {"w1": W1.url}
    assert result.world.views["w1"][0].slots == 1
    sent: list[int] = []
    worker = SimpleNamespace(inference=lambda **kw: sent.append(kw["max_tokens"]))
    clients = SimpleNamespace(workers={"w1": worker})
    for lane in result.lanes:
        lane[0].send(clients)
    assert sent == [stream_tokens(1.0, 0.002)] * 3 == [1250] * 3
    result, _ = plan([[infer]], W1, P1)  # one inference, one free slot: a short stream
    result.lanes[0][0].send(clients)
    assert sent[-1] < 10


@settings(max_examples=50, deadline=None)
@given(lanes_strategy())
def test_every_generated_burst_plans_without_error(lanes: Any):
    result, _ = plan(lanes, W1, P1)
    assert len(result.lanes) <= len(lanes)
    assert all(lane for lane in result.lanes)
    json.dumps(lanes)  # generated data is plain JSON, as programs are recorded


def test_shrinking_drops_lanes_then_ops_inside_a_burst():
    program = [
        {"rule": "first_workers", "args": {}},
        {
            "rule": "burst",
            "args": {
                "lanes": [
                    [{"op": "list_queen"}, {"op": "infer", "worker": 0}],
                    [{"op": "register_new", "label": 0}],
                    [{"op": "infer", "worker": 0}, {"op": "spawn", "hive": 0, "slots": 1}],
                    [{"op": "list_hive", "hive": 1}],
                ]
            },
        },
    ]

    def fails(candidate: Sequence[Mapping[str, Any]]) -> Any:
        lanes = [lane for s in candidate if s["rule"] == "burst" for lane in s["args"]["lanes"]]
        infers = [lane for lane in lanes if any(o["op"] == "infer" for o in lane)]
        if len(infers) >= 2 and any(s["rule"] == "first_workers" for s in candidate):
            return SimpleNamespace(violation=SimpleNamespace(invariant="S16"))
        return None

    shrunk, failure = shrink_program(program, fails, invariant="S16", budget=30)
    assert failure is not None
    assert shrunk == [
        {"rule": "first_workers", "args": {}},
        {"rule": "burst", "args": {"lanes": [[{"op": "infer", "worker": 0}]] * 2}},
    ]


# -- the timeline and the export ----------------------------------------------------------------


def burst_history() -> list[dict[str, Any]]:
    def op(index: int, lane: int, kind: str, t0: float, t1: float, **fields: Any) -> dict:
        return {
            "index": index, "lane": lane, "kind": kind, "service": "worker:w1", "method": "POST",
            "path": "/v1/inference", "args": {}, "invoke": t0, "complete": t1, "outcome": "Ok",
            "status": 200, "body": None, "reason": "", "request": None, "headers": {}, **fields,
        }  # fmt: skip

    return [
        op(0, 0, "health", 0.0, 0.01, method="GET", path="/health"),
        op(1, 1, "inference", 1.0, 3.6),
        op(2, 2, "inference", 1.001, 6.2),
        op(3, 3, "inference", 1.002, 1.03, outcome="Indeterminate", status=None, reason="cut"),
        op(4, 0, "list_workers", 6.3, 6.31, service="hive1", method="GET"),
    ]


def test_the_timeline_is_a_png_of_the_burst_s_ops():
    png = render_timeline(burst_history(), burst=(1, 4), window=[1, 2], title="S16")
    assert png.startswith(PNG) and len(png) > 5000
    with pytest.raises(ValueError, match="no op"):
        render_timeline(burst_history(), burst=(10, 12))


def test_no_timeline_without_a_burst(tmp_path: Path):
    assert write_timeline({}, burst_history(), tmp_path) is None
    assert write_timeline({"burst": [50, 60]}, burst_history(), tmp_path) is None
    assert not (tmp_path / "timeline.png").exists()


def test_a_burst_finding_exports_its_timeline_and_a_repeated_replay(tmp_path: Path):
    violation = Violation(
        "S16",
        explains="k slots, n inferences: min(n, k) run.",
        expected="an order",
        observed="no such order",
        op_kinds=("first_workers", "burst"),
        step=1,
        details={"window": [1, 2], "prefix": [1], "burst": [1, 4], "lanes": 3,
                 "explanation": "partition key='w1': stuck"},
    )  # fmt: skip
    program = [
        {"rule": "first_workers", "args": {}},
        {"rule": "burst", "args": {"lanes": [[{"op": "infer", "worker": 0}]] * 2}},
    ]
    finding = Finding(violation, program, burst_history(), machine="concurrent", bugs=("x",))
    directory = export_finding(finding, tmp_path)
    assert (directory / "timeline.png").read_bytes().startswith(PNG)
    report = (directory / "REPORT.md").read_text()
    assert "![One bar per operation, one row per lane](timeline.png)" in report
    assert "#1, #2" in report and "partition key='w1': stuck" in report
    test = (directory / "test_repro.py").read_text()
    assert "ATTEMPTS = 8" in test and "attempts=ATTEMPTS" in test
    compile(test, "test_repro.py", "exec")


def test_a_finding_without_a_burst_has_no_timeline(tmp_path: Path):
    violation = Violation("S02", explains="x", expected="409", observed="200", op_kinds=("a",))
    directory = export_finding(Finding(violation, [], burst_history()), tmp_path)
    assert not (directory / "timeline.png").exists()
    assert "Timeline" not in (directory / "REPORT.md").read_text()
    assert "ATTEMPTS" not in (directory / "test_repro.py").read_text()
