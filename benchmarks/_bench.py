"""Helpers the benchmark scripts share: statistics, the plain-text table, JSON output, signals.

Not a benchmark itself. Each script imports it as ``_bench`` (the script's directory is first on
``sys.path`` when it runs as ``python benchmarks/NAME.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def summary(seconds: Sequence[float]) -> dict[str, Any]:
    """n, median, p99, min and max of durations given in seconds, reported in seconds."""
    if not seconds:
        return {"n": 0, "median": None, "p99": None, "min": None, "max": None}
    return {
        "n": len(seconds),
        "median": statistics.median(seconds),
        "p99": percentile(seconds, 99),
        "min": min(seconds),
        "max": max(seconds),
    }


def ms(value: float | None) -> str:
    """Seconds shown as milliseconds with one decimal ("-" when missing)."""
    return "-" if value is None else f"{value * 1000:.1f}"


def s(value: float | None) -> str:
    """Seconds with three decimals ("-" when missing)."""
    return "-" if value is None else f"{value:.3f}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print an aligned plain-text table; the first column left-aligned, the others right."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    print(title)
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    print()


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--json FILE``; the description is the docstring's first line."""
    first = (doc or "").strip().splitlines()[0] if doc else ""
    p = argparse.ArgumentParser(description=first)
    p.add_argument(
        "--json",
        metavar="FILE",
        type=Path,
        help="also write the figures as JSON to FILE (they are always the last stdout line)",
    )
    return p


def environment() -> dict[str, Any]:
    """What the figures depend on: interpreter, platform, CPU count, library versions."""
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "httpx": httpx.__version__,
        "started_unix": round(time.time(), 3),
    }


def emit(result: dict[str, Any], path: Path | None) -> None:
    """Write ``result`` to ``path`` (if given) and as the last line of stdout."""
    text = json.dumps(result, sort_keys=True)
    if path is not None:
        path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"figures written to {path}")
    sys.stdout.flush()
    print(text, flush=True)


def rounded(obj: Any, digits: int = 6) -> Any:
    """``obj`` with every float rounded (so the JSON line stays short and readable)."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def run(main: Callable[[], None]) -> None:
    """Run ``main`` so that Ctrl-C and SIGTERM unwind it (its ``finally`` blocks stop whatever
    it started), then exit 130 with one line instead of a traceback."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    # a shell starts background jobs with SIGINT ignored; Ctrl-C must still stop the benchmark
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: every process this benchmark started has been stopped", file=sys.stderr)
        raise SystemExit(130) from None


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn``; return (seconds by ``time.perf_counter``, its result)."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out
