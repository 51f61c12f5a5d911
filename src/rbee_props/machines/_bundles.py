"""Bundles and strategies shared by the rule mixins.

Hives and components are drawn as small integers and resolved against the running stack
(``StackMachineBase.target``: index modulo the number of hives, hives with the most live workers
first), so the same machine runs on a stack of any size and shrinks towards the busiest hive.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import Bundle

__all__ = ["component_index", "hive_index", "phantoms", "spawned"]

#: ids of workers registered by hand at the queen (answered by phantom workers)
phantoms: Bundle[str] = Bundle("phantoms")
#: ids of workers spawned by a hive (real processes)
spawned: Bundle[str] = Bundle("spawned")

hive_index = st.integers(min_value=0, max_value=7)
component_index = st.integers(min_value=0, max_value=8)
