"""ComposeStack: the stack as docker compose services, its faults made through the docker SDK.

``start`` brings a compose project up with the compose CLI (``_compose_cli.py``): the reference
file ``compose/docker-compose.yml`` on the stack image (built or found by ``image.py``), or the
user's own file with ``[stack.compose] services`` mapping its services to components (queen,
hive1, ...). The run gets a token file (a compose secret), free host ports on 127.0.0.1, an env
file with the timings, and labels on every container, network and volume (``_docker.py``), so
``stop``, a watchdog after a crash, and the next start remove everything it made.

Faults, each read back by the tests through the SDK: SIGKILL (``docker kill``), SIGTERM
(``docker stop``), restart, start, pause/unpause, a worker's SIGKILL or SIGSTOP inside its hive
container (``_compose_procs.py``), partitions by network disconnect and slow links by netem
(``_compose_net.py``), and memory limits (``limit_memory``: memory pressure, OOM kills).

Container semantics differ from processes in one place: a hive's workers live in its container,
so a SIGKILLed hive takes them along, and a paused hive freezes them too. The model allows both
(an orphan *may* live; a paused hive's workers *may* be evicted).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from rbee_props.config import Config
from rbee_props.errors import ComponentDidNotStart, StackError, UsageError
from rbee_props.stack._base import Fault, Stack, WaitTimedOut, WorkerProcess, poll_until
from rbee_props.stack._beehives import register_beehives
from rbee_props.stack._compose_cli import ComposeTool, find_compose
from rbee_props.stack._compose_net import Links, netem_works
from rbee_props.stack._compose_procs import signal_worker, workers_in
from rbee_props.stack._compose_project import component_map, load_project, override_file
from rbee_props.stack._compose_run import (
    component_ports,
    compose_file,
    find_container,
    host_port,
    read_token,
    start_watchdog,
    write_run_files,
)
from rbee_props.stack._docker import (
    OWNER_LABEL,
    RUN_LABEL,
    docker_client,
    owner_label,
    reap_orphaned_runs,
    remove_run,
)
from rbee_props.stack._processes import ManagedProcess
from rbee_props.stack.local import runs_root

if TYPE_CHECKING:
    from docker.models.containers import Container

    import docker

__all__ = ["ComposeStack"]

HOST = "127.0.0.1"


class ComposeStack(Stack):
    """Queen and hives as compose services (see the module docstring)."""

    capabilities = frozenset(
        {
            Fault.KILL,
            Fault.TERMINATE,
            Fault.RESTART,
            Fault.PAUSE,
            Fault.KILL_WORKER,
            Fault.PARTITION,
            Fault.MEMORY,
        }
    )
    sees_processes = True
    owns_beehives = True

    def __init__(self, config: Config, *, detached: bool = False) -> None:
        if detached:
            msg = (
                "up --detach is not supported by the compose backend; run `rbee-props up "
                "--backend compose` in the foreground (Ctrl-C removes every container)"
            )
            raise UsageError(msg)
        self.config = config
        self.run_id = ""
        self.run_dir = Path()
        self.project = ""
        self.image: str | None = None
        self._token = ""
        self._urls: dict[str, str] = {}
        self.health_paths: dict[str, str] = {}
        self.services: dict[str, str] = {}  # component -> service
        self.containers: dict[str, Container] = {}
        self.ports: dict[str, int] = {}  # component -> container port
        self.files: list[Path] = []
        self.env: dict[str, str] = {}
        self.memory: dict[str, int] = {}
        self.tool: ComposeTool | None = None
        self._client: docker.DockerClient | None = None
        self._links: Links | None = None
        self._callback_host: str | None = None
        self.watchdog: ManagedProcess | None = None
        self._watchdog_pipe: int | None = None
        self.started = False

    # -- properties ------------------------------------------------------------------------------
    @property
    def urls(self) -> Mapping[str, str]:
        return self._urls

    @property
    def token(self) -> str:
        return self._token

    @property
    def token_file(self) -> Path:
        return self.run_dir / "token"

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    @property
    def callback_host(self) -> str:  # type: ignore[override]
        """The host's address on docker's default bridge: every container reaches it, and it
        stays the same across runs (phantom workers of the test process listen there)."""
        if self._callback_host is None:
            ipam = self.client.networks.get("bridge").attrs.get("IPAM", {}).get("Config") or []
            gateways = [
                c.get("Gateway") or str(ipaddress.ip_network(c["Subnet"])[1])  # docker's default
                for c in ipam
                if "." in c.get("Subnet", "")
            ]
            if not gateways:
                msg = (
                    "docker's default bridge network has no IPv4 gateway, so containers cannot "
                    "reach the test process; enable the default bridge of the docker daemon"
                )
                raise StackError(msg)
            self._callback_host = gateways[0]
        return self._callback_host

    @property
    def reference(self) -> bool:
        """Whether this is the reference compose file (the stack image is built for it)."""
        return not self.config.compose.file

    # -- start -----------------------------------------------------------------------------------
    def start(self) -> ComposeStack:
        """Bring the project up and wait until every component answers its health route.

        Raises:
            DockerUnavailable: no engine answers, or no compose tool is installed.
            ConfigError: the compose file is invalid, or the service mapping does not fit it.
            StackError: the image is missing and cannot be built, or a component did not start.
        """
        reap_orphaned_runs(self.client)
        self.tool = find_compose()
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        prefix = re.sub(r"[^a-z0-9]", "", self.config.compose.project.lower()) or "rbp"
        self.project = prefix + self.run_id.replace("-", "")
        self.run_dir = runs_root() / self.run_id
        self.run_dir.mkdir(parents=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _start(self) -> None:
        file = compose_file(self.config)
        self._token = read_token(self.config)
        self.env = write_run_files(self.run_dir, self.config, self._token)
        assert self.tool is not None
        text = self.tool.config(project=self.project, files=[file], env=self.env)
        project = load_project(text, source=str(file))
        self.services = component_map(project, self.config.compose.services, source=str(file))
        self.ports = component_ports(project, self.services, self.config, file)
        labels = {RUN_LABEL: self.run_id, OWNER_LABEL: owner_label()}
        override = override_file(
            self.run_dir / "override.yml", project, labels=labels,
            env_file=self.run_dir / "rbee.env", components=self.services,
        )  # fmt: skip
        self.files = [file, override]
        if self.reference:
            from rbee_props.stack.image import stack_image

            self.image = stack_image(self.client)
            self.env["RBEE_IMAGE"] = self.image
        self.watchdog, self._watchdog_pipe = start_watchdog(self.run_id, self.run_dir)
        self.tool.up(
            project=self.project, files=self.files, env=self.env,
            timeout=max(self.config.startup_timeout, 60.0) * 4,
        )  # fmt: skip
        self._links = Links(self.client)
        for component, service in self.services.items():
            container = find_container(self.client, self.project, service, component)
            self.containers[component] = container
            self._urls[component] = (
                f"http://{HOST}:{host_port(container, self.ports[component], component)}"
            )
            spec = self.config.queen if component == "queen" else self.config.hive
            self.health_paths[component] = spec.health
        for component in self.services:
            self._wait_started(component)
        self.add_beehives()
        if netem_works(self.containers[self.hives[0]]):
            self.capabilities = self.capabilities | {Fault.SLOW}
        self._write_state()

    def _wait_started(self, component: str) -> float:
        container = self.containers[component]
        health = self.health_paths[component]
        url = self._urls[component] + health

        def up() -> bool:
            container.reload()
            if container.status in ("exited", "dead"):
                code = container.attrs["State"].get("ExitCode")
                msg = (
                    f"{component} (container {container.name}) exited with code {code} before "
                    f"answering GET {health}; last lines of its log: {self._log_tail(component)}"
                )
                raise ComponentDidNotStart(msg, component=component)
            if container.status != "running":
                return False
            try:
                return httpx.get(url, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            return poll_until(up, self.config.startup_timeout, what=f"{component} health")
        except WaitTimedOut as exc:
            msg = (
                f"{component} did not answer GET {url} within {self.config.startup_timeout:g}s; "
                f"{self.describe_failure(component)}"
            )
            raise ComponentDidNotStart(msg, component=component) from exc

    def add_beehives(self) -> None:
        """Register each hive at the queen under its alias on the network it shares with it."""
        hosts = {}
        for hive in self.hives:
            container = self.containers[hive]
            queen_nets = set(self.containers["queen"].attrs["NetworkSettings"]["Networks"])
            config_nets = container.attrs["NetworkSettings"]["Networks"]
            shared = sorted(queen_nets & set(config_nets)) or sorted(config_nets)
            aliases = [
                a
                for net in shared
                for a in (config_nets[net].get("Aliases") or ())
                if a not in (self.services[hive], (container.id or "")[:12])
            ]
            hosts[hive] = (aliases[0] if aliases else self.services[hive], self.ports[hive])
        register_beehives(self._urls["queen"], self._token, hosts, describe=self.describe_failure)

    def _write_state(self) -> None:
        state = {
            "backend": "compose",
            "run_id": self.run_id,
            "project": self.project,
            "files": [str(f) for f in self.files],
            "urls": self._urls,
            "services": self.services,
            "image": self.image,
        }
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2))

    # -- stop ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Remove every container, network and volume of the run, and its run directory."""
        if self.tool is not None and self.files:
            with contextlib.suppress(StackError):
                self.tool.down(project=self.project, files=self.files, env=self.env)
        if self.run_id and self._client is not None:
            remove_run(self._client, self.run_id)
        if self._watchdog_pipe is not None:
            os.close(self._watchdog_pipe)
            self._watchdog_pipe = None
        if self.watchdog is not None:
            self.watchdog.wait(30)
        if self.run_id:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.containers.clear()
        self.started = False

    # -- faults on components ----------------------------------------------------------------
    def _container(self, component: str) -> Container:
        if component not in self.containers:
            msg = f"unknown component {component!r}; this stack has {', '.join(self.containers)}"
            raise UsageError(msg, component=component)
        container = self.containers[component]
        container.reload()
        return container

    def state(self, component: str) -> str:
        """The container's status: running, paused, exited, ..."""
        return str(self._container(component).status)

    def kill(self, component: str) -> None:
        container = self._container(component)
        if container.status in ("running", "paused", "restarting"):
            container.kill()
            self._wait_status(component, ("exited", "dead"))

    def terminate(self, component: str) -> None:
        container = self._container(component)
        if container.status == "paused":
            container.unpause()
        container.stop(timeout=int(self.config.timings.shutdown_timeout + 2))

    def restart(self, component: str) -> None:
        container = self._container(component)
        if container.status == "paused":
            container.unpause()
        container.restart(timeout=int(self.config.timings.shutdown_timeout + 2))
        self._wait_started(component)  # a memory limit stays: recover() lifts it

    def start_component(self, component: str) -> None:
        """Start a killed or terminated component again (a no-op when it runs)."""
        container = self._container(component)
        if container.status in ("exited", "created", "dead"):
            container.start()
            self._wait_started(component)

    def _wait_status(self, component: str, states: tuple[str, ...]) -> None:
        with contextlib.suppress(WaitTimedOut):
            poll_until(lambda: self.state(component) in states, 10.0, what=f"{component} state")

    def pause(self, component: str) -> None:
        container = self._container(component)
        if container.status == "running":
            container.pause()

    def resume(self, component: str) -> None:
        container = self._container(component)
        if container.status == "paused":
            container.unpause()

    def limit_memory(self, component: str, limit: int) -> None:
        """Set the container's memory limit to ``limit`` bytes (no swap beyond it)."""
        self.require(Fault.MEMORY)
        self._container(component).update(mem_limit=limit, memswap_limit=limit)
        self.memory[component] = limit

    def memory_limit(self, component: str) -> int:
        """The memory limit the engine reports for ``component`` (0: none)."""
        return int(self._container(component).attrs["HostConfig"].get("Memory") or 0)

    def recover(self) -> None:
        """Heal, unpause and start every component, lift memory limits, kill every worker."""
        self.heal()
        for component in self.containers:
            self.resume(component)
            self.start_component(component)
        total = int(self.client.info().get("MemTotal") or 0)
        for component in list(self.memory):
            if total:  # "no limit" cannot be set again: the machine's memory is the same thing
                # (swap above it: runc then raises the swap limit first, as cgroup v1 requires)
                self._container(component).update(mem_limit=total, memswap_limit=2 * total)
            del self.memory[component]
        for hive in self.hives:
            signal_worker(self._container(hive), None, "KILL")

    # -- faults on links -------------------------------------------------------------------------
    def _pair(self, a: str, b: str) -> tuple[Container, Container, tuple[str, str]]:
        if b == "queen":  # cut the hive from its networks, never the queen from all of hers
            a, b = b, a
        return self._container(a), self._container(b), (a, b)

    def partition(self, a: str, b: str) -> None:
        assert self._links is not None
        self._links.partition(*self._pair(a, b))

    def heal(self) -> None:
        if self._links is not None:
            self._links.heal()

    def slow(self, a: str, b: str, ms: int) -> None:
        self.require(Fault.SLOW)
        assert self._links is not None
        self._links.slow(*self._pair(a, b), int(ms))

    # -- workers ---------------------------------------------------------------------------------
    def workers(self) -> list[WorkerProcess]:
        """Every worker process inside the hive containers, orphans included (S20)."""
        found: list[WorkerProcess] = []
        for hive in self.hives:
            container = self.containers.get(hive)
            if container is not None:
                found += workers_in(container, hive)
        return found

    def _signal_worker(self, worker_id: str, signal: str) -> None:
        for worker in self.workers():
            if worker.worker_id == worker_id and worker.hive is not None:
                signal_worker(self._container(worker.hive), worker_id, signal)
                if signal == "KILL":
                    with contextlib.suppress(WaitTimedOut):
                        poll_until(
                            lambda: all(w.worker_id != worker_id for w in self.workers()),
                            5.0,
                            what=f"worker {worker_id} gone",
                        )
                return
        msg = f"no process of worker {worker_id!r} is running in this stack"
        raise UsageError(msg, worker_id=worker_id)

    def kill_worker(self, worker_id: str) -> None:
        self._signal_worker(worker_id, "KILL")

    def pause_worker(self, worker_id: str) -> None:
        """SIGSTOP the process of worker ``worker_id``: alive, but answering nothing."""
        self.require(Fault.PAUSE)
        self._signal_worker(worker_id, "STOP")

    def describe_failure(self, component: str) -> str:
        import docker.errors

        container = self.containers.get(component)
        if container is None:
            return "unknown component"
        with contextlib.suppress(docker.errors.APIError):
            container.reload()
        return (
            f"container {container.name} is {container.status}; last lines of its log: "
            f"{self._log_tail(component)}"
        )

    def _log_tail(self, component: str, lines: int = 5) -> str:
        import docker.errors

        try:
            text = self.containers[component].logs(tail=lines).decode(errors="replace")
        except docker.errors.APIError:
            return "(no log)"
        return " | ".join(line.strip() for line in text.strip().splitlines())
