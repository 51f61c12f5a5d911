"""The stack description and run settings: ``rbee-props.toml``, loaded into frozen attrs classes.

Where the config comes from, first match wins: ``--config FILE``; ``rbee-props.toml`` in the
working directory; ``[tool.rbee-props]`` in ``pyproject.toml``; else the reference stack (one
queen, two hives). Commands are argument lists with placeholders the stack fills in:

======================  =========================================================
``{port}``              the component's own port (chosen by the controller)
``{data_dir}``          a per-component directory inside the run directory
``{token_file}``        the run's token file (0600)
``{queen_url}``         how this hive reaches the queen (through the fault proxy)
``{name}``              the component name (``queen``, ``hive1``, ``hive2``, ...)
``{worker_ports}``      this hive's worker port range ``A-B``
``{python}``            the Python running rbee-props (for the reference stack)
``{token}``             the token itself; allowed in ``env`` values only
======================  =========================================================

Every problem is a :class:`~rbee_props.errors.ConfigError` naming the key, what was expected and
what was seen; an unknown key gets a "did you mean".
"""

from __future__ import annotations

import os
import re
import string
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from rbee_props.errors import ConfigError, did_you_mean
from rbee_props.reference.bugs import KNOWN_BUGS

__all__ = [
    "ComponentConfig",
    "ComposeConfig",
    "Config",
    "ExternalConfig",
    "Timings",
    "default_config",
    "load_config",
]

PLACEHOLDERS = ("port", "data_dir", "token_file", "queen_url", "name", "worker_ports", "python")
ENV_PLACEHOLDERS = (*PLACEHOLDERS, "token")
BACKENDS = ("local", "compose", "external")


@attrs.frozen
class Timings:
    """Timings handed to every component as ``RBEE_*`` env vars (contract §7), in seconds."""

    health_interval: float = 0.3
    health_timeout: float = 0.25
    health_failures: int = 3
    ready_timeout: float = 10.0
    task_ready_wait: float = 10.0
    idle_timeout: float = 3600.0
    kill_grace: float = 1.0
    shutdown_timeout: float = 5.0
    spawn_timeout: float = 10.0
    inference_timeout: float = 30.0
    load_delay: float = 0.1
    token_delay: float = 0.002

    ENV: ClassVar[dict[str, str]] = {
        "health_interval": "RBEE_HEALTH_INTERVAL",
        "health_timeout": "RBEE_HEALTH_TIMEOUT",
        "health_failures": "RBEE_HEALTH_FAILURES",
        "ready_timeout": "RBEE_READY_TIMEOUT",
        "task_ready_wait": "RBEE_TASK_READY_WAIT",
        "idle_timeout": "RBEE_IDLE_TIMEOUT",
        "kill_grace": "RBEE_KILL_GRACE",
        "shutdown_timeout": "RBEE_SHUTDOWN_TIMEOUT",
        "spawn_timeout": "RBEE_SPAWN_TIMEOUT",
        "inference_timeout": "RBEE_INFERENCE_TIMEOUT",
        "load_delay": "RBEE_WORKER_LOAD_DELAY",
        "token_delay": "RBEE_WORKER_TOKEN_DELAY",
    }

    def as_env(self) -> dict[str, str]:
        """The ``RBEE_*`` variables every component gets."""
        return {env: f"{getattr(self, name):g}" for name, env in self.ENV.items()}

    @property
    def grace(self) -> float:
        """G = (N + 1) x health interval + kill grace + 1 s (contract §7)."""
        return (self.health_failures + 1) * self.health_interval + self.kill_grace + 1.0

    @property
    def poll_interval(self) -> float:
        """Longest pause between two polls of a convergence: a quarter of the health interval.

        The stack changes on the tick of its health checks, so a poll this often sees a change
        at most a quarter tick late; at most 0.25 s (the backoff's own cap), at least 10 ms.
        """
        return min(max(self.health_interval / 4, 0.01), 0.25)


@attrs.frozen
class ComponentConfig:
    """How one kind of component is started and checked."""

    command: tuple[str, ...]
    health: str
    env: Mapping[str, str] = attrs.field(factory=dict)
    count: int = 1
    worker_ports: int = 40


@attrs.frozen
class ExternalConfig:
    """A stack that someone else runs: URLs only."""

    queen_url: str = ""
    hive_urls: tuple[str, ...] = ()


