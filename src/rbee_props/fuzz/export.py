"""Write a fuzz finding to ``<findings>/<slug>/``: report, curl script and Schemathesis replay data.

=========================  ===========================================================
file                       what
=========================  ===========================================================
``REPORT.md``              the check, what it said, the request and the answer
``repro.sh``               curl lines: the request as sent, then the failing check's own
                           requests (re-sends, a peer's list)
``finding.json``           the same, machine-readable (signature, seed, mode, stack)
``schemathesis/``          a Schemathesis crash directory (``manifest.json``, one crash
                           file, the document it was found with) for ``st replay``
=========================  ===========================================================

Each signature gets one directory: creating it is the de-duplication between the processes of
one campaign and across campaigns writing to the same findings directory. Everything written
passes :class:`~rbee_props.redact.Redactor`; the token is never stored.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import yaml
from schemathesis import Case, Response
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.reporting.crashes import CrashWriter, build_crashes_from_recorder

from rbee_props.fuzz._curl import Exchange, curl_script, url_variable
from rbee_props.fuzz._judge import Judgement, as_failure
from rbee_props.fuzz.settings import GRACE_KEY, PEERS_KEY, TARGET_KEY
from rbee_props.fuzz.signature import FuzzFinding
from rbee_props.redact import Redactor

__all__ = ["ExportContext", "Sample", "replay_command", "write_finding"]

#: how much of a response body the report keeps
BODY_LIMIT = 4096
#: libyaml's safe dumper when present (the pure-Python one takes ~0.2 s per document)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@attrs.frozen
class Sample:
    """The failing example: the case, its response and what the checks said."""

    case: Case[Any]
    response: Response
    judgement: Judgement


@attrs.frozen
class ExportContext:
    """What a finding directory needs to know about the run.

    Attributes:
        service: the document's service (names ``$QUEEN_URL`` etc.).
        base_url: where the case went.
        token: the stack token (only ever used to mask it).
        spec: the document the schema was loaded from (raw mapping, without rbee keys).
        seed: the campaign's base seed.
        mode: ``positive`` or ``negative`` generation.
        stack: a description of the stack (config source and planted bugs).
    """

    service: str
    base_url: str
    token: str
    spec: Mapping[str, Any]
    seed: int
    mode: str
    stack: str


def _headers(raw: Any) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else bytes(v).decode("latin-1") for k, v in raw.items()}


def _body(raw: Any) -> bytes:
    if isinstance(raw, str):
        return raw.encode("utf-8")
    return bytes(raw) if isinstance(raw, bytes | bytearray) else b""


def _exchanges(finding: FuzzFinding, sample: Sample) -> list[Exchange]:
    request = sample.response.request
    sent = Exchange(
        title="the request the fuzzer sent",
        method=str(request.method),
        url=str(request.url),
        headers=_headers(request.headers),
        body=_body(request.body),
        status=sample.response.status_code,
    )
    probes: dict[tuple[str, str, tuple[tuple[str, str], ...], bytes], Exchange] = {}
    for p in sample.judgement.probes.get(finding.check, ()):
        # a check that polls (S21) sends the same request many times: the last answer stands
        key = (p.method, p.url, tuple(sorted(p.headers.items())), p.body)
        probes.pop(key, None)
        probes[key] = Exchange(
            title=f"sent by the check {finding.check}: {p.method} {urlsplit(p.url).path}"
            + ("" if "Authorization" in p.headers else " without Authorization"),
            method=p.method, url=p.url, headers=p.headers, body=p.body, status=p.status,
        )  # fmt: skip
    return [sent, *probes.values()]


def replay_command(directory: Path, service: str) -> str:
    """The ``st replay`` line that re-runs the finding's crash file with the rbee checks."""
    var = url_variable(service)
    return (
        f"SCHEMATHESIS_HOOKS=rbee_props.fuzz.checks st replay {directory / 'schemathesis'} "
        f'--url "${var}" -H "Authorization: Bearer $RBEE_TOKEN"'
    )


