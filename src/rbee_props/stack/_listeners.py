"""Which TCP ports a process listens on, for many processes at once and cheaply.

``psutil.Process.net_connections`` reads ``/proc/net/tcp`` and ``/proc/net/tcp6`` for every
process it is asked about; the kernel walks every TCP socket of the host to produce those
files, and a test run leaves thousands in TIME_WAIT, so one call cost ~10 ms here, paid per
worker on every snapshot. :class:`Listeners` asks the kernel once per snapshot, through
``sock_diag`` netlink filtered to the LISTEN state (what ``ss -l`` does, well under 1 ms), for
the inode of every listening socket, and then reads each process's ``/proc/<pid>/fd`` to see
which of those inodes it holds. Where netlink is not available (not Linux, a sandbox that
refuses it) it falls back to psutil, per process, as before.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable
from typing import Any

import psutil

__all__ = ["Listeners"]

SOCKET_LINK = "socket:["


def _listening_inodes() -> dict[int, int] | None:
    """Socket inode -> port of every TCP socket in LISTEN (IPv4 and IPv6), or None."""
    try:
        from pyroute2 import DiagSocket
        from pyroute2.netlink.diag import SS_LISTEN
    except ImportError:
        return None
    found: dict[int, int] = {}
    try:
        with DiagSocket() as diag:
            diag.bind()
            for family in (socket.AF_INET, socket.AF_INET6):
                for msg in diag.get_sock_stats(family=family, states=1 << SS_LISTEN):
                    found[int(msg["idiag_inode"])] = int(msg["idiag_sport"])
    except OSError:
        return None
    return found


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open (empty when it is gone)."""
    fd_dir = f"/proc/{pid}/fd"
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                link = os.readlink(f"{fd_dir}/{fd}")
                if link.startswith(SOCKET_LINK):
                    inodes.add(int(link[len(SOCKET_LINK) : -1]))
    return inodes


def _psutil_host_listeners() -> list[Any]:
    with contextlib.suppress(psutil.Error):
        return [c for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    return []


def _psutil_ports(pid: int) -> tuple[int, ...]:
    with contextlib.suppress(psutil.Error):
        return tuple(
            sorted(
                c.laddr.port
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            )
        )
    return ()


class Listeners:
    """The listening TCP sockets of the host at one moment, by process.

    Build one per observation (``Listeners.now()``) and ask it about each process: a socket
    opened after it was built is not in it.
    """

    def __init__(self, inodes: dict[int, int] | None) -> None:
        self._inodes = inodes

    @classmethod
    def now(cls) -> Listeners:
        return cls(_listening_inodes())

    def ports_of(self, pid: int) -> tuple[int, ...]:
        """The ports process ``pid`` listens on, sorted."""
        if self._inodes is None:
            return _psutil_ports(pid)
        held = _socket_inodes(pid)
        return tuple(sorted({self._inodes[inode] for inode in held if inode in self._inodes}))

    def ports_besides(self, pids: Iterable[int]) -> set[int]:
        """Every listening port of the host except those held only by ``pids``."""
        if self._inodes is None:
            ports = {c.laddr.port for c in _psutil_host_listeners()}
            return ports - {p for pid in pids for p in _psutil_ports(pid)}
        theirs = set().union(*(_socket_inodes(pid) for pid in pids))
        return {port for inode, port in self._inodes.items() if inode not in theirs}
