"""Which Hypothesis settings the pytest plugin gives a machine."""

from __future__ import annotations

from hypothesis import settings

from rbee_props.pytest_plugin import PROFILES, machine_profile


def test_machines_run_the_ci_profile_when_none_is_chosen():
    chosen = machine_profile(None)
    assert chosen.max_examples == PROFILES["ci"]["max_examples"]
    assert chosen.stateful_step_count == PROFILES["ci"]["stateful_step_count"]
    assert chosen.derandomize


def test_a_chosen_profile_is_the_loaded_one():
    assert machine_profile("dev") is settings.default
