"""Reproductions: a shrunk failure becomes a directory a person can read, paste and re-run.

``export_finding(finding, root)`` writes ``root/<slug>/`` with ``REPORT.md``, ``test_repro.py``,
``repro.sh``, ``history.jsonl`` and ``finding.json``; every file passes the redactor.
"""

from rbee_props.repro._finding import Finding, current_versions
from rbee_props.repro.export import export_finding

__all__ = ["Finding", "current_versions", "export_finding"]
