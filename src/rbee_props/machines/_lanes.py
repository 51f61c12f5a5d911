"""Lanes: run several sequences of client calls at once, one thread per lane.

Each lane gets its own clients (queen, every hive, the workers it talks to), all recording into
one History under the lane's number, so every op says which lane sent it. The clients are opened
before a barrier and every lane waits at it, so the first requests of all lanes leave together:
without it, thread start-up alone would spread them over milliseconds and the burst would be
little more than sequential. Ops run on httpx's synchronous clients; a thread per lane is
plenty for 16 lanes, and the GIL is released while a request waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import attrs

from rbee_props.client import HiveClient, QueenClient, WorkerClient
from rbee_props.history import History, Op
from rbee_props.stack import Stack

__all__ = ["Action", "LaneClients", "run_lanes"]


class LaneClients:
    """The clients of one lane: ``queen``, ``hives[name]`` and ``workers[worker_id]``."""

    def __init__(
        self, stack: Stack, history: History, lane: int, workers: Mapping[str, str]
    ) -> None:
        token = stack.token
        self.queen = QueenClient(stack.urls["queen"], token, history=history, lane=lane)
        self.hives = {
            name: HiveClient(stack.urls[name], token, history=history, lane=lane, service=name)
            for name in stack.hives
        }
        self.workers = {
            worker_id: WorkerClient(
                url, token, history=history, lane=lane, service=f"worker:{worker_id}"
            )
            for worker_id, url in workers.items()
        }

    def close(self) -> None:
        self.queen.close()
        for client in (*self.hives.values(), *self.workers.values()):
            client.close()


@attrs.frozen
class Action:
    """One op of a lane: what it is (for people) and how to send it."""

    label: str
    send: Callable[[LaneClients], Op]


def run_lanes(
    stack: Stack,
    history: History,
    lanes: Sequence[Sequence[Action]],
    *,
    workers: Mapping[str, str],
    first_lane: int = 1,
    timeout: float = 120.0,
) -> None:
    """Run ``lanes`` at once (lane ``i`` records as lane ``first_lane + i``); return when all
    are done.

    ``workers`` (id -> URL) are the workers any lane talks to: their clients are opened before
    the barrier. An exception in a lane (a bug in an action, not an HTTP outcome: those are
    recorded ops) is raised here once every lane has stopped.

    Raises:
        TimeoutError: a lane was still running after ``timeout`` seconds.
    """
    clients = [LaneClients(stack, history, first_lane + i, workers) for i in range(len(lanes))]
    barrier = threading.Barrier(len(lanes))
    errors: list[BaseException] = []

    def lane(index: int) -> None:
        try:
            barrier.wait(timeout)
            for action in lanes[index]:
                action.send(clients[index])
        except BaseException as exc:  # handed to the caller below, never swallowed
            barrier.abort()
            errors.append(exc)

    threads = [
        threading.Thread(target=lane, args=(i,), name=f"rbee-lane-{first_lane + i}", daemon=True)
        for i in range(len(lanes))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
    finally:
        for lane_clients in clients:
            lane_clients.close()
    if any(thread.is_alive() for thread in threads):
        msg = f"a lane of the burst was still running after {timeout:g}s; its ops time out sooner"
        raise TimeoutError(msg)
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        raise (real or errors)[0]
