"""The queen's beehive registry: one SQLite table ``beehives`` that survives restarts (§6, D5).

Every operation opens its own connection in read-write mode without creating the file, so a
store that goes missing or corrupt turns into 503 ``STORAGE_UNAVAILABLE`` (C12) instead of a
silently emptied registry, and the queen recovers by itself once the file is back. Calls block,
so the queen runs them in a worker thread.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rbee_props.reference._http import ApiError

__all__ = ["COLUMNS", "BeehiveStore", "StorageError", "mock_ssh_check"]

log = logging.getLogger("rbee_props.reference.queen.beehives")

#: BeehiveNode fields, in the order of the table's columns.
COLUMNS = (
    "node_name",
    "ssh_host",
    "ssh_port",
    "ssh_user",
    "ssh_key_path",
    "git_repo_url",
    "git_branch",
    "install_path",
    "last_connected_unix",
    "status",
    "backends",
    "devices",
    "hive_port",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS beehives (
    node_name TEXT PRIMARY KEY,
    ssh_host TEXT NOT NULL,
    ssh_port INTEGER NOT NULL DEFAULT 22,
    ssh_user TEXT NOT NULL,
    ssh_key_path TEXT,
    git_repo_url TEXT NOT NULL,
    git_branch TEXT NOT NULL,
    install_path TEXT NOT NULL,
    last_connected_unix INTEGER,
    status TEXT NOT NULL DEFAULT 'unknown',
    backends TEXT,
    devices TEXT,
    hive_port INTEGER NOT NULL DEFAULT 9200
)
"""


class StorageError(Exception):
    """The database cannot be opened, read or written."""


def mock_ssh_check(node: dict[str, Any]) -> bool:
    """The reference SSH check (``MOCK_SSH``, D15): hosts containing ``unreachable`` fail."""
    return "unreachable" not in node["ssh_host"]


#: The pluggable SSH check: the validated AddNode body in, reachable or not out.
SshCheck = Callable[[dict[str, Any]], bool]


class BeehiveStore:
    """The ``beehives`` table of one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        self._uri = self.path.as_uri() + "?mode=rw"

    def create(self) -> None:
        """Create the file and table at start-up and prove the file is writable.

        Raises:
            StorageError: the path cannot be created, opened or written.
        """
        try:
            conn = sqlite3.connect(self.path, timeout=2.0)
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from None
        try:
            conn.execute(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only file
            conn.execute("UPDATE beehives SET status = status WHERE 0")
            conn.commit()
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from None
        finally:
            conn.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self._uri, uri=True, timeout=2.0)
        except sqlite3.Error as exc:
            log.warning("beehive store unavailable: %s", exc)
            raise ApiError(503, "STORAGE_UNAVAILABLE", "beehive store is unavailable") from None
        try:
            conn.row_factory = sqlite3.Row
            yield conn
            conn.commit()
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            log.warning("beehive store unavailable: %s", exc)
            raise ApiError(503, "STORAGE_UNAVAILABLE", "beehive store is unavailable") from None
        finally:
            conn.close()

    def add(self, node: dict[str, Any]) -> bool:
        """Insert a node as reachable, now; False when the name is already present (kept)."""
        row = {**node, "status": "reachable", "last_connected_unix": int(time.time())}
        marks = ", ".join("?" for _ in COLUMNS)
        try:
            with self._connect() as conn:
                conn.execute(
                    f"INSERT INTO beehives ({', '.join(COLUMNS)}) VALUES ({marks})",
                    [row.get(col) for col in COLUMNS],
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def list(self) -> list[dict[str, Any]]:
        """Every node, sorted by name."""
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM beehives ORDER BY node_name"
            ).fetchall()
        return [dict(row) for row in rows]

    def get(self, node_name: str) -> dict[str, Any] | None:
        """One node, or None."""
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM beehives WHERE node_name = ?", (node_name,)
            ).fetchone()
        return dict(row) if row is not None else None

    def remove(self, node_name: str) -> bool:
        """Delete a node; False when it was not there."""
        with self._connect() as conn:
            cursor = conn.execute("DELETE FROM beehives WHERE node_name = ?", (node_name,))
            return cursor.rowcount > 0
