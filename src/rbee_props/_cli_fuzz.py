"""The ``rbee-props fuzz`` command: a time-budgeted Schemathesis campaign against a stack it starts.

Exit codes: 0 no finding, 1 finding(s) (also findings of an earlier campaign replayed from the
example database), 2 usage or config error (unknown service, bad ``--spec``, unreachable Redis),
3 the stack did not start or stopped answering, 4 internal error, 130 Ctrl-C (after the summary;
findings so far are written). The engine lives in :mod:`rbee_props.fuzz`; this module parses the
options, starts and stops the stack, shows live progress and the summary.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.live import Live
from rich.table import Table

from rbee_props import _output as out
from rbee_props._cli_hunt import parse_budget
from rbee_props._interrupt import Interrupt
from rbee_props.config import Config
from rbee_props.errors import ExitCode, UsageError
from rbee_props.fuzz.campaign import FoundEvent, Progress
from rbee_props.fuzz.database import open_database, use_shared_hypothesis_home
from rbee_props.fuzz.pool import CampaignPlan, run_campaign
from rbee_props.fuzz.specs import read_spec
from rbee_props.fuzz.targets import parse_services
from rbee_props.stack import make_stack

__all__ = ["LiveStatus", "register"]

#: seconds between progress lines when stdout is not a terminal
LINE_EVERY = 10.0


def _status(progress: Progress, seconds: float) -> str:
    now = time.monotonic()
    elapsed = now - progress.started
    return (
        f"{progress.phase}: {elapsed:.0f}/{seconds:.0f}s, {progress.requests} requests "
        f"({progress.rate(now):.1f}/s), {progress.cases} cases, "
        f"operations {len(progress.covered)}/{progress.operations_total}, "
        f"findings {len(progress.findings)} ({len(progress.replayed)} replayed), "
        f"duplicates {progress.duplicates}, errors {len(progress.errors)}"
    )


class LiveStatus:
    """Live progress on a terminal (one refreshed line); a line every ``LINE_EVERY`` seconds
    otherwise (a log file, CI). ``status()`` gives the line; used by ``fuzz`` and ``campaign``."""

    def __init__(self, title: str, status: Callable[[], str]) -> None:
        self.title = title
        self.status = status
        self.live: Live | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _panel(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_row(self.title, self.status())
        return table

    def __enter__(self) -> LiveStatus:
        if out.console.is_terminal:
            self.live = Live(
                get_renderable=self._panel, console=out.console, refresh_per_second=4,
                transient=True,
            )  # fmt: skip
            self.live.__enter__()
        else:
            self._thread = threading.Thread(target=self._lines, daemon=True)
            self._thread.start()
        return self

    def _lines(self) -> None:
        while not self._stop.wait(LINE_EVERY):
            out.info(self.status())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.live is not None:
            self.live.__exit__(None, None, None)
        if self._thread is not None:
            self._thread.join(timeout=1.0)


def _show_found(event: FoundEvent) -> None:
    how = "replayed from the database" if event.replayed else "found"
    where = str(event.path) if event.path is not None else "its directory exists already"
    out.info(f"FOUND ({how}) {event.finding.summary}\n  -> {where}")


def _summary(progress: Progress, out_dir: Path, seconds: float, *, interrupted: bool) -> None:
    elapsed = time.monotonic() - progress.started
    for signature, finding in sorted(progress.findings.items()):
        how = "replayed" if signature in progress.replayed else "found   "
        out.info(f"  {how} {signature}  ->  {out_dir / finding.slug}")
    ending = "interrupted" if interrupted else "ended"
    out.info(
        f"fuzz campaign {ending} after {elapsed:.0f}s of {seconds:g}s (and a warm-up of "
        f"{progress.warm_up:.1f}s): {progress.requests} "
        f"requests ({progress.rate():.1f}/s; {progress.cases} cases, {progress.probes} re-sent "
        f"by checks), operations covered {len(progress.covered)}/{progress.operations_total}, "
        f"{len(progress.findings)} finding(s) ({len(progress.replayed)} replayed from the "
        f"database), {progress.duplicates} duplicate(s), {len(progress.errors)} request(s) "
        "without an answer"
    )
    for error in progress.errors[:5]:
        out.info(f"  no answer: {error}")
    if not progress.findings and not interrupted:
        out.info("no finding")


def register(main: click.Group, handle_errors, config_of, bugs_of) -> None:  # type: ignore[no-untyped-def]
    """Add ``fuzz`` to ``main`` (the CLI's error handling and config loading are passed in)."""

    @main.command()
    @click.option("--budget", default="60s", show_default=True, help="e.g. 90s, 5m, 8h")
    @click.option("--service", default="all", show_default=True,
                  help="queen, hive, worker, a comma-separated list, or all")  # fmt: skip
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
                  help="Processes fuzzing the stack, sharing the example database.")  # fmt: skip
    @click.option("--db", help="Example database: a directory or redis://HOST:PORT[/DB] "
                  "(default .hypothesis/rbee-fuzz).")  # fmt: skip
    @click.option("--config", "config_path", type=click.Path(), help="rbee-props.toml to use.")
    @click.option("--bugs", help="Planted bugs of the reference stack, comma-separated.")
    @click.option("--out", "out_dir", default="rbee-findings", show_default=True)
    @click.option("--seed", type=int, help="Campaign seed (printed either way).")
    @click.option("--spec", type=click.Path(),
                  help="OpenAPI document replacing the shipped one (one --service).")  # fmt: skip
    @click.option("--examples", "chunk", default=50, show_default=True, type=click.IntRange(1),
                  help="Most examples per operation and mode in each round.")  # fmt: skip
    @handle_errors  # type: ignore[untyped-decorator]
    def fuzz(budget: str, service: str, workers: int, db: str | None, config_path: str | None,
             bugs: str | None, out_dir: str, seed: int | None, spec: str | None,
             chunk: int) -> None:  # fmt: skip
        """Fuzz every endpoint for a time budget; findings are written to --out (exit 1)."""
        seconds = parse_budget(budget)
        services = parse_services(service)
        if spec is not None:
            if len(services) != 1:
                msg = "--spec replaces one service's document; name that service with --service"
                raise UsageError(msg)
            read_spec(spec)
        config = config_of(config_path, bugs=bugs_of(bugs))
        _, db_label = open_database(db)
        use_shared_hypothesis_home()
        campaign_seed = seed if seed is not None else random.randrange(1_000_000)
        planted = f", planted bugs: {','.join(config.bugs)}" if config.bugs else ""
        out.info(
            f"fuzzing {','.join(services)} for {seconds:g}s, seed {campaign_seed} (replay with "
            f"--seed), {workers} worker(s), database {db_label}, findings in {out_dir}/, "
            f"stack: {config.source}{planted}"
        )
        plan = CampaignPlan(
            services=services, db=db, out=out_dir, seed=campaign_seed, seconds=seconds,
            spec=spec, chunk=chunk, stack_label=config.source + planted,
        )  # fmt: skip
        with Interrupt() as interrupt:
            found = _run(config, plan, workers, interrupt.event)
        if found:
            raise SystemExit(int(ExitCode.FINDINGS))


def _run(config: Config, plan: CampaignPlan, workers: int, interrupt: threading.Event) -> bool:
    """Start the stack, run the campaign with live progress, stop the stack, print the summary.

    Returns:
        whether anything was found.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the summary (the stack is stopped).
    """
    progress = Progress()
    interrupted = False
    stack = make_stack(config)
    try:
        stack.start()
        progress.started = time.monotonic()
        with LiveStatus("rbee-props fuzz", lambda: _status(progress, plan.seconds)):
            try:
                run_campaign(
                    stack, config, plan, workers=workers, progress=progress,
                    on_found=_show_found, stop=interrupt.is_set,
                )  # fmt: skip
            except KeyboardInterrupt:
                interrupted = True
            interrupted = interrupted or interrupt.is_set()
    finally:
        stack.stop()
    _summary(progress, Path(plan.out), plan.seconds, interrupted=interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return bool(progress.findings)
