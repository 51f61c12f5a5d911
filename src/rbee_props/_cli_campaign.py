"""The ``rbee-props campaign`` command: every state machine and fuzz suite until the budget ends.

Exit codes: 0 no finding, 1 finding(s) (new ones, or earlier ones that still fail on replay),
2 usage or config error (unknown suite, unreachable Redis, several workers on an external
stack), 3 a stack did not start, 4 internal error (a worker slot crashed again and again;
traceback in ``<out>/logs``), 130 Ctrl-C or SIGTERM (after the report is written). The engine
is :mod:`rbee_props.campaign`; this module parses the options and shows progress.
"""

from __future__ import annotations

import random

import click

from rbee_props import _output as out
from rbee_props._cli_fuzz import LiveStatus
from rbee_props._cli_hunt import parse_budget
from rbee_props._interrupt import Interrupt
from rbee_props.campaign import CampaignPlan, CampaignState, parse_suites, run_campaign
from rbee_props.errors import ExitCode, UsageError
from rbee_props.fuzz.database import open_database

__all__ = ["register"]


def register(main: click.Group, handle_errors, config_of, bugs_of) -> None:  # type: ignore[no-untyped-def]
    """Add ``campaign`` to ``main`` (the CLI's error handling and config loading are passed in)."""

    @main.command()
    @click.option("--budget", default="8h", show_default=True, help="e.g. 30m, 8h")
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 32),
                  help="Worker processes, each with a stack of its own.")  # fmt: skip
    @click.option("--db", help="Example database shared by the workers: a directory or "
                  "redis://HOST:PORT[/DB] (default OUT/db).")  # fmt: skip
    @click.option("--out", "out_dir", default="rbee-campaign", show_default=True,
                  help="Findings, report.html, junit.xml, logs; run again to resume.")  # fmt: skip
    @click.option("--config", "config_path", type=click.Path(), help="rbee-props.toml to use.")
    @click.option("--backend", type=click.Choice(["local", "compose"]),
                  help="Override the config's backend.")  # fmt: skip
    @click.option("--bugs", help="Planted bugs of the reference stack, comma-separated.")
    @click.option("--seed", type=int, help="Campaign seed (printed either way).")
    @click.option("--suites", help="Machines and fuzz:<service> suites, comma-separated "
                  "(default all).")  # fmt: skip
    @click.option(
        "--slice",
        "machine_slice",
        default=180.0,
        show_default=True,
        type=click.FloatRange(5),
        help="Seconds a worker gives one machine per turn.",
    )
    @click.option("--steps", default=50, show_default=True, type=click.IntRange(2),
                  help="Steps per example (the overnight profile's).")  # fmt: skip
    @handle_errors  # type: ignore[untyped-decorator]
    def campaign(budget: str, workers: int, db: str | None, out_dir: str,
                 config_path: str | None, backend: str | None, bugs: str | None,
                 seed: int | None, suites: str | None, machine_slice: float,
                 steps: int) -> None:  # fmt: skip
        """Run every state machine and fuzz suite in rounds until the budget ends (exit 1 on
        findings); report.html and junit.xml are written into --out."""
        seconds = parse_budget(budget)
        chosen = parse_suites(suites)
        overrides: dict[str, object] = {"bugs": bugs_of(bugs)}
        if backend is not None:
            overrides["backend"] = backend
        config = config_of(config_path, **overrides)
        if config.backend == "external" and workers > 1:
            msg = (
                "an external stack is shared, and each campaign worker needs a stack of its own; "
                "use --workers 1 with backend = external"
            )
            raise UsageError(msg)
        seed = seed if seed is not None else random.randrange(10**6)
        plan = CampaignPlan(
            seconds=seconds, out=out_dir, seed=seed,
            workers=workers, db=db, suites=chosen, machine_slice=machine_slice,
            fuzz_slice=max(machine_slice / 2, 5.0), steps=steps,
        )  # fmt: skip
        _, db_label = open_database(plan.database)
        planted = f", planted bugs: {','.join(config.bugs)}" if config.bugs else ""
        out.info(
            f"campaign for {seconds:g}s, seed {plan.seed} (repeat with --seed), {workers} "
            f"worker(s), suites {','.join(chosen)}, database {db_label}, output {out_dir}/, "
            f"stack: {config.source}{planted}"
        )
        state = CampaignState(plan)
        with Interrupt() as interrupt, LiveStatus("rbee-props campaign", state.line):
            try:
                state, files = run_campaign(
                    plan, config, state=state, stop=interrupt.event.is_set, on_event=out.info
                )
            except KeyboardInterrupt:
                state.interrupted = True
                files = None
        _summary(state, files.html if files else plan.root / "report.html")
        if state.interrupted:
            raise KeyboardInterrupt
        failing = state.new_findings() + [
            f for f in state.findings.values() if f.earlier and f.still_fails
        ]
        if failing:
            raise SystemExit(int(ExitCode.FINDINGS))


def _summary(state: CampaignState, report: object) -> None:
    for finding in sorted(state.findings.values(), key=lambda f: f.key):
        if finding.earlier:
            how = "earlier, still fails" if finding.still_fails else "earlier, passed on replay"
        else:
            how = "new"
        out.info(f"  {how:26} {finding.signature or finding.key} (met {finding.occurrences}x)"
                 f"  ->  {finding.path}")  # fmt: skip
    ending = "interrupted" if state.interrupted else "ended"
    out.info(f"campaign {ending}: {state.line()}")
    out.info(f"report: {report}")
