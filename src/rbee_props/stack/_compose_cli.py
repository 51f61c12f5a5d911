"""The compose command line: ``docker compose`` (v2 plugin) or ``docker-compose`` (v1).

Only the lifecycle goes through it (``config``, ``up``, ``down``): what the compose file means
is compose's business, so a user's own file behaves as it would by hand. Faults go through the
docker SDK (``compose.py``). Errors of the tool become one line: the first line of its stderr.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from rbee_props.errors import ConfigError, DockerUnavailable, StackError

__all__ = ["ComposeTool", "find_compose"]


def _works(argv: Sequence[str]) -> bool:
    if shutil.which(argv[0]) is None:
        return False
    try:
        done = subprocess.run(
            [*argv, "version"], capture_output=True, timeout=30, check=False, text=True
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@functools.cache
def find_compose() -> ComposeTool:
    """The compose tool this machine has, ``docker compose`` first.

    Raises:
        DockerUnavailable: neither ``docker compose`` nor ``docker-compose`` runs.
    """
    for argv in (("docker", "compose"), ("docker-compose",)):
        if _works(argv):
            return ComposeTool(argv)
    msg = (
        "neither `docker compose` nor `docker-compose` runs on this machine; install the "
        "compose tool (apt-get install docker-compose, or the docker compose plugin)"
    )
    raise DockerUnavailable(msg)


def _first_line(text: str) -> str:
    """compose's complaint in one line: the first error line and the one after it, else the
    last line (progress lines come first)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "error" in line.lower() or "invalid" in line.lower():
            return " ".join(lines[index : index + 2])[:400]
    useful = [line for line in lines if not line.lower().startswith("warn")]
    return (useful or lines or ["(no output)"])[-1][:400]


@attrs.frozen
class ComposeTool:
    """One compose command line, bound to nothing: project and files are passed per call."""

    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return " ".join(self.argv)

    def run(
        self,
        args: Sequence[str],
        *,
        project: str,
        files: Sequence[Path],
        env: Mapping[str, str],
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``compose -p project -f ... args`` with ``env`` added to the environment."""
        argv = [*self.argv, "-p", project]
        for file in files:
            argv += ["-f", str(file)]
        try:
            return subprocess.run(
                [*argv, *args],
                capture_output=True,
                text=True,
                env={**os.environ, **env},
                timeout=timeout,
                check=False,
                cwd=files[0].parent if files else None,
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"`{self.name} {' '.join(args)}` did not finish within {timeout:g}s"
            raise StackError(msg) from exc

    def config(self, *, project: str, files: Sequence[Path], env: Mapping[str, str]) -> str:
        """The merged, interpolated compose configuration as YAML text.

        Raises:
            ConfigError: the file is invalid (compose's own message, one line).
        """
        done = self.run(["config"], project=project, files=files, env=env, timeout=60)
        if done.returncode != 0:
            where = ", ".join(str(f) for f in files)
            reason = _first_line(done.stderr or done.stdout or f"exit code {done.returncode}")
            msg = (
                f"compose file {where} is invalid: {reason}; fix it "
                f"(check with `{self.name} -f {files[0]} config`)"
            )
            raise ConfigError(msg, files=where)
        return done.stdout

    def up(
        self, *, project: str, files: Sequence[Path], env: Mapping[str, str], timeout: float
    ) -> None:
        """``up -d``: create networks, volumes and containers and start them.

        Raises:
            StackError: compose could not start the project (e.g. an image is missing).
        """
        args = ["up", "-d", "--no-color"] if self.argv[0] == "docker-compose" else ["up", "-d"]
        done = self.run(args, project=project, files=files, env=env, timeout=timeout)
        if done.returncode != 0:
            reason = _first_line(done.stderr or done.stdout or f"exit code {done.returncode}")
            msg = f"`{self.name} up` failed: {reason}"
            raise StackError(msg)

    def down(self, *, project: str, files: Sequence[Path], env: Mapping[str, str]) -> bool:
        """``down -v --remove-orphans`` with a short stop timeout; True when compose said ok."""
        args = ["down", "-v", "--remove-orphans", "-t", "2"]
        done = self.run(args, project=project, files=files, env=env, timeout=120)
        return done.returncode == 0
