"""The rbee-props pytest plugin: options and fixtures for testing a live rbee stack.

Registered through the ``pytest11`` entry point, so ``pip install rbee-props`` is enough.
"""

from __future__ import annotations
