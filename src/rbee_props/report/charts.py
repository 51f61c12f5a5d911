"""The report's pictures as PNG bytes: work per suite, and each load series (matplotlib).

The load series picture is the one ``rbee-props load --plot`` writes
(:func:`rbee_props.load.render.plot_series`), so a campaign's load phase and a load run look
the same. Figures use matplotlib's object API: no pyplot state, no display needed.
"""

from __future__ import annotations

import io
from typing import Final

from rbee_props.load.render import plot_series
from rbee_props.report.result import CampaignResult

__all__ = ["plot_series", "suites_chart"]

_STATUS_COLOURS: Final = {
    "passed": "#2ca02c",
    "failed": "#d62728",
    "error": "#ff7f0e",
    "skipped": "#7f7f7f",
}


def suites_chart(result: CampaignResult) -> bytes | None:
    """Examples run per suite as horizontal bars coloured by status (None without suites)."""
    suites = result.suites
    if not suites:
        return None
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    height = 1.2 + 0.35 * len(suites)
    figure = Figure(figsize=(9, height), dpi=100, layout="constrained")
    axes = figure.subplots()
    names = [s.name for s in suites][::-1]
    counts = [s.examples for s in suites][::-1]
    statuses = [result.status_of(s) for s in suites]
    colours = [_STATUS_COLOURS[status] for status in statuses][::-1]
    bars = axes.barh(names, counts, color=colours)
    for bar, suite in zip(bars, list(suites)[::-1], strict=True):
        found = len(result.findings_of(suite.name))
        text = f" {suite.examples}" + (f"  ({found} found)" if found else "")
        axes.annotate(
            text,
            xy=(bar.get_width(), bar.get_y() + bar.get_height() / 2),
            va="center",
            fontsize=8,
        )
    axes.set_xlabel("examples run")
    axes.set_xlim(right=max([*counts, 1]) * 1.25)
    axes.grid(True, axis="x", alpha=0.3)
    present = [status for status in _STATUS_COLOURS if status in statuses]
    axes.legend(
        handles=[Patch(color=_STATUS_COLOURS[s], label=s) for s in present],
        loc="lower right",
        fontsize=8,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
