"""What a load run measured: every request kept, exact percentiles, per-interval series (L01).

Each request is stored (intended send time, how late it was sent, latency, outcome), so the
percentiles are exact nearest-rank values, not a histogram's approximation; a 60 s run at 1,000
requests/s is 60,000 rows of three floats. Latency runs from the *intended* send time, so a
stalled server shows up in the figures instead of slowing the generator down (coordinated
omission; see docs/load.md).

The series puts throughput and errors in the interval each request *completed* in, and latency
in the interval it was *meant to be sent* in: during a pause the throughput drops to zero where
the pause is, and the requests that arrived then show their long latencies at that same place.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from rbee_props.load.schedule import FaultWindow

__all__ = [
    "LoadStats",
    "Percentiles",
    "Samples",
    "Series",
    "interval_for",
    "is_ok",
    "percentile",
    "summarize",
]

#: interval widths a series may use; the smallest giving at most MAX_POINTS points is taken
_WIDTHS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
MAX_POINTS: Final = 150


def is_ok(outcome: str) -> bool:
    """A 2xx status (``200-incomplete`` streams and transport errors are not)."""
    return outcome.isdigit() and 200 <= int(outcome) < 300


class Samples:
    """Every request of a run, in completion order (append-only, compact arrays)."""

    def __init__(self) -> None:
        self.intended = array("d")
        self.lag = array("d")
        self.latency = array("d")
        self.outcome: list[str] = []
        #: the most requests that were in flight at once
        self.max_in_flight = 0

    def add(self, intended: float, lag: float, latency: float, outcome: str) -> None:
        """One request: meant to be sent at ``intended`` (seconds from the start), sent ``lag``
        seconds late, answered (or failed) ``latency`` seconds after ``intended``."""
        self.intended.append(intended)
        self.lag.append(lag)
        self.latency.append(latency)
        self.outcome.append(outcome)

    def __len__(self) -> int:
        return len(self.outcome)

    def last_end(self) -> float:
        """When the last request completed, in seconds from the start (0 with none)."""
        ends = (i + lat for i, lat in zip(self.intended, self.latency, strict=True))
        return max(ends, default=0.0)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending, non-empty sequence."""
    # rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point, rank 999 all the same
    rank = max(math.ceil(round(q / 100 * len(ordered), 9)), 1)
    return ordered[rank - 1]


@attrs.frozen
class Percentiles:
    """Latency figures in seconds over ``n`` requests."""

    n: int
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Percentiles | None:
        """Exact figures of ``values`` (None when there are none)."""
        ordered = sorted(values)
        if not ordered:
            return None
        return cls(
            n=len(ordered),
            p50=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            p999=percentile(ordered, 99.9),
            max=ordered[-1],
            mean=math.fsum(ordered) / len(ordered),
        )


@attrs.frozen
class Series:
    """Per-interval figures over the run, with the fault windows (what the plot draws).

    ``throughput``/``errors`` are completions per second in each interval; ``p50``/``p99``/
    ``max`` are latencies (seconds) of the requests meant to be sent in it (None: none were).
    """

    width: float
    start: tuple[float, ...]
    throughput: tuple[float, ...]
    errors: tuple[float, ...]
    p50: tuple[float | None, ...]
    p99: tuple[float | None, ...]
    max: tuple[float | None, ...]
    windows: tuple[FaultWindow, ...] = ()
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=True)
        data["windows"] = [attrs.asdict(w) for w in self.windows]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Series:
        """Read back :meth:`to_json` (for reports written from stored results)."""
        fields = {f.name for f in attrs.fields(cls)} - {"windows", "width", "title"}
        return cls(
            width=float(data["width"]),
            title=str(data.get("title", "")),
            windows=tuple(FaultWindow(**w) for w in data.get("windows", ())),
            **{name: tuple(data[name]) for name in fields},
        )


def interval_for(duration: float) -> float:
    """The series interval for a run of ``duration`` seconds (at most MAX_POINTS points)."""
    for width in _WIDTHS:
        if duration / width <= MAX_POINTS:
            return width
    return _WIDTHS[-1]


def _series(samples: Samples, span: float, windows: Sequence[FaultWindow], title: str) -> Series:
    width = interval_for(span)
    count = max(math.ceil(span / width), 1)
    ok = [0] * count
    bad = [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]
    for intended, latency, outcome in zip(
        samples.intended, samples.latency, samples.outcome, strict=True
    ):
        done = min(int((intended + latency) / width), count - 1)
        (ok if is_ok(outcome) else bad)[done] += 1
        latencies[min(int(intended / width), count - 1)].append(latency)
    figures = [Percentiles.of(values) for values in latencies]
    return Series(
        width=width,
        start=tuple(round(i * width, 6) for i in range(count)),
        throughput=tuple(n / width for n in ok),
        errors=tuple(n / width for n in bad),
        p50=tuple(f.p50 if f else None for f in figures),
        p99=tuple(f.p99 if f else None for f in figures),
        max=tuple(f.max if f else None for f in figures),
        windows=tuple(windows),
        title=title,
    )


@attrs.frozen
class LoadStats:
    """The figures of one run.

    Attributes:
        requests: requests meant to be sent; each has an outcome (a status or a failure kind).
        ok: 2xx answers (complete streams for SSE routes).
        outcomes: count per outcome: ``"200"``, ``"503"``, ``"refused"``, ``"timeout"``...
        elapsed: seconds from the first intended send to the last completion.
        throughput: ok answers per second of ``elapsed``.
        latency_ok: latency of the ok answers; latency_all: of every request, failures at the
            time they failed (a timeout at the timeout).
        send_lag: how late the generator sent requests; large values mean the load generator,
            not the server, was the limit, and the latency figures still count that delay.
        max_in_flight: the most requests in flight at once.
        series: per-interval figures (see :class:`Series`).
    """

    requests: int
    ok: int
    outcomes: Mapping[str, int]
    elapsed: float
    throughput: float
    latency_ok: Percentiles | None
    latency_all: Percentiles | None
    send_lag: Percentiles | None
    max_in_flight: int
    series: Series

    @property
    def error_rate(self) -> float:
        """The share of requests that were not ok (0..1)."""
        return 1 - self.ok / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=True, filter=lambda a, _: a.name != "series")
        data["error_rate"] = self.error_rate
        data["series"] = self.series.to_json()
        return data


def summarize(
    samples: Samples,
    *,
    duration: float,
    windows: Sequence[FaultWindow] = (),
    title: str = "",
) -> LoadStats:
    """The figures of ``samples`` from a run meant to last ``duration`` seconds."""
    outcomes = Counter(samples.outcome)
    ok_latency = [
        latency
        for latency, outcome in zip(samples.latency, samples.outcome, strict=True)
        if is_ok(outcome)
    ]
    elapsed = max(duration, samples.last_end())
    return LoadStats(
        requests=len(samples),
        ok=len(ok_latency),
        outcomes=dict(sorted(outcomes.items())),
        elapsed=elapsed,
        throughput=len(ok_latency) / elapsed if elapsed > 0 else 0.0,
        latency_ok=Percentiles.of(ok_latency),
        latency_all=Percentiles.of(samples.latency),
        send_lag=Percentiles.of(samples.lag),
        max_in_flight=samples.max_in_flight,
        series=_series(samples, elapsed, windows, title),
    )
