"""The request schedule: an open model keeps sending on time while the server stalls, and counts
the stall in every request's latency; a closed model keeps exactly C requests in flight."""

from __future__ import annotations

import asyncio

import pytest

from rbee_props.errors import UsageError
from rbee_props.load.generator import Load, generate


def run(send_factory, load):
    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.01
        return await generate(send_factory(loop, start), load, start=start)

    return asyncio.run(main())


def test_open_model_sends_on_schedule_through_a_stall_and_counts_it_from_the_due_time():
    """Every answer waits until 0.5 s after the start (a paused server): the requests are still
    all sent at 100/s, and one due at t waits about 0.5 - t."""

    def factory(loop, start):
        async def send():
            await asyncio.sleep(max(start + 0.5 - loop.time(), 0))
            return "200"

        return send

    samples = run(factory, Load(rate=100, concurrency=None, duration=1.0))
    assert len(samples) == 100
    assert sorted(samples.intended) == pytest.approx([i / 100 for i in range(100)])
    first = samples.intended.index(0.0)
    assert samples.latency[first] >= 0.49
    assert samples.max_in_flight >= 40  # the stalled ones piled up instead of being skipped
    assert set(samples.outcome) == {"200"}


def test_closed_model_keeps_exactly_c_requests_in_flight():
    def factory(loop, start):
        async def send():
            await asyncio.sleep(0.02)
            return "200"

        return send

    samples = run(factory, Load(rate=None, concurrency=4, duration=0.5))
    assert samples.max_in_flight == 4
    assert 4 <= len(samples) <= 4 * (0.5 / 0.02 + 1)
    assert all(latency >= 0.019 for latency in samples.latency)


def test_a_request_past_its_timeout_counts_as_timeout_at_the_timeout():
    def factory(loop, start):
        async def send():
            await asyncio.sleep(60)
            return "200"

        return send

    samples = run(factory, Load(rate=20, concurrency=None, duration=0.2, timeout=0.3))
    assert samples.outcome == ["timeout"] * 4
    assert all(0.29 <= latency < 2.0 for latency in samples.latency)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"rate": None, "concurrency": None}, "give --rate R"),
        ({"rate": 0.0, "concurrency": None}, "--rate expects"),
        ({"rate": None, "concurrency": 0}, "--concurrency expects 1..10000"),
        ({"rate": 10.0, "concurrency": 20_000}, "--concurrency expects 1..10000"),
    ],
)
def test_a_load_needs_a_rate_or_a_concurrency_in_range(kwargs, says):
    with pytest.raises(UsageError, match=says):
        Load(duration=1.0, **kwargs)


def test_the_shape_is_described_in_words():
    assert Load(rate=200, concurrency=100, duration=60).describe() == (
        "open model, 200 req/s, at most 100 connections, 60s"
    )
    assert Load(rate=None, concurrency=100, duration=5).describe() == (
        "closed model, 100 requests in flight, 5s"
    )
