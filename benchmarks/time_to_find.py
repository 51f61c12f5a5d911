"""Time to find each stateful planted bug: StackMachine hunts on the reference stack.

What is measured: for each of the 9 planted bugs a stateful property covers (the bugs of
``tests/selftest/test_stateful_bugs.py``) and each of ``--seeds`` seeds (20261125, 20261126,
...): a fresh ``LocalStack`` with only that bug switched on, then
``hunt(StackMachine, context, config=machine_settings(max_examples=--examples, steps=--steps),
seed=seed, shrink_budget=--shrink-budget)`` (3 replays for the reproduction rate), then the
stack is stopped. Clocks are ``time.monotonic``, from just before the ``hunt`` call:

- first failure: when the machine first recorded a violation. The benchmark's context is a
  ``MachineContext`` subclass whose ``record_failure`` stamps its first call; hunt's own
  ``on_progress`` messages stamp the end of the Hypothesis phase and of the shrinking. The
  examples and steps run up to the first failure are counted there too.
- total: the whole ``hunt`` call: Hypothesis until it stops (the first failure ends its search;
  without one it runs all ``--examples``), shrinking by replay, the reproduction replays.
- examples: machine examples Hypothesis ran before it stopped (it can exceed ``--examples``:
  examples it discards, e.g. overruns, do not count towards that budget).
- shrunk: steps in the finding's program after shrinking; property: the invariant it violates.
- rate: how many of the 3 replays of the shrunk program failed with the same property.

Per bug the table shows how many seeds found it, median and worst (max) over the seeds that
found it of the time to first failure, median and worst of the total time over every seed (a
miss costs the whole example budget), median and worst shrunk length, the properties seen with
their counts (``!`` marks one the selftest does not expect for that bug), and the summed
reproduction rate. Stack start-up is not in any of these times (it is in the JSON). How to read
it: the time to first failure is what a user waits before rbee-props knows; the total is what
``rbee-props hunt`` takes to hand over a shrunk, rated finding. Hypothesis is seeded but the
stack is live, so repeated runs with the same seed can differ. Figures vary by machine and
load; compare runs on the same machine. The last stdout line is the same figures as JSON
(``--json FILE`` also writes them); JSON times are seconds.

Run: ``.venv/bin/python benchmarks/time_to_find.py [--seeds N | --quick] [--bugs a,b]
[--examples N] [--steps N] [--shrink-budget S] [--json FILE]``. ``--quick`` is 2 seeds. A run costs
up to ~3 minutes per bug and seed (a miss runs every example, a find is shrunk for up to the
shrink budget): ``--quick`` took 36 minutes on 2 cores, all 9 bugs x 5 seeds take 1-1.5 hours;
``--bugs`` picks a subset. Every process it starts is stopped on exit, on error
and on Ctrl-C / SIGTERM; progress (and Hypothesis' own reports) goes to stderr.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from typing import Any

import _bench
from hypothesis.reporting import with_reporter

from rbee_props.config import load_config
from rbee_props.hunt import hunt, machine_settings
from rbee_props.machines import Failure, MachineContext, StackMachine
from rbee_props.stack import LocalStack

#: bug -> properties the selftest accepts for it (tests/selftest/test_stateful_bugs.py CASES)
BUGS: dict[str, set[str]] = {
    "dup-register": {"S02"},
    "ready-unknown-200": {"S05"},
    "ghost-after-kill": {"C01", "S21", "C09", "C03"},
    "evict-without-kill": {"S20"},
    "wrong-health-path": {"S03", "S21"},
    "no-auth-internal": {"S21"},
    "sigterm-orphans": {"C09"},
    "port-reuse-orphan": {"S09"},
    "hive-restart-no-reconcile": {"C03", "S21"},
}
FIRST_SEED = 20261125
ATTEMPTS = 3


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class TimedContext(MachineContext):
    """A MachineContext that remembers when (and after how much work) it saw its first failure."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_at: float | None = None
        self.first_examples = 0
        self.first_steps = 0
        self.first_failure: Failure | None = None

    def record_failure(self, failure: Failure) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
            self.first_examples, self.first_steps = self.examples, self.steps
            self.first_failure = failure
        super().record_failure(failure)