@attrs.frozen
class ComposeConfig:
    """A stack as docker compose services (the compose backend, ``docs/compose.md``).

    ``file`` empty means the reference stack's ``compose/docker-compose.yml`` on the image
    ``rbee-props image build`` makes; ``services`` maps a service name of ``file`` to a
    component (``queen``, ``hive1``, ...), empty meaning services named like components;
    ``project`` prefixes the per-run compose project name.
    """

    file: str = ""
    project: str = ""
    services: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Config:
    """Everything rbee-props needs to know about the stack under test."""

    backend: str = "local"
    token_file: str = "auto"
    ports: tuple[int, int] | None = None
    startup_timeout: float = 30.0
    bugs: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    grace: float | None = None
    timings: Timings = Timings()
    queen: ComponentConfig = attrs.field(factory=lambda: REFERENCE_QUEEN)
    hive: ComponentConfig = attrs.field(factory=lambda: REFERENCE_HIVE)
    external: ExternalConfig = ExternalConfig()
    compose: ComposeConfig = ComposeConfig()
    source: str = "built-in reference stack"

    @property
    def grace_seconds(self) -> float:
        """The grace window G for *eventually* invariants (``grace`` overrides the formula)."""
        return self.grace if self.grace is not None else self.timings.grace

    @property
    def is_reference(self) -> bool:
        """Whether the components are the embedded reference programs (planted bugs apply)."""
        return "rbee_props.reference.queen" in self.queen.command


REFERENCE_QUEEN = ComponentConfig(
    command=(
        "{python}", "-m", "rbee_props.reference.queen", "--port", "{port}",
        "--database", "{data_dir}/beehives.db", "--token-file", "{token_file}",
    ),
    health="/health",
)  # fmt: skip
REFERENCE_HIVE = ComponentConfig(
    command=(
        "{python}", "-m", "rbee_props.reference.hive", "--addr", "127.0.0.1:{port}",
        "--name", "{name}", "--queen-url", "{queen_url}", "--token-file", "{token_file}",
        "--data-dir", "{data_dir}", "--worker-ports", "{worker_ports}",
    ),
    health="/v1/health",
    count=2,
)  # fmt: skip


def default_config() -> Config:
    """The reference stack: one queen, two hives, fast timings."""
    return Config()


# -- loading -----------------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    cwd: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load the config from ``path``, ``rbee-props.toml``, ``pyproject.toml``, or the defaults.

    Args:
        path: an explicit file (``--config``); a missing file is an error.
        cwd: where to look for ``rbee-props.toml`` / ``pyproject.toml``.
        overrides: ``{"bugs": [...], "backend": "...", "hives": N, "grace": s}`` from the CLI.

    Raises:
        ConfigError: the file cannot be read or a value is wrong.
    """
    cwd = cwd or Path.cwd()
    data: dict[str, Any] = {}
    source = "built-in reference stack"
    if path is not None:
        file = Path(path)
        if not file.is_file():
            msg = (
                f"config file {str(file)!r} does not exist; pass an existing TOML file to --config"
            )
            raise ConfigError(msg, path=str(file))
        data, source = _read_toml(file), str(file)
        if file.name == "pyproject.toml":
            data = data.get("tool", {}).get("rbee-props", {})
    elif (cwd / "rbee-props.toml").is_file():
        file = cwd / "rbee-props.toml"
        data, source = _read_toml(file), str(file)
    elif (cwd / "pyproject.toml").is_file():
        tool = _read_toml(cwd / "pyproject.toml").get("tool", {})
        if "rbee-props" in tool:
            data, source = tool["rbee-props"], f"{cwd / 'pyproject.toml'} [tool.rbee-props]"
    return parse_config(data, source=source, overrides=overrides)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        msg = f"cannot read config file {str(file)!r}: {exc.strerror}"
        raise ConfigError(msg, path=str(file)) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"config file {str(file)!r} is not valid TOML: {exc}"
        raise ConfigError(msg, path=str(file)) from exc


class _Reader:
    """Walks the TOML tables, checking keys and types with messages that name the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, expected: str, value: Any) -> ConfigError:
        msg = (
            f"{self.source}: {key} must be {expected}, got {value!r} ({type(value).__name__}); "
            "fix it in the config file"
        )
        return ConfigError(msg, key=key, value=value)

    def table(self, key: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, "a table", value)
        for name in value:
            if name not in allowed:
                msg = (
                    f"{self.source}: unknown key {key}.{name}{did_you_mean(name, allowed)}; "
                    f"allowed keys in [{key}]: {', '.join(allowed)}"
                )
                raise ConfigError(msg, key=f"{key}.{name}")
        return value

    def number(self, key: str, value: Any, *, integer: bool = False, low: float = 0) -> Any:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value < low:
            raise self.error(key, f"{'an integer' if integer else 'a number'} >= {low:g}", value)
        return value

    def text(self, key: str, value: Any, choices: tuple[str, ...] = ()) -> str:
        if not isinstance(value, str):
            raise self.error(key, "a string", value)
        if choices and value not in choices:
            msg = (
                f"{self.source}: {key} must be one of {', '.join(choices)}, got {value!r}"
                f"{did_you_mean(value, choices)}"
            )
            raise ConfigError(msg, key=key, value=value)
        return value

    def strings(self, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "a list of strings", value)
        return tuple(value)

    def placeholders(self, key: str, text: str, allowed: tuple[str, ...]) -> None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        except ValueError as exc:
            msg = f"{self.source}: {key} has a malformed placeholder in {text!r}: {exc}"
            raise ConfigError(msg, key=key) from exc
        for field in fields:
            if field not in allowed:
                msg = (
                    f"{self.source}: {key} uses unknown placeholder {{{field}}}"
                    f"{did_you_mean(field, allowed)}; known: "
                    + ", ".join("{" + a + "}" for a in allowed)
                )
                raise ConfigError(msg, key=key, placeholder=field)


