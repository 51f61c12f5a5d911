"""ExternalStack: a stack someone else runs; rbee-props only knows its URLs and token.

No faults are supported: state machines switch every fault rule off by precondition.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rbee_props.config import Config
from rbee_props.errors import ConfigError
from rbee_props.stack._base import Stack

__all__ = ["ExternalStack"]


class ExternalStack(Stack):
    """URLs from ``[stack.external]``, the token from ``stack.token_file`` or the environment."""

    capabilities = frozenset()

    def __init__(self, config: Config) -> None:
        ext = config.external
        if not ext.queen_url:
            msg = (
                f"{config.source}: backend 'external' needs [stack.external] queen_url "
                '(e.g. queen_url = "http://127.0.0.1:8080")'
            )
            raise ConfigError(msg)
        self.config = config
        self._urls = {"queen": ext.queen_url.rstrip("/")}
        for i, url in enumerate(ext.hive_urls, start=1):
            self._urls[f"hive{i}"] = url.rstrip("/")
        self.health_paths = {
            name: (config.queen if name == "queen" else config.hive).health for name in self._urls
        }
        self._token = self._read_token()

    def _read_token(self) -> str:
        if self.config.token_file not in ("", "auto"):
            try:
                return Path(self.config.token_file).read_text().rstrip("\r\n")
            except OSError as exc:
                msg = f"cannot read stack.token_file {self.config.token_file!r}: {exc.strerror}"
                raise ConfigError(msg) from exc
        token = os.environ.get("LLORCH_API_TOKEN", "")
        if not token:
            msg = (
                "backend 'external' needs the stack's token: set stack.token_file in "
                f"{self.config.source} or the LLORCH_API_TOKEN environment variable"
            )
            raise ConfigError(msg)
        return token

    @property
    def urls(self) -> Mapping[str, str]:
        return self._urls

    @property
    def token(self) -> str:
        return self._token

    def start(self) -> ExternalStack:
        """Check that the stack answers; nothing is started."""
        self.wait_healthy(self.config.startup_timeout)
        return self

    def stop(self) -> None:
        """Nothing to stop: the stack belongs to someone else."""

    def describe_failure(self, component: str) -> str:
        return (
            "check that the URL in [stack.external] is right and the service runs "
            "(rbee-props does not start external stacks)"
        )
