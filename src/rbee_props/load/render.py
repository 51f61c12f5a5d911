"""A load run for people: text tables, and latency and throughput over time as a PNG.

Only data comes out of here: ``tables()`` gives (title, columns, rows) for the CLI to print and
``plot_series()`` gives PNG bytes, drawn with matplotlib's object API (no pyplot global state,
so it is safe in any thread and process). Fault windows are shaded and labelled on both panels.
The campaign report embeds the same picture.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from rbee_props.load.runner import LoadResult
from rbee_props.load.stats import Percentiles, Series

__all__ = ["Table", "plot_series", "tables", "write_plot"]

Table = tuple[str, Sequence[str], Sequence[Sequence[Any]]]

_FAULT_COLOURS: Final = ("#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _mib(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:.1f}"


def _signed(value: int | None, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if value is None else f"{value / scale:+.{digits}f}"


def _latency_row(name: str, figures: Percentiles | None) -> list[str]:
    if figures is None:
        return [name, "0", "-", "-", "-", "-", "-"]
    return [
        name,
        str(figures.n),
        *(_ms(v) for v in (figures.p50, figures.p95, figures.p99, figures.p999, figures.max)),
    ]


def tables(result: LoadResult) -> list[Table]:
    """The run as tables: summary, latency, outcomes, faults, resources."""
    stats = result.stats
    spec = result.spec
    lag = f"{_ms(_get(stats.send_lag, 'p99'))} / {_ms(_get(stats.send_lag, 'max'))}"
    figures: list[list[Any]] = [
        ["shape", spec.load.describe()],
        ["requests", stats.requests],
        ["ok (2xx)", stats.ok],
        ["error rate", f"{stats.error_rate:.2%}"],
        ["throughput (ok/s)", f"{stats.throughput:.1f}"],
        ["elapsed (s)", f"{stats.elapsed:.2f}"],
        ["most in flight", stats.max_in_flight],
        ["send lag p99 / max (ms)", lag],
    ]
    if result.workers:
        figures.append(["workers x slots", f"{len(result.workers)} x {spec.slots}"])
    summary: Table = (
        f"load: {spec.route.method} {spec.route.path} on {result.target}",
        ["figure", "value"],
        figures,
    )
    latency: Table = (
        "latency (ms, from the intended send time)",
        ["requests", "n", "p50", "p95", "p99", "p99.9", "max"],
        [_latency_row("ok", stats.latency_ok), _latency_row("all", stats.latency_all)],
    )
    outcomes: Table = (
        "outcomes",
        ["outcome", "count", "share"],
        [
            [name, count, f"{count / stats.requests:.2%}" if stats.requests else "-"]
            for name, count in stats.outcomes.items()
        ],
    )
    out = [summary, latency, outcomes]
    if result.faults:
        out.append(
            (
                "faults (seconds from the start)",
                ["step", "started", "finished", "error"],
                [
                    [r.label, f"{r.started:.2f}", f"{r.finished:.2f}", r.error or ""]
                    for r in result.faults
                ],
            )
        )
    if result.resources:
        out.append(
            (
                "resources before -> after (leak check, L02)",
                ["component", "RSS MiB", "ΔRSS MiB", "fds", "Δfds", "verdict"],
                [
                    [
                        c.name,
                        f"{_mib(c.before.rss if c.before else None)} -> "
                        f"{_mib(c.after.rss if c.after else None)}",
                        _signed(c.rss_growth, 2**20, 1),
                        f"{c.before.fds if c.before else '-'} -> {c.after.fds if c.after else '-'}",
                        _signed(c.fds_growth),
                        ("SUSPECT: " if c.suspect else "") + c.note,
                    ]
                    for c in result.resources
                ],
            )
        )
    return out


def _get(figures: Percentiles | None, name: str) -> float | None:
    return None if figures is None else float(getattr(figures, name))


def _nan(values: Sequence[float | None], scale: float = 1.0) -> list[float]:
    return [math.nan if v is None else v * scale for v in values]


def plot_series(series: Series, *, title: str | None = None) -> bytes:
    """Latency (p50, p99, max; log scale) and throughput/errors over time, as PNG bytes."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    figure = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    mid = [t + series.width / 2 for t in series.start]
    for values, label, style in (
        (series.max, "max", ":"),
        (series.p99, "p99", "-"),
        (series.p50, "p50", "--"),
    ):
        top.plot(mid, _nan(values, 1000), style, label=label, linewidth=1.5)
    if any(v is not None for v in series.max):
        top.set_yscale("log")
        top.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        top.yaxis.set_minor_formatter(NullFormatter())
    top.set_ylabel("latency (ms)")
    top.grid(True, which="major", alpha=0.3)
    bottom.plot(mid, series.throughput, "-", color="#2ca02c", label="ok / s", linewidth=1.5)
    bottom.plot(mid, series.errors, "-", color="#d62728", label="errors / s", linewidth=1.2)
    bottom.set_ylabel("responses / s")
    bottom.set_xlabel("seconds from the start (latency by intended send time)")
    bottom.grid(True, alpha=0.3)
    bottom.set_ylim(bottom=0)
    for i, window in enumerate(series.windows):
        colour = _FAULT_COLOURS[i % len(_FAULT_COLOURS)]
        end = max(window.end, window.start + series.width / 4)
        for axes in (top, bottom):
            axes.axvspan(window.start, end, color=colour, alpha=0.15, linewidth=0)
        top.annotate(
            window.label,
            xy=(window.start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2 - 11 * (i % 3)),  # staggered: close windows keep readable labels
            textcoords="offset points",
            va="top",
            fontsize=8,
            color=colour,
        )
    top.legend(loc="upper right", fontsize=8)
    bottom.legend(loc="upper right", fontsize=8)
    top.set_title(title if title is not None else series.title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_plot(result: LoadResult, path: Path) -> Path:
    """Write the run's picture to ``path`` (PNG)."""
    path.write_bytes(plot_series(result.stats.series))
    return path