def parse_config(
    data: Mapping[str, Any], *, source: str, overrides: Mapping[str, Any] | None = None
) -> Config:
    """Build a :class:`Config` from parsed TOML (``[stack]`` table), then apply CLI overrides."""
    r = _Reader(source)
    top = r.table("(top level)", dict(data), ("stack",))
    stack = r.table("stack", top.get("stack", {}), _STACK_KEYS)
    kw: dict[str, Any] = {"source": source}
    if "backend" in stack:
        kw["backend"] = r.text("stack.backend", stack["backend"], BACKENDS)
    if "token_file" in stack:
        kw["token_file"] = r.text("stack.token_file", stack["token_file"])
    if "ports" in stack:
        kw["ports"] = _port_range(r, stack["ports"])
    if "startup_timeout" in stack:
        kw["startup_timeout"] = float(r.number("stack.startup_timeout", stack["startup_timeout"]))
    if "bugs" in stack:
        kw["bugs"] = _bugs(r, r.strings("stack.bugs", stack["bugs"]))
    if "known" in stack:
        kw["known"] = r.strings("stack.known", stack["known"])
    if "grace" in stack and stack["grace"] != "auto":
        kw["grace"] = float(r.number("stack.grace", stack["grace"]))
    if "timings" in stack:
        kw["timings"] = _timings(r, stack["timings"])
    for kind, base in (("queen", REFERENCE_QUEEN), ("hive", REFERENCE_HIVE)):
        if kind in stack:
            kw[kind] = _component(r, f"stack.{kind}", stack[kind], base)
    if "external" in stack:
        ext = r.table("stack.external", stack["external"], ("queen_url", "hive_urls"))
        kw["external"] = ExternalConfig(
            queen_url=r.text("stack.external.queen_url", ext.get("queen_url", "")),
            hive_urls=r.strings("stack.external.hive_urls", ext.get("hive_urls", [])),
        )
    if "compose" in stack:
        comp = r.table("stack.compose", stack["compose"], ("file", "project", "services"))
        services = r.table("stack.compose.services", comp.get("services", {}), _ANY)
        kw["compose"] = ComposeConfig(
            file=r.text("stack.compose.file", comp.get("file", "")),
            project=r.text("stack.compose.project", comp.get("project", "")),
            services={str(k): _component_name(r, str(k), v) for k, v in services.items()},
        )
    config = Config(**kw)
    return _apply_overrides(r, config, overrides or {})


class _AnyKeys(tuple[str, ...]):
    def __contains__(self, item: object) -> bool:
        return True


