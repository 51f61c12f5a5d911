"""The campaign's pieces that need no stack: suites, rotation, claims, the progress line."""

from __future__ import annotations

import multiprocessing

import pytest

from rbee_props.campaign import DEFAULT_SUITES, CampaignPlan, CampaignState, parse_suites
from rbee_props.campaign.claims import Claims, property_key
from rbee_props.errors import UsageError
from rbee_props.findings import Violation


def test_default_suites_are_every_machine_and_fuzz_service_taking_turns():
    assert DEFAULT_SUITES == (
        "stack", "fuzz:queen", "registry", "fuzz:hive", "concurrent", "fuzz:worker",
    )  # fmt: skip
    assert parse_suites(None) == parse_suites("all") == DEFAULT_SUITES
    assert parse_suites("registry, fuzz:queen") == ("registry", "fuzz:queen")


def test_an_unknown_suite_is_a_usage_error_with_a_suggestion():
    with pytest.raises(UsageError, match=r"unknown suite 'registy' \(did you mean 'registry'\?\)"):
        parse_suites("registy")


def test_workers_start_on_different_suites_and_each_goes_round_all_of_them():
    plan = CampaignPlan(seconds=60, out="x", seed=1, workers=3)
    orders = [plan.suites_for(i) for i in range(3)]
    assert [o[0] for o in orders] == list(DEFAULT_SUITES[:3])
    assert all(sorted(o) == sorted(DEFAULT_SUITES) for o in orders)
    assert plan.slice_of("fuzz:hive") == plan.fuzz_slice != plan.slice_of("stack")


def _claim(args):
    root, key = args
    return Claims(root).claim(key)


def test_a_property_is_claimed_by_exactly_one_of_several_processes(tmp_path):
    key = property_key(Violation("S02", explains="", expected="409", observed="200"))
    assert key == "property-S02"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        won = pool.map(_claim, [(tmp_path, key)] * 8)
    assert won.count(True) == 1
    claims = Claims(tmp_path)
    assert claims.held(key) and claims.keys() == {key}
    assert not claims.claim(key)  # a later campaign on the same directory too
    claims.release(key)
    assert claims.claim(key)


def test_the_progress_line_counts_machine_examples_and_fuzz_requests_apart():
    state = CampaignState(CampaignPlan(seconds=100, out="x", seed=1))
    state.suites["registry"] = type(state.totals())(examples=4, steps=40)
    state.suites["fuzz:queen"] = type(state.totals())(examples=300, requests=310)
    line = state.line()
    assert "4 examples" in line and "40 steps" in line and "310 fuzz requests" in line
    assert "findings 0 new + 0 earlier" in line
