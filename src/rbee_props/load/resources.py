"""Memory and open files of the stack's processes before and after a load run (L02 leak check).

For a stack that shows its processes (the local backend: ``procs``, the fault proxy, and the
worker processes from ``workers()``), each component's RSS, open file descriptors and threads
are read with psutil; workers are summed into one row. After the run the reading is repeated
until the descriptor counts hold still (closed connections take a moment to go), then each
component is compared with its earlier self. A growth beyond the slack below is a *suspect*,
reported, never asserted: one short run cannot prove a leak, a long one makes it plain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import attrs
import psutil

from rbee_props.stack import Stack

__all__ = ["Change", "Usage", "compare", "settled_snapshot", "snapshot"]

#: descriptors a component may gain without being suspected (log rotation, a lazy connection)
FD_SLACK: Final = 8
#: RSS growth (fraction and bytes, both exceeded) that makes a component suspect
RSS_SLACK: Final = 0.25
RSS_SLACK_BYTES: Final = 16 * 2**20


@attrs.frozen
class Usage:
    """One component's (or all workers') resident memory, descriptors and threads."""

    name: str
    pids: tuple[int, ...]
    rss: int
    fds: int
    threads: int


def _read(name: str, pids: list[int]) -> Usage | None:
    rss = fds = threads = 0
    seen = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                rss += proc.memory_info().rss
                fds += proc.num_fds()
                threads += proc.num_threads()
        except psutil.Error:
            continue
        seen.append(pid)
    if not seen:
        return None
    return Usage(name, tuple(seen), rss, fds, threads)


def snapshot(stack: Stack) -> dict[str, Usage]:
    """The usage of every process ``stack`` shows, by component (empty when it shows none,
    as an external stack does)."""
    groups: dict[str, list[int]] = {}
    for name, proc in getattr(stack, "procs", {}).items():
        if proc.pid is not None:
            groups[name] = [proc.pid]
    proxy = getattr(stack, "proxy", None)
    if proxy is not None and proxy.pid is not None:
        groups["faultproxy"] = [proxy.pid]
    if getattr(stack, "sees_processes", False):
        groups["workers"] = [worker.pid for worker in stack.workers()]
    found = {}
    for name, pids in groups.items():
        usage = _read(name, pids)
        if usage is not None:
            found[name] = usage
    return found


def settled_snapshot(stack: Stack, *, timeout: float = 5.0, step: float = 0.25) -> dict[str, Usage]:
    """A snapshot taken once two readings ``step`` apart agree on every descriptor count (or
    after ``timeout``): sockets of the finished run are closed by then."""
    deadline = time.monotonic() + timeout
    last = snapshot(stack)
    while time.monotonic() < deadline:
        time.sleep(step)
        now = snapshot(stack)
        if {k: v.fds for k, v in now.items()} == {k: v.fds for k, v in last.items()}:
            return now
        last = now
    return last


@attrs.frozen
class Change:
    """One component before and after; ``note`` says why it cannot be compared or is suspect."""

    name: str
    before: Usage | None
    after: Usage | None
    suspect: bool
    note: str

    @property
    def rss_growth(self) -> int | None:
        return self.after.rss - self.before.rss if self.before and self.after else None

    @property
    def fds_growth(self) -> int | None:
        return self.after.fds - self.before.fds if self.before and self.after else None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["rss_growth"] = self.rss_growth
        data["fds_growth"] = self.fds_growth
        return data


def _judge(name: str, before: Usage | None, after: Usage | None) -> Change:
    if before is None or after is None:
        note = "not running before the run" if before is None else "not running after the run"
        return Change(name, before, after, False, note)
    if name != "workers" and before.pids != after.pids:
        return Change(name, before, after, False, "restarted during the run: not comparable")
    if name == "workers" and len(before.pids) != len(after.pids):
        note = f"{len(before.pids)} worker processes before, {len(after.pids)} after"
        return Change(name, before, after, False, note)
    notes = []
    if after.fds - before.fds > FD_SLACK:
        notes.append(f"{after.fds - before.fds} more open descriptors")
    grew = after.rss - before.rss
    if grew > RSS_SLACK_BYTES and grew > RSS_SLACK * before.rss:
        notes.append(f"RSS grew {grew / 2**20:.1f} MiB ({grew / before.rss:.0%})")
    return Change(name, before, after, bool(notes), "; ".join(notes) or "ok")


def compare(before: Mapping[str, Usage], after: Mapping[str, Usage]) -> list[Change]:
    """Each component's change, in the order of ``before`` then the newcomers."""
    names = list(before) + [name for name in after if name not in before]
    return [_judge(name, before.get(name), after.get(name)) for name in names]
