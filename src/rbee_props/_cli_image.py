"""The ``rbee-props image`` commands (registered on the main group): the compose backend's image.

``image build`` makes the stack image the reference compose file runs (``compose/``): a base
image from Debian's packages with debootstrap where no registry can be reached (or
``--base-image NAME``), then rbee-props installed from wheels built here. Cached by the hash of
its inputs: with nothing changed it only looks the image up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from rbee_props import _output as out

__all__ = ["register"]


def register(main: click.Group, handle_errors: Callable[[Any], Any]) -> None:
    """Add the ``image`` group to ``main`` (the CLI's error handling is passed in)."""

    @main.group()
    def image() -> None:
        """The stack image of the compose backend (no registry needed)."""

    @image.command()
    @click.option("--base-image", help="Build on this image (with python3) instead of a "
                  "debootstrapped Debian, e.g. python:3.11-slim if it can be pulled.")  # fmt: skip
    @click.option("--force", is_flag=True, help="Rebuild the stack image even if it is current.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @handle_errors
    def build(base_image: str | None, force: bool, as_json: bool) -> None:
        """Build (or find) the stack image for the current sources; print its tag."""
        from rbee_props.stack.image import ensure_stack_image

        result = ensure_stack_image(base_image=base_image, force=force, on_progress=out.info)
        if as_json:
            out.print_json(
                {"tag": result.tag, "base": result.base, "built": result.built,
                 "seconds": round(result.seconds, 2), "steps": result.steps}
            )  # fmt: skip
            return
        for step, seconds in result.steps.items():
            out.info(f"  {step}: {seconds:.1f}s")
        verb = "built" if result.built else "up to date, nothing built"
        out.info(f"{result.tag} ({verb}, {result.seconds:.1f}s) on {result.base}")
