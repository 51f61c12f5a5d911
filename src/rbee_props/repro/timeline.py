"""The timeline of a failing burst: one row per lane, one bar per operation, the window in red.

A concurrency finding is hard to read as a table: what matters is which operations overlapped.
``timeline.png`` (next to REPORT.md) draws the ops of the burst the checker judged, from the
history: one row per lane (lane 0 is the machine itself, reading the lists while the stack
settles), each op a bar from its invoke to its complete time, coloured by outcome (2xx, refused,
no answer), labelled with what it was and what came back. The failing window (the ops that no
order can explain, ``NotLinearizable.window``) is outlined in red over a red band; the last op
the checker could place before it got stuck is outlined dashed. The picture is drawn with
matplotlib's Agg canvas (no display, no global pyplot state).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["TIMELINE", "render_timeline", "timeline_section", "write_timeline"]

TIMELINE: Final = "timeline.png"
COLORS: Final = {"Ok": "#6ab04c", "Fail": "#f0932b", "Indeterminate": "#c8c8c8"}
WINDOW: Final = "#d62828"
#: about how many label characters fit across the axis
CHARS_ACROSS: Final = 190


def _label(op: Mapping[str, Any]) -> str:
    """``spawn 200``, ``list hive1 200``, ``inference 503``, ``register_worker timeout``."""
    kind = str(op.get("kind", "?"))
    service = str(op.get("service", ""))
    if kind == "list_workers":
        kind = f"list {service}"
    elif service.startswith("worker:"):
        kind = f"{kind} @worker"
    outcome = op.get("outcome")
    status = op.get("status")
    if outcome == "Indeterminate":
        return f"{kind} ?"
    return f"{kind} {status if status is not None else 'refused'}"


def _label_room(ops: Sequence[Mapping[str, Any]], t0: float, span: float) -> dict[int, float]:
    """Per op index, the ms from its start to the next op's start in its lane (the room for
    its label; the last op of a lane has the rest of the axis)."""
    room: dict[int, float] = {}
    lanes: dict[int, list[Mapping[str, Any]]] = {}
    for op in ops:
        lanes.setdefault(int(op.get("lane", 0)), []).append(op)
    for lane_ops in lanes.values():
        lane_ops.sort(key=lambda op: float(op["invoke"]))
        starts = [(float(op["invoke"]) - t0) * 1000.0 for op in lane_ops]
        for n, op in enumerate(lane_ops):
            following = starts[n + 1] if n + 1 < len(starts) else span * 1.01
            room[int(op["index"])] = following - starts[n]
    return room


def _burst_ops(
    history: Sequence[Mapping[str, Any]], first: int, last: int
) -> list[Mapping[str, Any]]:
    return [
        op
        for op in history
        if first <= int(op.get("index", -1)) <= last and op.get("method") != "FAULT"
    ]


def render_timeline(
    history: Sequence[Mapping[str, Any]],
    *,
    burst: tuple[int, int],
    window: Sequence[int] = (),
    prefix: Sequence[int] = (),
    title: str = "",
) -> bytes:
    """The PNG of the ops with index in ``burst`` (first, last), ``window`` highlighted.

    Raises:
        ValueError: no op of ``history`` lies in ``burst``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    ops = _burst_ops(history, *burst)
    if not ops:
        msg = f"no op of the history has an index in {burst}; pass the burst's first and last"
        raise ValueError(msg)
    t0 = min(float(op["invoke"]) for op in ops)
    t1 = max(float(op["complete"]) for op in ops)
    span = max((t1 - t0) * 1000.0, 1.0)
    lanes = sorted({int(op.get("lane", 0)) for op in ops})
    row = {lane: n for n, lane in enumerate(lanes)}
    marked, placed = set(window), set(prefix[-1:])

    fig = Figure(figsize=(11, 1.8 + 0.42 * len(lanes)), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    inside = [op for op in ops if int(op["index"]) in marked]
    if inside:
        lo = (min(float(op["invoke"]) for op in inside) - t0) * 1000.0
        hi = (max(float(op["complete"]) for op in inside) - t0) * 1000.0
        ax.axvspan(lo, max(hi, lo + span * 0.004), color=WINDOW, alpha=0.08, zorder=0)
    room = _label_room(ops, t0, span)
    for op in ops:
        start = (float(op["invoke"]) - t0) * 1000.0
        width = max((float(op["complete"]) - float(op["invoke"])) * 1000.0, span * 0.004)
        index = int(op["index"])
        edge, lw, style = "#555555", 0.6, "solid"
        if index in marked:
            edge, lw = WINDOW, 2.4
        elif index in placed:
            edge, lw, style = WINDOW, 1.0, "dashed"
        ax.barh(
            row[int(op.get("lane", 0))],
            width,
            left=start,
            height=0.62,
            color=COLORS.get(str(op.get("outcome")), "#999999"),
            edgecolor=edge,
            linewidth=lw,
            linestyle=style,
            hatch="//" if op.get("outcome") == "Indeterminate" else None,
            zorder=2,
        )
        text = f"#{index} {_label(op)}"
        shown = index in marked or index in placed
        if shown or len(text) * span / CHARS_ACROSS <= room[index]:
            # the window's labels above their bars, the last placed op's below; near the right
            # edge a label ends at its bar instead of starting there
            offset = -0.42 if index in marked else 0.42 if shown else 0.0
            right = shown and start > 0.6 * span
            ax.text(
                start + width if right else start + span * 0.003,
                row[int(op.get("lane", 0))] + offset,
                text,
                ha="right" if right else "left",
                va="center",
                fontsize=6.5,
                fontweight="bold" if shown else "normal",
                clip_on=True,
                zorder=3,
            )
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([f"lane {lane}" if lane else "lane 0 (settle reads)" for lane in lanes])
    ax.set_ylim(len(lanes) - 0.1, -0.9)  # first lane on top, room for labels above and below
    ax.set_xlim(-span * 0.01, span * 1.01)
    ax.set_xlabel("ms since the first op of the burst was sent")
    ax.grid(axis="x", alpha=0.3, zorder=1)
    ax.set_title(textwrap.fill(title, 150), fontsize=8.5, loc="left")
    fig.legend(
        handles=[
            Patch(color=COLORS["Ok"], label="2xx"),
            Patch(color=COLORS["Fail"], label="refused (4xx/5xx, no connection)"),
            Patch(facecolor=COLORS["Indeterminate"], hatch="//", label="no answer (timeout)"),
            Patch(facecolor="white", edgecolor=WINDOW, linewidth=2.4, label="failing window"),
        ],
        fontsize=7,
        loc="outside lower center",
        ncol=4,
        frameon=False,
    )
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _burst_of(details: Mapping[str, Any]) -> tuple[int, int] | None:
    burst = details.get("burst")
    if not isinstance(burst, list | tuple) or len(burst) != 2:
        return None
    first, last = burst
    return (first, last) if isinstance(first, int) and isinstance(last, int) else None


def write_timeline(
    details: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    directory: Path,
    *,
    title: str = "",
) -> str | None:
    """Write ``timeline.png`` for a violation whose ``details`` name a burst (``"burst"``:
    first and last op index, ``"window"``, ``"prefix"``); its file name, or None (no burst, or
    none of its ops in ``history``)."""
    burst = _burst_of(details)
    if burst is None or not _burst_ops(history, *burst):
        return None
    png = render_timeline(
        history,
        burst=burst,
        window=[int(i) for i in details.get("window", ())],
        prefix=[int(i) for i in details.get("prefix", ())],
        title=title,
    )
    (directory / TIMELINE).write_bytes(png)
    return TIMELINE


def timeline_section(name: str | None, details: Mapping[str, Any]) -> list[str]:
    """The REPORT.md lines that show the picture ``name`` (nothing when there is none)."""
    if not name:
        return []
    window = ", ".join(f"#{i}" for i in details.get("window", ()))
    lanes = details.get("lanes")
    return [
        "## Timeline of the burst",
        "",
        f"![One bar per operation, one row per lane]({name})",
        "",
        f"The burst ran on {lanes} lane(s) at once. Each bar is one operation, from the moment "
        "it was sent to the moment its answer was complete; green is 2xx, orange a refusal, grey "
        "no answer. An operation took effect at some instant inside its bar; two bars that "
        "overlap could take effect in either order. Outlined in red is the failing window "
        f"({window or 'none'}): the checker found no order of the operations, inside their "
        "bars, that the model accepts; the dashed outline is the last operation it could place "
        "before it got stuck. Lane 0 is the machine reading the lists while the stack settled.",
        "",
        *(
            ["The checker's explanation:", "", "```text", str(details["explanation"]), "```", ""]
            if details.get("explanation")
            else []
        ),
    ]
