"""A failure Hypothesis calls flaky but no invariant explains is an error, never "no finding"."""

from __future__ import annotations

import httpx
import pytest
from hypothesis.errors import FlakyFailure

from rbee_props.errors import ExitCode, InternalError, PortInUse, StackError
from rbee_props.hunt import raise_unrecorded


def flaky(cause: Exception) -> FlakyFailure:
    return FlakyFailure("Inconsistent results from replaying a test case!", [cause])


def test_a_transport_error_that_did_not_recur_is_a_stack_error():
    with pytest.raises(StackError) as info:
        raise_unrecorded(flaky(httpx.ConnectError("All connection attempts failed")))
    assert info.value.exit_code == ExitCode.STACK
    assert "ConnectError: All connection attempts failed" in info.value.message
    assert "seed" in info.value.message


def test_an_rbee_props_error_is_raised_as_it_is():
    original = PortInUse("port 7833 is in use; free it or choose ports = [a, b]")
    with pytest.raises(PortInUse) as info:
        raise_unrecorded(flaky(original))
    assert info.value is original


def test_any_other_error_is_an_internal_error_naming_its_type():
    with pytest.raises(InternalError) as info:
        raise_unrecorded(flaky(KeyError("worker_id")))
    assert info.value.exit_code == ExitCode.INTERNAL
    assert "KeyError" in info.value.message
