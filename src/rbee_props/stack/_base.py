"""The ``Stack`` interface every backend implements, its faults, and the recovery barriers.

A backend declares the faults it can inject in ``capabilities``; calling another raises
:class:`~rbee_props.errors.UnsupportedFault`, and state machines switch such faults off by
precondition (``stack.supports(Fault.PAUSE)``). After a fault, ``wait_healthy`` and
``wait_until`` poll with backoff (never a bare sleep) and report how long recovery took.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx

from rbee_props.errors import ComponentDidNotStart, StackError, UnsupportedFault

__all__ = ["Fault", "Stack", "WaitTimedOut", "WorkerProcess", "poll_until"]


class Fault(enum.Enum):
    """Faults a backend may support; each has an inverse or heals by itself."""

    KILL = "kill"
    TERMINATE = "terminate"
    RESTART = "restart"
    PAUSE = "pause"
    KILL_WORKER = "kill_worker"
    PARTITION = "partition"
    SLOW = "slow"
    MEMORY = "memory"


@attrs.frozen
class WorkerProcess:
    """A worker process the stack can see: its pid, listening ports and, if known, its id."""

    pid: int
    ports: tuple[int, ...]
    worker_id: str | None
    hive: str | None
    orphan: bool = False


class WaitTimedOut(StackError):
    """A condition did not hold within its timeout; ``elapsed`` says how long was waited."""

    def __init__(self, message: str, *, elapsed: float, what: str) -> None:
        super().__init__(message, elapsed=elapsed, what=what)
        self.elapsed = elapsed
        self.what = what


def poll_until(
    predicate: Callable[[], bool],
    timeout: float,
    *,
    what: str = "condition",
    first_delay: float = 0.01,
    max_delay: float = 0.25,
    extend_while: Callable[[], bool] | None = None,
    at_most: float | None = None,
) -> float:
    """Poll ``predicate`` with exponential backoff; return the seconds until it held.

    ``extend_while``: while it returns True (asked after each failed poll), the deadline moves
    to ``timeout`` seconds from now, but never past ``at_most`` seconds from the start. It lets a
    grace window start when a slow transition ends (a worker still loading) rather than when the
    wait began.

    Raises:
        WaitTimedOut: it did not hold within ``timeout`` seconds (plus extensions).
    """
    start = time.monotonic()
    deadline = start + timeout
    cap = start + max(at_most if at_most is not None else timeout, timeout)
    delay = first_delay
    while True:
        if predicate():
            return time.monotonic() - start
        now = time.monotonic()
        if extend_while is not None and extend_while():
            deadline = min(max(deadline, now + timeout), cap)
        if now >= deadline:
            msg = f"{what} did not hold within {now - start:.3g}s"
            raise WaitTimedOut(msg, elapsed=now - start, what=what)
        time.sleep(min(delay, max(deadline - now, 0.001)))
        delay = min(delay * 1.6, max_delay)


class Stack:
    """One running rbee stack: URLs, token, components, faults and barriers.

    Subclasses implement ``start``/``stop`` and the faults named in ``capabilities``.
    """

    capabilities: frozenset[Fault] = frozenset()
    #: whether ``workers()`` shows the worker processes (process-registry agreement, S20/C09)
    sees_processes: bool = False
    #: whether the stack registered its hives as beehives itself (and may put them back)
    owns_beehives: bool = False
    #: hive -> (first, last) port of its worker range, where the test process shares the ports
    worker_ports: Mapping[str, tuple[int, int]] = {}
    #: the address at which the components reach the test process (its phantom workers)
    callback_host: str = "127.0.0.1"

    # -- what every backend provides ---------------------------------------------------------
    @property
    def urls(self) -> Mapping[str, str]:
        """Component name -> base URL the test client uses (``queen``, ``hive1``, ...)."""
        raise NotImplementedError

    @property
    def token(self) -> str:
        """The stack's API token (never print it: pass output through ``redact``)."""
        raise NotImplementedError

    @property
    def components(self) -> tuple[str, ...]:
        """Component names, queen first."""
        return tuple(self.urls)

    @property
    def hives(self) -> tuple[str, ...]:
        """The hive component names."""
        return tuple(c for c in self.components if c != "queen")

    health_paths: Mapping[str, str] = {}

    def start(self) -> Stack:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def supports(self, fault: Fault) -> bool:
        """Whether this backend can inject ``fault``."""
        return fault in self.capabilities

    def require(self, fault: Fault) -> None:
        if fault not in self.capabilities:
            have = ", ".join(sorted(f.value for f in self.capabilities)) or "none"
            msg = (
                f"the {type(self).__name__} backend cannot inject {fault.value!r} (it supports: "
                f"{have}); use a backend that can, or leave that fault out"
            )
            raise UnsupportedFault(msg, fault=fault.value)

    def workers(self) -> list[WorkerProcess]:
        """Worker processes the backend can see (empty when it cannot see processes)."""
        return []

    def ports_held_besides(self, worker_id: str) -> set[int]:
        """Ports other processes listen on where worker ``worker_id`` runs (S09 at a spawn).

        By default the ports of the other worker processes the backend sees; a backend that
        shares the host's network (local processes) knows every listener on it.
        """
        return {p for w in self.workers() if w.worker_id != worker_id for p in w.ports}

    # -- faults: default to "unsupported" -------------------------------------------------------
    def kill(self, component: str) -> None:
        """SIGKILL ``component`` (its workers stay, as after a real crash)."""
        self.require(Fault.KILL)

    def terminate(self, component: str) -> None:
        """SIGTERM ``component`` and wait for it to exit."""
        self.require(Fault.TERMINATE)

    def restart(self, component: str) -> None:
        """Stop ``component`` (if running) and start it again on the same port and data."""
        self.require(Fault.RESTART)

    def start_component(self, component: str) -> None:
        """Start a component that was killed or terminated (a no-op when it runs)."""
        self.require(Fault.RESTART)

    def recover(self) -> None:
        """Undo every fault and stop every worker: heal links, resume paused and start stopped
        components, kill worker processes (the reset between examples; registries then drain)."""
        if self.supports(Fault.PARTITION):
            self.heal()

    def add_beehives(self) -> None:
        """Register every hive as a beehive at the queen (only when ``owns_beehives``)."""

    def pause(self, component: str) -> None:
        """Freeze ``component`` (SIGSTOP / docker pause)."""
        self.require(Fault.PAUSE)

    def resume(self, component: str) -> None:
        """Undo :meth:`pause`."""
        self.require(Fault.PAUSE)

    def kill_worker(self, worker_id: str) -> None:
        """SIGKILL the process of worker ``worker_id``."""
        self.require(Fault.KILL_WORKER)

    def pause_worker(self, worker_id: str) -> None:
        """SIGSTOP the process of worker ``worker_id``: alive, but answering nothing."""
        self.require(Fault.PAUSE)

    def partition(self, a: str, b: str) -> None:
        """Cut the traffic between components ``a`` and ``b`` (both directions)."""
        self.require(Fault.PARTITION)

    def heal(self) -> None:
        """Undo every partition and slow link."""
        self.require(Fault.PARTITION)

    def slow(self, a: str, b: str, ms: int) -> None:
        """Delay the traffic between ``a`` and ``b`` by ``ms`` milliseconds per chunk."""
        self.require(Fault.SLOW)

    # -- barriers --------------------------------------------------------------------------------
    def is_healthy(self, component: str, *, timeout: float = 1.0) -> bool:
        """Whether ``component`` answers its health route with 200 right now."""
        url = self.urls[component] + self.health_paths.get(component, "/health")
        try:
            return httpx.get(url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float = 30.0, *, components: Any = None) -> float:
        """Wait until every component answers its health route; return the seconds it took.

        Raises:
            ComponentDidNotStart: one did not answer within ``timeout``.
        """
        start = time.monotonic()
        for name in components or self.components:
            left = max(timeout - (time.monotonic() - start), 0.0)
            try:
                poll_until(lambda n=name: self.is_healthy(n), left, what=f"{name} health")
            except WaitTimedOut as exc:
                msg = (
                    f"{name} did not answer its health route at {self.urls[name]} within "
                    f"{timeout:g}s; {self.describe_failure(name)}"
                )
                raise ComponentDidNotStart(msg, component=name) from exc
        return time.monotonic() - start

    def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        *,
        what: str = "",
        extend_while: Callable[[], bool] | None = None,
        at_most: float | None = None,
        max_delay: float = 0.25,
    ) -> float:
        """Poll ``predicate`` with backoff; return how long it took to hold (see ``poll_until``).

        Raises:
            WaitTimedOut: it did not hold within ``timeout`` (``elapsed`` on the error).
        """
        return poll_until(
            predicate, timeout, what=what or "condition", extend_while=extend_while,
            at_most=at_most, max_delay=max_delay,
        )  # fmt: skip

    def describe_failure(self, component: str) -> str:
        """A hint for a component that is not healthy (local: the last lines of its log)."""
        return "check that it is running"
