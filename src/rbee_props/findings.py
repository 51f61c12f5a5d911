"""A finding: one violated invariant or failed check, with a signature stable across runs.

:class:`Violation` is an ``AssertionError`` (pytest and Hypothesis see a failing example), but
equality and hash use the signature alone, so a bug stays one bug while it shrinks, campaigns
de-duplicate by it, and a config may list ``known`` deviations of a real build.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Violation"]


class Violation(AssertionError):
    """One violated property: which, why it matters, what was expected and what was seen."""

    def __init__(
        self,
        invariant: str,
        *,
        explains: str,
        expected: str,
        observed: str,
        op_kinds: Sequence[str] = (),
        step: int | None = None,
        waited: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.invariant = invariant
        self.explains = explains
        self.expected = expected
        self.observed = observed
        self.op_kinds = tuple(op_kinds)
        self.step = step
        self.waited = waited
        self.details = details or {}
        super().__init__(self.summary)

    @property
    def summary(self) -> str:
        waited = f" (still after waiting {self.waited:.2f}s)" if self.waited is not None else ""
        return f"{self.invariant}: expected {self.expected}; observed {self.observed}{waited}"

    @property
    def signature(self) -> str:
        """``<invariant>:<operation kinds of the minimal program>``, stable across runs."""
        return f"{self.invariant}:{','.join(self.op_kinds)}"

    def with_program(self, op_kinds: Sequence[str], step: int | None = None) -> Violation:
        """A copy carrying the kinds of the program's operations (for the signature)."""
        return Violation(
            self.invariant,
            explains=self.explains,
            expected=self.expected,
            observed=self.observed,
            op_kinds=op_kinds,
            step=self.step if step is None else step,
            waited=self.waited,
            details=self.details,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Violation) and other.signature == self.signature

    def __hash__(self) -> int:
        return hash(self.signature)

    def __reduce__(self) -> Any:
        return (
            _rebuild,
            (self.invariant, self.explains, self.expected, self.observed, self.op_kinds,
             self.step, self.waited, self.details),
        )  # fmt: skip


def _rebuild(*args: Any) -> Violation:
    invariant, explains, expected, observed, op_kinds, step, waited, details = args
    return Violation(
        invariant,
        explains=explains,
        expected=expected,
        observed=observed,
        op_kinds=op_kinds,
        step=step,
        waited=waited,
        details=details,
    )