def one_hunt(bug: str, seed: int, args: Any) -> dict[str, Any]:
    """Start a stack with ``bug``, hunt with ``seed``, stop it; the figures of that run."""
    config = load_config(overrides={"bugs": [bug]})
    stack = LocalStack(config)
    context: TimedContext | None = None
    marks: dict[str, float] = {}

    def on_progress(message: str) -> None:
        marks.setdefault(message.split(" ", 1)[0], time.monotonic())

    try:
        started, _ = _bench.timed(stack.start)
        context = TimedContext(stack, config)
        settings = machine_settings(max_examples=args.examples, steps=args.steps)
        t0 = time.monotonic()
        with with_reporter(progress):  # Hypothesis' own reports go to stderr too
            result = hunt(
                StackMachine,
                context,
                config=settings,
                seed=seed,
                shrink_budget=args.shrink_budget,
                attempts=ATTEMPTS,
                on_progress=on_progress,
            )
        total = time.monotonic() - t0
    finally:
        if context is not None:
            context.close()
        stack.stop()
    end = t0 + total
    shrink_at, rate_at = marks.get("shrinking", end), marks.get("replaying", end)
    run: dict[str, Any] = {
        "bug": bug,
        "seed": seed,
        "stack_start": started,
        "found": result.finding is not None,
        "first_failure": None if context.first_at is None else context.first_at - t0,
        "examples_to_first": context.first_examples if context.first_at else None,
        "steps_to_first": context.first_steps if context.first_at else None,
        "hypothesis_phase": shrink_at - t0,
        "shrink": rate_at - shrink_at,
        "rate_replays": end - rate_at,
        "total": total,
        "examples": result.examples,
        "steps": result.steps,
        "flaky": result.flaky,
        "resets": len(context.resets),
        "full_restarts": context.full_restarts,
    }
    first = context.first_failure
    if first is not None:
        run["first_property"] = first.violation.invariant
        run["first_length"] = len(first.program)
    finding = result.finding
    if finding is not None:
        run.update(
            property=finding.violation.invariant,
            signature=finding.violation.signature,
            summary=finding.violation.summary[:400],
            shrunk_length=len(finding.program),
            shrunk_program=[step["rule"] for step in finding.program],
            reproduced=finding.reproduced,
            attempts=finding.attempts,
        )
    return run


