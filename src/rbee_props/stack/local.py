"""LocalStack: the stack as local processes (the embedded default backend).

Each component is a subprocess in its own process group with a port chosen by the controller,
a data directory and a log file in a per-run directory, and the run's token in a 0600 file.
Queen and hives reach each other only through a fault proxy (``faultproxy.py``), which is how
partitions and slow links are made; the test client reaches every component directly.

Clean-up is total: ``stop()`` kills every process of the run, a watchdog does it if the
controlling process dies, and the next start reaps what a crash left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

from rbee_props.config import Config
from rbee_props.errors import ComponentDidNotStart, ConfigError, StackError, UsageError
from rbee_props.stack._base import Fault, Stack, WaitTimedOut, WorkerProcess, poll_until
from rbee_props.stack._listeners import Listeners
from rbee_props.stack._ports import PortPlan
from rbee_props.stack._processes import (
    COMPONENT_ENV,
    DETACHED,
    OWNER_ENV,
    RUN_ENV,
    ManagedProcess,
    RunMembership,
    owner_tag,
    reap_orphaned_runs,
    reap_run,
)
from rbee_props.stack.faultproxy import ProxyControl

__all__ = ["LocalStack", "runs_root"]

HOST = "127.0.0.1"


def _wait_dead(proc: psutil.Process, timeout: float = 5.0) -> None:
    """Wait until a process we killed is gone or a zombie; its parent (not us) reaps it."""

    def dead() -> bool:
        try:
            return proc.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return True

    with contextlib.suppress(WaitTimedOut):
        poll_until(dead, timeout, what=f"pid {proc.pid} dead", first_delay=0.001)


#: kept for the components although it starts with ``RBEE_PROPS_``: it changes nothing they do,
#: and lets whoever set it find every process started under it (a test's leak checks)
HOME_ENV = "RBEE_PROPS_HOME"


def runs_root() -> Path:
    """Where run directories live (``RBEE_PROPS_HOME`` or a per-user temp directory)."""
    base = os.environ.get(HOME_ENV) or os.path.join(
        tempfile.gettempdir(), f"rbee-props-{os.getuid()}"
    )
    return Path(base) / "runs"


def _clean_env() -> dict[str, str]:
    """The user's environment without variables that would change the stack behind our back."""
    skip = ("RBEE_", "LLORCH_", "RBEE_PROPS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(skip) or k == HOME_ENV}


class LocalStack(Stack):
    """Queen, hives and fault proxy as local processes (see the module docstring)."""

    capabilities = frozenset(
        {
            Fault.KILL,
            Fault.TERMINATE,
            Fault.RESTART,
            Fault.PAUSE,
            Fault.KILL_WORKER,
            Fault.PARTITION,
            Fault.SLOW,
        }
    )
    sees_processes = True
    owns_beehives = True

    def __init__(self, config: Config, *, detached: bool = False, keep_run_dir: bool = False):
        self.config = config
        self.detached = detached
        self.keep_run_dir = keep_run_dir
        self.run_id = ""
        self.run_dir = Path()
        self._token = ""
        self._urls: dict[str, str] = {}
        self.ports: dict[str, int] = {}
        self.links: dict[str, int] = {}
        self.procs: dict[str, ManagedProcess] = {}
        self.health_paths: dict[str, str] = {}
        self.proxy: ManagedProcess | None = None
        self.proxy_port = 0
        self.watchdog: ManagedProcess | None = None
        self._watchdog_pipe: int | None = None
        self.started = False
        self._membership: RunMembership | None = None

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

    # -- start -----------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        """Start proxy, queen and hives and wait until every one is healthy.

        Raises:
            ConfigError: a command cannot be executed.
            StackError: a port is taken or a component did not become healthy.
        """
        reap_orphaned_runs()
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
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
        self._token = self._load_token()
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self._token + "\n")
        self._plan_ports()
        if not self.detached:
            self._start_watchdog()
        self._start_proxy()
        self._start_component("queen")
        self.add_beehives()
        for hive in self._hive_names():
            self._start_component(hive)
        self._write_state()

    def _load_token(self) -> str:
        if self.config.token_file == "auto":
            return secrets.token_urlsafe(24)
        try:
            return Path(self.config.token_file).read_text().rstrip("\r\n")
        except OSError as exc:
            msg = (
                f"cannot read stack.token_file {self.config.token_file!r}: {exc.strerror}; "
                'give a readable file or "auto"'
            )
            raise ConfigError(msg) from exc

    def _hive_names(self) -> list[str]:
        return [f"hive{i}" for i in range(1, self.config.hive.count + 1)]

    def _plan_ports(self) -> None:
        plan = PortPlan(self.config.ports)
        self.ports["queen"] = plan.take()
        self.proxy_port = plan.take()
        self.worker_ports: dict[str, tuple[int, int]] = {}
        for hive in self._hive_names():
            self.ports[hive] = plan.take()
            self.links[f"queen->{hive}"] = plan.take()
            self.links[f"{hive}->queen"] = plan.take()
            block = plan.block(self.config.hive.worker_ports)
            self.worker_ports[hive] = (block[0], block[-1])
        self._urls = {name: f"http://{HOST}:{port}" for name, port in self.ports.items()}
        self.health_paths = {
            name: (self.config.queen if name == "queen" else self.config.hive).health
            for name in self.ports
        }

    def _base_env(self, component: str) -> dict[str, str]:
        env = _clean_env()
        env.update(self.config.timings.as_env())
        env["RBEE_REF_BUGS"] = ",".join(self.config.bugs)
        env[RUN_ENV] = self.run_id
        env[OWNER_ENV] = DETACHED if self.detached else owner_tag()
        env[COMPONENT_ENV] = component
        return env

    def _process(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        return ManagedProcess(
            name, argv, env, log=self.run_dir / f"{name}.log", pidfile=self.run_dir / f"{name}.pid"
        )

    def _start_watchdog(self) -> None:
        read_end, write_end = os.pipe()
        argv = [sys.executable, "-m", "rbee_props.stack.watchdog", "--run-id", self.run_id]
        self.watchdog = self._process("watchdog", argv, self._base_env("watchdog"))
        try:
            self.watchdog.start(stdin=read_end)
        finally:
            os.close(read_end)
        os.set_inheritable(write_end, False)
        self._watchdog_pipe = write_end

    def _start_proxy(self) -> None:
        argv = [sys.executable, "-m", "rbee_props.stack.faultproxy"]
        argv += ["--control-port", str(self.proxy_port)]
        for name, port in self.links.items():
            target = name.split("->")[1]
            argv += ["--link", f"{name}={port}:{HOST}:{self.ports[target]}"]
        self.proxy = self._process("faultproxy", argv, self._base_env("faultproxy"))
        self.proxy.start()

        def answers() -> bool:
            if not self.proxy or not self.proxy.alive():
                tail = self.proxy.log_tail() if self.proxy else ""
                msg = f"the fault proxy exited at start: {tail}"
                raise ComponentDidNotStart(msg, component="faultproxy")
            try:
                return bool(ProxyControl(self.proxy_port, timeout=0.5).send({"op": "status"}))
            except OSError:
                return False

        try:
            poll_until(answers, 10.0, what="fault proxy control port")
        except WaitTimedOut as exc:
            msg = f"the fault proxy did not answer within 10s: {self.proxy.log_tail()}"
            raise ComponentDidNotStart(msg, component="faultproxy") from exc

    def _fill(self, text: str, name: str, *, env: bool = False) -> str:
        values = {
            "port": str(self.ports[name]),
            "data_dir": str(self.run_dir / name),
            "token_file": str(self.token_file),
            "queen_url": f"http://{HOST}:{self.links[f'{name}->queen']}" if name != "queen" else "",
            "name": name,
            "worker_ports": "-".join(map(str, self.worker_ports.get(name, (0, 0)))),
            "python": sys.executable,
        }
        if env:
            values["token"] = self._token
        return text.format(**values)

    def _start_component(self, name: str) -> None:
        spec = self.config.queen if name == "queen" else self.config.hive
        (self.run_dir / name).mkdir(exist_ok=True)
        argv = [self._fill(part, name) for part in spec.command]
        env = self._base_env(name)
        env.update({k: self._fill(v, name, env=True) for k, v in spec.env.items()})
        proc = self._process(name, argv, env)
        self.procs[name] = proc
        self._launch(name)

    def _launch(self, name: str) -> None:
        proc = self.procs[name]
        spec = self.config.queen if name == "queen" else self.config.hive
        try:
            proc.start()
        except OSError as exc:
            msg = (
                f"cannot run the {name} command {proc.argv[0]!r}: {exc.strerror}; check "
                f"[stack.{'queen' if name == 'queen' else 'hive'}] command in {self.config.source}"
            )
            raise ConfigError(msg, component=name) from exc
        self._wait_started(name, spec.health)

    def _wait_started(self, name: str, health: str) -> float:
        proc = self.procs[name]
        url = self._urls[name] + health

        def up() -> bool:
            if not proc.alive():
                msg = (
                    f"{name} exited with code {proc.exit_code()} before answering GET {health}; "
                    f"last lines of {proc.log}: {proc.log_tail()}"
                )
                raise ComponentDidNotStart(msg, component=name)
            try:
                return httpx.get(url, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            return poll_until(up, self.config.startup_timeout, what=f"{name} health")
        except WaitTimedOut as exc:
            msg = (
                f"{name} did not answer GET {url} within {self.config.startup_timeout:g}s; "
                f"check [stack.{'queen' if name == 'queen' else 'hive'}] health and command in "
                f"{self.config.source}; last lines of {proc.log}: {proc.log_tail()}"
            )
            raise ComponentDidNotStart(msg, component=name) from exc

    def add_beehives(self) -> None:
        """Register each hive as a beehive at the queen, reachable through its proxy link."""
        headers = {"Authorization": f"Bearer {self._token}"}
        for hive in self._hive_names():
            body = {
                "node_name": hive,
                "ssh_host": HOST,
                "ssh_user": "rbee",
                "git_repo_url": "https://github.com/veighnsche/llama-orch.git",
                "git_branch": "main",
                "install_path": "/opt/rbee",
                "hive_port": self.links[f"queen->{hive}"],
            }
            try:
                response = httpx.post(
                    self._urls["queen"] + "/v2/registry/beehives/add",
                    json=body,
                    headers=headers,
                    timeout=10,
                )
            except httpx.HTTPError as exc:
                msg = f"the queen did not accept beehive {hive}: {type(exc).__name__}"
                raise ComponentDidNotStart(msg, component="queen") from exc
            if response.status_code not in (200, 201, 409):
                msg = (
                    f"the queen answered {response.status_code} to adding beehive {hive}; "
                    f"expected 200 (contract §5.1); last lines of queen.log: "
                    f"{self.procs['queen'].log_tail()}"
                )
                raise ComponentDidNotStart(msg, component="queen")

    # -- state for detached stacks -----------------------------------------------------------
    def _write_state(self) -> None:
        state = {
            "backend": "local",
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "urls": self._urls,
            "ports": self.ports,
            "links": self.links,
            "proxy_port": self.proxy_port,
            "health_paths": self.health_paths,
            "worker_ports": self.worker_ports,
            "components": {name: {"argv": p.argv, "env": p.env} for name, p in self.procs.items()},
            "detached": self.detached,
        }
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, state_file: Path, config: Config) -> LocalStack:
        """Re-attach to a stack started with ``up --detach`` from its ``state.json``."""
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError) as exc:
            msg = (
                f"no running stack: cannot read {state_file} ({exc}); start one with rbee-props up"
            )
            raise UsageError(msg) from exc
        stack = cls(config, detached=True, keep_run_dir=False)
        stack.run_id = state["run_id"]
        stack.run_dir = Path(state["run_dir"])
        stack._urls = dict(state["urls"])
        stack.ports = dict(state["ports"])
        stack.links = dict(state["links"])
        stack.proxy_port = int(state["proxy_port"])
        stack.health_paths = dict(state["health_paths"])
        stack.worker_ports = {k: tuple(v) for k, v in state["worker_ports"].items()}
        stack._token = stack.token_file.read_text().rstrip("\n")
        for name, info in state["components"].items():
            stack.procs[name] = ManagedProcess.adopt(
                name,
                info["argv"],
                info["env"],
                log=stack.run_dir / f"{name}.log",
                pidfile=stack.run_dir / f"{name}.pid",
            )
        stack.proxy = ManagedProcess.adopt(
            "faultproxy", [], {}, log=stack.run_dir / "faultproxy.log",
            pidfile=stack.run_dir / "faultproxy.pid",
        )  # fmt: skip
        stack.started = True
        return stack

    # -- stop ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything this run started; nothing keeps running afterwards."""
        for proc in self.procs.values():
            if proc.paused:
                proc.send(signal.SIGCONT)
            proc.send(signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for proc in self.procs.values():
            if not proc.wait(max(deadline - time.monotonic(), 0.0)):
                proc.kill_group()
        if self.proxy is not None:
            self.proxy.terminate(2.0)
        if self.run_id:
            exclude = (self.watchdog.pid,) if self.watchdog and self.watchdog.pid else ()
            reap_run(self.run_id, exclude=exclude)
        if self._watchdog_pipe is not None:
            os.close(self._watchdog_pipe)
            self._watchdog_pipe = None
        if self.watchdog is not None:
            self.watchdog.wait(5)
        if self.run_id and not self.keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.started = False

    # -- faults ----------------------------------------------------------------------------------
    def _proc(self, component: str) -> ManagedProcess:
        if component not in self.procs:
            msg = f"unknown component {component!r}; this stack has {', '.join(self.procs)}"
            raise UsageError(msg, component=component)
        return self.procs[component]

    def kill(self, component: str) -> None:
        self._proc(component).kill()

    def terminate(self, component: str) -> None:
        self._proc(component).terminate(self.config.timings.shutdown_timeout + 2.0)

    def restart(self, component: str) -> None:
        proc = self._proc(component)
        if proc.alive():
            proc.terminate(self.config.timings.shutdown_timeout + 2.0)
        self._launch(component)
        self._write_state()

    def start_component(self, component: str) -> None:
        """Start a component that was killed or terminated (a no-op when it runs)."""
        if not self._proc(component).alive():
            self._launch(component)
            self._write_state()

    def recover(self) -> None:
        """Heal every link, resume paused and start stopped components, kill every worker."""
        self.heal()
        for name, proc in self.procs.items():
            if proc.paused:
                self.resume(name)
            if not proc.alive():
                self.start_component(name)
        for worker in self.workers():
            with contextlib.suppress(psutil.Error):
                psutil.Process(worker.pid).kill()

    def pause(self, component: str) -> None:
        proc = self._proc(component)
        proc.send(signal.SIGSTOP)
        proc.paused = True
        self._wait_status(proc, stopped=True)

    def resume(self, component: str) -> None:
        proc = self._proc(component)
        proc.send(signal.SIGCONT)
        proc.paused = False
        self._wait_status(proc, stopped=False)

    @staticmethod
    def _wait_status(proc: ManagedProcess, *, stopped: bool) -> None:
        """Signals are delivered asynchronously: return once the kernel shows the new state."""

        def reached() -> bool:
            try:
                return (
                    proc.proc is not None and proc.proc.status() == psutil.STATUS_STOPPED
                ) == stopped
            except psutil.Error:
                return True  # gone: nothing left to pause or resume

        with contextlib.suppress(WaitTimedOut):
            poll_until(reached, 2.0, what=f"{proc.name} {'stopped' if stopped else 'running'}")

    def _links_between(self, a: str, b: str) -> list[str]:
        names = [n for n in (f"{a}->{b}", f"{b}->{a}") if n in self.links]
        if not names:
            pairs = sorted({" and ".join(sorted(n.split("->"))) for n in self.links})
            msg = f"no link between {a!r} and {b!r} to cut; links exist between {', '.join(pairs)}"
            raise UsageError(msg)
        return names

    def _control(self, request: dict[str, Any]) -> None:
        try:
            answer = ProxyControl(self.proxy_port).send(request)
        except OSError as exc:
            msg = f"the fault proxy did not answer on port {self.proxy_port}: {exc}"
            raise StackError(msg) from exc
        if not answer.get("ok"):
            msg = f"the fault proxy refused {request['op']}: {answer.get('error')}"
            raise StackError(msg)

    def partition(self, a: str, b: str) -> None:
        self._control({"op": "partition", "links": self._links_between(a, b)})

    def heal(self) -> None:
        self._control({"op": "heal"})

    def slow(self, a: str, b: str, ms: int) -> None:
        self._control({"op": "slow", "links": self._links_between(a, b), "ms": int(ms)})

    def proxy_status(self) -> dict[str, Any]:
        """The fault state of every link, as the proxy reports it."""
        return ProxyControl(self.proxy_port).send({"op": "status"})["links"]  # type: ignore[no-any-return]

    # -- workers ---------------------------------------------------------------------------------
    def _members(self) -> RunMembership:
        if self._membership is None or self._membership.run_id != self.run_id:
            self._membership = RunMembership(self.run_id)
        return self._membership

    def workers(self) -> list[WorkerProcess]:
        """Every worker process of this run, listed or not, orphans included (S20)."""
        return self._workers(Listeners.now())

    def _workers(self, listeners: Listeners) -> list[WorkerProcess]:
        infra = {p.pid for p in (self.proxy, self.watchdog) if p and p.pid}
        components = {p.pid: name for name, p in self.procs.items() if p.pid}
        found = []
        for proc in self._members().processes():
            if proc.pid in infra or proc.pid in components:
                continue
            with contextlib.suppress(psutil.Error):
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                env = proc.environ()
                cmd = proc.cmdline()
                worker_id = cmd[cmd.index("--worker-id") + 1] if "--worker-id" in cmd[:-1] else None
                found.append(
                    WorkerProcess(
                        pid=proc.pid,
                        ports=listeners.ports_of(proc.pid),
                        worker_id=worker_id,
                        hive=env.get(COMPONENT_ENV),
                        orphan=components.get(proc.ppid()) is None,
                    )
                )
        return found

    def ports_held_besides(self, worker_id: str) -> set[int]:
        """Every port any process of the host listens on, except those of ``worker_id``'s own
        process: a port another run (a parallel test's stack) holds is as taken as our own."""
        listeners = Listeners.now()
        own = {w.pid for w in self._workers(listeners) if w.worker_id == worker_id}
        return listeners.ports_besides(own)

    def kill_worker(self, worker_id: str) -> None:
        for worker in self.workers():
            if worker.worker_id == worker_id:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(worker.pid)
                    proc.kill()
                    _wait_dead(proc)
                return
        msg = f"no process of worker {worker_id!r} is running in this stack"
        raise UsageError(msg, worker_id=worker_id)

    def pause_worker(self, worker_id: str) -> None:
        """SIGSTOP the process of worker ``worker_id``: alive, but answering nothing."""
        self.require(Fault.PAUSE)
        for worker in self.workers():
            if worker.worker_id == worker_id:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(worker.pid).suspend()
                return
        msg = f"no process of worker {worker_id!r} is running in this stack"
        raise UsageError(msg, worker_id=worker_id)

    def describe_failure(self, component: str) -> str:
        proc = self.procs.get(component)
        if proc is None:
            return "unknown component"
        state = "running" if proc.alive() else f"not running (exit code {proc.exit_code()})"
        return f"it is {state}; last lines of {proc.log}: {proc.log_tail()}"
