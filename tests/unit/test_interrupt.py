"""The Ctrl-C flag of the long-running commands (``rbee_props._interrupt``).

A signal sent to this process runs its Python handler right after ``os.kill`` returns.
"""

from __future__ import annotations

import os
import signal

import pytest

from rbee_props._interrupt import Interrupt


def test_run_style_raises_at_once_and_remembers_the_signal():
    with Interrupt(raise_first=True) as interrupt:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.event.is_set()


def test_campaign_style_only_sets_the_flag_then_a_second_signal_raises():
    with Interrupt() as interrupt:
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.event.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)


def test_the_previous_handlers_come_back():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with Interrupt(raise_first=True):
        assert signal.getsignal(signal.SIGINT) is not before[0]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
