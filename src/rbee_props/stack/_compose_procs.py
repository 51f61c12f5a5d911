"""Worker processes inside a hive container: list them, SIGKILL or SIGSTOP one by id (S20, C01).

A hive spawns its workers as child processes in its own container. ``docker top`` lists the
container's processes from the engine's side (it works on a paused container too, and needs
nothing inside the image); the pids it shows are the engine host's. Its first process is the
init (docker-init, with ``init: true``) whose child is the component, or the component itself;
every other process of the container is a worker, an orphan when its parent is not the
component (``docker exec`` tools, whose parent is outside the container, are left out). A
worker's id and port are read from its ``--worker-id`` and ``--port`` arguments. Signals go
through ``pkill`` inside the container, matched on the worker id; a paused container is thawed
for that one call and frozen again.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from rbee_props.errors import StackError
from rbee_props.stack._base import WorkerProcess

if TYPE_CHECKING:
    from docker.models.containers import Container

__all__ = ["signal_worker", "workers_in"]

PS_ARGS = "-eo pid,ppid,stat,args"
#: init programs that run the component as their child (``init: true`` is docker-init)
INITS = frozenset({"docker-init", "tini", "tini-static", "dumb-init"})


def _arg(argv: list[str], flag: str) -> str | None:
    for index, part in enumerate(argv[:-1]):
        if part == flag:
            return argv[index + 1]
    for part in argv:
        if part.startswith(flag + "="):
            return part.split("=", 1)[1]
    return None


def workers_in(container: Container, hive: str) -> list[WorkerProcess]:
    """The worker processes of ``hive``'s container (none when it is not running)."""
    import docker.errors

    try:
        top = container.top(ps_args=PS_ARGS)
    except docker.errors.APIError:
        return []  # not running: no process at all
    titles = [t.upper() for t in top.get("Titles") or []]
    if not {"PID", "PPID", "STAT"} <= set(titles):
        return []
    col = {name: titles.index(name) for name in ("PID", "PPID", "STAT")}
    rows = []
    for row in top.get("Processes") or []:
        argv = shlex.split(row[-1]) if row[-1] else []
        rows.append((int(row[col["PID"]]), int(row[col["PPID"]]), row[col["STAT"]], argv))
    pids = {pid for pid, _, _, _ in rows}
    init = container.attrs.get("State", {}).get("Pid")
    if init not in pids:  # stale inspect data: the oldest process without a parent inside
        init = min((pid for pid, ppid, _, _ in rows if ppid not in pids), default=None)
    main = init
    argv0 = next((argv[0] for pid, _, _, argv in rows if pid == init and argv), "")
    if argv0.rsplit("/", 1)[-1] in INITS:  # an init runs the component as its child
        main = min((pid for pid, ppid, _, _ in rows if ppid == init), default=None)
    found = []
    for pid, ppid, stat, argv in rows:
        if pid in (init, main) or ppid not in pids or stat.startswith("Z"):
            continue  # init, the component, a tool run by exec, or a zombie
        port = _arg(argv, "--port")
        found.append(
            WorkerProcess(
                pid=pid,
                ports=(int(port),) if port and port.isdigit() else (),
                worker_id=_arg(argv, "--worker-id"),
                hive=hive,
                orphan=ppid != main,
            )
        )
    return found


def signal_worker(container: Container, worker_id: str | None, signal: str) -> bool:
    """Send ``signal`` (``KILL``, ``STOP``) to the process of ``worker_id`` (None: of every
    worker); False when no process matched.

    Raises:
        StackError: the container cannot run ``pkill`` (procps is missing from the image).
    """
    import docker.errors

    container.reload()
    paused = container.status == "paused"
    if container.status not in ("running", "paused"):
        return False
    pattern = "--worker-id[ =]" + (f"{re.escape(worker_id)}( |$)" if worker_id else "")
    if paused:
        container.unpause()
    try:
        result = container.exec_run(["pkill", f"-{signal}", "-f", "--", pattern])
    except docker.errors.APIError as exc:
        msg = f"cannot signal worker {worker_id or '(all)'} in {container.name}: {exc.explanation}"
        raise StackError(msg) from exc
    finally:
        if paused:
            container.pause()
    if result.exit_code not in (0, 1):  # 1: no process matched
        out = result.output.decode(errors="replace").strip()[:200]
        msg = (
            f"pkill in {container.name} failed (exit {result.exit_code}: {out}); the image "
            "needs procps for worker faults"
        )
        raise StackError(msg)
    return bool(result.exit_code == 0)
