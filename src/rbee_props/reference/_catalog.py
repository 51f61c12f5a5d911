"""The hive's model catalog (SQLite, survives restarts) and its fake, quick model downloads.

The reference provider knows every ``provider:ref`` unless the part after ``:`` starts with
``missing-`` (contract §5.2). A download is a few progress steps; concurrent requests for one
model share one download id (S11). A store that cannot be opened or written answers 503
``STORAGE_UNAVAILABLE`` (C12) and the next request tries again, so a repaired store recovers.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rbee_props.reference._http import ApiError, sse

__all__ = ["Catalog", "Download", "Downloads", "check_model_known"]

log = logging.getLogger("rbee_props.reference.hive.catalog")

FAKE_MODEL_BYTES = 4 * 1024 * 1024
DOWNLOAD_STEPS = 5
STEP_SECONDS = 0.1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    reference TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    local_path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    downloaded_at INTEGER NOT NULL
)
"""


def check_model_known(model_ref: str) -> None:
    """404 ``MODEL_NOT_FOUND`` for refs the fake provider does not know (``missing-...``)."""
    if model_ref.partition(":")[2].startswith("missing-"):
        raise ApiError(404, "MODEL_NOT_FOUND", "model not found at its provider")


def _unavailable() -> ApiError:
    return ApiError(503, "STORAGE_UNAVAILABLE", "model catalog unavailable")


class Catalog:
    """``models(reference, provider, local_path, size_bytes, downloaded_at)`` in ``models.db``.

    Each call opens the file anew, so a store repaired or recreated while the hive runs is used
    at once (C12).
    """

    def __init__(self, data_dir: Path) -> None:
        self.db_path = data_dir / "models.db"
        self.models_dir = data_dir / "models"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=2.0)
        conn.execute(_SCHEMA)
        return conn

    def local_path(self, model_ref: str) -> Path:
        provider, _, ref = model_ref.partition(":")
        return self.models_dir / provider / (ref.replace("/", "__") + ".gguf")

    def lookup(self, model_ref: str) -> str | None:
        """The local path of a cataloged model, else None; 503 if the store fails."""
        try:
            conn = self._connect()
            try:
                row = conn.execute(
                    "SELECT local_path FROM models WHERE reference = ?", (model_ref,)
                ).fetchone()
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            log.warning("catalog lookup failed: %s", exc)
            raise _unavailable() from None
        return None if row is None else str(row[0])

    def add(self, model_ref: str) -> str:
        """Store the (fake) model file and its catalog row if absent; return its local path."""
        path = self.local_path(model_ref)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_bytes(b"GGUF fake model of the rbee reference stack\n")
            conn = self._connect()
            try:
                with conn:
                    conn.execute(
                        "INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?)",
                        (
                            model_ref,
                            model_ref.partition(":")[0],
                            str(path),
                            FAKE_MODEL_BYTES,
                            int(time.time()),
                        ),
                    )
                row = conn.execute(
                    "SELECT local_path FROM models WHERE reference = ?", (model_ref,)
                ).fetchone()
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            log.warning("catalog write failed: %s", exc)
            raise _unavailable() from None
        return str(row[0]) if row else str(path)


class Download:
    """One running download: its events so far, for any number of progress streams."""

    def __init__(self, download_id: str, model_ref: str) -> None:
        self.id = download_id
        self.model_ref = model_ref
        self.events: list[dict[str, Any]] = []
        self.cond = asyncio.Condition()

    async def emit(self, event: dict[str, Any]) -> None:
        async with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    async def stream(self) -> AsyncIterator[str]:
        """SSE: every event from the first, then ``[DONE]`` after the terminal one."""
        seen = 0
        while True:
            async with self.cond:
                while len(self.events) <= seen:
                    await self.cond.wait()
                new = self.events[seen:]
            seen += len(new)
            for event in new:
                yield sse(event)
            if new[-1]["stage"] in ("complete", "error"):
                break
        yield sse("[DONE]")


class Downloads:
    """Running downloads by id and by model; a finished one is forgotten (its id then 404s)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.by_id: dict[str, Download] = {}
        self.by_model: dict[str, Download] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, model_ref: str) -> dict[str, Any]:
        """Answer of ``POST /v1/models/download`` (no await: check and insert are atomic)."""
        check_model_known(model_ref)
        local = self.catalog.lookup(model_ref)
        if local is not None:
            return {"download_id": "cached", "local_path": local}
        running = self.by_model.get(model_ref)
        if running is None:
            running = Download(str(uuid.uuid4()), model_ref)
            self.by_id[running.id] = running
            self.by_model[model_ref] = running
            task = asyncio.create_task(self._run(running))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return {"download_id": running.id, "local_path": None}

    def get(self, download_id: str) -> Download:
        download = self.by_id.get(download_id)
        if download is None:
            raise ApiError(404, "DOWNLOAD_NOT_FOUND", "no running download with this id")
        return download

    async def _run(self, download: Download) -> None:
        try:
            for step in range(DOWNLOAD_STEPS + 1):
                done = FAKE_MODEL_BYTES * step // DOWNLOAD_STEPS
                await download.emit(
                    {
                        "stage": "downloading",
                        "bytes_downloaded": done,
                        "bytes_total": FAKE_MODEL_BYTES,
                    }
                )
                if step < DOWNLOAD_STEPS:
                    await asyncio.sleep(STEP_SECONDS)
            try:
                local = self.catalog.add(download.model_ref)
            except ApiError:
                await download.emit({"stage": "error", "message": "model catalog unavailable"})
            else:
                await download.emit({"stage": "complete", "local_path": local})
        finally:
            self.by_id.pop(download.id, None)
            if self.by_model.get(download.model_ref) is download:
                del self.by_model[download.model_ref]

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