_ANY = _AnyKeys()
_STACK_KEYS = (
    "backend", "token_file", "ports", "startup_timeout", "bugs", "known", "grace", "timings",
    "queen", "hive", "external", "compose",
)  # fmt: skip


def _component_name(r: _Reader, service: str, value: Any) -> str:
    """A compose service maps to ``queen`` or ``hive1``, ``hive2``, ..."""
    text = r.text(f"stack.compose.services.{service}", value)
    if not re.fullmatch(r"queen|hive[1-9][0-9]*", text):
        msg = f"stack.compose.services.{service}"
        raise r.error(msg, 'a component name: "queen" or "hive1", "hive2", ...', value)
    return text


def _port_range(r: _Reader, value: Any) -> tuple[int, int] | None:
    if value == "auto":
        return None
    match = re.fullmatch(r"(\d{1,5})-(\d{1,5})", value) if isinstance(value, str) else None
    if not match or not 1024 <= int(match[1]) < int(match[2]) <= 65535:
        msg = "stack.ports"
        raise r.error(msg, '"auto" or a range "A-B" with 1024 <= A < B <= 65535', value)
    return int(match[1]), int(match[2])


def _bugs(r: _Reader, names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        if name not in KNOWN_BUGS:
            msg = (
                f"{r.source}: unknown planted bug {name!r}{did_you_mean(name, KNOWN_BUGS)}; "
                f"known: {', '.join(sorted(KNOWN_BUGS))}"
            )
            raise ConfigError(msg, key="stack.bugs", value=name)
    return tuple(dict.fromkeys(names))


def _timings(r: _Reader, value: Any) -> Timings:
    names = tuple(a.name for a in attrs.fields(Timings))
    table = r.table("stack.timings", value, names)
    out = {}
    for name, raw in table.items():
        integer = name == "health_failures"
        out[name] = r.number(f"stack.timings.{name}", raw, integer=integer, low=1 if integer else 0)
    return Timings(**out)


def _component(r: _Reader, key: str, value: Any, base: ComponentConfig) -> ComponentConfig:
    allowed = ("command", "health", "env") + (("count", "worker_ports") if "hive" in key else ())
    table = r.table(key, value, allowed)
    command = r.strings(f"{key}.command", table["command"]) if "command" in table else base.command
    if not command:
        msg = f"{key}.command"
        raise r.error(msg, "a non-empty list of strings", table["command"])
    for part in command:
        r.placeholders(f"{key}.command", part, PLACEHOLDERS)
    health = r.text(f"{key}.health", table.get("health", base.health))
    if not health.startswith("/"):
        msg = f"{key}.health"
        raise r.error(msg, "a path starting with '/'", health)
    env_table = r.table(f"{key}.env", table.get("env", {}), _ANY)
    env = {}
    for name, val in env_table.items():
        env[name] = r.text(f"{key}.env.{name}", val)
        r.placeholders(f"{key}.env.{name}", env[name], ENV_PLACEHOLDERS)
    count = base.count
    if "count" in table:
        count = r.number(f"{key}.count", table["count"], integer=True, low=1)
    ports = base.worker_ports
    if "worker_ports" in table:
        ports = r.number(f"{key}.worker_ports", table["worker_ports"], integer=True, low=1)
    return ComponentConfig(command=command, health=health, env=env, count=count, worker_ports=ports)


def _apply_overrides(r: _Reader, config: Config, overrides: Mapping[str, Any]) -> Config:
    changes: dict[str, Any] = {}
    if overrides.get("bugs") is not None:
        changes["bugs"] = _bugs(_Reader("--bugs"), tuple(overrides["bugs"]))
    if overrides.get("backend") is not None:
        changes["backend"] = _Reader("--backend").text("backend", overrides["backend"], BACKENDS)
    if overrides.get("hives") is not None:
        count = _Reader("--hives").number("hives", overrides["hives"], integer=True, low=1)
        changes["hive"] = attrs.evolve(config.hive, count=count)
    if overrides.get("grace") is not None:
        changes["grace"] = float(_Reader("--rbee-grace").number("grace", overrides["grace"]))
    return attrs.evolve(config, **changes) if changes else config


def python_executable() -> str:
    """The interpreter that runs rbee-props; the reference programs run under it too."""
    return sys.executable
