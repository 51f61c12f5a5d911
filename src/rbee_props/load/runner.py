"""One load run against a started stack: workers, warm-up, resources, load with faults, figures.

``run_load(stack, spec)`` is what ``rbee-props load`` calls between starting and stopping the
stack, and what a campaign or a benchmark calls with a stack of its own:

1. spawn idle workers when the route needs them (inference);
2. warm up at the same load, unmeasured, so first-use allocations are not taken for a leak;
3. read the processes' RSS and descriptors (settled);
4. run the load from its schedule while the fault steps happen at their times;
5. read them again once the faults are undone and the connections closed, and compare (L02).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from rbee_props.errors import UsageError
from rbee_props.load._http import HttpPool, RequestFailed
from rbee_props.load.generator import Load, generate
from rbee_props.load.resources import Change, compare, settled_snapshot
from rbee_props.load.routes import Route
from rbee_props.load.schedule import (
    FaultRecord,
    FaultStep,
    check_targets,
    fault_windows,
    required_faults,
    run_faults,
)
from rbee_props.load.stats import LoadStats, Samples, summarize
from rbee_props.load.workers import spawn_workers
from rbee_props.stack import Stack

__all__ = ["LoadResult", "LoadSpec", "check_spec", "run_load"]

#: seconds between creating the event loop and the first request (connections are lazy)
_LEAD = 0.05
MAX_WORKERS = 64


@attrs.frozen
class LoadSpec:
    """What to run: the route, the load, the faults, and for inference the workers.

    Attributes:
        warmup: seconds of unmeasured load before the resources are read (None: a tenth of
            the duration, at most 5 s).
    """

    route: Route
    load: Load
    faults: tuple[FaultStep, ...] = ()
    workers: int = 2
    slots: int = 4
    warmup: float | None = None

    def __attrs_post_init__(self) -> None:
        late = [s for s in self.faults if s.at >= self.load.duration and not s.is_undo]
        if late:
            msg = (
                f"--faults step {late[0].text!r} starts at {late[0].at:g}s, not before the end "
                f"of the {self.load.duration:g}s run; schedule it earlier or run longer"
            )
            raise UsageError(msg)
        if not 1 <= self.workers <= MAX_WORKERS:
            msg = f"--workers expects 1..{MAX_WORKERS}, got {self.workers}"
            raise UsageError(msg)
        if not 1 <= self.slots <= 1024:
            msg = f"--slots expects 1..1024 (contract §5.2), got {self.slots}"
            raise UsageError(msg)

    @property
    def warmup_seconds(self) -> float:
        return min(5.0, self.load.duration / 10) if self.warmup is None else self.warmup


@attrs.frozen
class LoadResult:
    """Everything a run measured (see :meth:`to_json` for the file ``--json`` writes)."""

    spec: LoadSpec
    stats: LoadStats
    faults: tuple[FaultRecord, ...]
    resources: tuple[Change, ...]
    workers: tuple[str, ...]
    started_unix: float
    target: str

    def to_json(self) -> dict[str, Any]:
        load = self.spec.load
        return {
            "route": {
                "name": self.spec.route.name,
                "method": self.spec.route.method,
                "path": self.spec.route.path,
            },
            "target": self.target,
            "model": "open" if load.open_model else "closed",
            "rate": load.rate,
            "concurrency": load.concurrency,
            "connections": load.connections,
            "duration": load.duration,
            "timeout": load.timeout,
            "warmup": self.spec.warmup_seconds,
            "workers": list(self.workers),
            "slots": self.spec.slots if self.workers else None,
            "started_unix": round(self.started_unix, 3),
            "stats": self.stats.to_json(),
            "faults": [attrs.asdict(record) for record in self.faults],
            "resources": [change.to_json() for change in self.resources],
            "leak_suspects": [c.name for c in self.resources if c.suspect],
        }


def check_spec(spec: LoadSpec, stack: Stack) -> None:
    """What can be checked before the stack starts: the backend supports each fault.

    Raises:
        UnsupportedFault: it does not (exit 2, with the faults it does support).
    """
    for fault in sorted(required_faults(spec.faults), key=lambda f: f.value):
        stack.require(fault)


def _endpoint(stack: Stack) -> tuple[str, int]:
    url = urlsplit(stack.urls["queen"])
    if url.scheme != "http" or not url.hostname:
        msg = f"load runs speak plain http to the queen; its URL is {stack.urls['queen']!r}"
        raise UsageError(msg)
    return url.hostname, url.port or 80


async def _drive(
    stack: Stack, spec: LoadSpec, load: Load, faults: Sequence[FaultStep]
) -> tuple[Samples, list[FaultRecord]]:
    host, port = _endpoint(stack)
    pool = HttpPool(host, port, max_connections=load.connections)
    route = spec.route
    headers = [("Authorization", f"Bearer {stack.token}")]
    if route.body is not None:
        headers.append(("Content-Type", "application/json"))
    hive = stack.hives[0] if stack.hives else "hive1"
    request = pool.encode(route.method, route.target(hive), headers, route.encoded_body())

    async def send() -> str:
        try:
            reply = await pool.request(request, idempotent=route.idempotent)
        except RequestFailed as exc:
            return exc.kind
        return route.outcome(reply.status, reply.body)

    loop = asyncio.get_running_loop()
    start = loop.time() + _LEAD
    fault_task = loop.create_task(run_faults(stack, faults, start=start, clock=loop.time))
    try:
        samples = await generate(send, load, start=start)
        records = await fault_task
    finally:
        fault_task.cancel()
        await pool.close()
    return samples, records


def run_load(stack: Stack, spec: LoadSpec) -> LoadResult:
    """Run ``spec`` against the started ``stack`` (steps in the module docstring).

    Raises:
        UsageError: a fault names a component the stack does not have.
        StackError: the workers an inference run needs could not be had.
    """
    check_spec(spec, stack)
    check_targets(spec.faults, stack.components)
    workers: list[str] = []
    if spec.route.needs_workers:
        workers = spawn_workers(stack, count=spec.workers, slots=spec.slots)
    if spec.warmup_seconds > 0:
        warm = attrs.evolve(spec.load, duration=spec.warmup_seconds)
        asyncio.run(_drive(stack, spec, warm, ()))
    before = settled_snapshot(stack)
    started = time.time()
    samples, records = asyncio.run(_drive(stack, spec, spec.load, spec.faults))
    after = settled_snapshot(stack)
    end = max([spec.load.duration, samples.last_end(), *(r.finished for r in records)])
    windows = fault_windows(records, end=end)
    title = f"{spec.route.method} {spec.route.path}: {spec.load.describe()}"
    return LoadResult(
        spec=spec,
        stats=summarize(samples, duration=spec.load.duration, windows=windows, title=title),
        faults=tuple(records),
        resources=tuple(compare(before, after)),
        workers=tuple(workers),
        started_unix=started,
        target=stack.urls["queen"],
    )