def _write_crash_data(
    directory: Path, finding: FuzzFinding, sample: Sample, ctx: ExportContext, code: str
) -> list[str]:
    """The Schemathesis crash directory; the names of the crash files written."""
    crash_dir = directory / "schemathesis"
    crash_dir.mkdir()
    document = {k: v for k, v in ctx.spec.items() if k not in (TARGET_KEY, PEERS_KEY, GRACE_KEY)}
    document[TARGET_KEY] = {"base_url": ctx.base_url, "token": None}
    raw = sample.case.operation.schema.raw_schema
    document[PEERS_KEY] = dict(raw.get(PEERS_KEY, {}))
    if GRACE_KEY in raw:
        document[GRACE_KEY] = raw[GRACE_KEY]
    spec_file = crash_dir / "openapi.yaml"
    spec_file.write_text(yaml.dump(document, Dumper=_DUMPER, sort_keys=False))
    case = sample.case
    recorder = ScenarioRecorder(label=finding.label)
    recorder.record_case(case=case)
    recorder.record_response(case_id=case.id, response=sample.response)
    for exc in sample.judgement.failures.get(finding.check, ()):
        recorder.record_check_failure(
            name=finding.check,
            case_id=case.id,
            code_sample=code,
            failure=as_failure(finding.check, exc, finding.label),
        )
    writer = CrashWriter(directory=crash_dir)
    writer.open(schema_location=str(spec_file.absolute()), base_url=ctx.base_url)
    written = []
    sanitization = case.operation.schema.config.output.sanitization
    for crash in build_crashes_from_recorder(
        recorder=recorder, failing_case_id=case.id, sanitization=sanitization
    ):
        writer.write(crash)
        written.append(crash.filename())
    return written


def _report(finding: FuzzFinding, sample: Sample, ctx: ExportContext, data: dict[str, Any]) -> str:
    response = sample.response
    lines = [
        f"# {finding.signature}",
        "",
        f"The check `{finding.check}` failed on {ctx.service} `{finding.label}` "
        f"(operation `{finding.operation}`, {ctx.mode} generation, campaign seed {ctx.seed}).",
        "",
        *[f"> {line}" for m in finding.messages[:3] for line in m.splitlines()],
        "",
        "## Sent",
        "```",
        f"{data['request']['method']} {data['request']['url']}",
        *[f"{k}: {v}" for k, v in data["request"]["headers"].items()],
        "",
        data["request"]["body"],
        "```",
        "",
        f"## Answered {response.status_code}",
        "```",
        *[f"{k}: {v}" for k, v in data["response"]["headers"].items()],
        "",
        data["response"]["body"],
        "```",
        "",
        "## Reproduce",
        f"- `{url_variable(ctx.service)}=<url> RBEE_TOKEN_FILE=<token file> bash repro.sh`",
        f"- `{replay_command(Path('.'), ctx.service)}`",
        "",
        f"Stack: {ctx.stack}.",
    ]
    return "\n".join(lines) + "\n"


def write_finding(
    out: Path, finding: FuzzFinding, sample: Sample, ctx: ExportContext, *, replayed: bool = False
) -> Path | None:
    """Write ``finding`` to ``out/<slug>/``; None when that directory exists already.

    Args:
        out: the findings directory (created when missing).
        finding: what failed.
        sample: the (smallest seen) failing example.
        ctx: the run.
        replayed: the example came from the example database of an earlier campaign.
    """
    out.mkdir(parents=True, exist_ok=True)
    directory = out / finding.slug
    try:
        directory.mkdir()
    except FileExistsError:
        return None
    redactor = Redactor([ctx.token])
    exchanges = _exchanges(finding, sample)
    comments = (
        [finding.signature, *finding.messages[0].splitlines()[:3]] if finding.messages else []
    )
    peers = sample.case.operation.schema.raw_schema.get(PEERS_KEY, {})
    script, files = curl_script(
        exchanges,
        comments=comments,
        service=ctx.service,
        base_url=ctx.base_url,
        token=ctx.token,
        redactor=redactor,
        peers=peers if isinstance(peers, dict) else {},
    )
    (directory / "repro.sh").write_text(script)
    os.chmod(directory / "repro.sh", 0o755)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    sent = exchanges[0]
    data: dict[str, Any] = {
        "signature": finding.signature,
        "check": finding.check,
        "service": finding.service,
        "operation": finding.operation,
        "label": finding.label,
        "status": finding.status,
        "messages": list(finding.messages),
        "mode": ctx.mode,
        "seed": ctx.seed,
        "stack": ctx.stack,
        "replayed_from_database": replayed,
        "found_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "request": {
            "method": sent.method,
            "url": sent.url,
            "headers": dict(sent.headers),
            "body": sent.body.decode("utf-8", "replace")[:BODY_LIMIT],
        },
        "response": {
            "status": sample.response.status_code,
            "headers": {k: ", ".join(v) for k, v in sample.response.headers.items()},
            "body": sample.response.content.decode("utf-8", "replace")[:BODY_LIMIT],
        },
    }
    data = redactor.obj(data)
    code = f"bash {directory / 'repro.sh'}"
    data["schemathesis"] = _write_crash_data(directory, finding, sample, ctx, code)
    (directory / "finding.json").write_text(json.dumps(data, indent=2) + "\n")
    (directory / "REPORT.md").write_text(redactor.text(_report(finding, sample, ctx, data)))
    for path in (directory / "schemathesis").iterdir():
        path.write_text(redactor.text(path.read_text()))
    return directory
