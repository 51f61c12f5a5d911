"""The queen's worker registry (memory, §6) and its eviction loop (D3 ii and iii).

Two background loops run every health interval: one probes ``GET {url}/health`` of each
registered worker (a failure is a connection error, a non-200 or a reply naming another
``worker_id``; N in a row evict), the other reconciles with every beehive's
``/v1/workers/list`` (a queen worker of that node the hive no longer lists is removed).
Planted bugs: ``ghost-after-kill`` evicts nothing; ``hive-restart-no-reconcile`` skips
reconciliation and worker identity.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from rbee_props.reference._http import ApiError
from rbee_props.reference._ticker import every_interval

__all__ = ["Monitor", "WorkerEntry", "WorkerRegistry"]

log = logging.getLogger("rbee_props.reference.queen.workers")

STATES = ("loading", "idle", "busy")


@dataclass(eq=False)
class WorkerEntry:
    """One registered worker; identity matters, so a re-registration is a new object."""

    worker_id: str
    url: str
    model_ref: str
    backend: str
    node_name: str
    device: int
    slots_total: int = 1
    vram_bytes: int | None = None
    state: str = "idle"
    slots_available: int = 1
    in_flight: int = 0
    slot_changes: int = 0
    failures: int = 0
    registered_at: float = field(default_factory=time.monotonic)

    def summary(self) -> dict[str, Any]:
        """The ``/v2/workers/list`` item."""
        return {
            "worker_id": self.worker_id,
            "node": self.node_name,
            "state": self.state,
            "model_ref": self.model_ref,
            "url": self.url,
            "backend": self.backend,
            "device": self.device,
            "slots_total": self.slots_total,
            "slots_available": self.slots_available,
        }

    def take_slot(self) -> None:
        """The queen sent it a request: cache it as busy once every slot is in use."""
        self.in_flight += 1
        self.slot_changes += 1
        self.slots_available = max(self.slots_total - self.in_flight, 0)
        if self.in_flight >= self.slots_total:
            self.state = "busy"

    def free_slot(self) -> None:
        self.in_flight = max(self.in_flight - 1, 0)
        self.slot_changes += 1
        self.slots_available = max(self.slots_total - self.in_flight, 0)
        if self.state == "busy" and self.in_flight < self.slots_total:
            self.state = "idle"

    def absorb(self, reply: dict[str, Any]) -> None:
        """Take state and slots from a health reply when they look right."""
        state = reply.get("state")
        if state in STATES:
            self.state = state
        available = reply.get("slots_available")
        if isinstance(available, int) and not isinstance(available, bool):
            self.slots_available = min(max(available, 0), self.slots_total)


class WorkerRegistry:
    """Workers by id, in memory. Handlers run on one event loop, so no lock is needed."""

    def __init__(self) -> None:
        self.workers: dict[str, WorkerEntry] = {}

    def get(self, worker_id: str) -> WorkerEntry | None:
        return self.workers.get(worker_id)

    def put(self, entry: WorkerEntry) -> None:
        self.workers[entry.worker_id] = entry

    def remove(self, entry: WorkerEntry, reason: str) -> bool:
        """Remove ``entry`` if it is still the registered one (not a newer registration)."""
        if self.workers.get(entry.worker_id) is not entry:
            return False
        del self.workers[entry.worker_id]
        log.info("worker %s removed: %s", entry.worker_id, reason)
        return True

    def all(self) -> list[WorkerEntry]:
        return sorted(self.workers.values(), key=lambda w: w.worker_id)

    def idle(self, *, model: str | None = None, node: str | None = None) -> list[WorkerEntry]:
        """Idle workers of ``model`` on ``node`` (either may be None: any), least loaded first."""
        found = [
            w
            for w in self.workers.values()
            if w.state == "idle"
            and (model is None or w.model_ref == model)
            and (node is None or w.node_name == node)
        ]
        return sorted(found, key=lambda w: (w.in_flight, w.worker_id))


class Monitor:
    """The sweep: health probes and hive reconciliation every ``health_interval``."""

    def __init__(
        self,
        registry: WorkerRegistry,
        client: httpx.AsyncClient,
        beehives: Callable[[], Awaitable[list[dict[str, Any]]]],
        *,
        timings: dict[str, Any],
        bugs: frozenset[str],
    ) -> None:
        self.registry = registry
        self.client = client
        self.beehives = beehives
        self.interval: float = timings["health_interval"]
        self.timeout: float = timings["health_timeout"]
        self.failures: int = timings["health_failures"]
        self.evict = "ghost-after-kill" not in bugs
        self.reconcile_hives = "hive-restart-no-reconcile" not in bugs
        self.check_identity = "hive-restart-no-reconcile" not in bugs

    async def run(self) -> None:
        """Probe and reconcile forever; cancelled at shutdown."""
        # two loops, so a hive that hangs until the timeout does not delay the worker checks
        await asyncio.gather(
            every_interval(self.interval, self.probe_all),
            every_interval(self.interval, self.reconcile_all),
        )

    # -- D3 (ii): N failed health checks in a row ----------------------------------------------
    async def probe_all(self) -> None:
        entries = self.registry.all()
        if entries:
            await asyncio.gather(*(self.probe(entry) for entry in entries))

    async def probe(self, entry: WorkerEntry) -> None:
        changes = entry.slot_changes
        reply = await self._health(entry)
        if self.registry.get(entry.worker_id) is not entry:
            return  # removed or re-registered meanwhile
        if reply is not None:
            entry.failures = 0
            if entry.slot_changes == changes:  # a reply older than our own routing is stale
                entry.absorb(reply)
            return
        entry.failures += 1
        log.info("worker %s failed health check %d", entry.worker_id, entry.failures)
        if entry.failures >= self.failures and self.evict:
            self.registry.remove(entry, f"{entry.failures} failed health checks")

    async def _health(self, entry: WorkerEntry) -> dict[str, Any] | None:
        """The health reply, or None when the probe failed."""
        try:
            response = await self.client.get(f"{entry.url}/health", timeout=self.timeout)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            reply = response.json()
        except ValueError:
            return {}
        if not isinstance(reply, dict):
            return {}
        named = reply.get("worker_id")
        if self.check_identity and named is not None and named != entry.worker_id:
            return None  # another worker answers on this port
        return reply

    # -- D3 (iii): reconciliation with each hive -----------------------------------------------
    async def reconcile_all(self) -> None:
        if not self.reconcile_hives:
            return
        try:
            nodes = await self.beehives()
        except ApiError:  # the beehive store is down: try again next sweep
            log.warning("reconciliation skipped: beehive store unavailable")
            return
        if nodes:
            await asyncio.gather(*(self.reconcile(node) for node in nodes))

    async def reconcile(self, node: dict[str, Any]) -> None:
        started = time.monotonic()
        url = f"http://{node['ssh_host']}:{node['hive_port']}/v1/workers/list"
        try:
            response = await self.client.get(url, timeout=self.timeout)
        except httpx.HTTPError:
            return  # hive unreachable: its workers' own checks decide
        if response.status_code != 200:
            return
        try:
            listed = response.json()["workers"]
            ids = {w.get("id", w.get("worker_id")) for w in listed}
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        for entry in self.registry.all():
            if (
                entry.node_name == node["node_name"]
                and entry.worker_id not in ids
                and entry.registered_at < started
                and self.evict
            ):
                self.registry.remove(entry, f"hive {node['node_name']} no longer lists it")
