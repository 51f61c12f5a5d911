"""What the three reference programs share at start-up: flags, timings, token, socket, serving.

A program that cannot start prints exactly one line on stderr (``error: <program>: ...``) and
exits non-zero (2 for a usage problem, 3 for a port already taken), leaving nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import uvicorn

from rbee_props.reference.bugs import UnknownBug, active_bugs

__all__ = [
    "TIMINGS",
    "OneLineParser",
    "Startup",
    "bind_socket",
    "fail",
    "load_token",
    "parse_host_port",
    "serve",
]

#: timing name -> (environment variable, upstream default in seconds, help)
TIMINGS: dict[str, tuple[str, float, str]] = {
    "health_interval": ("RBEE_HEALTH_INTERVAL", 30.0, "seconds between health sweeps"),
    "health_timeout": ("RBEE_HEALTH_TIMEOUT", 5.0, "timeout of one health probe"),
    "health_failures": ("RBEE_HEALTH_FAILURES", 3, "failed probes in a row before eviction"),
    "ready_timeout": ("RBEE_READY_TIMEOUT", 30.0, "how long a worker may stay loading"),
    "task_ready_wait": ("RBEE_TASK_READY_WAIT", 300.0, "queen wait for a task's worker"),
    "idle_timeout": ("RBEE_IDLE_TIMEOUT", 300.0, "idle time before a worker is stopped"),
    "kill_grace": ("RBEE_KILL_GRACE", 10.0, "time between SIGTERM/shutdown and SIGKILL"),
    "shutdown_timeout": ("RBEE_SHUTDOWN_TIMEOUT", 30.0, "cap on a hive's cascading shutdown"),
    "spawn_timeout": ("RBEE_SPAWN_TIMEOUT", 30.0, "timeout of a spawn call"),
    "inference_timeout": ("RBEE_INFERENCE_TIMEOUT", 300.0, "timeout of an inference call"),
    "load_delay": ("RBEE_WORKER_LOAD_DELAY", 0.2, "reference worker: model load time"),
    "token_delay": ("RBEE_WORKER_TOKEN_DELAY", 0.002, "reference worker: time per token"),
}

log = logging.getLogger("rbee_props.reference")


def fail(program: str, message: str, *, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit: the only way a reference program refuses to start."""
    sys.stderr.write(f"error: {program}: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, as every rbee-props error is."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see --help)")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"expected seconds (a number), got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 0:
        msg = f"expected seconds >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_timing_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Add ``--health-interval`` style flags; resolved later against env vars and defaults."""
    for name in names:
        env, default, help_ = TIMINGS[name]
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=_positive_seconds,
            default=None,
            help=f"{help_} (env {env}, default {default:g})",
        )


def resolve_timings(program: str, args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """Flag wins over env var wins over the upstream default (contract D6)."""
    out: dict[str, Any] = {}
    for name in names:
        env, default, _ = TIMINGS[name]
        value = getattr(args, name, None)
        if value is None and os.environ.get(env):
            try:
                value = _positive_seconds(os.environ[env])
            except argparse.ArgumentTypeError as exc:
                fail(program, f"{env}: {exc}")
        if value is None:
            value = default
        out[name] = int(value) if name == "health_failures" else float(value)
    if "health_failures" in out and out["health_failures"] < 1:
        fail(program, "--health-failures must be at least 1")
    return out


def load_token(program: str, token_file: str | None) -> str:
    """The stack token: ``--token-file`` (trailing newline stripped), else ``LLORCH_API_TOKEN``."""
    if token_file:
        try:
            return Path(token_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            fail(program, f"cannot read --token-file {token_file!r}: {reason}")
    return os.environ.get("LLORCH_API_TOKEN", "")


def load_bugs(program: str) -> frozenset[str]:
    """Planted bugs from ``RBEE_REF_BUGS``; an unknown name refuses the start."""
    try:
        return active_bugs()
    except UnknownBug as exc:
        fail(program, str(exc))


def parse_host_port(program: str, text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``--addr``)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        fail(program, f"--addr expects HOST:PORT with a port in 1..65535, got {text!r}")
    return host, int(port_text)


def bind_socket(program: str, host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything else starts, so a taken port fails at once."""
    # IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket names its protocol; without it every back-to-back request waits ~40 ms for an ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(program, f"cannot listen on {host}:{port}: {exc.strerror}; choose a free port", code=3)
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


class Startup:
    """Common state of a reference program: its name, token, bugs and timings."""

    def __init__(self, program: str, token: str, bugs: frozenset[str], timings: dict[str, Any]):
        self.program = program
        self.token = token
        self.bugs = bugs
        self.timings = timings


def configure_logging(program: str) -> None:
    """Log lines to stderr; the stack controller captures them into one file per component."""
    logging.basicConfig(
        level=os.environ.get("RBEE_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s %(levelname)s {program} %(name)s: %(message)s",
        stream=sys.stderr,
    )


def serve(
    app: Callable[..., Any],
    sock: socket.socket,
    *,
    graceful_timeout: float,
) -> None:
    """Serve ``app`` on the already bound ``sock`` until SIGTERM/SIGINT, then shut down cleanly."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(graceful_timeout, 0.1),
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the SIGTERM/SIGINT it shut down for once it is done, which would end the
    # process by that signal (exit -15) or a KeyboardInterrupt. The shutdown was clean: ignore the
    # re-raised signal, so the program returns from here and exits 0 (or its own exit code).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _after_graceful_shutdown)
    asyncio.run(server.serve(sockets=[sock]))


def _after_graceful_shutdown(signum: int, frame: Any) -> None:
    log.debug("signal %d after a graceful shutdown: ignored", signum)
