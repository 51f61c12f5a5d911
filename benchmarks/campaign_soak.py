"""A campaign left running: memory of the runner over time, findings, and what is left after.

Runs ``rbee-props campaign`` as a user does (2 workers, the correct reference stack unless
``--bugs``), samples the resident memory of the campaign process and its worker processes every
``--every`` seconds from outside (not the stacks: their components are the system under test),
and after it ends (or after ``--interrupt-after`` seconds, by SIGINT) lists every process of the
run still alive. Prints a table and one JSON line: RSS first (after the warm-up minute) / last /
peak, growth in percent, findings, exit code, leftovers.

    .venv/bin/python benchmarks/campaign_soak.py --budget 30m --workers 2
    .venv/bin/python benchmarks/campaign_soak.py --budget 30m --interrupt-after 600
    .venv/bin/python benchmarks/campaign_soak.py --budget 20m \
        --bugs dup-register,ready-unknown-200,evict-without-kill
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _bench
import psutil


def runner_rss(proc: psutil.Process) -> float:
    """MiB of the campaign process and its workers (multiprocessing children), not the stacks."""
    total = proc.memory_info().rss
    for child in proc.children():
        try:
            if "rbee_props.reference" not in " ".join(child.cmdline()):
                total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def leftovers(home: str) -> list[str]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("RBEE_PROPS_HOME") == home:
                found.append(" ".join(proc.cmdline())[:120])
        except psutil.Error:
            pass
    return found


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--budget", default="30m")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--bugs", default="")
    parser.add_argument("--seed", default="20261206")
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--interrupt-after", type=float, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rbee-soak-"))
    out = Path(args.out) if args.out else work / "campaign"
    env = dict(os.environ, RBEE_PROPS_HOME=str(work / "home"))
    command = [sys.executable, "-m", "rbee_props.cli", "campaign", "--budget", args.budget,
               "--workers", args.workers, "--seed", args.seed, "--out", str(out)]  # fmt: skip
    if args.bugs:
        command += ["--bugs", args.bugs]
    started = time.monotonic()
    samples: list[tuple[float, float]] = []
    with open(work / "campaign.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        watched = psutil.Process(proc.pid)
        interrupted = False
        try:
            while proc.poll() is None:
                time.sleep(args.every)
                elapsed = time.monotonic() - started
                try:
                    if watched.children():  # the workers run (not the start or the wind-down)
                        samples.append((elapsed, runner_rss(watched)))
                except psutil.Error:
                    break
                if args.interrupt_after and elapsed >= args.interrupt_after and not interrupted:
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
        except KeyboardInterrupt:  # Ctrl-C of the benchmark is a Ctrl-C of the campaign
            interrupted = True
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            code = proc.wait()
    ended = time.monotonic()
    time.sleep(5)
    left = leftovers(env["RBEE_PROPS_HOME"])
    warm = [s for s in samples if s[0] >= 60.0] or samples
    first, last = warm[0][1], warm[-1][1]
    peak = max(rss for _, rss in warm)
    record = (
        json.loads((out / "campaign.json").read_text()) if (out / "campaign.json").exists() else {}
    )
    summary = record.get("summary", {})
    result = {
        "budget": args.budget, "workers": int(args.workers), "bugs": args.bugs,
        "seconds": round(ended - started, 1), "exit_code": code, "interrupted": interrupted,
        "rss_first_mib": round(first, 1), "rss_last_mib": round(last, 1),
        "rss_peak_mib": round(peak, 1), "growth_percent": round(100 * (last - first) / first, 1),
        "examples": summary.get("examples"), "steps/s": summary.get("steps/s"),
        "fuzz_requests": summary.get("fuzz requests"),
        "findings": sorted(record.get("findings", {})),
        "met_again": summary.get("met again"), "stack_restarts": summary.get("stack restarts"),
        "worker_restarts": summary.get("worker restarts"), "leftover_processes": len(left),
        "log": str(work / "campaign.log"), "out": str(out),
    }  # fmt: skip
    rows = [(k, v) for k, v in result.items() if k not in ("log", "out", "findings")]
    _bench.table("campaign soak", ("figure", "value"), rows)
    print("findings:", ", ".join(result["findings"]) or "none")
    _bench.emit(_bench.rounded({**result, "environment": _bench.environment()}), args.json)


if __name__ == "__main__":
    _bench.run(main)
