"""Fixed-rate background sweeps, shared by the queen's and the hive's health monitors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["every_interval"]


async def every_interval(interval: float, sweep: Callable[[], Awaitable[None]]) -> None:
    """Run ``sweep`` forever, one start every ``interval`` seconds (cancel to stop).

    A sweep starts one interval after the previous one started (or when it ends, if later),
    as a Tokio ``interval`` ticks in rbee: probes that hang until their timeout do not stretch
    the time to N failed checks beyond N intervals plus one timeout, which the grace window G
    of the contract (section 7) counts on.
    """
    loop = asyncio.get_running_loop()
    next_start = loop.time() + interval
    while True:
        await asyncio.sleep(max(next_start - loop.time(), 0))
        next_start = loop.time() + interval
        await sweep()
