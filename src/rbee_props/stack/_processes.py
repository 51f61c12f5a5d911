"""Processes of a local run: start, signal and reap them; find leftovers of crashed runs.

Every process a run starts carries ``RBEE_PROPS_RUN=<run id>`` and ``RBEE_PROPS_OWNER`` in its
environment, and children inherit both (a hive's workers too, whatever binary the hive is). So
the run's processes can be found, and killed, even when they were orphaned: by the watchdog when
the controlling Python process dies, and by the next start when a crash left them behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

__all__ = [
    "COMPONENT_ENV",
    "OWNER_ENV",
    "RUN_ENV",
    "ManagedProcess",
    "RunMembership",
    "owner_tag",
    "processes_of_run",
    "reap_orphaned_runs",
    "reap_run",
]

RUN_ENV = "RBEE_PROPS_RUN"
OWNER_ENV = "RBEE_PROPS_OWNER"
COMPONENT_ENV = "RBEE_PROPS_COMPONENT"
DETACHED = "detached"


def owner_tag(pid: int | None = None) -> str:
    """``<pid>:<create time>`` of the controlling process (robust against pid reuse)."""
    proc = psutil.Process(pid or os.getpid())
    return f"{proc.pid}:{proc.create_time():.3f}"


def _owner_alive(tag: str) -> bool:
    if tag == DETACHED:
        return True
    pid_text, _, created = tag.partition(":")
    try:
        proc = psutil.Process(int(pid_text))
        return f"{proc.create_time():.3f}" == created
    except (psutil.Error, ValueError):
        return False


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.Error, OSError):
        return {}


def processes_of_run(run_id: str) -> list[psutil.Process]:
    """Live processes that carry ``RBEE_PROPS_RUN=run_id`` (components, workers, proxy, ...)."""
    return RunMembership(run_id).processes()


class RunMembership:
    """The live processes of one run, found as ``processes_of_run`` finds them, but cheaper.

    Reading the environment of every process on the host on every snapshot cost more than the
    snapshot's HTTP requests. A process's environment is fixed when it is executed, so the
    answer is remembered by (pid, create time): a reused pid is a new process and asked again.
    Only two answers are not remembered: a "no" for a process younger than ``settle_seconds``
    (between fork and exec its environment is its parent's, and during exec it can read as
    empty) and a "no" for a child of this process (it may still be becoming a component).
    """

    def __init__(self, run_id: str, *, settle_seconds: float = 2.0) -> None:
        self.run_id = run_id
        self.settle_seconds = settle_seconds
        self._known: dict[int, tuple[float, bool]] = {}

    def _member(self, proc: psutil.Process, created: float, me: int) -> bool:
        known = self._known.get(proc.pid)
        if known is not None and known[0] == created:
            return known[1]
        member = _environ(proc).get(RUN_ENV) == self.run_id
        settled = time.time() - created > self.settle_seconds
        with contextlib.suppress(psutil.Error):
            if member or (settled and proc.ppid() != me):
                self._known[proc.pid] = (created, member)
        return member

    def processes(self) -> list[psutil.Process]:
        """Live processes that carry ``RBEE_PROPS_RUN`` of this run."""
        me = os.getpid()
        found = []
        alive = set()
        for proc in psutil.process_iter():
            if proc.pid == me:
                continue
            try:
                created = proc.create_time()
            except psutil.Error:
                continue
            alive.add(proc.pid)
            if self._member(proc, created, me):
                found.append(proc)
        for pid in self._known.keys() - alive:
            del self._known[pid]
        return found


def _kill_all(procs: Sequence[psutil.Process]) -> int:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(list(procs), timeout=5)
    return len(procs)


def reap_run(run_id: str, *, exclude: Sequence[int] = ()) -> int:
    """SIGKILL every process of ``run_id`` (except ``exclude``); return how many there were."""
    return _kill_all([p for p in processes_of_run(run_id) if p.pid not in exclude])


def reap_orphaned_runs() -> int:
    """Kill processes of runs whose controlling process is gone (a crash, a SIGKILL)."""
    me = os.getpid()
    leftovers = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        env = _environ(proc)
        if RUN_ENV in env and not _owner_alive(env.get(OWNER_ENV, "")):
            leftovers.append(proc)
    return _kill_all(leftovers)


class ManagedProcess:
    """One component process: its own process group, its log file, its pid file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        log: Path,
        pidfile: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log = log
        self.pidfile = pidfile
        self.proc: psutil.Process | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self.paused = False

    def start(self, *, stdin: int | None = subprocess.DEVNULL) -> None:
        """Start the process in a new session; raises ``OSError`` when it cannot be executed."""
        with self.log.open("ab") as out:
            self._popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.proc = psutil.Process(self._popen.pid)
        self.paused = False
        self.pidfile.write_text(f"{self.proc.pid} {self.proc.create_time():.3f}\n")

    @classmethod
    def adopt(
        cls, name: str, argv: Sequence[str], env: Mapping[str, str], *, log: Path, pidfile: Path
    ) -> ManagedProcess:
        """Re-attach to a process started by another rbee-props process (``up --detach``)."""
        managed = cls(name, argv, env, log=log, pidfile=pidfile)
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            pid_text, created = pidfile.read_text().split()
            proc = psutil.Process(int(pid_text))
            if f"{proc.create_time():.3f}" == created:
                managed.proc = proc
        return managed

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        if self.proc is None:
            return False
        try:
            return self.proc.is_running() and self.proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def exit_code(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def send(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(psutil.Error):
                self.proc.send_signal(sig)

    def wait(self, timeout: float) -> bool:
        """Wait for exit (reaping it if it is our child); True when it has exited."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
        except psutil.TimeoutExpired:
            return False
        except psutil.Error:
            pass
        if self._popen is not None:
            self._popen.poll()
        return True

    def kill(self) -> None:
        """SIGKILL this process only (its children are orphaned, as in a real crash)."""
        self.send(signal.SIGKILL)
        self.wait(5)
        self.paused = False

    def terminate(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.paused:
            self.send(signal.SIGCONT)
        self.send(signal.SIGTERM)
        if not self.wait(timeout):
            self.kill()
        self.paused = False

    def kill_group(self) -> None:
        """SIGKILL the whole process group (the component and children it did not move)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.wait(5)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])
