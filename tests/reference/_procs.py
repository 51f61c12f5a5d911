"""Start reference programs as real processes for the conformance tests.

A small stand-alone helper: the conformance tests check the reference stack itself, so they do
not depend on the stack controller they will later be used to test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> float:
    """Poll ``predicate`` with backoff until it is true; return the seconds it took."""
    start = time.monotonic()
    delay = 0.01
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(delay)  # polling interval of a condition wait, not a fixed sleep
        delay = min(delay * 1.5, 0.2)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


class Program:
    """One reference program running as its own process group."""

    def __init__(self, module: str, args: Sequence[str], env: dict[str, str], log: Path):
        self.module = module
        self.args = list(args)
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Program:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"rbee_props.reference.{self.module}", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """SIGKILL the whole process group and reap it."""
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)


def test_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RBEE_", "LLORCH_"))}
    env.update(extra)
    return env


def worker_processes(marker: str) -> list[psutil.Process]:
    """Live reference worker processes whose command line contains ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "rbee_props.reference.worker" in cmd and any(marker in part for part in cmd):
            found.append(proc)
    return found


@contextmanager
def running(*programs: Program) -> Iterator[None]:
    try:
        yield
    finally:
        for program in programs:
            program.stop()


test_env.__test__ = False  # a helper, not a test
