"""The Docker Engine as the compose backend sees it: one client, run labels, and the reaper.

Every container, network and volume a compose run creates carries ``rbee-props.run=<run id>``
and ``rbee-props.owner=<pid>:<start time>@<host>`` (the controlling process, as for local
processes in ``_processes.py``). ``remove_run`` deletes what one run made; ``reap_orphaned_runs``
deletes what runs whose controller is gone left behind (a crash, a SIGKILL), and is called by
every start. Images are shared between runs and never labelled with a run.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING, Any

from rbee_props.errors import DockerUnavailable
from rbee_props.stack._processes import _owner_alive, owner_tag

if TYPE_CHECKING:
    import docker

__all__ = [
    "OWNER_LABEL",
    "RUN_LABEL",
    "docker_client",
    "owner_label",
    "reap_orphaned_runs",
    "remove_run",
    "run_resources",
]

RUN_LABEL = "rbee-props.run"
OWNER_LABEL = "rbee-props.owner"


def docker_client(*, timeout: float = 60.0) -> docker.DockerClient:
    """A client of the engine ``DOCKER_HOST`` (or the default socket) names, checked by a ping.

    Raises:
        DockerUnavailable: no engine answers there.
    """
    import docker.errors
    import requests.exceptions

    import docker

    where = os.environ.get("DOCKER_HOST") or "the default socket unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        msg = (
            f"no Docker Engine answers at {where} ({reason}); start the docker daemon or set "
            'DOCKER_HOST, or use the local backend (backend = "local")'
        )
        raise DockerUnavailable(msg, docker_host=where) from exc
    return client


def owner_label() -> str:
    """``<pid>:<start time>@<hostname>`` of this process, the owner of the run's resources."""
    return f"{owner_tag()}@{socket.gethostname()}"


def _owner_gone(label: str) -> bool:
    """Whether the controlling process named by ``label`` is dead (on this host)."""
    tag, _, host = label.rpartition("@")
    if host != socket.gethostname():
        return False  # another machine's run on a shared engine: not ours to judge
    return tag != "detached" and not _owner_alive(tag)


def run_resources(client: docker.DockerClient, run_id: str | None = None) -> dict[str, list[Any]]:
    """Containers, networks and volumes labelled with ``run_id`` (any run when None)."""
    label = RUN_LABEL if run_id is None else f"{RUN_LABEL}={run_id}"
    filters = {"label": label}
    return {
        "containers": client.containers.list(all=True, filters=filters),
        "networks": client.networks.list(filters=filters),
        "volumes": client.volumes.list(filters=filters),
    }


def _remove(client: docker.DockerClient, found: dict[str, list[Any]]) -> int:
    import docker.errors

    count = 0
    for container in found["containers"]:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            count += 1
    for network in found["networks"]:
        with contextlib.suppress(docker.errors.NotFound):
            network.reload()
            for member in network.containers:  # a foreign container someone attached by hand
                with contextlib.suppress(docker.errors.APIError):
                    network.disconnect(member, force=True)
            network.remove()
            count += 1
    for volume in found["volumes"]:
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            count += 1
    return count


def remove_run(client: docker.DockerClient, run_id: str) -> int:
    """Force-remove every container, network and volume of ``run_id``; return how many."""
    return _remove(client, run_resources(client, run_id))


def reap_orphaned_runs(client: docker.DockerClient) -> int:
    """Remove the resources of every run whose controlling process is gone; return how many."""
    found = run_resources(client)
    dead: set[str] = set()
    for kind in found.values():
        for item in kind:
            labels = (item.attrs.get("Labels") or item.attrs.get("Config", {}).get("Labels")) or {}
            if labels.get(RUN_LABEL) and _owner_gone(labels.get(OWNER_LABEL, "")):
                dead.add(labels[RUN_LABEL])
    return sum(remove_run(client, run_id) for run_id in sorted(dead))
