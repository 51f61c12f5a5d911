"""Fixtures of the docker tier: the engine (or a skip that says why), the image, a compose stack.

Every test here is marked ``docker``. When no Docker Engine answers, each is skipped with the
engine's answer as the reason (``-ra`` prints it). The stack image is built once per machine and
found by its content hash afterwards (``rbee-props image build``); a cold build takes minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from rbee_props.config import Config, parse_config
from rbee_props.errors import DockerUnavailable
from rbee_props.stack._docker import RUN_LABEL, docker_client
from rbee_props.stack.compose import ComposeStack
from rbee_props.stack.image import stack_image as image_for_run


def compose_config(**changes: object) -> Config:
    """The reference stack on the compose backend (no config file is read)."""
    return attrs.evolve(parse_config({}, source="test"), backend="compose", **changes)


def labelled(client, run_id: str) -> dict[str, list[str]]:
    """Names of the containers, networks and volumes that carry ``run_id``'s label."""
    filters = {"label": f"{RUN_LABEL}={run_id}"}
    return {
        "containers": [c.name for c in client.containers.list(all=True, filters=filters)],
        "networks": [n.name for n in client.networks.list(filters=filters)],
        "volumes": [v.name for v in client.volumes.list(filters=filters)],
    }


@pytest.fixture(scope="session")
def engine():
    """A docker client, or a skip naming why no engine answers."""
    try:
        client = docker_client(timeout=60)
    except DockerUnavailable as exc:
        pytest.skip(f"no Docker Engine answers: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def stack_image(engine) -> str:
    """The stack image for the current sources (built on the first use on a machine)."""
    return image_for_run(engine)


@pytest.fixture(scope="module")
def compose_stack(stack_image, tmp_path_factory) -> Iterator[ComposeStack]:
    """The reference stack on compose, shared by a module's tests; removed at its end."""
    stack = ComposeStack(compose_config())
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def recovered(compose_stack) -> Iterator[ComposeStack]:
    """The shared stack with every fault undone before and after the test."""
    compose_stack.recover()
    compose_stack.wait_healthy(60)
    yield compose_stack
    compose_stack.recover()
