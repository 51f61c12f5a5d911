"""Requests/s and latency of ``rbee-props load`` and of ``wrk`` on the reference queen's list route.

What is measured: one reference stack (``LocalStack(default_config())``) is started, and on its
queen's ``GET /v2/workers/list`` (no workers registered, token sent), for each concurrency C:

(a) ``wrk -t1 -cC -dDs --latency`` (Debian's package; C, 1 thread): closed model, C connections
    each sending its next request as soon as the last is answered. Reported: Requests/sec, its
    latency distribution (p50, p99) and max, non-2xx responses and socket errors.
(b) ``rbee-props load`` in the same closed model (``--concurrency C``, no ``--rate``), through
    :func:`rbee_props.load.run_load` on the same stack: the same route, connections and duration.
    This is the like-for-like row: the ratio of (b) to (a) is what the Python generator costs.
(c) ``rbee-props load`` in its open model at a fixed rate of 80 % of what (a) reached, with at
    most C connections: latency counted from when each request was due. Not comparable with
    wrk's figures (wrk cannot hold a rate); it shows the latency the same server gives to a
    steady arrival rate it can sustain, with nothing hidden by coordinated omission.

wrk and the generator share the machine's cores with the queen (and here with other work: the
load average before each run is in the table), so a faster client also leaves less CPU to the
server; the figures are of client and server together on one machine. wrk is C on epoll;
the generator is one Python asyncio thread framing HTTP with h11.

Run: ``.venv/bin/python benchmarks/load_rate.py [--concurrency 100 1000] [--duration 10]
[--json FILE]``. The last stdout line is the figures as JSON (times in seconds). Every process it
starts is stopped on exit, on error and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from typing import Any

import _bench

from rbee_props.config import default_config
from rbee_props.load import Load, LoadSpec, route_named, run_load
from rbee_props.stack import LocalStack

ROUTE = "list"
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        msg = f"unexpected wrk latency {text!r}"
        raise ValueError(msg)
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, p50/p99/max latency, non-2xx and socket errors from ``wrk --latency``."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    dist = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE))
    latency_line = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: (.*)", output)
    return {
        "requests": requests,
        "rps": rps,
        "p50": _seconds(dist["50"]),
        "p99": _seconds(dist["99"]),
        "max": _seconds(latency_line[3]) if latency_line else None,
        "errors": int(non2xx[1]) if non2xx else 0,
        "socket_errors": sockets[1].strip() if sockets else "none",
    }


def run_wrk(stack: LocalStack, concurrency: int, duration: float) -> dict[str, Any]:
    url = stack.urls["queen"] + route_named(ROUTE).path
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--latency", "--timeout", "10s",
            "-H", f"Authorization: Bearer {stack.token}", url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    return parse_wrk(done.stdout)


def run_ours(
    stack: LocalStack, *, concurrency: int, duration: float, rate: float | None = None
) -> dict[str, Any]:
    spec = LoadSpec(
        route=route_named(ROUTE),
        load=Load(rate=rate, concurrency=concurrency, duration=duration),
        warmup=0.0,
    )
    stats = run_load(stack, spec).stats
    ok = stats.latency_ok
    return {
        "requests": stats.requests,
        "rps": stats.throughput,
        "p50": ok.p50 if ok else None,
        "p99": ok.p99 if ok else None,
        "max": ok.max if ok else None,
        "errors": stats.requests - stats.ok,
        "send_lag_p99": stats.send_lag.p99 if stats.send_lag else None,
    }


def _row(concurrency: int, tool: str, model: str, figures: dict[str, Any]) -> dict[str, Any]:
    return {"concurrency": concurrency, "tool": tool, "model": model, **figures}


def bench(concurrencies: list[int], duration: float, repeats: int) -> list[dict[str, Any]]:
    """Per concurrency: ``repeats`` rounds of wrk and the closed-model generator, in alternating
    order (the machine's other work drifts), then one open-model run at 80 % of wrk's median."""
    rows: list[dict[str, Any]] = []
    have_wrk = shutil.which("wrk") is not None
    stack = LocalStack(default_config())
    try:
        stack.start()
        run_ours(stack, concurrency=10, duration=2.0)  # warm the queen and the client code
        for concurrency in concurrencies:
            for rep in range(repeats):
                order = ["wrk", "rbee-props"] if rep % 2 == 0 else ["rbee-props", "wrk"]
                for tool in order:
                    load = os.getloadavg()[0]
                    if tool == "wrk" and have_wrk:
                        figures = run_wrk(stack, concurrency, duration)
                    elif tool == "rbee-props":
                        figures = run_ours(stack, concurrency=concurrency, duration=duration)
                    else:
                        continue
                    rows.append(_row(concurrency, tool, "closed", {"load_avg": load, **figures}))
            base = median(rows, concurrency, "wrk" if have_wrk else "rbee-props", "rps")
            rate = round(0.8 * base)
            load = os.getloadavg()[0]
            figures = run_ours(stack, concurrency=concurrency, duration=duration, rate=rate)
            rows.append(
                _row(concurrency, "rbee-props", f"open {rate}/s", {"load_avg": load, **figures})
            )
    finally:
        stack.stop()
    return rows


def median(rows: list[dict[str, Any]], concurrency: int, tool: str, key: str) -> float:
    """The median of ``key`` over the closed-model rows of ``tool`` at ``concurrency``."""
    values = [
        r[key]
        for r in rows
        if r["concurrency"] == concurrency and r["tool"] == tool and r["model"] == "closed"
    ]
    return float(statistics.median(values))


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians of the rbee-props closed model over medians of wrk, per concurrency."""
    out = []
    for concurrency in sorted({r["concurrency"] for r in rows}):
        if not any(r["tool"] == "wrk" and r["concurrency"] == concurrency for r in rows):
            continue
        entry: dict[str, Any] = {"concurrency": concurrency}
        for key in ("rps", "p50", "p99"):
            ours = median(rows, concurrency, "rbee-props", key)
            wrk = median(rows, concurrency, "wrk", key)
            entry[f"{key}_ratio"] = ours / wrk
            entry[f"{key}_rbee_props"] = ours
            entry[f"{key}_wrk"] = wrk
        out.append(entry)
    return out


def main() -> None:
    p = _bench.parser(__doc__)
    p.add_argument("--concurrency", type=int, nargs="+", default=[100, 1000],
                   help="connections (100 1000)")  # fmt: skip
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    p.add_argument("--repeats", type=int, default=2, help="closed-model rounds per tool (2)")
    args = p.parse_args()
    wall = time.perf_counter()
    rows = bench(args.concurrency, args.duration, args.repeats)
    result: dict[str, Any] = {
        "benchmark": "load_rate",
        "env": _bench.environment(),
        "route": f"GET {route_named(ROUTE).path}",
        "duration": args.duration,
        "rows": rows,
        "ratios": ratios(rows),
        "wrk": shutil.which("wrk") is not None,
    }
    result["wall_seconds"] = time.perf_counter() - wall
    _bench.table(
        f"GET {route_named(ROUTE).path} on the reference queen, {args.duration:g}s per run "
        f"({os.cpu_count()} cores shared by client, server and anything else running)",
        ["C", "tool", "model", "load avg", "requests", "req/s", "p50 ms", "p99 ms", "max ms",
         "errors", "send lag p99 ms"],
        [[r["concurrency"], r["tool"], r["model"], f"{r['load_avg']:.1f}", r["requests"],
          f"{r['rps']:.0f}", _bench.ms(r["p50"]), _bench.ms(r["p99"]), _bench.ms(r["max"]),
          r["errors"], _bench.ms(r.get("send_lag_p99")) if r["model"] != "closed" else "-"]
         for r in rows],
    )  # fmt: skip
    if result["ratios"]:
        _bench.table(
            "rbee-props closed model / wrk: medians over the rounds (same route, connections, "
            "duration)",
            ["C", "req/s ratio", "p50 ratio", "p99 ratio"],
            [[r["concurrency"], f"{r['rps_ratio']:.2f}", f"{r['p50_ratio']:.2f}",
              f"{r['p99_ratio']:.2f}"] for r in result["ratios"]],
        )  # fmt: skip
    else:
        print("wrk is not installed (apt-get install -y wrk): no comparison made\n")
    _bench.emit(_bench.rounded(result), args.json)


if __name__ == "__main__":
    _bench.run(main)
