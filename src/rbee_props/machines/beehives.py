"""Beehive rules: add, duplicate add, remove (S14); the registry persists across queen restarts."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule

from rbee_props.machines._core import StackMachineBase, recorded
from rbee_props.model import AddBeehive, RemoveBeehive

__all__ = ["BeehiveRules"]

#: extra node names the machine may add and remove (the stack's own hives are left alone)
NODES = ("node-a", "node-b")


class BeehiveRules(StackMachineBase):
    """The queen's SQLite beehive registry."""

    @rule(name=st.sampled_from(NODES))
    @recorded
    def add_beehive(self, name: str) -> None:
        """S14: a new node is added; the same name again is 409 and the entry is kept."""
        if not self.model.queen_reachable:
            return
        op = self.queen.add_beehive(
            name, ssh_host="127.0.0.1", hive_port=9, timeout=self.patience("queen", 3.0)
        )
        self.call(AddBeehive(name, "127.0.0.1", 9), op)

    @rule(name=st.sampled_from(NODES))
    @recorded
    def remove_beehive(self, name: str) -> None:
        """S14: a present node is removed; an unknown one is 404."""
        if not self.model.queen_reachable:
            return
        op = self.queen.remove_beehive(name, timeout=3.0)
        self.call(RemoveBeehive(name), op)
