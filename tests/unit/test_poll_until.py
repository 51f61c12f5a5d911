"""``poll_until``'s deadline: fixed, or moved while a slow transition is still under way.

The clock is a fake one (``sleep`` advances it), so these tests say exactly when the wait ends.
"""

from __future__ import annotations

import pytest

from rbee_props.stack import WaitTimedOut, _base, poll_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(_base, "time", fake)
    return fake


def test_without_extension_the_wait_ends_at_the_timeout(clock):
    with pytest.raises(WaitTimedOut) as info:
        poll_until(lambda: False, 2.0, what="registries agree")
    assert info.value.elapsed == pytest.approx(2.0, abs=0.01)
    assert "registries agree did not hold within 2s" in info.value.message


def test_the_grace_starts_again_while_the_slow_transition_lasts(clock):
    loading_until = clock.now + 5.0  # a worker loads for 5 s, then registers 1 s later
    took = poll_until(
        lambda: clock.now >= loading_until + 1.0,
        2.0,
        extend_while=lambda: clock.now < loading_until,
        at_most=12.0,
    )
    assert 6.0 <= took < 6.3


def test_extensions_never_go_past_at_most(clock):
    with pytest.raises(WaitTimedOut) as info:
        poll_until(lambda: False, 2.0, extend_while=lambda: True, at_most=7.0)
    assert info.value.elapsed == pytest.approx(7.0, abs=0.01)
