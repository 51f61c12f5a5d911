"""Request rate of ``rbee-props fuzz`` against the plain Schemathesis CLI, same document and stack.

What is measured (one reference stack, ``LocalStack(default_config())``, no planted bug, started
once; between two runs the beehives a run added are removed again, so every run starts from the
same registries):

(a) ``rbee-props fuzz --service queen --budget S`` as a user runs it, pointed at the running stack
    through a config with ``backend = "external"`` (so the command starts nothing), a fresh
    example database each run. Counted from its summary line: the cases it sent (one request
    each) and the re-sends of its checks (``auth_enforced`` re-sends every protected case twice);
    its time is the fuzzing time the summary reports, which excludes the warm-up (strategies
    built and one example drawn per operation and mode before the budget starts; also reported).
(b) ``st run`` on the same document (``src/rbee_props/fuzz/openapi/queen.yaml``), the same URL and
    token, ``--max-time S --workers 1``, in two forms:
    - ``st run (defaults)``: every phase (examples, coverage, fuzzing, stateful) and every
      built-in check, as a user would start it;
    - ``st run (same checks)``: ``--phases fuzzing`` and exactly the checks ``rbee-props fuzz``
      runs, its rbee checks loaded with ``SCHEMATHESIS_HOOKS=rbee_props.fuzz.checks`` on a copy
      of the document that names the target the way ``load_spec`` does (token left out; the CLI
      sends it with ``-H``), so both sides do the same work per case, re-sends included.
    Counted: the cases from the HAR report (one entry per case request; check re-sends are not
    in it); time: the duration the CLI prints on its last line (its schema loading and
    strategy building included: it has no separate warm-up). Its working directory gets a copy
    of the character tables Hypothesis built for rbee-props, a one-time cost per directory that
    would otherwise eat the first 10-30 s of its budget.

How to read it: ratio = rbee-props cases/s / CLI cases/s; the aim is >= 0.9 against the CLI
with the same checks. Per case both sides generate with Hypothesis, send one request and run
the checks; rbee-props also tidies up (a beehive a case added is removed: one more request,
counted in neither column) and shrinks each new finding (none on the correct stack). Runs
alternate (rbee-props, CLI, CLI, rbee-props, ...) ``--repeats`` times and the median is
reported, since the machine is shared and its load varies. The last stdout line is the figures
as JSON (``--json FILE`` also writes them).

Run: ``.venv/bin/python benchmarks/fuzz_rate.py [--seconds 30] [--repeats 2] [--json FILE]``.
Every process it starts is stopped on exit, on error and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _bench
import yaml

from rbee_props.config import default_config
from rbee_props.fuzz.database import use_shared_hypothesis_home
from rbee_props.fuzz.housekeeping import remove_beehives
from rbee_props.fuzz.settings import TARGET_KEY
from rbee_props.fuzz.specs import spec_path
from rbee_props.fuzz.suite import all_checks
from rbee_props.stack import LocalStack

BIN = Path(sys.executable).parent
SUMMARY = re.compile(
    r"after (\d+)s of [\d.]+s \(and a warm-up of ([\d.]+)s\): (\d+) requests .*?"
    r"; (\d+) cases, (\d+) re-sent by checks\)"
)
ELAPSED = re.compile(r" in ([\d.]+)s =+\s*$")


def rbee_props_run(stack: LocalStack, seconds: float, tmp: Path, index: int) -> dict[str, Any]:
    config = tmp / "external.toml"
    token = tmp / "token"
    token.write_text(stack.token)
    os.chmod(token, 0o600)
    config.write_text(
        f'[stack]\nbackend = "external"\ntoken_file = "{token}"\n[stack.external]\n'
        f'queen_url = "{stack.urls["queen"]}"\n'
        f"hive_urls = [{', '.join(repr(stack.urls[h]) for h in stack.hives)}]\n"
    )
    result = subprocess.run(
        [str(BIN / "rbee-props"), "fuzz", "--config", str(config), "--service", "queen",
         "--budget", f"{seconds:g}s", "--seed", str(100 + index),
         "--db", str(tmp / f"db-{index}"), "--out", str(tmp / f"findings-{index}")],
        capture_output=True, text=True, cwd=tmp, timeout=seconds + 300,
    )  # fmt: skip
    match = SUMMARY.search(result.stdout)
    if match is None:
        msg = f"rbee-props fuzz printed no summary (exit {result.returncode}): {result.stderr}"
        raise RuntimeError(msg)
    elapsed, warm_up, _, cases, resent = match.groups()
    return {
        "runner": "rbee-props fuzz",
        "seconds": float(elapsed),
        "warm_up": float(warm_up),
        "cases": int(cases),
        "resent": int(resent),
        "exit": result.returncode,
    }


def same_checks_document(stack: LocalStack, tmp: Path) -> Path:
    raw = yaml.safe_load(spec_path("queen").read_text())
    raw[TARGET_KEY] = {"base_url": stack.urls["queen"], "token": None}
    path = tmp / "queen-rbee-target.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def share_character_tables(tmp: Path) -> None:
    """Give the CLI (Hypothesis home ``.hypothesis`` in its working directory) the character
    tables ``rbee-props fuzz`` already built, so neither side pays that one-time cost."""
    built = use_shared_hypothesis_home() / "unicode_data"
    target = tmp / ".hypothesis" / "unicode_data"
    if built.is_dir() and not target.exists():
        shutil.copytree(built, target)


def st_run(
    stack: LocalStack, seconds: float, tmp: Path, index: int, *, same_checks: bool
) -> dict[str, Any]:
    share_character_tables(tmp)
    report = tmp / f"report-{index}-{int(same_checks)}"
    document = same_checks_document(stack, tmp) if same_checks else spec_path("queen")
    args = [
        str(BIN / "st"), "run", str(document), "--url", stack.urls["queen"],
        "-H", f"Authorization: Bearer {stack.token}", "--max-time", f"{seconds:g}",
        "--workers", "1", "--report", "har", "--report-dir", str(report), "--seed", str(index),
    ]  # fmt: skip
    env = dict(os.environ)
    if same_checks:
        args += ["--phases", "fuzzing", "--checks", ",".join(c.__name__ for c in all_checks())]
        env["SCHEMATHESIS_HOOKS"] = "rbee_props.fuzz.checks"
    result = subprocess.run(
        args, capture_output=True, text=True, cwd=tmp, env=env, timeout=seconds + 300
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    elapsed = ELAPSED.search(last)
    hars = list(report.glob("*.json"))
    if elapsed is None or not hars:
        tail = "\n".join(result.stdout.splitlines()[-40:])
        msg = f"st run gave no duration or report (exit {result.returncode}):\n{tail}"
        raise RuntimeError(msg)
    entries = json.loads(hars[0].read_text())["log"]["entries"]
    return {
        "runner": "st run (same checks)" if same_checks else "st run (defaults)",
        "seconds": float(elapsed.group(1)),
        "warm_up": None,
        "cases": len(entries),
        "resent": None,
        "exit": result.returncode,
    }


def main() -> None:
    p = _bench.parser(__doc__)
    p.add_argument("--seconds", type=float, default=30.0, help="budget of each run (30)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each runner (2)")
    args = p.parse_args()
    runs: list[dict[str, Any]] = []
    stack = LocalStack(default_config())
    with tempfile.TemporaryDirectory(prefix="rbee-fuzz-rate-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            stack.start()
            order = ["rbee", "st-same", "st-default"]
            for repeat in range(args.repeats):
                for kind in order if repeat % 2 == 0 else list(reversed(order)):
                    index = len(runs)
                    if kind == "rbee":
                        run = rbee_props_run(stack, args.seconds, tmp, index)
                    else:
                        run = st_run(stack, args.seconds, tmp, index, same_checks=kind == "st-same")
                    run["rate"] = run["cases"] / run["seconds"] if run["seconds"] else 0.0
                    runs.append(run)
                    print(f"  {run['runner']}: {run['cases']} cases in {run['seconds']:.1f}s "
                          f"= {run['rate']:.1f}/s", file=sys.stderr, flush=True)  # fmt: skip
                    remove_beehives(stack, keep=stack.hives)
        finally:
            stack.stop()
    medians = {
        name: statistics.median(r["rate"] for r in runs if r["runner"] == name)
        for name in ("rbee-props fuzz", "st run (same checks)", "st run (defaults)")
    }
    ours = medians["rbee-props fuzz"]
    rows = [
        [name, _bench.s(rate), f"{ours / rate:.2f}" if rate else "-"]
        for name, rate in medians.items()
    ]
    _bench.table(
        f"cases/s against the reference queen, median of {args.repeats} run(s) of "
        f"{args.seconds:g}s each",
        ["runner", "cases/s", "rbee-props / runner"],
        rows,
    )
    _bench.table(
        "every run",
        ["runner", "cases", "seconds", "cases/s", "warm-up s", "check re-sends", "exit"],
        [
            [r["runner"], r["cases"], f"{r['seconds']:.1f}", f"{r['rate']:.1f}",
             "-" if r["warm_up"] is None else f"{r['warm_up']:.1f}",
             "-" if r["resent"] is None else r["resent"], r["exit"]]
            for r in runs
        ],
    )  # fmt: skip
    result = {
        "benchmark": "fuzz_rate",
        "env": _bench.environment(),
        "settings": {"seconds": args.seconds, "repeats": args.repeats},
        "median_cases_per_second": medians,
        "ratio_vs_same_checks": ours / medians["st run (same checks)"],
        "ratio_vs_defaults": ours / medians["st run (defaults)"],
        "runs": runs,
    }
    _bench.emit(_bench.rounded(result), args.json)


if __name__ == "__main__":
    _bench.run(main)
