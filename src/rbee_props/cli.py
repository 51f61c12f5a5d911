"""The ``rbee-props`` command line: bring a stack up, look at it, break it, take it down.

Exit codes (ARCHITECTURE.md): 0 nothing found, 1 finding(s), 2 usage or config error, 3 the stack
failed to start or died outside a fault, 4 internal error of rbee-props (traceback in a log
file), 130 interrupted by Ctrl-C. Every error is one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from rbee_props import _output as out
from rbee_props._interrupt import Interrupt
from rbee_props.config import Config, load_config
from rbee_props.errors import ExitCode, RbeePropsError, UsageError
from rbee_props.repro import Finding
from rbee_props.stack import LocalStack, Stack, make_stack
from rbee_props.stack.local import runs_root

F = TypeVar("F", bound=Callable[..., Any])


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived; unwind so every ``finally`` runs."""


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted


def handle_errors(func: F) -> F:
    """Map every outcome to its exit code and one line on stderr."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RbeePropsError as exc:
            out.error_line(exc.message)
            sys.exit(int(exc.exit_code))
        except (KeyboardInterrupt, Interrupted):
            out.error_line("interrupted; everything this command started has been stopped")
            sys.exit(int(ExitCode.INTERRUPTED))
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception:
            log = Path(tempfile.gettempdir()) / f"rbee-props-crash-{os.getpid()}.log"
            log.write_text(traceback.format_exc())
            out.error_line(
                f"internal error in rbee-props (a bug; please report it): traceback in {log}"
            )
            sys.exit(int(ExitCode.INTERNAL))

    return wrapper  # type: ignore[return-value]


def state_pointer() -> Path:
    """The file naming the state of the stack started with ``up --detach``."""
    return runs_root().parent / "current.json"


def _config(config_path: str | None, **overrides: Any) -> Config:
    return load_config(config_path, overrides=overrides)


def _bugs(text: str | None) -> list[str] | None:
    return [b.strip() for b in text.split(",") if b.strip()] if text else None


def _attached(config_path: str | None) -> LocalStack:
    pointer = state_pointer()
    if not pointer.is_file():
        msg = "no stack is running; start one with: rbee-props up --detach"
        raise UsageError(msg)
    state = Path(json.loads(pointer.read_text())["state"])
    if not state.is_file():
        pointer.unlink(missing_ok=True)
        msg = "no stack is running (its run directory is gone); start one: rbee-props up --detach"
        raise UsageError(msg)
    return LocalStack.attach(state, _config(config_path))


def _status_rows(stack: Stack) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {stack.token}"}
    rows = []
    for name, url in stack.urls.items():
        proc = getattr(stack, "procs", {}).get(name)
        healthy = stack.is_healthy(name, timeout=1.0)
        route = "/v2/workers/list" if name == "queen" else "/v1/workers/list"
        workers: int | None = None
        if healthy:
            try:
                response = httpx.get(url + route, headers=headers, timeout=2.0)
                workers = len(response.json().get("workers", []))
            except (httpx.HTTPError, ValueError, AttributeError):
                workers = None
        rows.append(
            {
                "component": name,
                "pid": proc.pid if proc is not None and proc.alive() else None,
                "url": url,
                "healthy": healthy,
                "workers": workers,
            }
        )
    return rows


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rbee-props")
def main() -> None:
    """Property-based and model-based stateful testing of the rbee stack."""


@main.command()
@click.option("--config", "config_path", type=click.Path(), help="rbee-props.toml to use.")
@click.option("--bugs", help="Planted bugs of the reference stack, comma-separated.")
@click.option("--hives", type=int, help="Number of hives (default from the config: 2).")
@click.option("--backend", type=click.Choice(["local", "compose", "external"]))
@click.option("--detach", is_flag=True, help="Leave the stack running and return.")
@handle_errors
def up(config_path: str | None, bugs: str | None, hives: int | None, backend: str | None,
       detach: bool) -> None:  # fmt: skip
    """Start a stack; in the foreground until Ctrl-C, or --detach."""
    config = _config(config_path, bugs=_bugs(bugs), hives=hives, backend=backend)
    if detach and state_pointer().is_file():
        try:
            _attached(config_path)
        except UsageError:
            pass
        else:
            msg = "a detached stack is already running; stop it first with: rbee-props down"
            raise UsageError(msg)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    stack = make_stack(config, detached=detach)
    started = time.monotonic()
    try:
        stack.start()
        out.info(f"stack healthy in {time.monotonic() - started:.2f}s ({config.source})")
        _print_status(stack)
        if detach:
            assert isinstance(stack, LocalStack)
            state_pointer().write_text(json.dumps({"state": str(stack.run_dir / "state.json")}))
            out.info(f"token file: {stack.token_file}; stop it with: rbee-props down")
            return
        out.info("running; press Ctrl-C to stop everything")
        while True:
            for name in stack.components:
                proc = getattr(stack, "procs", {}).get(name)
                if proc is not None and not proc.alive():
                    msg = f"{name} died ({stack.describe_failure(name)})"
                    raise RbeePropsError(msg) from None
            time.sleep(0.5)
    except RbeePropsError as exc:
        if not isinstance(exc.exit_code, ExitCode) or exc.exit_code == ExitCode.INTERNAL:
            exc.exit_code = ExitCode.STACK
        raise
    finally:
        if not detach or not getattr(stack, "started", False):
            stack.stop()


def _print_status(stack: Stack, *, as_json: bool = False) -> None:
    rows = _status_rows(stack)
    if as_json:
        out.print_json({"components": rows})
        return
    out.print_table(
        "rbee stack",
        ["component", "pid", "url", "healthy", "workers"],
        [[r["component"], r["pid"], r["url"], r["healthy"], r["workers"]] for r in rows],
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--config", "config_path", type=click.Path())
@handle_errors
def status(as_json: bool, config_path: str | None) -> None:
    """Show each component of the detached stack: pid, URL, health, worker count."""
    _print_status(_attached(config_path), as_json=as_json)


@main.command()
@click.option("--config", "config_path", type=click.Path())
@handle_errors
def down(config_path: str | None) -> None:
    """Stop the detached stack and everything it started."""
    stack = _attached(config_path)
    stack.stop()
    state_pointer().unlink(missing_ok=True)
    out.info(f"stopped run {stack.run_id}")


def _fault_command(name: str, method: str, help_: str) -> None:
    @main.command(name=name, help=help_)
    @click.argument("components", nargs=-1, required=True)
    @click.option("--config", "config_path", type=click.Path())
    @handle_errors
    def command(components: tuple[str, ...], config_path: str | None) -> None:
        stack = _attached(config_path)
        for component in components:
            getattr(stack, method)(component)
            out.info(f"{name} {component}: done")


_fault_command("kill", "kill", "SIGKILL components of the detached stack.")
_fault_command("pause", "pause", "SIGSTOP components of the detached stack.")
_fault_command("resume", "resume", "SIGCONT components of the detached stack.")
_fault_command("restart", "restart", "Restart components of the detached stack.")
_fault_command("terminate", "terminate", "SIGTERM components of the detached stack.")
_fault_command("start", "start_component", "Start killed or terminated components again.")
_fault_command("pause-worker", "pause_worker", "SIGSTOP worker processes, by worker id.")
_fault_command("kill-worker", "kill_worker", "SIGKILL worker processes, by worker id.")


@main.command()
@click.argument("a")
@click.argument("b")
@click.option("--config", "config_path", type=click.Path())
@handle_errors
def partition(a: str, b: str, config_path: str | None) -> None:
    """Cut the traffic between components A and B of the detached stack."""
    _attached(config_path).partition(a, b)
    out.info(f"partitioned {a} from {b}; undo with: rbee-props heal")


@main.command()
@click.option("--config", "config_path", type=click.Path())
@handle_errors
def heal(config_path: str | None) -> None:
    """Undo every partition and slow link of the detached stack."""
    _attached(config_path).heal()
    out.info("healed")


@main.command()
@click.option("--config", "config_path", type=click.Path(), help="rbee-props.toml to use.")
@click.option("--bug", default="dup-register", show_default=True,
              help="The planted bug the last part of the demo hunts for.")  # fmt: skip
@click.option("--out", "out_dir", default="rbee-findings", show_default=True)
@handle_errors
def demo(config_path: str | None, bug: str, out_dir: str) -> None:
    """The main job on the reference stack: a tour, a clean hunt, then a planted bug found."""
    with Interrupt(raise_first=True) as interrupt:
        found = _demo_steps(config_path, bug, out_dir, interrupt.event)
    out.info(f"reproduce it with: rbee-props replay {out_dir}/{found.slug}   "
             f"(or pytest {out_dir}/{found.slug}/test_repro.py)")  # fmt: skip


def _demo_steps(config_path: str | None, bug: str, out_dir: str, stop: threading.Event) -> Finding:
    """The demo's three parts; returns the finding of the last one."""
    from rbee_props._cli_hunt import hunt_for_budget
    from rbee_props.walkthrough import walkthrough

    out.info("== 1/3 a tour of the live stack")
    stack = make_stack(_config(config_path))
    try:
        stack.start()
        for line in walkthrough(stack):
            out.info(line)
    finally:
        stack.stop()
    out.info("== 2/3 the state machines against the correct stack (20 s): expect no finding")
    found = hunt_for_budget(20, "stack", _config(config_path), 1, Path(out_dir), stop=stop)
    if found is not None:
        msg = f"the correct reference stack produced a finding: {found.violation.summary}"
        raise RbeePropsError(msg)
    out.info(f"== 3/3 the registry machine against the planted bug {bug!r}: expect a finding")
    config = _config(config_path, bugs=[bug])
    found = hunt_for_budget(180, "registry", config, 1, Path(out_dir), stop=stop)
    if found is None:
        msg = f"the planted bug {bug!r} was not found within 180 s"
        raise RbeePropsError(msg)
    return found


