"""The shipped OpenAPI documents: they load, describe every reference route, and mean §8.

No stack: the documents are compared with the reference apps' route tables and, field by field,
with the reference validators (a value the reference accepts must be valid in the document, or
``negative_data_rejection`` would report the reference; where the contract and the reference
agree, both directions hold).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from rbee_props.errors import UsageError
from rbee_props.fuzz._inspect import Credentials, credentials_of
from rbee_props.fuzz.specs import SERVICES, load_spec, read_spec, spec_path
from rbee_props.reference import _program, hive, queen, worker
from rbee_props.reference._beehives import BeehiveStore
from rbee_props.reference._hive_workers import HiveConfig
from rbee_props.reference._http import ApiError
from rbee_props.reference.validation import Validator

METHODS = ("get", "put", "post", "delete", "patch")
TIMINGS = {name: 1.0 for name in _program.TIMINGS} | {"health_failures": 2}


def _startup(name: str) -> _program.Startup:
    return _program.Startup(name, token="t" * 16, bugs=frozenset(), timings=dict(TIMINGS))


def _reference_app(service: str, tmp_path: Path) -> object:
    if service == "queen":
        return queen.make_app(queen.Queen(_startup("queen"), BeehiveStore(tmp_path / "q.db")))
    if service == "hive":
        cfg = HiveConfig(
            name="hive1", queen_url="http://127.0.0.1:1", callback_url="http://127.0.0.1:2/r",
            token="t" * 16, token_file=None, data_dir=tmp_path, ports=(8081, 8090),
            default_slots=1, timings=dict(TIMINGS), bugs=frozenset(),
        )  # fmt: skip
        return hive.build_hive_app(cfg)
    args = argparse.Namespace(
        worker_id="w1", model_ref="hf:a", backend="cpu", device=0, slots=1,
        host="127.0.0.1", port=8081, callback_url="http://127.0.0.1:2/r",
    )  # fmt: skip
    return worker.make_app(worker.Worker(args, _startup("worker")))


def _served(app: object) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(every (METHOD, path) the app routes, the public ones) through its middleware chain."""
    public: set[tuple[str, str]] = set()
    while not isinstance(app, Starlette):
        public |= set(getattr(app, "public", ()))
        app = app.app  # type: ignore[attr-defined]
    routes = {(m, r.path) for r in app.routes for m in r.methods or () if m != "HEAD"}
    return routes, public


