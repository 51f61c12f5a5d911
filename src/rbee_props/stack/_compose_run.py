"""What one compose run prepares before ``up`` and looks up after it.

The compose file (the reference one, or the user's, relative to their config file), the run
directory's files (the token, 0600; ``rbee.env`` with the timings and planted bugs), the
variables compose interpolates, the check that each component publishes a port on 127.0.0.1,
the containers and host ports compose made, and the watchdog that removes the run if the
controlling process dies (``_compose_watchdog.py``).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rbee_props.config import Config
from rbee_props.errors import ComponentDidNotStart, ConfigError
from rbee_props.stack._compose_project import ComposeProject
from rbee_props.stack._ports import PortPlan
from rbee_props.stack._processes import ManagedProcess

if TYPE_CHECKING:
    from docker.models.containers import Container

    import docker

__all__ = [
    "LOOPBACK",
    "component_ports",
    "compose_file",
    "find_container",
    "host_port",
    "read_token",
    "start_watchdog",
    "write_run_files",
]

LOOPBACK = re.compile(r"127\.\d+\.\d+\.\d+|localhost")
#: hives that get a host port variable (RBEE_HIVE<N>_PORT) even when the config names fewer
MIN_PORT_VARIABLES = 8


def compose_file(config: Config) -> Path:
    """The compose file of ``config``: ``stack.compose.file``, else the reference one.

    Raises:
        ConfigError: the named file does not exist.
    """
    if not config.compose.file:
        from rbee_props.stack.image import compose_dir

        return compose_dir() / "docker-compose.yml"
    file = Path(config.compose.file)
    if not file.is_absolute() and not config.source.startswith("built-in"):
        file = Path(config.source.split(" [tool.")[0]).parent / file
    if not file.is_file():
        msg = f"stack.compose.file {str(file)!r} does not exist; give the path of a compose file"
        raise ConfigError(msg, file=str(file))
    return file.resolve()


def read_token(config: Config) -> str:
    """A fresh token (``token_file = "auto"``) or the one in the configured file.

    Raises:
        ConfigError: the token file cannot be read.
    """
    if config.token_file == "auto":
        return secrets.token_urlsafe(24)
    try:
        return Path(config.token_file).read_text().rstrip("\r\n")
    except OSError as exc:
        msg = (
            f"cannot read stack.token_file {config.token_file!r}: {exc.strerror}; "
            'give a readable file or "auto"'
        )
        raise ConfigError(msg) from exc


def write_run_files(run_dir: Path, config: Config, token: str) -> dict[str, str]:
    """Write ``token`` (0600) and ``rbee.env``; return the variables compose interpolates.

    Never RBEE_PROPS_RUN among them: the local backend's reaper kills processes that carry it.
    """
    token_file = run_dir / "token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    env = {**config.timings.as_env(), "RBEE_REF_BUGS": ",".join(config.bugs)}
    (run_dir / "rbee.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    plan = PortPlan(config.ports)
    hives = max(config.hive.count, MIN_PORT_VARIABLES)
    names = ["queen"] + [f"hive{i}" for i in range(1, hives + 1)]
    ports = {f"RBEE_{name.upper()}_PORT": str(plan.take()) for name in names}
    return {"RBEE_TOKEN_FILE": str(token_file), "RBEE_TOKEN": token, **ports}


def component_ports(
    project: ComposeProject, services: dict[str, str], config: Config, file: Path
) -> dict[str, int]:
    """component -> the container port it publishes on 127.0.0.1 (its first published port).

    Raises:
        ConfigError: the hive count differs from the config's, or a component publishes no
            port, or publishes it beyond 127.0.0.1.
    """
    hives = [c for c in services if c != "queen"]
    if len(hives) != config.hive.count:
        msg = (
            f"{file} has {len(hives)} hive(s) ({', '.join(hives)}) but stack.hive.count "
            f"(or --hives) is {config.hive.count}; make them agree"
        )
        raise ConfigError(msg)
    out = {}
    for component, service in services.items():
        ports = [p for p in project.services[service].ports if p.published]
        if not ports:
            msg = (
                f"service {service!r} ({component}) in {file} publishes no port; add "
                f'ports: ["127.0.0.1:${{RBEE_{component.upper()}_PORT}}:<its port>"]'
            )
            raise ConfigError(msg, service=service)
        if not LOOPBACK.fullmatch(ports[0].host_ip):
            msg = (
                f"service {service!r} in {file} publishes port {ports[0].target} on "
                f"{ports[0].host_ip or 'every interface'}; publish it on 127.0.0.1 only"
            )
            raise ConfigError(msg, service=service)
        out[component] = ports[0].target
    return out


def find_container(
    client: docker.DockerClient, project: str, service: str, component: str
) -> Container:
    """The container compose made for ``service`` in ``project``.

    Raises:
        ComponentDidNotStart: there is none.
    """
    labels = [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
    found = client.containers.list(all=True, filters={"label": labels})
    if not found:
        msg = f"compose started no container for service {service!r} ({component})"
        raise ComponentDidNotStart(msg, component=component)
    return found[0]


def host_port(container: Container, port: int, component: str) -> int:
    """The 127.0.0.1 host port the container's ``port`` is published on.

    Raises:
        ComponentDidNotStart: it is not published on 127.0.0.1.
    """
    bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp")
    for binding in bindings or ():
        if LOOPBACK.fullmatch(binding.get("HostIp") or ""):
            return int(binding["HostPort"])
    msg = f"{component} publishes no port on 127.0.0.1 ({bindings})"
    raise ComponentDidNotStart(msg, component=component)


def start_watchdog(run_id: str, run_dir: Path) -> tuple[ManagedProcess, int]:
    """Start the run's watchdog; return it and the pipe end whose closing sets it off."""
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "rbee_props.stack._compose_watchdog", "--run-id", run_id]
    argv += ["--run-dir", str(run_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBEE_")}
    watchdog = ManagedProcess(
        "watchdog", argv, env, log=run_dir / "watchdog.log", pidfile=run_dir / "watchdog.pid"
    )
    try:
        watchdog.start(stdin=read_end)
    finally:
        os.close(read_end)
    os.set_inheritable(write_end, False)
    return watchdog, write_end
