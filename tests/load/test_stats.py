"""Exact percentiles, outcome counts and the per-interval series of a load run."""

from __future__ import annotations

import pytest

from rbee_props.load.schedule import FaultWindow
from rbee_props.load.stats import Percentiles, Samples, Series, interval_for, is_ok, summarize


def test_percentiles_are_exact_nearest_rank_values():
    figures = Percentiles.of([i / 1000 for i in range(1000, 0, -1)])  # 1 ms .. 1 s, shuffled order
    assert figures.n == 1000
    assert figures.p50 == pytest.approx(0.500)
    assert figures.p95 == pytest.approx(0.950)
    assert figures.p99 == pytest.approx(0.990)
    assert figures.p999 == pytest.approx(0.999)
    assert figures.max == pytest.approx(1.0)
    assert figures.mean == pytest.approx(0.5005)
    assert Percentiles.of([]) is None


def test_one_slow_request_in_a_hundred_is_the_p99_and_not_the_p95():
    figures = Percentiles.of([0.001] * 98 + [0.5, 2.0])
    assert figures.p95 == 0.001
    assert figures.p99 == 0.5
    assert figures.max == 2.0


def test_only_2xx_counts_as_ok():
    assert [is_ok(o) for o in ("200", "201", "200-incomplete", "503", "refused", "timeout")] == [
        True, True, False, False, False, False,
    ]  # fmt: skip


def samples_of(rows):
    samples = Samples()
    for intended, latency, outcome in rows:
        samples.add(intended, 0.0, latency, outcome)
    return samples


def test_summary_counts_outcomes_and_measures_ok_latency_apart():
    rows = [(i * 0.01, 0.002, "200") for i in range(90)]
    rows += [(0.9 + i * 0.01, 0.001, "refused") for i in range(5)]
    rows += [(0.95 + i * 0.01, 0.5, "503") for i in range(5)]
    stats = summarize(samples_of(rows), duration=1.0)
    assert stats.requests == 100
    assert stats.ok == 90
    assert stats.outcomes == {"200": 90, "503": 5, "refused": 5}
    assert stats.error_rate == pytest.approx(0.10)
    assert stats.latency_ok.max == pytest.approx(0.002)
    assert stats.latency_all.max == pytest.approx(0.5)
    assert stats.elapsed == pytest.approx(0.99 + 0.5)
    assert stats.throughput == pytest.approx(90 / stats.elapsed)


def test_series_puts_latency_where_a_request_was_due_and_throughput_where_it_completed():
    # ten requests per 0.1 s for 2 s; the ones due in [0.5, 0.6) wait until 1.5 s
    rows = []
    for i in range(200):
        due = i * 0.01
        latency = 1.5 - due if 0.5 <= due < 0.6 else 0.002
        rows.append((due, latency, "200"))
    window = FaultWindow("pause queen", 0.5, 1.5)
    stats = summarize(samples_of(rows), duration=2.0, windows=[window], title="t")
    series = stats.series
    assert series.width == interval_for(2.0) == 0.1
    stalled = series.start.index(0.5)
    assert series.p50[stalled] > 0.9
    assert series.max[stalled] == pytest.approx(1.0)
    assert series.throughput[stalled] == pytest.approx(0.0)
    assert series.throughput[series.start.index(1.5)] == pytest.approx(200.0)  # 10 + 10 late
    assert max(v for i, v in enumerate(series.p99) if i != stalled) < 0.01
    assert series.windows == (window,)


def test_a_series_survives_json():
    stats = summarize(samples_of([(0.0, 0.01, "200"), (0.5, 0.02, "503")]), duration=1.0)
    series = stats.series
    windowed = Series.from_json(
        {**series.to_json(), "windows": [{"label": "x", "start": 0, "end": 1}]}
    )
    assert Series.from_json(series.to_json()) == series
    assert windowed.windows == (FaultWindow("x", 0, 1),)


@pytest.mark.parametrize(
    ("duration", "width"), [(3, 0.1), (15, 0.1), (60, 0.5), (600, 5.0), (8 * 3600, 300.0)]
)
def test_long_runs_get_wider_intervals(duration, width):
    assert interval_for(duration) == width