def _documented(service: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    raw = read_spec(spec_path(service))
    ops = {
        (m.upper(), p): op for p, item in raw["paths"].items() for m, op in item.items()
        if m in METHODS
    }  # fmt: skip
    public = {key for key, op in ops.items() if op.get("security") == []}
    return set(ops), public


@pytest.mark.parametrize("service", SERVICES)
def test_document_describes_exactly_the_reference_routes(service, tmp_path):
    served, served_public = _served(_reference_app(service, tmp_path))
    documented, documented_public = _documented(service)
    assert documented == served
    assert documented_public == served_public


def _response(raw: dict, response: dict) -> dict:
    ref = response.get("$ref", "")
    return raw["components"]["responses"][ref.rsplit("/", 1)[-1]] if ref else response


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_its_errors_with_the_envelope(service):
    raw = read_spec(spec_path(service))
    operation_ids = {
        op["operationId"]
        for item in raw["paths"].values()
        for m, op in item.items()
        if m in METHODS
    }
    for path, item in raw["paths"].items():
        for method, op in ((m, op) for m, op in item.items() if m in METHODS):
            label = f"{method.upper()} {path}"
            codes = set(op["responses"])
            if op.get("security") != []:
                assert "401" in codes, label
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= codes, label
            for code, response in op["responses"].items():
                response = _response(raw, response)
                if int(code) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert "ErrorEnvelope" in json.dumps(schema), f"{label} {code}"
                for link in response.get("links", {}).values():
                    assert link["operationId"] in operation_ids, f"{label} {code}"


@pytest.mark.parametrize("service", SERVICES)
def test_shipped_documents_load_as_schemathesis_schemas(service):
    schema = load_spec(service, "http://127.0.0.1:9", token="secret-token")
    assert len(list(schema.get_all_operations())) == len(_documented(service)[0])


def test_load_spec_refuses_an_unknown_service_in_one_line():
    with pytest.raises(UsageError, match=r"unknown rbee service 'quen' \(did you mean 'queen'\?\)"):
        load_spec("quen", "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "cannot read OpenAPI document"),
        ("openapi: [unclosed", "is not valid YAML at line"),
        ("swagger: '2.0'\npaths: {}\n", "is not an OpenAPI 3 document"),
        ("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths: {}\n", "has no paths"),
    ],
)
def test_load_spec_refuses_a_missing_or_invalid_document_in_one_line(tmp_path, text, reason):
    path = tmp_path / "spec.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UsageError, match=re.escape(reason)) as info:
        load_spec("queen", "http://127.0.0.1:9", path=path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Credentials.MISSING),
        ("", Credentials.MISSING),
        ("bearer tok", Credentials.MISSING),
        ("BEARER tok", Credentials.MISSING),
        ("Basic dG9rOg==", Credentials.MISSING),
        ("Bearer ", Credentials.MISSING),
        ("Bearer t\u00f6k", Credentials.MISSING),
        ("Bearer " + "x" * 9000, Credentials.MISSING),
        ("Bearer wrong", Credentials.INVALID),
        ("Bearer tok", Credentials.VALID),
        ("  Bearer   tok  ", Credentials.VALID),
    ],
)
def test_credentials_follow_the_shared_bearer_parser(header, expected):
    assert credentials_of(header, "tok") == expected


# -- the document's field rules against the reference validators (contract §8) ------------------

ALPHABET = st.sampled_from([*"aZ09-_.:/[]@ $;'`|&\\\t\n\u00e9\u2603", "..", "hf:", "http://"])
TEXT = st.lists(ALPHABET, max_size=12).map("".join)


@functools.cache
def _document_rule(service: str, name: str) -> jsonschema_rs.Validator:
    schemas = read_spec(spec_path(service))["components"]["schemas"]
    return jsonschema_rs.Draft202012Validator(schemas[name])


def _accepts(check, value: str) -> bool:
    try:
        check("field", value)
    except ApiError:
        return False
    return True


CHECK = Validator(frozenset())
#: (document, schema name, reference validator, the reference may be stricter than the document)
FIELDS = [
    ("queen", "WorkerId", CHECK.worker_id, False),
    ("queen", "DnsLabel", CHECK.node_name, False),
    ("queen", "ModelRef", CHECK.model_ref, False),
    ("queen", "SafeWord", CHECK.safe_word, False),
    ("queen", "AbsPath", CHECK.abs_path, False),
    ("queen", "WorkerUrl", CHECK.url, False),
    ("queen", "RepoUrl", CHECK.repo_url, True),  # the reference caps it at 2048 characters
    ("hive", "ModelPath", CHECK.rel_path, False),
]


@pytest.mark.parametrize(("service", "name", "check", "stricter"), FIELDS)
@settings(max_examples=300, deadline=None, database=None)
@given(value=st.one_of(TEXT, st.text(max_size=20)))
@example(value="http://[::1]:8081/")
@example(value="hf:org/model.gguf")
@example(value="/opt/rbee/..x")
@example(value="a" * 65)
def test_document_field_rule_agrees_with_the_reference(service, name, check, stricter, value):
    in_document = _document_rule(service, name).is_valid(value)
    in_reference = _accepts(check, value)
    if in_reference:
        assert in_document, f"{name}: the reference accepts {value!r}, the document refuses it"
    if in_document and not stricter:
        assert in_reference, f"{name}: the document allows {value!r}, the reference refuses it"
