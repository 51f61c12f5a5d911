"""REPORT.md: a finding written for a person who has never heard of rbee-props.

It says which property broke and why that matters (the invariant's one sentence), what was
expected and what was seen, the minimal steps, the HTTP exchange at a glance, how the run was
set up, and the three ways to reproduce it. Recorded values go into code spans, so that a
masked secret (``<token>``) or a JSON body is shown as is rather than read as markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from rbee_props.repro._finding import Finding
from rbee_props.repro._steps import captures, format_step, is_controller

__all__ = ["render_report"]

#: rows of the HTTP table; the rest is in history.jsonl
MAX_ROWS: Final = 200
BODY_CHARS: Final = 72


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code(text: Any) -> str:
    """``text`` on one line as a Markdown code span (longer fences around backticks)."""
    value = _one_line(text)
    if not value:
        return ""
    fence = "`"
    while fence in value:
        fence += "`"
    pad = " " if value.startswith("`") or value.endswith("`") or fence != "`" else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _cell(text: Any) -> str:
    """A table cell: a code span with its pipes escaped (GitHub splits cells on them)."""
    return code(text).replace("|", "\\|")


def _plain(text: Any) -> str:
    """Prose on one line, with the characters Markdown would take for HTML escaped."""
    return _one_line(text).replace("<", "\\<").replace(">", "\\>")


def short_body(op: Mapping[str, Any]) -> str:
    """A glimpse of what answered: the JSON body clipped, an event stream summarised."""
    if is_controller(op):
        return ""
    if op.get("outcome") == "Indeterminate" or op.get("status") is None:
        return _clip(_one_line(op.get("reason") or ""), BODY_CHARS)
    body = op.get("body")
    if isinstance(body, Mapping) and isinstance(body.get("events"), list):
        end = "ends [DONE]" if body.get("complete") else "no [DONE]"
        return f"SSE: {len(body['events'])} events, {end}"
    if body is None:
        return ""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return _clip(_one_line(text), BODY_CHARS)


def _status(op: Mapping[str, Any]) -> str:
    if is_controller(op):
        return "done"
    if op.get("outcome") == "Indeterminate":
        return "Indeterminate"
    status = op.get("status")
    return "no answer" if status is None else str(status)


def _table(history: Sequence[Mapping[str, Any]]) -> list[str]:
    if not history:
        return ["No HTTP operation was recorded."]
    lines = [
        "| # | lane | service | method | path | status | body |",
        "|---:|---:|---|---|---|---|---|",
    ]
    for position, op in enumerate(history[:MAX_ROWS]):
        path = op.get("path") or (op.get("args") or {}).get("target") or ""
        row = [
            str(op.get("index", position)),
            str(op.get("lane", 0)),
            _cell(op.get("service", "")),
            _cell(op.get("kind") if is_controller(op) else op.get("method", "")),
            _cell(path),
            _status(op),
            _cell(short_body(op)),
        ]
        lines.append("| " + " | ".join(row) + " |")
    if len(history) > MAX_ROWS:
        lines.append("")
        lines.append(f"… and {len(history) - MAX_ROWS} more ops in `history.jsonl`.")
    return lines


def _steps(finding: Finding, history: Sequence[Mapping[str, Any]]) -> list[str]:
    step = finding.violation.step
    lines = []
    for number, entry in enumerate(finding.program):
        mark = " ← violated here" if number == step else ""
        lines.append(f"{number + 1}. {code(format_step(entry))}{mark}")
    if not lines:
        lines.append("The program is empty: the violation held from the start.")
    caught = captures(finding.program, history)
    if caught:
        lines.append("")
        lines.append(
            "Worker ids the spawns returned in the recorded run (a new run gets new ones):"
        )
        lines.append("")
        for capture in caught:
            lines.append(
                f"- {code(capture.name.lower())} = {code(capture.worker_id)}"
                f" (`${capture.name}` in `repro.sh`)"
            )
    return lines


def _run(finding: Finding) -> list[str]:
    bugs = ", ".join(code(bug) for bug in finding.bugs) or "none"
    config = code(finding.config_path) if finding.config_path else "built-in reference stack"
    versions = ", ".join(f"{name} {code(v)}" for name, v in finding.versions.items())
    seed = code(finding.seed) if finding.seed is not None else "not recorded"
    return [
        f"- seed: {seed}",
        f"- planted bugs: {bugs}",
        f"- machine: {code(finding.machine)}, backend: {code(finding.backend)}, config: {config}",
        f"- reproduction rate: **{finding.rate}** (the program failed {finding.reproduced} "
        f"time(s) in {finding.attempts} run(s))",
        f"- versions: {versions or 'not recorded'}",
    ]


def render_report(
    finding: Finding,
    history: Sequence[Mapping[str, Any]],
    where: str,
    *,
    sections: Sequence[str] = (),
) -> str:
    """The text of ``REPORT.md``; ``where`` is the finding's directory as the reader names it;
    ``sections``: more Markdown lines, before "Run" (a burst's timeline)."""
    violation = finding.violation
    facts = [
        f"- **Expected:** {code(violation.expected)}",
        f"- **Observed:** {code(violation.observed)}",
    ]
    if finding.wait is not None:
        facts.append(f"- **Waited:** {finding.wait:.2f} s for it to hold, in vain")
    if violation.details:
        details = json.dumps(violation.details, separators=(",", ":"), default=str)
        facts.append(f"- **Details:** {code(_clip(details, 300))}")
    lines = [
        f"# {_plain(violation.invariant)}: {_plain(violation.explains)}",
        "",
        f"Signature {code(finding.signature)}, reproduced **{finding.rate}**.",
        "",
        *facts,
        "",
        "## Minimal steps",
        "",
        *_steps(finding, history),
        "",
        "## HTTP exchange",
        "",
        *_table(history),
        "",
        *sections,
        "## Run",
        "",
        *_run(finding),
        "",
        "## How to reproduce",
        "",
        "```sh",
        "# re-run the minimal program on a fresh stack",
        f"rbee-props replay {where}",
        "# the same as a test: it fails while the bug is there",
        f"pytest {where}/test_repro.py",
        "# the recorded HTTP exchange as curl lines, against a running stack",
        f"bash {where}/repro.sh",
        "```",
        "",
        "`repro.sh` needs the base URL of each service (`QUEEN_URL`, `HIVE1_URL`...) and",
        "`RBEE_TOKEN_FILE`; its header says how to get them (`rbee-props status --json`).",
        "",
    ]
    return "\n".join(lines)