def per_bug(bug: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [r for r in runs if r["found"]]
    firsts = [r["first_failure"] for r in found]
    lengths = [r["shrunk_length"] for r in found]
    properties = Counter(r["property"] for r in found)
    return {
        "found": len(found),
        "seeds": len(runs),
        "first_failure": _bench.summary(firsts),
        "examples_to_first": _bench.summary([r["examples_to_first"] for r in found]),
        "total": _bench.summary([r["total"] for r in runs if "error" not in r]),
        "errors": sum("error" in r for r in runs),
        "shrink": _bench.summary([r["shrink"] for r in found]),
        "shrunk_length": {
            "median": statistics.median(lengths) if lengths else None,
            "max": max(lengths) if lengths else None,
        },
        "properties": dict(properties),
        "unexpected_properties": sorted(set(properties) - BUGS[bug]),
        "reproduced": sum(r["reproduced"] for r in found),
        "attempts": sum(r["attempts"] for r in found),
    }


def report(result: dict[str, Any]) -> None:
    rows = []
    for bug, b in result["bugs"].items():
        first, total, length = b["first_failure"], b["total"], b["shrunk_length"]
        props = " ".join(
            f"{p}x{n}" + ("!" if p in b["unexpected_properties"] else "")
            for p, n in sorted(b["properties"].items())
        )
        rows.append(
            [
                bug,
                f"{b['found']}/{b['seeds']}" + (f" ({b['errors']} err)" if b["errors"] else ""),
                _bench.s(first["median"]),
                _bench.s(first["max"]),
                "-" if b["examples_to_first"]["median"] is None
                else f"{b['examples_to_first']['median']:g}",
                _bench.s(total["median"]),
                _bench.s(total["max"]),
                "-" if length["median"] is None else f"{length['median']:g}",
                "-" if length["max"] is None else length["max"],
                props or "-",
                f"{b['reproduced']}/{b['attempts']}",
            ]
        )  # fmt: skip
    cfg = result["settings"]
    _bench.table(
        f"Time to find, StackMachine, {cfg['examples']} examples x {cfg['steps']} steps, "
        f"seeds {cfg['seeds'][0]}..{cfg['seeds'][-1]} (s; first = first failure, total = with "
        f"shrink + {ATTEMPTS} rate replays)",
        ["bug", "found", "first med", "first max", "ex to 1st", "total med", "total max",
         "len med", "len max", "properties", "rate"],
        rows,
    )  # fmt: skip
    rows = []
    for run in result["runs"]:
        if "error" in run:
            rows.append([run["bug"], run["seed"], f"error: {run['error'][:60]}"] + [""] * 9)
            continue
        rows.append(
            [
                run["bug"],
                run["seed"],
                _bench.s(run["first_failure"]),
                run["examples_to_first"] if run["examples_to_first"] is not None else "-",
                _bench.s(run["hypothesis_phase"]),
                _bench.s(run["shrink"]),
                _bench.s(run["rate_replays"]),
                _bench.s(run["total"]),
                run["examples"],
                f"{run.get('first_length', '-')}->{run.get('shrunk_length', '-')}",
                run.get("property", "-"),
                f"{run['reproduced']}/{run['attempts']}" if run["found"] else "-",
            ]
        )
    _bench.table(
        "Every run (s; phases: Hypothesis until it stopped, shrinking, rate replays)",
        ["bug", "seed", "first", "ex", "hypothesis", "shrink", "rate", "total", "examples",
         "length", "property", "rate"],
        rows,
    )  # fmt: skip
    print(f"total wall time: {result['wall_seconds']:.1f} s")


def main() -> None:
    p = _bench.parser(__doc__)
    p.add_argument("--seeds", type=int, default=5, help="seeds per bug (5)")
    p.add_argument("--quick", action="store_true", help="2 seeds per bug")
    p.add_argument("--bugs", default=",".join(BUGS), help="comma-separated subset of the 9 bugs")
    p.add_argument("--examples", type=int, default=40, help="max examples per hunt (40)")
    p.add_argument("--steps", type=int, default=15, help="steps per example (15)")
    p.add_argument("--shrink-budget", type=float, default=60.0, help="seconds (hunt's 60)")
    args = p.parse_args()
    bugs = [b.strip() for b in args.bugs.split(",") if b.strip()]
    unknown = [b for b in bugs if b not in BUGS]
    if unknown:
        p.error(f"unknown bug(s) {', '.join(unknown)}; choose from {', '.join(BUGS)}")
    seeds = [FIRST_SEED + i for i in range(2 if args.quick else args.seeds)]
    wall = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "time_to_find",
        "env": _bench.environment(),
        "settings": {
            "examples": args.examples,
            "steps": args.steps,
            "shrink_budget": args.shrink_budget,
            "attempts": ATTEMPTS,
            "seeds": seeds,
            "bugs": bugs,
        },
        "runs": [],
    }
    count = len(bugs) * len(seeds)
    for bug in bugs:
        for seed in seeds:
            progress(f"[{len(result['runs']) + 1}/{count}] {bug}, seed {seed} ...")
            try:
                run = one_hunt(bug, seed, args)
            except Exception as exc:  # a broken run is reported, the others still count
                run = {"bug": bug, "seed": seed, "found": False, "error": repr(exc)}
                result["runs"].append(run)
                progress(f"    error: {exc!r}")
                continue
            result["runs"].append(run)
            found = (
                f"found {run['property']} after {run['first_failure']:.1f} s "
                f"({run['examples_to_first']} examples), shrunk {run.get('first_length')}->"
                f"{run['shrunk_length']} steps, rate {run['reproduced']}/{run['attempts']}"
                if run["found"]
                else f"not found in {run['examples']} examples"
            )
            progress(f"    {found}; total {run['total']:.1f} s")
    result["bugs"] = {
        bug: per_bug(bug, [r for r in result["runs"] if r["bug"] == bug]) for bug in bugs
    }
    result["wall_seconds"] = time.perf_counter() - wall
    report(result)
    _bench.emit(_bench.rounded(result), args.json)


if __name__ == "__main__":
    _bench.run(main)
