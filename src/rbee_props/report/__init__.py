"""Campaign reports: ``report.html`` for people and ``junit.xml`` for CI systems.

A campaign describes what happened in a :class:`CampaignResult` (suites, findings read back
from their exported directories, load series with fault windows) and calls
:func:`write_report`, at the end and on Ctrl-C alike. Modules: ``result`` (the data), ``html``
(the self-contained page), ``junit`` (the XML), ``charts`` (the pictures).
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from rbee_props.report.html import render_html
from rbee_props.report.junit import render_junit
from rbee_props.report.result import CampaignResult, FindingReport, SuiteResult, findings_from

__all__ = [
    "CampaignResult",
    "FindingReport",
    "ReportFiles",
    "SuiteResult",
    "findings_from",
    "render_html",
    "render_junit",
    "write_report",
]


@attrs.frozen
class ReportFiles:
    """Where :func:`write_report` wrote the two files."""

    html: Path
    junit: Path


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a reader (or a Ctrl-C in the
    middle) never sees half a report."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_report(result: CampaignResult, out: Path) -> ReportFiles:
    """Write ``out/report.html`` and ``out/junit.xml`` (``out`` is created when missing)."""
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / "report.html", out / "junit.xml")
    _replace(files.html, render_html(result).encode("utf-8"))
    _replace(files.junit, render_junit(result))
    return files
