"""The three verdicts of a linearizability check: valid, invalid, unknown (STYLE.md §8).

``bool()`` is explicit: a :class:`Linearizable` is true, a :class:`NotLinearizable` false, and
an :class:`Unknown` raises :class:`TypeError`, so ``assert checker.check(h)`` can never turn an
exhausted search budget into a pass. Branch on the class (``match``) or on ``verdict``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import ClassVar, NoReturn

import attrs

__all__ = ["Linearizable", "NotLinearizable", "Result", "Unknown"]


def _ids(values: Iterable[Hashable]) -> tuple[Hashable, ...]:
    """Op ids as a tuple, so a result is hashable and compares equal however it was built."""
    return tuple(values)


@attrs.frozen
class Linearizable:
    """The history is linearizable; ``linearization`` is one witness order of op ids.

    The order respects real time and every op's outcome. Indeterminate ops that need not have
    taken effect may be missing from it (they "never happened" in this witness).
    """

    linearization: tuple[Hashable, ...] = attrs.field(converter=_ids)
    verdict: ClassVar[str] = "valid"

    def __bool__(self) -> bool:
        return True


@attrs.frozen
class NotLinearizable:
    """No order of the operations respects both real time and the model: a finding.

    ``window`` is a small set of op ids, in invoke order, that cannot be ordered: the ops that
    had to come next after the longest linearizable ``prefix`` (the model rejects each of them)
    plus the prefix ops that overlap them in time. ``explanation`` says so in words. ``key`` is
    the partition the search failed in.
    """

    window: tuple[Hashable, ...] = attrs.field(converter=_ids)
    explanation: str
    prefix: tuple[Hashable, ...] = attrs.field(default=(), converter=_ids)
    key: Hashable = None
    verdict: ClassVar[str] = "invalid"

    def __bool__(self) -> bool:
        return False


@attrs.frozen
class Unknown:
    """The search gave up (its state budget ran out): neither a pass nor a failure.

    Report it as unknown, never as a pass (Jepsen's ``:unknown``); a larger ``max_states``, a
    finer partition key or a shorter burst may decide it. ``explored`` counts the states seen.
    """

    reason: str
    explored: int = 0
    verdict: ClassVar[str] = "unknown"

    def __bool__(self) -> NoReturn:
        msg = (
            f"an Unknown verdict is neither true nor false ({self.reason}); "
            "match on the result class or compare .verdict instead of using bool()"
        )
        raise TypeError(msg)


Result = Linearizable | NotLinearizable | Unknown
