"""Hypothesis' search, tuned for examples that cost seconds: no duplicating mutations.

After every valid example Hypothesis runs up to five more that copy a span of the example over
another span with the same label (``ConjectureRunner.generate_mutations_from``): a cheap way to
get duplicated values, worth it when an example costs microseconds. On a live stack an example
costs seconds, and for a state machine those copies are the same program with one step
repeated: measured on ``StackMachine`` (40 examples, 15 steps, seed 20261125), the 46 examples
run held about eight distinct programs, six near-copies each, and rules that a bug needs did
not come up at all. While a live machine runs, the mutator is switched off, so every example
is a fresh draw. Without the mutator (a future Hypothesis may rename it) nothing changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from hypothesis.internal.conjecture.engine import ConjectureRunner

__all__ = ["fresh_examples_only"]

_MUTATOR = "generate_mutations_from"


def _no_mutations(self: Any, data: Any) -> None:
    """Stand-in for the duplicating mutator: generate no near-copy of ``data``."""


@contextlib.contextmanager
def fresh_examples_only() -> Iterator[None]:
    """While active, Hypothesis generates no near-copies of the examples it ran."""
    original = ConjectureRunner.__dict__.get(_MUTATOR)
    if original is None:
        yield
        return
    setattr(ConjectureRunner, _MUTATOR, _no_mutations)
    try:
        yield
    finally:
        setattr(ConjectureRunner, _MUTATOR, original)
