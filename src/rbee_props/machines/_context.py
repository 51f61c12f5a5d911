"""What every example of a machine shares: the running stack, its phantoms, and the recorder.

A :class:`MachineContext` lives for a whole session (pytest session, ``rbee-props run``): the
stack is started once and reset cheaply between examples, the phantom workers are started once,
and every violation raised by any example is kept, so a finding survives even when Hypothesis
later calls it flaky.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import httpx

from rbee_props.client._base import shared_tls
from rbee_props.config import Config
from rbee_props.findings import Violation
from rbee_props.machines.phantom import PhantomPool
from rbee_props.stack import Fault, Stack, WaitTimedOut

__all__ = ["Failure", "MachineContext", "StopRequested"]


class StopRequested(KeyboardInterrupt):
    """Raised between examples when ``MachineContext.should_stop()`` says so: like Ctrl-C,
    Hypothesis lets it through at once, without shrinking or reporting."""


@attrs.define
class Failure:
    """One failing example: the violation, the program that led to it, and its history."""

    violation: Violation
    program: list[dict[str, Any]]
    history: list[dict[str, Any]]
    seed: int | None = None


class MachineContext:
    """The session-wide side of the machines (see the module docstring)."""

    def __init__(self, stack: Stack, config: Config, *, phantoms: int = 8) -> None:
        self.stack = stack
        self.config = config
        self.phantoms = PhantomPool(phantoms, host=stack.callback_host)
        self.failures: list[Failure] = []
        self.listeners: list[socket.socket] = []
        self.examples = 0
        self.steps = 0
        self.resets: list[float] = []
        self.full_restarts = 0
        self._http: httpx.Client | None = None
        self.seed: int | None = None
        #: seeds of the fresh Hypothesis runs a run needed after an inconsistent generation
        self.fresh_starts: list[int | None] = []
        #: violations this returns True for are already reported (a campaign's known findings):
        #: the example is dropped instead of failing, so the search goes on past them
        self.already_found: Callable[[Violation], bool] | None = None
        self.dropped: list[Violation] = []
        #: polled before every example; True ends the run at once (a campaign's deadline, Ctrl-C)
        self.should_stop: Callable[[], bool] = lambda: False

    @property
    def grace(self) -> float:
        return self.config.grace_seconds

    # -- failures --------------------------------------------------------------------------------
    def record_failure(self, failure: Failure) -> None:
        self.failures.append(failure)

    def is_known(self, violation: Violation) -> bool:
        """Whether ``violation`` was reported already (counted in ``dropped`` when it was)."""
        if self.already_found is None or not self.already_found(violation):
            return False
        self.dropped.append(violation)
        return True

    def smallest_failure(self) -> Failure | None:
        """The shortest program (the most shrunk, last on ties) of the property that failed
        most often; on a tie in counts, of the one that failed first.

        Hypothesis shrinks one failure by replaying it many times, so the bug it is shrinking
        fails again and again; a property that failed once on the way (a race that a replay
        happened to lose) must not replace it only because its program is as short.
        """
        if not self.failures:
            return None
        counts = Counter(f.violation.invariant for f in self.failures)
        first_seen: dict[str, int] = {}
        for index, failure in enumerate(self.failures):
            first_seen.setdefault(failure.violation.invariant, index)
        chosen = min(counts, key=lambda prop: (-counts[prop], first_seen[prop]))
        same = [f for f in self.failures if f.violation.invariant == chosen]
        return min(reversed(same), key=lambda f: len(f.program))

    # -- ports held by the test ----------------------------------------------------------------
    def hold_port(self, port: int) -> bool:
        """Listen on ``port`` from the test process (a foreign listener the hive must skip)."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT ok
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            sock.close()
            return False
        self.listeners.append(sock)
        return True

    def held_ports(self) -> set[int]:
        return {s.getsockname()[1] for s in self.listeners}

    def release_ports(self) -> None:
        for sock in self.listeners:
            sock.close()
        self.listeners = []

    # -- reset between examples ------------------------------------------------------------------
    def reset(self) -> None:
        """Bring the stack back to a clean state: everything up, healed, no worker anywhere.

        Cheap and API-driven: kill worker processes, shut phantoms down, wait until the
        registries are empty. A component that does not get there within the grace window is
        restarted; if that fails too, the whole stack is restarted.
        """
        if self.should_stop():
            raise StopRequested
        started = time.monotonic()
        self.release_ports()
        self.phantoms.release_all()
        self.stack.recover()
        try:
            self._wait_empty(self.grace)
        except (WaitTimedOut, httpx.HTTPError):
            self._restart_dirty()
        self._restore_beehives()
        self.resets.append(time.monotonic() - started)

    def _lists(self) -> Iterator[tuple[str, list[str]]]:
        headers = {"Authorization": f"Bearer {self.stack.token}"}
        for name, url in self.stack.urls.items():
            route = "/v2/workers/list" if name == "queen" else "/v1/workers/list"
            key = "worker_id" if name == "queen" else "id"
            body = self.http.get(url + route, headers=headers, timeout=2.0).json()
            yield name, [w[key] for w in body["workers"]]

    def _empty(self) -> bool:
        if not all(not ids for _, ids in self._lists()):
            return False
        return not (self.stack.sees_processes and self.stack.workers())

    def _wait_empty(self, timeout: float) -> None:
        self.stack.wait_until(
            self._empty, timeout, what="registries empty",
            max_delay=self.config.timings.poll_interval,
        )  # fmt: skip

    def _restart_dirty(self) -> None:
        stack = self.stack
        if not stack.supports(Fault.RESTART):
            msg = "the stack did not return to an empty state and this backend cannot restart it"
            raise WaitTimedOut(msg, elapsed=self.grace, what="reset")
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            for name, ids in self._lists():
                if ids:
                    stack.restart(name)
        try:
            self._wait_empty(self.grace)
        except (WaitTimedOut, httpx.HTTPError):
            stack.stop()
            stack.start()
            self.full_restarts += 1

    def _restore_beehives(self) -> None:
        """Exactly one beehive per hive, as the stack registered them at start."""
        if not self.stack.owns_beehives:
            return
        stack = self.stack
        headers = {"Authorization": f"Bearer {stack.token}"}
        queen = stack.urls["queen"]
        nodes = self.http.get(
            queen + "/v2/registry/beehives/list", headers=headers, timeout=5
        ).json()
        names = {n["node_name"] for n in nodes["nodes"]}
        for name in names - set(stack.hives):
            self.http.post(
                queen + "/v2/registry/beehives/remove",
                json={"node_name": name},
                headers=headers,
                timeout=5,
            )
        if set(stack.hives) - names:
            stack.add_beehives()

    @property
    def http(self) -> httpx.Client:
        """One keep-alive client for resets (a client per call costs a connection each time)."""
        if self._http is None:
            self._http = httpx.Client(verify=shared_tls())
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        self.release_ports()
        self.phantoms.close()
