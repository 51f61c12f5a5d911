"""rbee's own Schemathesis checks: the F properties of contract §10 that the schema cannot say.

Each check is registered with ``schemathesis.check`` under its name (and only looks at documents
loaded by :func:`~rbee_props.fuzz.specs.load_spec`) and fails with an
``AssertionError`` whose first line names the property. They read only the case, its response
and the document (plus, for the auth probes, two extra requests without valid credentials, and,
for the hive list, the queen's list): nothing here changes the stack.

========================================  ====  ==========================================
check                                     id    what
========================================  ====  ==========================================
``auth_enforced``                         F01,  protected routes answer missing credentials
                                          F02   with 401 MISSING_API_KEY, a wrong token with
                                                401 INVALID_API_KEY
``error_envelope``                        F10   every 4xx/5xx is ``{"error":{code,message}}``
``no_secret_leak``                        F11   no token (prefix >= 8) in bodies or headers;
                                                rejected values not echoed
``no_server_error_for_client_input``      F09   invalid input never gets a 5xx; 500 never
``invalid_identifiers_rejected``          F04,  a string field breaking its pattern, enum or
                                          F05   length is refused with 400
``ready_workers_reach_queen``             S21   idle hive workers are at the queen within G
========================================  ====  ==========================================
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response

from rbee_props.fuzz._inspect import (
    Credentials,
    client_mistake,
    configured_token,
    credentials_of,
    is_protected,
    sent_authorization,
    string_field_violations,
)
from rbee_props.fuzz._probe import error_code, get_json, resend, worker_ids
from rbee_props.fuzz.settings import GRACE_KEY, PEERS_KEY, TARGET_KEY
from rbee_props.redact import Redactor

__all__ = [
    "RBEE_CHECKS",
    "auth_enforced",
    "error_envelope",
    "invalid_identifiers_rejected",
    "no_secret_leak",
    "no_server_error_for_client_input",
    "ready_workers_reach_queen",
]

CODE = re.compile(r"[A-Z][A-Z0-9_]*")
Check = Callable[[CheckContext, Response, Case[Any]], bool | None]
#: a rejected value this long must not come back in the error body (contract §8, F11)
ECHO_MIN = 8


def rbee_check(func: Check) -> Check:
    """Register ``func`` with Schemathesis, active only on documents loaded by ``load_spec``.

    Schemathesis runs every registered check in every run of the process by default; applied to
    some other API, an rbee check would report rbee's contract as that API's bug.
    """

    @functools.wraps(func)
    def check(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
        if TARGET_KEY not in case.operation.schema.raw_schema:
            return None
        return func(ctx, response, case)

    return schemathesis.check(check)


def _expect_401(what: str, code: str, status: int, body: bytes, label: str) -> None:
    if status != 401 or error_code(body) != code:
        seen = error_code(body) or body[:80].decode("utf-8", "replace")
        msg = (
            f"F01/F02 auth not enforced: {label} {what} answered {status} {seen!r}; "
            f"expected 401 {code} (contract §4)"
        )
        raise AssertionError(msg)


@rbee_check
def auth_enforced(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """F01, F02: a protected route refuses a request without valid credentials, exactly.

    The case itself must get the 401 its ``Authorization`` header calls for (D7 parsing); and
    the same request is re-sent without the header (401 ``MISSING_API_KEY``) and with a wrong
    token (401 ``INVALID_API_KEY``). Neither probe carries valid credentials, so on a correct
    stack they change nothing.
    """
    if not is_protected(case):
        return None
    token = configured_token(case)
    expected = credentials_of(sent_authorization(response), token)
    label = case.operation.label
    if expected != Credentials.VALID:
        _expect_401("without valid credentials", expected, response.status_code,
                    response.content, label)  # fmt: skip
        return None
    size = len(token or "x")
    wrong = "Bearer " + ("x" * size if token != "x" * size else "y" * size)
    for authorization, code in ((None, Credentials.MISSING), (wrong, Credentials.INVALID)):
        status, body = resend(response, authorization)
        what = "without Authorization" if authorization is None else "with a wrong token"
        _expect_401(what, code, status, body, label)
    return None


@rbee_check
def error_envelope(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """F10: every 4xx/5xx is JSON ``{"error":{"code":UPPER_SNAKE_CASE,"message":str}}`` (D12)."""
    if response.status_code < 400:
        return None
    ctype = response.headers.get("content-type", [""])[0].split(";")[0].strip().lower()
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        error = None
    code = error.get("code") if isinstance(error, dict) else None
    ok = (
        ctype == "application/json"
        and isinstance(code, str)
        and CODE.fullmatch(code) is not None
        and isinstance(error.get("message"), str)
    )
    if not ok:
        seen = response.content[:120].decode("utf-8", "replace")
        msg = (
            f"F10 error without the envelope: {case.operation.label} answered "
            f"{response.status_code} ({ctype or 'no content type'}) {seen!r}; expected "
            '{"error":{"code":"UPPER_SNAKE_CASE","message":"..."}} as application/json (D12)'
        )
        raise AssertionError(msg)
    return None


@rbee_check
def no_secret_leak(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """F11: no token or token prefix of >= 8 characters in any body or header (D8), and a 4xx
    does not echo the string values it rejected (§8)."""
    token = configured_token(case)
    if token:
        redactor = Redactor([token])
        places = [("body", response.content.decode("utf-8", "replace"))]
        places += [(f"header {k}", ", ".join(v)) for k, v in response.headers.items()]
        for where, text in places:
            if redactor.contains_secret(text):
                msg = (
                    f"F11 token leak: {case.operation.label} answered {response.status_code} "
                    f"with the token (or a prefix of >= 8 characters) in its {where} (D8)"
                )
                raise AssertionError(msg)
    if 400 <= response.status_code < 500:
        text = response.content.decode("utf-8", "replace")
        for _, name, value in string_field_violations(case, response):
            if len(value) >= ECHO_MIN and value in text:
                msg = (
                    f"F11 rejected value echoed: {case.operation.label} answered "
                    f"{response.status_code} quoting the rejected {name} (§8: not echoed)"
                )
                raise AssertionError(msg)
    return None


@rbee_check
def no_server_error_for_client_input(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    """F09: a client mistake never gets a 5xx, and 500 INTERNAL_ERROR never happens (D12).

    A request that is invalid as sent (no or non-JSON body, a body or query parameter breaking
    the document) must be refused with a 4xx; for valid input only capacity and upstream
    answers (502, 503, 504) may be 5xx.
    """
    status = response.status_code
    if status < 500:
        return None
    label = case.operation.label
    if status == 500:
        msg = f"F09 internal error: {label} answered 500 (never for client input, §3)"
        raise AssertionError(msg)
    mistake = client_mistake(case, response)
    if mistake is not None:
        msg = f"F09 server error for a client mistake: {label} answered {status} to {mistake}"
        raise AssertionError(msg)
    return None


@rbee_check
def invalid_identifiers_rejected(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    """F04, F05 (F06, F07): a string field breaking its §8 rule is refused with 400, no change.

    Identifiers with ``_``, shell metacharacters or over 64 characters, bad model refs, paths,
    URLs and backends all fall under it; the field's pattern, enum or length in the document is
    the rule. Requests the framework refuses first (401, 413, 415) are left to other checks.
    """
    if response.status_code in (401, 413, 415):
        return None
    invalid = string_field_violations(case, response)
    if invalid and response.status_code != 400:
        location, name, value = invalid[0]
        shown = value if len(value) <= 40 else value[:37] + "..."
        msg = (
            f"F04/F05 invalid {name} accepted: {case.operation.label} answered "
            f"{response.status_code} to {location} {name}={shown!r}; expected 400 "
            "VALIDATION_ERROR (contract §8)"
        )
        raise AssertionError(msg)
    return None


@rbee_check
def ready_workers_reach_queen(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    """S21 (D3, D11) from the fuzz side: every worker a hive lists as idle or busy is listed by
    the queen within the grace window G.

    Runs on the hive's ``GET /v1/workers/list`` when the document names the queen as a peer;
    a worker that leaves the hive meanwhile is no longer owed. This is how the spawn -> ready ->
    list links find a hive whose registration at the queen fails (``no-auth-internal``).
    """
    raw = case.operation.schema.raw_schema
    queen = raw.get(PEERS_KEY, {}).get("queen")
    if not queen or case.operation.definition.raw.get("operationId") != "listHiveWorkers":
        return None
    if response.status_code != 200:
        return None
    try:
        listed = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    owed = worker_ids(listed, "id", states=("idle", "busy"))
    token = configured_token(case)
    deadline = time.monotonic() + float(raw.get(GRACE_KEY, 5.0))
    hive_url = str(response.request.url)
    while owed:
        at_queen = worker_ids(get_json(f"{queen.rstrip('/')}/v2/workers/list", token), "worker_id")
        owed -= at_queen
        if not owed:
            break
        if time.monotonic() >= deadline:
            msg = (
                f"S21 ready worker missing at the queen: the hive lists {sorted(owed)} as ready "
                f"but the queen does not list them after {raw.get(GRACE_KEY, 5.0):g}s (D3, D11)"
            )
            raise AssertionError(msg)
        time.sleep(0.1)
        owed &= worker_ids(get_json(hive_url, token), "id", states=("idle", "busy"))
    return None


#: every rbee check, in the order they run
RBEE_CHECKS = (
    auth_enforced,
    error_envelope,
    no_secret_leak,
    no_server_error_for_client_input,
    invalid_identifiers_rejected,
    ready_workers_reach_queen,
)
