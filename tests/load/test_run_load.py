"""Load runs against the live reference stack: the schedule holds through faults, the stall is in
the latency, inference runs on spawned workers, and resources are compared."""

from __future__ import annotations

import pytest

from rbee_props.load import Load, LoadSpec, parse_schedule, route_named, run_load

pytestmark = pytest.mark.stack


def overlaps(series, index, window, slack):
    start = series.start[index]
    return start + series.width >= window.start - slack and start <= window.end + slack


def test_faults_happen_on_schedule_and_the_load_keeps_its_rate_through_them(local_stack):
    """~6 s. Pausing the queen holds requests, which then show the pause in their latency
    (measured from when they were due); killing it refuses requests only around the kill (its
    restart may take seconds on a busy machine: the window says how long)."""
    spec = LoadSpec(
        route=route_named("list"),
        load=Load(rate=100, concurrency=None, duration=3.5),
        faults=parse_schedule("pause:queen@0.5s+1s,kill:queen@2.5s+0.3s"),
        warmup=0.0,
    )
    result = run_load(local_stack, spec)
    stats = result.stats
    assert stats.requests == 350
    assert [r.label for r in result.faults] == [
        "pause queen", "resume queen", "kill queen", "start queen",
    ]  # fmt: skip
    assert all(r.error is None for r in result.faults)
    pause, kill = stats.series.windows
    assert (pause.label, kill.label) == ("pause queen", "kill queen")
    assert pause.end - pause.start >= 1.0
    assert stats.outcomes.get("refused", 0) > 0
    assert set(stats.outcomes) <= {"200", "refused", "reset"}
    series = stats.series
    for i, errors in enumerate(series.errors):
        if errors:
            assert overlaps(series, i, kill, slack=0.5), (series.start[i], kill)
    assert stats.latency_all.max >= 0.9  # a request due as the pause began waited it out
    stalled = [
        p99 for i, p99 in enumerate(series.p99) if p99 is not None and overlaps(series, i, pause, 0)
    ]
    assert max(stalled) >= 0.5
    queen = next(c for c in result.resources if c.name == "queen")
    assert "restarted" in queen.note
    hive = next(c for c in result.resources if c.name == "hive1")
    assert hive.before is not None and hive.after is not None


def test_inference_runs_on_workers_spawned_through_the_hives(local_stack):
    """~5 s: two workers of two slots, 40 requests/s for 2 s; every answer is a complete stream
    or an immediate 503 when all slots are taken (D10)."""
    spec = LoadSpec(
        route=route_named("inference"),
        load=Load(rate=40, concurrency=None, duration=2.0),
        workers=2,
        slots=2,
    )
    result = run_load(local_stack, spec)
    assert len(result.workers) == 2
    assert result.stats.requests == 80
    assert result.stats.ok > 0
    assert set(result.stats.outcomes) <= {"200", "503"}
    workers = next(c for c in result.resources if c.name == "workers")
    assert len(workers.before.pids) == 2
    assert workers.after is not None
    data = result.to_json()
    assert data["workers"] == list(result.workers)
    assert data["stats"]["outcomes"] == dict(result.stats.outcomes)