@main.command()
@click.argument("a")
@click.argument("b")
@click.argument("ms", type=click.IntRange(0, 60_000))
@click.option("--config", "config_path", type=click.Path())
@handle_errors
def slow(a: str, b: str, ms: int, config_path: str | None) -> None:
    """Delay the traffic between components A and B by MS milliseconds per chunk."""
    _attached(config_path).slow(a, b, ms)
    out.info(f"slowed {a}<->{b} by {ms} ms; undo with: rbee-props heal")


def _register_hunt_commands() -> None:
    from rbee_props._cli_hunt import register

    register(main, handle_errors, _config, _bugs, _raise_interrupted)


_register_hunt_commands()


def _register_fuzz_command() -> None:
    from rbee_props._cli_fuzz import register

    register(main, handle_errors, _config, _bugs)


_register_fuzz_command()


def _register_image_commands() -> None:
    from rbee_props._cli_image import register

    register(main, handle_errors)


_register_image_commands()


def _register_load_command() -> None:
    from rbee_props._cli_load import register

    register(main, handle_errors, _config, _bugs, _raise_interrupted)


_register_load_command()


def _register_campaign_command() -> None:
    from rbee_props._cli_campaign import register

    register(main, handle_errors, _config, _bugs)


_register_campaign_command()

if __name__ == "__main__":
    main()
