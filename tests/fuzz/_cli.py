"""Running ``rbee-props fuzz`` as a user does, and what the fuzz command tests share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil

#: a known stack token, so a test can search every written file for it (and its prefixes)
TOKEN = "fuzz-secret-" + "Zq7Wm4Xv" * 4


def rbee_props(*args: str, env: dict[str, str], cwd: Path, timeout: float = 240):
    """``python -m rbee_props.cli ARGS`` in ``cwd``; the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "rbee_props.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )  # fmt: skip


def token_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config whose stack uses :data:`TOKEN` from a 0600 file; (config, token file)."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    config = tmp_path / "rbee-props.toml"
    config.write_text(f'[stack]\ntoken_file = "{token_file}"\n')
    return config, token_file


def external_config(tmp_path: Path) -> str:
    """A config for an external stack whose queen URL nothing answers (token from a file)."""
    _, token_file = token_config(tmp_path)
    config = tmp_path / "external.toml"
    config.write_text(
        f'[stack]\nbackend = "external"\ntoken_file = "{token_file}"\nstartup_timeout = 2\n'
        f'[stack.external]\nqueen_url = "http://127.0.0.1:{free_port()}"\n'
    )
    return str(config)


def free_port() -> int:
    """A loopback port nothing listens on (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_of(home: str) -> list[psutil.Process]:
    """Live processes started under ``RBEE_PROPS_HOME=home``: stack components, fuzz workers."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get("RBEE_PROPS_HOME") == home:
                found.append(proc)
        except psutil.Error:
            pass
    return found
