"""What the compose backend needs to know of a compose project, and the per-run override file.

``load_project`` reads the output of ``compose config`` (merged and interpolated, so a user's
file with anchors, ``extends`` or variables reads the same) into services with their published
ports and network aliases, the networks and the volumes. ``component_map`` checks the
service -> component mapping against it. ``override_file`` writes the file compose merges on
top of the user's: the run's labels on every container, network and volume, and the env file
with the timings for every mapped service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from rbee_props.errors import ConfigError, did_you_mean

__all__ = ["ComposeProject", "Service", "component_map", "load_project", "override_file"]

COMPONENT = re.compile(r"queen|hive[1-9][0-9]*")


@attrs.frozen
class Port:
    """One published port: the container port, the host port (None: any) and host address."""

    target: int
    published: int | None
    host_ip: str


@attrs.frozen
class Service:
    """A compose service: published TCP ports and, per network, its aliases there."""

    name: str
    ports: tuple[Port, ...]
    networks: Mapping[str, tuple[str, ...]]


@attrs.frozen
class ComposeProject:
    """The parts of a compose configuration the backend uses."""

    version: str | None
    services: Mapping[str, Service]
    #: declared here (not external), with their settings: the run labels them
    networks: Mapping[str, Mapping[str, Any]]
    volumes: Mapping[str, Mapping[str, Any]]


def _port(raw: Any) -> Port | None:
    """A published TCP port from compose v1's string or v2's mapping form, else None."""
    if isinstance(raw, dict):
        if raw.get("protocol", "tcp") != "tcp" or raw.get("published") in (None, ""):
            return None
        return Port(int(raw["target"]), int(raw["published"]), str(raw.get("host_ip") or ""))
    text = str(raw).split("/")[0]
    if str(raw).endswith("/udp"):
        return None
    parts = text.rsplit(":", 2) if text.count(":") >= 2 else ["", *text.split(":")]
    if len(parts) == 2:  # only the container port: not published on a chosen host port
        return Port(int(parts[1]), None, "")
    host_ip, published, target = parts
    if "-" in target:  # a range: not one component port
        return None
    return Port(int(target), int(published) if published else None, host_ip)


def _networks(raw: Any) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {"default": ()}
    if isinstance(raw, list):
        return {str(name): () for name in raw}
    return {str(name): tuple((spec or {}).get("aliases") or ()) for name, spec in raw.items()}


def _declared(section: Any) -> dict[str, dict[str, Any]]:
    """The networks or volumes the project creates itself (not ``external``), with settings."""
    return {
        str(name): dict(spec or {})
        for name, spec in (section or {}).items()
        if not (spec or {}).get("external")
    }


def load_project(config_yaml: str, *, source: str) -> ComposeProject:
    """Parse ``compose config`` output.

    Raises:
        ConfigError: it is not a compose configuration with services.
    """
    try:
        data = yaml.safe_load(config_yaml)
    except yaml.YAMLError as exc:
        msg = f"compose config of {source} is not YAML: {str(exc).splitlines()[0]}"
        raise ConfigError(msg) from exc
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        msg = f"{source} defines no services; give a compose file with a services: section"
        raise ConfigError(msg)
    services = {}
    for name, spec in data["services"].items():
        ports = tuple(p for p in (_port(raw) for raw in spec.get("ports") or ()) if p)
        services[str(name)] = Service(str(name), ports, _networks(spec.get("networks")))
    networks = _declared(data.get("networks"))
    if any("default" in s.networks for s in services.values()) and "default" not in networks:
        networks["default"] = {}
    volumes = _declared(data.get("volumes"))
    version = data.get("version")
    return ComposeProject(str(version) if version else None, services, networks, volumes)


def component_map(
    project: ComposeProject, mapping: Mapping[str, str], *, source: str
) -> dict[str, str]:
    """component -> service, from the config's service -> component mapping (or the names).

    With no mapping, services named ``queen``, ``hive1``, ``hive2``... are the components.

    Raises:
        ConfigError: a mapped service does not exist, a component name is not queen/hiveN, or
            there is no queen or no hive.
    """
    names = sorted(project.services)
    if not mapping:
        mapping = {s: s for s in names if COMPONENT.fullmatch(s)}
    out: dict[str, str] = {}
    for service, component in mapping.items():
        if service not in project.services:
            msg = (
                f"stack.compose.services maps service {service!r}, which {source} does not "
                f"define{did_you_mean(service, names)}; its services: {', '.join(names)}"
            )
            raise ConfigError(msg, service=service)
        if not COMPONENT.fullmatch(component) or component in out:
            msg = (
                f"stack.compose.services.{service} = {component!r}: components are named queen, "
                "hive1, hive2, ... and each is mapped once"
            )
            raise ConfigError(msg, service=service)
        out[component] = service
    if "queen" not in out or len(out) < 2:
        msg = (
            f"{source}: the compose backend needs a queen and at least one hive; map them in "
            '[stack.compose] services = { "my-queen" = "queen", "my-hive" = "hive1" }'
        )
        raise ConfigError(msg)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "queen", len(kv[0]), kv[0])))


def _labelled(spec: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    own = spec.get("labels") or {}
    if isinstance(own, list):  # ["key=value", ...]
        own = dict(item.split("=", 1) if "=" in item else (item, "") for item in own)
    return {**spec, "labels": {**own, **labels}}


def override_file(
    path: Path,
    project: ComposeProject,
    *,
    labels: Mapping[str, str],
    env_file: Path,
    components: Mapping[str, str],
) -> Path:
    """Write the per-run override (JSON, which compose reads as YAML) and return its path."""
    mapped = set(components.values())
    data: dict[str, Any] = {
        "services": {
            name: {
                "labels": dict(labels),
                **({"env_file": [str(env_file)]} if name in mapped else {}),
            }
            for name in project.services
        },
        # compose replaces (does not merge) a network or volume an override names: repeat it
        "networks": {n: _labelled(spec, labels) for n, spec in project.networks.items()},
        "volumes": {n: _labelled(spec, labels) for n, spec in project.volumes.items()},
    }
    if project.version:
        data = {"version": project.version, **data}
    if not data["volumes"]:
        del data["volumes"]
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
