"""The ``rbee-props load`` command (registered on the main group).

It starts the stack the config describes (the local reference stack by default), runs one load
(:func:`rbee_props.load.run_load`), prints the figures, writes ``--json`` and ``--plot``, and
stops everything, on error and on Ctrl-C too. Bad input is one ``error:`` line and exit 2,
before anything starts.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rbee_props import _output as out
from rbee_props.config import Config
from rbee_props.errors import UsageError
from rbee_props.load import (
    ROUTES,
    Load,
    LoadSpec,
    parse_duration,
    parse_schedule,
    route_named,
    run_load,
)
from rbee_props.load.render import tables, write_plot
from rbee_props.load.runner import check_spec
from rbee_props.stack import make_stack

__all__ = ["register"]


def _writable(path: str | None, option: str) -> Path | None:
    """``path`` if its directory exists (checked before a long run, not after)."""
    if path is None:
        return None
    target = Path(path)
    if not target.parent.is_dir():
        msg = f"{option} {path!r}: directory {str(target.parent)!r} does not exist; create it first"
        raise UsageError(msg)
    return target


def register(
    main: click.Group,
    handle_errors: Callable[[Callable[..., None]], Callable[..., None]],
    config_of: Callable[..., Config],
    bugs_of: Callable[[str | None], list[str] | None],
    on_term: Callable[[int, Any], None],
) -> None:
    """Add ``load`` to ``main`` (the CLI's error handling, config and signal handler passed in:
    this module cannot import ``cli``, which imports it)."""

    @main.command()
    @click.option("--rate", type=float, help="Requests per second (open model: latency counts "
                  "from when each request was due).")  # fmt: skip
    @click.option("--concurrency", type=int, help="Most connections; alone: closed model with "
                  "that many requests in flight (like wrk).")  # fmt: skip
    @click.option("--duration", default="60s", show_default=True, help="e.g. 10s, 5m.")
    @click.option("--route", "route_name", default="list", show_default=True,
                  help=f"Queen route: {', '.join(ROUTES)}.")  # fmt: skip
    @click.option("--faults", help="e.g. kill:hive1@10s+5s,restart:queen@20s (docs/load.md).")
    @click.option("--timeout", default="10s", show_default=True, help="Per request.")
    @click.option("--warmup", help="Unmeasured load first (default: 10% of --duration, <= 5s).")
    @click.option("--workers", default=2, show_default=True, help="Inference: workers to spawn.")
    @click.option("--slots", default=4, show_default=True, help="Inference: slots per worker.")
    @click.option("--config", "config_path", type=click.Path(), help="rbee-props.toml to use.")
    @click.option("--bugs", help="Planted bugs of the reference stack, comma-separated.")
    @click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write JSON here.")
    @click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG here.")
    @handle_errors
    def load(rate: float | None, concurrency: int | None, duration: str, route_name: str,
             faults: str | None, timeout: str, warmup: str | None, workers: int, slots: int,
             config_path: str | None, bugs: str | None, json_path: str | None,
             plot_path: str | None) -> None:  # fmt: skip
        """Load one queen route at a fixed rate (or concurrency), optionally with faults."""
        spec = LoadSpec(
            route=route_named(route_name),
            load=Load(
                rate=rate,
                concurrency=concurrency,
                duration=parse_duration(duration),
                timeout=parse_duration(timeout, option="--timeout"),
            ),
            faults=parse_schedule(faults),
            workers=workers,
            slots=slots,
            warmup=None
            if warmup is None
            else parse_duration(warmup, option="--warmup", allow_zero=True),
        )
        json_file = _writable(json_path, "--json")
        plot_file = _writable(plot_path, "--plot")
        config = config_of(config_path, bugs=bugs_of(bugs))
        signal.signal(signal.SIGTERM, on_term)
        stack = make_stack(config)
        check_spec(spec, stack)
        try:
            stack.start()
            out.info(f"stack up ({config.source}); {spec.load.describe()} on {spec.route.name}")
            result = run_load(stack, spec)
        finally:
            stack.stop()
        for title, columns, rows in tables(result):
            out.print_table(title, columns, rows)
        if json_file is not None:
            json_file.write_text(json.dumps(result.to_json(), indent=2) + "\n")
            out.info(f"figures written to {json_file}")
        if plot_file is not None:
            write_plot(result, plot_file)
            out.info(f"plot written to {plot_file}")
