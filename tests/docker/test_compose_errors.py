"""Bad input to the compose backend: one readable ``error:`` line, the documented exit code,
and nothing left behind (no container, network or volume of a run appears)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rbee_props.stack._docker import RUN_LABEL

pytestmark = pytest.mark.docker


def rbee_props(*args, env, cwd, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "rbee_props.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )  # fmt: skip


def assert_one_error_line(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def resources(client) -> set[str]:
    """Every container, network and volume of any compose run."""
    label = {"label": RUN_LABEL}
    return (
        {c.id for c in client.containers.list(all=True, filters=label)}
        | {n.id for n in client.networks.list(filters=label)}
        | {v.name for v in client.volumes.list(filters=label)}
    )


@pytest.fixture
def env(tmp_path, stack_image):
    return dict(
        os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"), RBEE_PROPS_STACK_IMAGE=stack_image
    )


def project(tmp_path, compose: str, services: str = "") -> str:
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(compose))
    config = '[stack]\nbackend = "compose"\n[stack.compose]\nfile = "docker-compose.yml"\n'
    (tmp_path / "rbee-props.toml").write_text(config + services)
    return str(tmp_path / "rbee-props.toml")


TWO_SERVICES = """
    services:
      queen: {image: IMAGE, ports: ["127.0.0.1:${RBEE_QUEEN_PORT}:8080"]}
      hive1: {image: IMAGE, ports: ["127.0.0.1:${RBEE_HIVE1_PORT}:9200"]}
"""


def test_no_engine_is_one_line_and_exit_3(env, tmp_path):
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-such-docker.sock"
    result = rbee_props("up", "--backend", "compose", env=env, cwd=tmp_path)
    assert_one_error_line(result, 3, "no Docker Engine answers", "no-such-docker.sock")


def test_an_invalid_compose_file_is_exit_2(env, tmp_path, engine):
    before = resources(engine)
    config = project(tmp_path, "services:\n  queen:\n    ports: 5\n")
    result = rbee_props("up", "--config", config, "--hives", "1", env=env, cwd=tmp_path)
    assert_one_error_line(result, 2, "is invalid", "docker-compose.yml")
    assert resources(engine) == before


def test_a_mapped_service_that_does_not_exist_is_exit_2(env, tmp_path, engine, stack_image):
    before = resources(engine)
    services = '[stack.compose.services]\nquen = "queen"\nhive1 = "hive1"\n'
    config = project(tmp_path, TWO_SERVICES.replace("IMAGE", stack_image), services)
    result = rbee_props("up", "--config", config, "--hives", "1", env=env, cwd=tmp_path)
    assert_one_error_line(result, 2, "'quen'", "did you mean 'queen'")
    assert resources(engine) == before


def test_an_image_that_is_missing_and_cannot_be_pulled_is_exit_3(env, tmp_path, engine):
    before = resources(engine)
    config = project(tmp_path, TWO_SERVICES.replace("IMAGE", "rbee-props-test/missing:0"))
    result = rbee_props("up", "--config", config, "--hives", "1", env=env, cwd=tmp_path)
    assert_one_error_line(result, 3, "up` failed")
    assert resources(engine) == before


def test_an_image_that_cannot_be_built_is_exit_3(env, tmp_path):
    result = rbee_props(
        "image", "build", "--base-image", "rbee-props-test/no-base:0", env=env, cwd=tmp_path
    )
    assert_one_error_line(result, 3, "rbee-props-test/no-base:0", "cannot be pulled")
