"""Judge one response with many checks in one pass, and say which check failed with what.

``case.validate_response`` runs every check but raises one ``FailureGroup`` that no longer says
which check produced which failure; campaigns de-duplicate by check name, so each check is wrapped
to note its own name when it fails. One pass, like Schemathesis' own engine, keeps the cost per
case at that of ``st run``. The extra requests the checks send (:mod:`._probe`) are kept with the
verdict, so a reproduction can show the request that actually failed.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import CustomFailure, Failure, FailureGroup

from rbee_props.fuzz._probe import Probe, current_probes, recording_probes

__all__ = ["Judgement", "as_failure", "judge"]

#: failures of the response being judged, by check name (per thread and context)
_FAILURES: contextvars.ContextVar[dict[str, list[BaseException]] | None] = contextvars.ContextVar(
    "rbee_fuzz_failures", default=None
)
#: the re-sends of the response being judged, by the check that sent them
_SENT_BY: contextvars.ContextVar[dict[str, list[Probe]] | None] = contextvars.ContextVar(
    "rbee_fuzz_sent_by", default=None
)


def _flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, FailureGroup):
        return [inner for failure in exc.exceptions for inner in _flatten(failure)]
    return [exc]


def as_failure(name: str, exc: BaseException, label: str) -> Failure:
    """A Schemathesis ``Failure`` for what check ``name`` raised (a bare assert becomes custom)."""
    if isinstance(exc, Failure):
        return exc
    return CustomFailure(
        operation=label,
        title=f"Custom check failed: `{name}`",
        message=str(exc),
        exception=exc if isinstance(exc, Exception) else AssertionError(str(exc)),
    )


def message_of(exc: BaseException) -> str:
    """One readable message: a failure's title and text, or what the assertion said."""
    if isinstance(exc, Failure):
        title = "" if exc.title.startswith("Custom check failed") else exc.title
        return f"{title}: {exc.message}".strip(" :") if title else exc.message.strip()
    return str(exc).strip()


@attrs.frozen
class Judgement:
    """What the checks said about one response.

    Attributes:
        failures: check name -> what it raised (empty: every check held).
        probes: check name -> the extra requests it sent while judging, in order.
    """

    failures: Mapping[str, tuple[BaseException, ...]]
    probes: Mapping[str, tuple[Probe, ...]] = attrs.field(factory=dict)

    @property
    def probe_count(self) -> int:
        """How many extra requests the checks sent."""
        return sum(len(sent) for sent in self.probes.values())

    def messages(self, check: str) -> tuple[str, ...]:
        """The messages of ``check``'s failures."""
        return tuple(message_of(exc) for exc in self.failures.get(check, ()))


@functools.lru_cache(maxsize=64)
def _named(checks: tuple[CheckFunction, ...]) -> tuple[CheckFunction, ...]:
    """Each check wrapped so that a failure is written down under the check's name."""

    def wrap(check: CheckFunction) -> CheckFunction:
        @functools.wraps(check)
        def named(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
            probes = current_probes()
            first = len(probes) if probes is not None else 0
            try:
                return check(ctx, response, case)
            except (AssertionError, FailureGroup) as exc:
                failures = _FAILURES.get()
                if failures is not None:
                    failures.setdefault(check.__name__, []).extend(_flatten(exc))
                raise
            finally:
                sent_by = _SENT_BY.get()
                if probes is not None and sent_by is not None and len(probes) > first:
                    sent_by.setdefault(check.__name__, []).extend(probes[first:])

        return named

    return tuple(wrap(check) for check in checks)


def judge(
    case: Case[Any],
    response: Response,
    checks: Sequence[CheckFunction],
    *,
    target: Mapping[str, Any],
    recorder: Any = None,
) -> Judgement:
    """Run ``checks`` on ``response`` to ``case`` and return what failed, by check name.

    Args:
        case: the case that was sent.
        response: its answer.
        checks: the checks to run (all of them run, also after a failure).
        target: ``base_url`` and ``headers`` the case was sent with (for checks that re-send).
        recorder: a Schemathesis ``ScenarioRecorder`` for checks that read the scenario.
    """
    failures: dict[str, list[BaseException]] = {}
    sent_by: dict[str, list[Probe]] = {}
    token, sent_token = _FAILURES.set(failures), _SENT_BY.set(sent_by)
    try:
        with recording_probes():
            case.validate_response(
                response,
                checks=list(_named(tuple(checks))),
                headers=dict(target.get("headers", {})),
                transport_kwargs=dict(target),
                recorder=recorder,
            )
    except FailureGroup:
        pass
    finally:
        _FAILURES.reset(token)
        _SENT_BY.reset(sent_token)
    return Judgement(
        failures={name: tuple(found) for name, found in failures.items()},
        probes={name: tuple(sent) for name, sent in sent_by.items()},
    )
