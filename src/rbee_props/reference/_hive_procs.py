"""OS-level helpers of the hive: free ports, the workers' environment, waiting, reaping (D4)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import psutil

__all__ = [
    "ALL_INTERFACES",
    "WORKER_HOST",
    "child_env",
    "port_free",
    "reap_previous_workers",
    "wait_exit",
]

log = logging.getLogger("rbee_props.reference.hive.workers")

WORKER_HOST = "127.0.0.1"
#: where workers listen when they are reached from other machines (``--advertise-host``)
ALL_INTERFACES = "0.0.0.0"


def port_free(port: int, host: str = WORKER_HOST) -> bool:
    """Whether a worker could bind ``port`` on ``host`` now (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def child_env() -> dict[str, str]:
    """The hive's environment, with this package importable wherever the hive was started."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # .../src holding rbee_props
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in paths:
        env["PYTHONPATH"] = os.pathsep.join([src, *paths])
    return env


def _gone(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)  # dead: its new parent reaps it
    except psutil.NoSuchProcess:
        return True


def reap_previous_workers(workers_dir: Path) -> None:
    """D4: SIGKILL each worker of a previous incarnation named by a pid file; drop the files."""
    killed: list[psutil.Process] = []
    for pid_file in sorted(workers_dir.glob("*.pid")):
        worker_id = pid_file.stem
        try:
            proc = psutil.Process(int(pid_file.read_text().strip()))
            if not _gone(proc) and any(worker_id in part for part in proc.cmdline()):
                log.info("reaping worker %s (pid %d) of a previous hive", worker_id, proc.pid)
                proc.kill()
                killed.append(proc)
        except (ValueError, OSError, psutil.Error):
            pass  # unreadable file, process gone, or not ours: nothing to reap
        pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + 5.0
    while killed and time.monotonic() < deadline:
        killed = [proc for proc in killed if not _gone(proc)]
        time.sleep(0.01)


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Poll (and so reap) our child ``proc`` until it exits; False if ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True
