"""``report.html``: one self-contained page a person reads the morning after a campaign.

Summary, suites, pictures, then one section per finding with its REPORT.md. Self-contained: the
style is inline, there is no script, and every picture is a ``data:`` URI, so the file can be
mailed or attached to a CI run and opens anywhere. Every recorded value is HTML-escaped, and
REPORT.md is rendered by markdown-it-py with raw HTML switched off (a finding's body could hold
``<script>``; it is shown, not run).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
from collections.abc import Iterable
from typing import Any, Final

from markdown_it import MarkdownIt

from rbee_props.report.charts import plot_series, suites_chart
from rbee_props.report.result import CampaignResult, FindingReport, SuiteResult

__all__ = ["render_html"]

#: REPORT.md headings start at ``#``; inside a finding's section they become ``<h3>`` and below
_HEADING_SHIFT: Final = 2

_STYLE: Final = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       margin: 0; background: #f4f5f7; }
main { max-width: 1060px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin-top: 36px; border-bottom: 2px solid #e3e6ea; padding-bottom: 4px; }
.status { display: inline-block; padding: 4px 12px; border-radius: 14px; font-weight: 600;
          color: #fff; margin: 8px 0 16px; }
.clean { background: #2e7d32; } .found { background: #c62828; } .stopped { background: #ef6c00; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #d7dbe0; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #eef0f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td:first-child { border-left: 4px solid #c62828; }
tr.error td:first-child { border-left: 4px solid #ef6c00; }
tr.passed td:first-child { border-left: 4px solid #2e7d32; }
tr.skipped td:first-child { border-left: 4px solid #9e9e9e; }
img { max-width: 100%; border: 1px solid #e3e6ea; margin: 8px 0; }
section.finding { border: 1px solid #e3e6ea; border-left: 6px solid #c62828; padding: 4px 20px;
                  margin: 20px 0; border-radius: 4px; }
section.finding.known { border-left-color: #9e9e9e; }
code, pre { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f4f6; }
pre { padding: 8px 12px; overflow-x: auto; }
.md table { font-size: 13px; }
.muted { color: #5f6b7a; }
nav ul { margin: 4px 0; }
"""


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _png(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _when(unix: float) -> str:
    moment = datetime.datetime.fromtimestamp(unix, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _rows(pairs: Iterable[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)


def _status(result: CampaignResult) -> str:
    new = len(result.new_findings)
    if new:
        text, css = f"{new} new finding{'s' * (new != 1)}", "found"
    else:
        text, css = "no new findings", "clean"
    if result.interrupted:
        text, css = f"interrupted: {text} so far", "stopped"
    return f'<div class="status {css}">{_e(text)}</div>'


def _summary(result: CampaignResult) -> str:
    known = len(result.findings) - len(result.new_findings)
    pairs: list[tuple[str, Any]] = [
        ("started", _when(result.started_unix)),
        ("ran for", _duration(result.seconds)),
        ("budget", _duration(result.budget) if result.budget is not None else "none"),
        ("stack", result.config_source),
        ("planted bugs", ", ".join(result.bugs) or "none"),
        ("suites", len(result.suites)),
        ("findings", f"{len(result.new_findings)} new, {known} known"),
        *((str(k), v) for k, v in result.summary.items()),
    ]
    return f"<h2>Summary</h2><table>{_rows(pairs)}</table>"


def _suite_row(result: CampaignResult, suite: SuiteResult) -> str:
    note = suite.error or suite.skipped or ""
    found = ", ".join(
        f.signature + (" (known)" if f.known else "") for f in result.findings_of(suite.name)
    )
    status = result.status_of(suite)
    cells = [
        f"<td>{_e(suite.name)}</td>",
        f"<td>{_e(suite.kind)}</td>",
        f"<td>{_e(status)}</td>",
        f'<td class="num">{suite.examples}</td>',
        f'<td class="num">{suite.steps}</td>',
        f'<td class="num">{_e(_duration(suite.seconds))}</td>',
        f"<td>{_e(found)}{'<br>' if found and note else ''}{_e(note)}</td>",
    ]
    return f'<tr class="{_e(status)}">{"".join(cells)}</tr>'


def _suites(result: CampaignResult) -> str:
    if not result.suites:
        return "<h2>Suites</h2><p class='muted'>No suite ran.</p>"
    head = "".join(
        f"<th>{h}</th>"
        for h in ("suite", "kind", "status", "examples", "steps", "time", "findings / note")
    )
    body = "".join(_suite_row(result, s) for s in result.suites)
    chart = suites_chart(result)
    picture = _png(chart, "examples run per suite") if chart else ""
    return f"<h2>Suites</h2><table><tr>{head}</tr>{body}</table>{picture}"


def _series(result: CampaignResult) -> str:
    if not result.series:
        return ""
    parts = ["<h2>Throughput and latency</h2>"]
    parts.append(
        "<p class='muted'>Latency by the time each request was due (open model: a stall shows "
        "as the latency of every request that met it); shaded spans are fault windows.</p>"
    )
    for series in result.series:
        parts.append(_png(plot_series(series), series.title or "latency and throughput"))
        if series.windows:
            rows = "".join(
                f"<tr><td>{_e(w.label)}</td><td class='num'>{w.start:.2f}</td>"
                f"<td class='num'>{w.end:.2f}</td></tr>"
                for w in series.windows
            )
            parts.append(
                f"<table><tr><th>fault</th><th>from (s)</th><th>to (s)</th></tr>{rows}</table>"
            )
    return "".join(parts)


def _report_md(md: MarkdownIt, text: str) -> str:
    tokens = md.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            level = min(int(token.tag[1]) + _HEADING_SHIFT, 6)
            token.tag = f"h{level}"
    rendered: str = md.renderer.render(tokens, md.options, {})
    return rendered


def _finding(md: MarkdownIt, finding: FindingReport) -> str:
    pairs: list[tuple[str, Any]] = [
        ("found by", finding.suite),
        ("reproduction rate", finding.rate),
        ("seed", finding.seed if finding.seed is not None else "unknown"),
        ("planted bugs", ", ".join(finding.bugs) or "none"),
        ("times met", finding.occurrences),
        ("directory", str(finding.directory) if finding.directory else "not exported"),
    ]
    if finding.known:
        pairs.append(("known deviation", "listed in the config's known signatures"))
    pictures = "".join(
        _png(path.read_bytes(), f"{finding.signature}: {path.name}") for path in finding.pictures
    )
    body = _report_md(md, finding.report_md) if finding.report_md else (
        "<p class='muted'>No REPORT.md was written for this finding.</p>"
    )  # fmt: skip
    css = "finding known" if finding.known else "finding"
    return (
        f'<section class="{css}" id="{_e(_anchor(finding))}">'
        f"<h3>{_e(finding.signature)}</h3><p>{_e(finding.title)}</p>"
        f"<table>{_rows(pairs)}</table>{pictures}<div class='md'>{body}</div></section>"
    )


def _replayed(finding: FindingReport) -> str:
    return "not replayed" if finding.reproduced is None else f"reproduced {finding.rate}"


def _anchor(finding: FindingReport) -> str:
    return f"finding-{hashlib.sha256(finding.signature.encode()).hexdigest()[:12]}"


def _findings(result: CampaignResult) -> str:
    if not result.findings:
        return "<h2>Findings</h2><p>No finding: every suite passed its checks.</p>"
    md = _markdown()
    index = "".join(
        f'<li><a href="#{_e(_anchor(f))}">{_e(f.signature)}</a> <span class="muted">'
        f"({_e(f.suite)}, {_e(_replayed(f))}{', known' if f.known else ''})</span></li>"
        for f in result.findings
    )
    sections = "".join(_finding(md, f) for f in result.findings)
    return f"<h2>Findings</h2><nav><ul>{index}</ul></nav>{sections}"


def render_html(result: CampaignResult) -> str:
    """The whole page as one string."""
    body = "".join(
        [
            f"<h1>{_e(result.title)}</h1>",
            _status(result),
            _summary(result),
            _suites(result),
            _series(result),
            _findings(result),
        ]
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(result.title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
