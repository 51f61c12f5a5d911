"""The request schedule of a load run: open model at a fixed rate, or closed model (L01).

Open model (``rate`` given): request *i* is due at ``i / rate`` seconds, whatever happened to
the others, so a stalled server meets the same arrivals a real one would and every request that
waits is measured from the moment it was due (no coordinated omission). ``concurrency`` then caps
the connections; a request that finds all of them busy waits, and that wait is part of its
latency.

Closed model (only ``concurrency``): that many users each send a request as soon as their last
one is answered, as ``wrk`` does. Latency is from the actual send, so a stall hides behind the
users that wait on it; it measures the highest throughput at that concurrency, not latency under
a given load.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import attrs

from rbee_props.errors import UsageError
from rbee_props.load.stats import Samples

__all__ = ["Load", "generate"]

#: connections of an open-model run when ``--concurrency`` is not given
DEFAULT_CONNECTIONS = 1000
MAX_CONCURRENCY = 10_000
MAX_RATE = 100_000.0


@attrs.frozen
class Load:
    """The shape of a run: requests/s (open model) and/or requests in flight, for how long.

    Raises:
        UsageError: neither rate nor concurrency is given, or one is out of range.
    """

    rate: float | None
    concurrency: int | None
    duration: float
    timeout: float = 10.0

    def __attrs_post_init__(self) -> None:
        if self.rate is None and self.concurrency is None:
            msg = "give --rate R (open model, requests/s), --concurrency C (closed model), or both"
            raise UsageError(msg)
        if self.rate is not None and not 0 < self.rate <= MAX_RATE:
            msg = f"--rate expects requests/s in (0, {MAX_RATE:g}], got {self.rate:g}"
            raise UsageError(msg)
        if self.concurrency is not None and not 1 <= self.concurrency <= MAX_CONCURRENCY:
            msg = f"--concurrency expects 1..{MAX_CONCURRENCY}, got {self.concurrency}"
            raise UsageError(msg)

    @property
    def open_model(self) -> bool:
        return self.rate is not None

    @property
    def connections(self) -> int:
        """How many connections the client may open."""
        return self.concurrency or DEFAULT_CONNECTIONS

    def describe(self) -> str:
        """``open model, 200 req/s, at most 100 connections, 60s`` and the like."""
        if self.rate is not None:
            shape = f"open model, {self.rate:g} req/s, at most {self.connections} connections"
        else:
            shape = f"closed model, {self.concurrency} requests in flight"
        return f"{shape}, {self.duration:g}s"


async def generate(send: Callable[[], Awaitable[str]], load: Load, *, start: float) -> Samples:
    """Run ``send`` on the schedule of ``load`` from loop time ``start``; every request's row.

    ``send`` makes one request and returns its outcome label; one that overruns
    ``load.timeout`` (counted from when it was due) is cancelled and counted as ``timeout``.
    """
    loop = asyncio.get_running_loop()
    samples = Samples()
    in_flight = 0

    async def one(due: float) -> None:
        nonlocal in_flight
        in_flight += 1
        samples.max_in_flight = max(samples.max_in_flight, in_flight)
        lag = loop.time() - due
        try:
            async with asyncio.timeout_at(due + load.timeout):
                outcome = await send()
        except TimeoutError:
            outcome = "timeout"
        finally:
            in_flight -= 1
        samples.add(due - start, max(lag, 0.0), loop.time() - due, outcome)

    if load.rate is not None:
        tasks: set[asyncio.Task[None]] = set()
        for i in range(math.ceil(load.duration * load.rate)):
            due = start + i / load.rate
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            task = loop.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    else:
        end = start + load.duration
        wait = start - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)

        async def user() -> None:
            while (now := loop.time()) < end:
                await one(now)

        await asyncio.gather(*(user() for _ in range(load.connections)))
    return samples
