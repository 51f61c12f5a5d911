"""Fuzz a schema programmatically, for a fixed budget, and tell which checks failed.

``tests/fuzz`` runs through Schemathesis' pytest integration; campaigns and the planted-bug
selftests need the same cases and checks without pytest, and an answer per check rather than the
first failure: :func:`fuzz` sends every case to the live service, runs each check on its own and
collects what failed in a :class:`FuzzReport`. It generates (seeded, so a run repeats) but does
not shrink: it answers "does this check fail?", the pytest suites give the minimal example.
Campaigns (:mod:`~rbee_props.fuzz.campaign`) add a time budget, de-duplication, shrinking and the
example database on top.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import attrs
import hypothesis
import hypothesis.errors
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema

from rbee_props.fuzz._judge import judge
from rbee_props.fuzz.export import ExportContext, Sample, write_finding
from rbee_props.fuzz.settings import TARGET_KEY
from rbee_props.fuzz.signature import findings_of
from rbee_props.fuzz.specs import call_kwargs
from rbee_props.fuzz.suite import checks_for, is_destructive

__all__ = ["FuzzReport", "fuzz"]

#: messages kept per failed check
KEEP = 3


@attrs.frozen
class FuzzReport:
    """What one :func:`fuzz` run saw.

    Attributes:
        cases: requests sent (one per generated case).
        failures: check name -> the first messages of its failures.
        directories: check name -> the finding directory of its first failure (with ``out``).
    """

    cases: int
    failures: Mapping[str, tuple[str, ...]]
    directories: Mapping[str, Path] = attrs.field(factory=dict)

    @property
    def failed_checks(self) -> frozenset[str]:
        """Names of the checks that failed at least once."""
        return frozenset(self.failures)

    def summary(self) -> str:
        """One line per failed check with its first message (or "no check failed")."""
        if not self.failures:
            return f"no check failed in {self.cases} cases"
        lines = [f"{len(self.failures)} check(s) failed in {self.cases} cases:"]
        for name, messages in sorted(self.failures.items()):
            lines.append(f"  {name}: {messages[0].splitlines()[0] if messages else ''}")
        return "\n".join(lines)


def fuzz(
    schema: BaseSchema,
    *,
    operations: Collection[str] | None = None,
    checks: Collection[CheckFunction] | None = None,
    max_examples: int = 25,
    seed: int = 0,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    keep_nodes: Collection[str] = (),
    after: Callable[[Response, Case[Any]], None] | None = None,
    service: str = "",
    out: Path | None = None,
) -> FuzzReport:
    """Send ``max_examples`` cases per operation and mode to the aimed ``schema``.

    Args:
        schema: a schema from :func:`~rbee_props.fuzz.specs.load_spec`, aimed at a service.
        operations: operationIds to fuzz (None: all).
        checks: the checks to run (None: :func:`~rbee_props.fuzz.suite.checks_for` each case).
        max_examples: Hypothesis examples per operation and generation mode.
        seed: Hypothesis seed, so the same cases are sent every run.
        modes: positive and/or negative generation.
        keep_nodes: beehives the run must never remove.
        after: called with each response and case (clean-up).
        service: the document's service, naming findings (``queen``, ``hive``, ``worker``).
        out: write each check's first failing example there (as ``rbee-props fuzz`` does,
            without shrinking).
    """
    failures: dict[str, list[str]] = {}
    directories: dict[str, Path] = {}
    sent = 0
    target = call_kwargs(schema)
    aimed = schema.raw_schema.get(TARGET_KEY, {})
    configured = aimed.get("token") if isinstance(aimed, dict) else None
    current = {"mode": ""}  # the generation mode being run, for the findings written
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            continue
        operation = result.ok()
        if operations is not None and operation.definition.raw.get("operationId") not in operations:
            continue
        for mode in modes:
            current["mode"] = mode.value

            def run(case: Case[Any]) -> None:
                nonlocal sent
                if is_destructive(case, keep_nodes=keep_nodes):
                    return
                response = case.call(**target)
                sent += 1
                chosen = checks if checks is not None else checks_for(case)
                judgement = judge(case, response, list(chosen), target=target)
                for name in judgement.failures:
                    kept = failures.setdefault(name, [])
                    kept.extend(judgement.messages(name)[: max(KEEP - len(kept), 0)])
                if out is not None:
                    sample = Sample(case, response, judgement)
                    found = findings_of(service, case.operation, response.status_code, judgement)
                    for finding in found:
                        if finding.check not in directories:
                            ctx = ExportContext(
                                service=service, base_url=target["base_url"],
                                token=configured or "", spec=schema.raw_schema, seed=seed,
                                mode=current["mode"], stack="",
                            )  # fmt: skip
                            path = write_finding(out, finding, sample, ctx)
                            directories[finding.check] = path or out / finding.slug
                if after is not None:
                    after(response, case)

            test = hypothesis.given(case=operation.as_strategy(generation_mode=mode))(run)
            test = hypothesis.settings(
                max_examples=max_examples,
                database=None,
                deadline=None,
                phases=[hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
            )(test)
            try:
                hypothesis.seed(seed)(test)()
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to negate (an operation without parameters)
    return FuzzReport(
        cases=sent, failures={k: tuple(v) for k, v in failures.items()}, directories=directories
    )
