"""The ``rbee-props run`` and ``rbee-props replay`` commands (registered on the main group).

``run`` hunts with the state machines until the budget ends or a finding is made; ``replay``
re-runs an exported finding against a fresh stack and says whether it still fails.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path

import click

from rbee_props import _output as out
from rbee_props._interrupt import Interrupt
from rbee_props.config import Config
from rbee_props.errors import ExitCode, UsageError
from rbee_props.hunt import hunt, machine_settings
from rbee_props.machines import MACHINES, MachineContext
from rbee_props.repro import Finding
from rbee_props.stack import make_stack

__all__ = ["hunt_for_budget", "parse_budget", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``8h`` -> seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not match:
        msg = f"--budget expects a duration like 60s, 5m or 8h, got {text!r}"
        raise UsageError(msg)
    return float(match[1]) * _UNITS[match[2] or "s"]


def register(main: click.Group, handle_errors, config_of, bugs_of, on_term) -> None:  # type: ignore[no-untyped-def]
    """Add ``run`` and ``replay`` to ``main`` (the CLI's error handling is passed in)."""

    @main.command()
    @click.option("--budget", default="60s", show_default=True, help="e.g. 90s, 5m, 8h")
    @click.option("--machine", "machine_name", default="stack", show_default=True,
                  type=click.Choice(sorted(MACHINES)))  # fmt: skip
    @click.option("--bugs", help="Planted bugs of the reference stack, comma-separated.")
    @click.option("--config", "config_path", type=click.Path(), help="rbee-props.toml to use.")
    @click.option("--seed", type=int, help="First Hypothesis seed (printed either way).")
    @click.option("--out", "out_dir", default="rbee-findings", show_default=True)
    @click.option("--steps", default=15, show_default=True, help="Steps per example.")
    @handle_errors
    def run(budget: str, machine_name: str, bugs: str | None, config_path: str | None,
            seed: int | None, out_dir: str, steps: int) -> None:  # fmt: skip
        """Run the state machines until the budget ends or a finding is made (exit 1)."""
        seconds = parse_budget(budget)
        config = config_of(config_path, bugs=bugs_of(bugs))
        with Interrupt(raise_first=True) as interrupt:
            finding = hunt_for_budget(
                seconds, machine_name, config, seed, Path(out_dir), steps, stop=interrupt.event
            )
        if finding is not None:
            raise SystemExit(int(ExitCode.FINDINGS))

    @main.command()
    @click.argument("directory", type=click.Path(exists=True, file_okay=False))
    @click.option("--attempts", default=3, show_default=True)
    @click.option("--config", "config_path", type=click.Path(),
                  help="Replay against this stack instead of the recorded one.")  # fmt: skip
    @click.option("--bugs", help="Planted bugs to replay with instead of the recorded ones "
                  "('' for none: does the correct stack pass?).")  # fmt: skip
    @handle_errors
    def replay(directory: str, attempts: int, config_path: str | None, bugs: str | None) -> None:
        """Re-run an exported finding; exit 1 while it still fails, 0 once it is fixed."""
        from rbee_props.repro.replay import replay_program

        path = Path(directory) / "finding.json"
        try:
            finding = Finding.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            msg = f"{directory} holds no readable finding.json ({exc}); pass a finding directory"
            raise UsageError(msg) from exc
        signal.signal(signal.SIGTERM, on_term)
        failures = replay_program(
            finding.program, machine=finding.machine,
            bugs=finding.bugs if bugs is None else (bugs_of(bugs) or []),
            config=config_path or finding.config_path, backend=finding.backend,
            attempts=attempts,
        )  # fmt: skip
        hits = [f for f in failures if f and f.violation.invariant == finding.violation.invariant]
        if hits:
            out.info(f"still fails: {hits[0].violation.summary} ({len(hits)}/{attempts} replays)")
            raise SystemExit(int(ExitCode.FINDINGS))
        out.info(f"no longer fails: {finding.violation.signature} held in {attempts} replays")


def hunt_for_budget(
    seconds: float, machine_name: str, config: Config, seed: int | None, out_dir: Path,
    steps: int = 15, stop: threading.Event | None = None,
) -> Finding | None:  # fmt: skip
    """Run rounds of ``hunt`` until ``seconds`` pass or a finding is made; show progress.

    ``stop`` is set by Ctrl-C or SIGTERM: the examples and rounds end as soon as it is, even when
    the KeyboardInterrupt of the signal itself was lost (see ``_interrupt``).
    """
    stop = stop or threading.Event()
    first_seed = seed if seed is not None else int(time.time()) % 100_000
    out.info(f"machine {machine_name}, budget {seconds:g}s, seed {first_seed} "
             f"(replay a round with --seed), stack: {config.source}"
             + (f", planted bugs: {','.join(config.bugs)}" if config.bugs else ""))  # fmt: skip
    stack = make_stack(config)
    context: MachineContext | None = None
    started = time.monotonic()
    round_no = 0
    try:
        stack.start()
        context = MachineContext(stack, config)
        context.should_stop = stop.is_set
        while time.monotonic() - started < seconds:
            if stop.is_set():
                raise KeyboardInterrupt
            round_seed = first_seed + round_no
            context.fresh_starts.clear()
            result = hunt(
                MACHINES[machine_name], context,
                config=machine_settings(max_examples=5, steps=steps),
                seed=round_seed, machine_name=machine_name, out=out_dir, on_progress=out.info,
            )  # fmt: skip
            round_no += 1
            fresh = "".join(f", then seed {s} (fresh start)" for s in context.fresh_starts)
            out.info(
                f"round {round_no} (seed {round_seed}{fresh}): {context.examples} examples, "
                f"{context.steps} steps, {time.monotonic() - started:.0f}s elapsed"
            )
            if result.finding is not None:
                _show_finding(result.finding, result.path)
                return result.finding
        out.info(f"no finding in {seconds:g}s: {context.examples} examples, "
                 f"{context.steps} steps")  # fmt: skip
        return None
    except KeyboardInterrupt:
        if context is not None and context.smallest_failure() is not None:
            out.info(
                f"interrupted; the smallest failing program so far (not replayed) is in {out_dir}/"
            )
        raise
    finally:
        if context is not None:
            context.close()
        stack.stop()


def _show_finding(finding: Finding, path: Path | None) -> None:
    out.info(f"FOUND {finding.violation.signature}: {finding.violation.summary}")
    for number, step in enumerate(finding.program, start=1):
        args = ", ".join(f"{k}={v}" for k, v in step.get("args", {}).items())
        binds = f"{step['binds']} = " if step.get("binds") else ""
        out.info(f"  {number}. {binds}{step['rule']}({args})")
    out.info(f"reproduced {finding.reproduced}/{finding.attempts}; files in {path}")
