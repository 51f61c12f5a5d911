"""The search's event list: calls and returns in time order, with O(1) removal and undo.

Dancing links (Knuth): removing a node keeps its own pointers, so nodes removed in LIFO order
can be put back exactly where they were, which is what backtracking does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rbee_props.checker._entry import Entry

__all__ = ["Events"]


class Events:
    """The time-ordered event list with O(1) removal and LIFO re-insertion (dancing links).

    Node 0 is the head; the call of op i is node ``1 + i``, its return node ``1 + n + i``
    (determinate ops only); -1 ends the list.
    """

    def __init__(self, ops: Sequence[Entry[Any]]) -> None:
        n = len(ops)
        # calls before returns at equal times: ops whose intervals touch count as concurrent
        events = [(e.invoke, 0, 1 + i) for i, e in enumerate(ops)]
        events += [(e.complete, 1, 1 + n + i) for i, e in enumerate(ops) if not e.indeterminate]
        events.sort()
        self.n = n
        self.nxt = [-1] * (1 + 2 * n)
        self.prv = [-1] * (1 + 2 * n)
        last = 0
        for *_, node in events:
            self.nxt[last], self.prv[node] = node, last
            last = node
        self.ret = [-1 if e.indeterminate else 1 + n + i for i, e in enumerate(ops)]

    def _remove(self, node: int) -> None:
        p, q = self.prv[node], self.nxt[node]
        self.nxt[p] = q
        if q != -1:
            self.prv[q] = p

    def _restore(self, node: int) -> None:
        self.nxt[self.prv[node]] = node
        q = self.nxt[node]
        if q != -1:
            self.prv[q] = node

    def lift(self, i: int) -> None:
        self._remove(1 + i)
        if self.ret[i] != -1:
            self._remove(self.ret[i])

    def unlift(self, i: int) -> None:
        if self.ret[i] != -1:
            self._restore(self.ret[i])
        self._restore(1 + i)

    def calls_before(self, node: int) -> tuple[int, ...]:
        """The ops whose call lies between the head and ``node``."""
        out, cur = [], self.nxt[0]
        while cur != node:
            if cur <= self.n:
                out.append(cur - 1)
            cur = self.nxt[cur]
        return tuple(out)
