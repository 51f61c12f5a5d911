"""The hive's worker registry: spawning, health monitor, eviction, queen registration.

An entry leaves the registry only together with its process (contract §6): shutdown route or
SIGTERM, SIGKILL by pid after the kill grace, wait for the exit, then the entry and its pid file
go, and only then may the port be handed out again. Planted bugs that live here:
``evict-without-kill``, ``wrong-health-path``, ``lost-update``, ``no-auth-internal``,
``sigterm-orphans`` and ``port-reuse-orphan``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rbee_props.reference._hive_procs import WORKER_HOST, child_env, port_free, wait_exit
from rbee_props.reference._http import ApiError
from rbee_props.reference._ticker import every_interval

__all__ = ["HiveConfig", "Worker", "WorkerRegistry"]

log = logging.getLogger("rbee_props.reference.hive.workers")

SPAWN_CHECK_SECONDS = 0.1
#: the registry fields of an entry (what ``lost-update`` writes back from its stale read)
ENTRY_FIELDS = ("state", "slots_available", "last_activity", "failed_health_checks", "status")


@dataclass
class HiveConfig:
    """What the registry needs from the command line."""

    name: str
    queen_url: str
    callback_url: str
    token: str
    token_file: str | None
    data_dir: Path
    ports: tuple[int, int]
    default_slots: int
    timings: dict[str, Any]
    bugs: frozenset[str]
    #: where workers listen, and the host in their URLs (``--advertise-host``)
    worker_bind: str = WORKER_HOST
    advertise_host: str = WORKER_HOST

    @property
    def workers_dir(self) -> Path:
        return self.data_dir / "workers"


@dataclass
class Worker:
    """One registry entry (WorkerInfo plus what the hive needs to manage the process)."""

    id: str
    port: int
    model_ref: str
    backend: str
    device: int
    slots_total: int
    proc: subprocess.Popen[bytes]
    state: str = "loading"
    slots_available: int = 0
    last_activity: float = field(default_factory=time.time)
    failed_health_checks: int = 0
    status: str = "healthy"
    answered: bool = False
    registering: bool = False
    spawned_at: float = field(default_factory=time.monotonic)
    stopping: bool = False
    host: str = WORKER_HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def info(self) -> dict[str, Any]:
        secs = int(self.last_activity)
        return {
            "id": self.id,
            "url": self.url,
            "model_ref": self.model_ref,
            "backend": self.backend,
            "device": self.device,
            "state": self.state,
            "slots_total": self.slots_total,
            "slots_available": self.slots_available,
            "last_activity": {
                "secs_since_epoch": secs,
                "nanos_since_epoch": int((self.last_activity - secs) * 1e9),
            },
            "failed_health_checks": self.failed_health_checks,
            "pid": self.proc.pid,
            "restart_count": 0,
            "last_restart": None,
        }


class WorkerRegistry:
    """Hive workers in memory (empty after a restart) and the processes behind them."""

    def __init__(self, config: HiveConfig) -> None:
        self.cfg = config
        self.t = config.timings
        self.bugs = config.bugs
        self.workers: dict[str, Worker] = {}
        self.pending_ports: set[int] = set()
        self.starting: dict[str, asyncio.Event] = {}
        self.spawn_lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.client: httpx.AsyncClient | None = None
        self.monitor_task: asyncio.Task[None] | None = None
        self.sweeps = 0

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        assert self.client is not None
        return self.client

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.cfg.token}"}

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def start(self) -> None:
        self.client = httpx.AsyncClient(trust_env=False)
        self.monitor_task = asyncio.create_task(self._monitor())

    # -- spawn and ready --------------------------------------------------------------------

    def _choose_port(self) -> int:
        held = {w.port for w in self.workers.values()} | self.pending_ports
        low, high = self.cfg.ports
        for port in range(low, high + 1):
            if port in held:
                continue
            # bug: port-reuse-orphan asks the registry only, not the OS
            if "port-reuse-orphan" in self.bugs or port_free(port, self.cfg.worker_bind):
                return port
        raise ApiError(503, "NO_PORTS_AVAILABLE", "no free worker port")

    async def spawn(self, model_ref: str, backend: str, device: int, slots: int) -> Worker:
        async with self.spawn_lock:
            port = self._choose_port()
            self.pending_ports.add(port)
        try:
            return await self._spawn_on(port, model_ref, backend, device, slots)
        finally:
            self.pending_ports.discard(port)

    async def _spawn_on(
        self, port: int, model_ref: str, backend: str, device: int, slots: int
    ) -> Worker:
        worker_id = f"worker-{uuid.uuid4()}"
        wdir = self.cfg.workers_dir
        cmd = [
            sys.executable, "-m", "rbee_props.reference.worker",
            "--worker-id", worker_id, "--model-ref", model_ref, "--backend", backend,
            "--device", str(device), "--port", str(port), "--host", self.cfg.worker_bind,
            "--callback-url", self.cfg.callback_url, "--slots", str(slots),
            "--load-delay", str(self.t["load_delay"]),
            "--token-delay", str(self.t["token_delay"]),
            "--kill-grace", str(self.t["kill_grace"]),
        ]  # fmt: skip
        if self.cfg.token_file:
            cmd += ["--token-file", self.cfg.token_file]  # the path, never the token itself
        try:
            wdir.mkdir(parents=True, exist_ok=True)
            with (wdir / f"{worker_id}.log").open("ab") as out:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=child_env(), close_fds=True,
                )  # fmt: skip
        except OSError as exc:
            log.error("cannot start worker %s: %s", worker_id, exc)
            raise ApiError(500, "SPAWN_FAILED", "worker process could not be started") from None
        pid_file = wdir / f"{worker_id}.pid"
        try:
            pid_file.write_text(f"{proc.pid}\n")
        except OSError as exc:
            log.error("cannot write pid file of %s: %s", worker_id, exc)
        started = self.starting[worker_id] = asyncio.Event()
        try:
            await asyncio.sleep(SPAWN_CHECK_SECONDS)
            if proc.poll() is not None:
                pid_file.unlink(missing_ok=True)
                log.warning("worker %s exited at once (code %s)", worker_id, proc.returncode)
                raise ApiError(500, "SPAWN_FAILED", "worker process exited during start-up")
            worker = Worker(
                worker_id, port, model_ref, backend, device, slots, proc,
                host=self.cfg.advertise_host,
            )  # fmt: skip
            self.workers[worker_id] = worker
        finally:
            del self.starting[worker_id]
            started.set()
        log.info("spawned worker %s pid %d on port %d", worker_id, proc.pid, port)
        return worker

    async def ready(self, worker_id: str) -> bool:
        """Ready callback: loading -> idle; False for an unknown id under ``ready-unknown-200``."""
        if worker_id in self.starting:  # a callback faster than the spawn's start-up check
            await self.starting[worker_id].wait()
        worker = self.workers.get(worker_id)
        if worker is None:
            if "ready-unknown-200" in self.bugs:
                return False
            raise ApiError(404, "WORKER_NOT_FOUND", "no worker with this id")
        if worker.state != "loading":
            raise ApiError(409, "ILLEGAL_TRANSITION", "worker is not loading")
        worker.state = "idle"
        worker.slots_available = worker.slots_total
        worker.last_activity = time.time()
        log.info("worker %s ready", worker_id)
        self._background(self._register_at_queen(worker_id, retry=True))
        return True

    # -- queen registration (D3, D5, D11) ---------------------------------------------------

    async def _register(self, worker: Worker) -> bool | None:
        """One register call: True done, False refused (4xx), None retry later."""
        body = {
            "worker_id": worker.id,
            "url": worker.url,
            "model_ref": worker.model_ref,
            "backend": worker.backend,
            "device": worker.device,
            "node_name": self.cfg.name,
            "slots_total": worker.slots_total,
        }
        headers = {} if "no-auth-internal" in self.bugs else self.auth()  # bug: no token
        try:
            resp = await self.http.post(
                f"{self.cfg.queen_url}/v2/workers/register",
                json=body,
                headers=headers,
                timeout=max(self.t["health_timeout"], 1.0),
            )
        except httpx.HTTPError as exc:
            log.debug("queen unreachable registering %s: %s", worker.id, type(exc).__name__)
            return None
        if resp.status_code in (200, 201, 409):
            return True
        if resp.status_code >= 500:
            return None
        log.warning("queen refused to register %s: %d", worker.id, resp.status_code)
        return False

    async def _register_at_queen(self, worker_id: str, *, retry: bool) -> None:
        """Register once, or (``retry``) until the queen answers; one call per worker at a time."""
        first = self.workers.get(worker_id)
        if first is None or first.registering:
            return
        first.registering = True
        delay = 0.05
        try:
            while True:
                worker = self.workers.get(worker_id)
                if worker is None or worker.stopping or worker.state == "loading":
                    return
                if await self._register(worker) is not None or not retry:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, max(self.t["health_interval"], 0.05), 5.0)
        finally:
            first.registering = False

    # -- health monitor ---------------------------------------------------------------------

    async def _probe(self, worker: Worker) -> dict[str, Any] | None:
        path = "/v1/health" if "wrong-health-path" in self.bugs else "/health"  # bug B01
        try:
            resp = await self.http.get(
                worker.url + path, headers=self.auth(), timeout=self.t["health_timeout"]
            )
            body = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(body, dict) or body.get("worker_id") != worker.id:
            return None
        return body

    @staticmethod
    def _apply(worker: Worker, reply: dict[str, Any] | None) -> None:
        """Copy the probed fields into ``worker`` (busy and slots are authoritative there)."""
        if reply is None:
            if worker.answered or worker.state != "loading":
                worker.failed_health_checks += 1  # a loader not yet listening: ready timeout
            return
        worker.answered = True
        worker.failed_health_checks = 0
        worker.status = str(reply.get("status", "healthy"))
        if worker.state != "loading" and reply.get("state") in ("idle", "busy"):
            worker.state = reply["state"]
            if isinstance(reply.get("slots_available"), int):
                worker.slots_available = reply["slots_available"]
            if isinstance(reply.get("last_activity_unix"), int | float):
                worker.last_activity = float(reply["last_activity_unix"])

    async def _monitor(self) -> None:
        await every_interval(self.t["health_interval"], self._guarded_sweep)

    async def _guarded_sweep(self) -> None:
        try:
            await self._sweep()
        except Exception:  # the monitor must outlive any one bad sweep; logged, not hidden
            log.exception("health sweep failed")
        self.sweeps += 1

    async def _sweep(self) -> None:
        now = time.monotonic()
        probed: list[Worker] = []
        for worker in list(self.workers.values()):
            if worker.stopping:
                continue
            if worker.proc.poll() is not None:
                log.info("worker %s exited (code %s)", worker.id, worker.proc.returncode)
                self._drop(worker)
            elif worker.state == "loading" and now - worker.spawned_at > self.t["ready_timeout"]:
                self.evict(worker, "ready timeout", how="kill")
            else:
                probed.append(worker)
        lost_update = "lost-update" in self.bugs
        read_at_start = {w.id: copy.copy(w) for w in probed} if lost_update else {}
        replies = await asyncio.gather(*(self._probe(w) for w in probed))
        for worker, reply in zip(probed, replies, strict=True):
            if self.workers.get(worker.id) is not worker or worker.stopping:
                continue  # removed or being removed meanwhile
            if lost_update:  # bug B14: the entry read at sweep start, probed, written back whole
                stale = read_at_start[worker.id]
                self._apply(stale, reply)
                for name in ENTRY_FIELDS:
                    setattr(worker, name, getattr(stale, name))
                worker.answered = stale.answered
            else:
                self._apply(worker, reply)  # only the probed fields of the current entry
            self._after_probe(worker, reply)

    def _after_probe(self, worker: Worker, reply: dict[str, Any] | None) -> None:
        if worker.failed_health_checks >= self.t["health_failures"]:
            self.evict(worker, f"{worker.failed_health_checks} failed health checks", how="term")
        elif (
            worker.state == "idle"
            and worker.slots_available >= worker.slots_total
            and time.time() - worker.last_activity > self.t["idle_timeout"]
        ):
            self.evict(worker, "idle timeout", how="shutdown")
        elif reply is not None and worker.state != "loading" and worker.status != "shutting_down":
            # D3/D5: re-register ready workers, so a restarted queen is rebuilt (409 = known)
            self._background(self._register_at_queen(worker.id, retry=False))

    # -- eviction ---------------------------------------------------------------------------

    def _drop(self, worker: Worker) -> None:
        if self.workers.get(worker.id) is worker:
            del self.workers[worker.id]
        else:
            self.workers.pop(worker.id, None)
        (self.cfg.workers_dir / f"{worker.id}.pid").unlink(missing_ok=True)

    def evict(self, worker: Worker, reason: str, *, how: str) -> None:
        """Start removing ``worker``: its entry goes once its process is gone."""
        if worker.stopping:
            return
        worker.stopping = True
        log.info("evicting worker %s: %s", worker.id, reason)
        if "evict-without-kill" in self.bugs:  # bug B17: the entry goes, the process stays
            self._drop(worker)
            return
        self._background(self.stop(worker, how=how))

    async def stop(self, worker: Worker, *, how: str) -> None:
        """Stop the process (shutdown route, SIGTERM or SIGKILL), SIGKILL after the grace."""
        worker.stopping = True
        proc = worker.proc
        if proc.poll() is None:
            if how == "shutdown" and not await self._shutdown_route(worker):
                how = "term"
            if how in ("term", "kill"):
                proc.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
            if not await wait_exit(proc, self.t["kill_grace"]):
                log.warning("worker %s outlived the kill grace: SIGKILL", worker.id)
                proc.kill()
                await wait_exit(proc, 5.0)
        self._drop(worker)

    async def _shutdown_route(self, worker: Worker) -> bool:
        try:
            resp = await self.http.post(
                worker.url + "/v1/admin/shutdown",
                headers=self.auth(),
                timeout=max(self.t["health_timeout"], 0.5),
            )
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    # -- hive shutdown (D4) -----------------------------------------------------------------

    async def close(self, budget: float) -> None:
        """Cascade: stop every worker in parallel within ``budget`` seconds, then SIGKILL."""
        if self.monitor_task is not None:
            self.monitor_task.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if "sigterm-orphans" in self.bugs:  # bug B18: exit, leaving the workers running
            log.info("exiting without stopping %d workers", len(self.workers))
        else:
            workers = list(self.workers.values())
            log.info("stopping %d workers", len(workers))
            stops = asyncio.gather(*(self.stop(w, how="shutdown") for w in workers))
            try:
                await asyncio.wait_for(stops, timeout=max(budget, 0.1))
            except TimeoutError:
                for worker in workers:
                    if worker.proc.poll() is None:
                        worker.proc.kill()
                    worker.proc.wait(5)
                    self._drop(worker)
        if self.client is not None:
            await self.client.aclose()
