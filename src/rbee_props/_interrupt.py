"""Ctrl-C and SIGTERM for the long-running commands: a flag that cannot be lost.

A KeyboardInterrupt raised straight from a signal handler can be lost: when the signal lands
while a garbage-collection callback runs (Hypothesis installs one), Python prints "Exception
ignored" and the program goes on as if nothing happened. So every signal also sets a flag that
the command polls at safe points (between examples, between rounds), and a lost interrupt is
acted on there.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["Interrupt"]


class Interrupt:
    """While active, SIGINT and SIGTERM set ``event``; a second signal always raises.

    ``raise_first``: the first signal raises KeyboardInterrupt at once too (for commands whose
    blocking calls must be cut short, like ``run``); without it the first signal only sets the
    flag, which suits a command that stops cleanly at its next poll (``fuzz``, ``campaign``).
    """

    def __init__(self, *, raise_first: bool = False) -> None:
        self.event = threading.Event()
        self.raise_first = raise_first

    def __call__(self, signum: int, frame: Any) -> None:
        again = self.event.is_set()
        self.event.set()
        if again or self.raise_first:
            raise KeyboardInterrupt

    def __enter__(self) -> Interrupt:
        self.previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
