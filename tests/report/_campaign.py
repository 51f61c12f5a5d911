"""A campaign result to render: findings exported by the real exporter (one with a timeline
picture), one in the fuzz suites' layout, a known deviation, suites in every state, and a load
series with fault windows."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rbee_props.findings import Violation
from rbee_props.load.schedule import FaultWindow
from rbee_props.load.stats import Samples, summarize
from rbee_props.report import CampaignResult, FindingReport, SuiteResult
from rbee_props.repro import Finding, export_finding

WORKER = "worker-7c1d"
HOSTILE = "<script>alert('x')</script>"


def op(index: int, kind: str, method: str, path: str, status: int, **fields: Any) -> dict:
    data = {
        "index": index, "lane": 0, "kind": kind, "service": "queen", "method": method,
        "path": path, "args": {}, "invoke": 1.0 + index, "complete": 1.1 + index, "outcome": "Ok",
        "status": status, "body": None, "reason": "", "request": None, "headers": {},
    }  # fmt: skip
    data.update(fields)
    return data


def stateful_finding(invariant: str, rules: list[str], *, machine: str, **fields: Any) -> Finding:
    program = [{"rule": rule, "args": {}, "at": 0.1 * i} for i, rule in enumerate(rules)]
    history = [
        op(i, rule, "POST", "/v2/workers/register", 200, request={"worker_id": WORKER})
        for i, rule in enumerate(rules)
    ]
    violation = Violation(
        invariant,
        explains="A worker id is registered at most once.",
        expected="409 WORKER_ALREADY_REGISTERED",
        observed=f"200 and two entries for {WORKER} {HOSTILE}",
        op_kinds=rules,
        step=len(rules) - 1,
    )
    return Finding(violation, program, history, machine=machine, seed=4242, **fields)


def timeline_png() -> bytes:
    """A stand-in for the timeline picture a concurrent finding's directory holds."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 2), dpi=80)
    axes = figure.subplots()
    for lane, (start, end) in enumerate([(0.0, 0.4), (0.1, 0.5), (0.3, 0.6)]):
        axes.barh(lane, end - start, left=start, color="#1f77b4")
    axes.set_title("burst timeline")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def fuzz_directory(root: Path) -> Path:
    """A finding directory in the fuzz suites' layout (plain finding.json, REPORT.md)."""
    directory = root / "F10-queen-POST-v2-workers-register"
    directory.mkdir(parents=True)
    data = {
        "signature": "F10:queen:POST /v2/workers/register",
        "check": "F10",
        "service": "queen",
        "messages": ["the error body is text, not the JSON envelope"],
        "seed": 99,
    }
    (directory / "finding.json").write_text(json.dumps(data))
    (directory / "REPORT.md").write_text(
        "# F10: error envelope\n\nThe queen answered `400` with a text body.\n\n"
        "```\ncurl -X POST http://127.0.0.1:8080/v2/workers/register\n```\n"
    )
    return directory


def load_series():
    samples = Samples()
    for i in range(600):
        due = i / 100
        stalled = 2.0 <= due < 3.0
        latency = 3.0 - due + 0.002 if stalled else 0.002 + (i % 7) / 1000
        samples.add(due, 0.0, latency, "refused" if 4.0 <= due < 4.5 else "200")
    windows = [FaultWindow("pause queen", 2.0, 3.0), FaultWindow("kill queen", 4.0, 4.5)]
    stats = summarize(samples, duration=6.0, windows=windows, title="GET /v2/workers/list")
    return stats.series


def campaign(root: Path, **fields: Any) -> CampaignResult:
    """The result of a made-up 30-minute campaign whose findings are really exported."""
    findings_root = root / "rbee-findings"
    dup = export_finding(
        stateful_finding("S02", ["register_worker", "register_duplicate"], machine="registry",
                         reproduced=3, attempts=3, bugs=("dup-register",)),
        findings_root,
    )  # fmt: skip
    (dup / "timeline.png").write_bytes(timeline_png())
    ghost = export_finding(
        stateful_finding("C01", ["spawn", "kill_worker"], machine="faults", reproduced=2,
                         attempts=3),
        findings_root,
    )  # fmt: skip
    known = export_finding(
        stateful_finding("S05", ["ready_unknown"], machine="faults"), findings_root
    )
    fuzz = fuzz_directory(findings_root)
    findings = [
        FindingReport.from_directory(dup, occurrences=4),
        FindingReport.from_directory(ghost),
        FindingReport.from_directory(known, known=True),
        FindingReport.from_directory(fuzz),
    ]
    suites = [
        SuiteResult("registry", examples=420, steps=8400, seconds=600.0,
                    findings=[findings[0].signature]),
        SuiteResult("faults", examples=150, steps=3000, seconds=600.0,
                    findings=[findings[1].signature]),
        SuiteResult("stack", examples=300, steps=6000, seconds=500.0),
        SuiteResult("fuzz:queen", kind="fuzz", examples=2000, seconds=200.0),
        SuiteResult("fuzz:worker", kind="fuzz", error="the worker did not start: port in use"),
        SuiteResult("partitions", skipped="the backend cannot partition"),
    ]  # fmt: skip
    values: dict[str, Any] = {
        "title": "rbee-props campaign: nightly",
        "started_unix": 1_760_000_000.0,
        "seconds": 1800.0,
        "budget": 1800.0,
        "summary": {"workers": 2, "examples/s": 1.6, "stack restarts": 3, "first seed": 4242},
        "suites": suites,
        "findings": findings,
        "series": [load_series()],
        "bugs": ("dup-register",),
    }
    values.update(fields)
    return CampaignResult(**values)
