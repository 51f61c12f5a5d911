"""The one place (with ``cli.py``) that writes to the terminal, through rich.

Library code never prints; it returns values or raises, and the CLI shows them here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "error_line", "print_json", "print_table"]

console = Console(highlight=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def error_line(message: str) -> None:
    """One ``error: ...`` line on stderr, never wrapped, no markup interpretation."""
    _err.print(f"error: {message}", markup=False, soft_wrap=True)


def info(message: str) -> None:
    """A line of progress on stdout."""
    console.print(message, markup=False, soft_wrap=True)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def print_json(data: Mapping[str, Any] | Sequence[Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()
