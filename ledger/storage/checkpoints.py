"""Queries of signed checkpoints (``checkpoints``: append-only, one row per committed batch)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from ledger.errors import NotFound


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    """The C2SP signed note, exactly as signed and served."""
    key_id: bytes
    signed_at: datetime


def latest_checkpoint(conn: Connection, log_id: str) -> StoredCheckpoint:
    """The log's largest signed checkpoint; ``NotFound`` if it has none (every log is created
    with a signed size-0 checkpoint, so only an unknown log has none)."""
    row = conn.execute(
        text(
            "SELECT size, root, note, key_id, signed_at FROM checkpoints WHERE log_id = :log"
            " ORDER BY size DESC LIMIT 1"
        ),
        {"log": log_id},
    ).one_or_none()
    if row is None:
        raise NotFound(f"log {log_id!r} has no checkpoint")
    return _stored(row)


def _stored(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]), bytes(row[3]), row[4])


def checkpoint_at(conn: Connection, log_id: str, size: int) -> StoredCheckpoint | None:
    """The log's signed checkpoint of ``size``; None if it signed none of that size."""
    row = conn.execute(
        text(
            "SELECT size, root, note, key_id, signed_at FROM checkpoints"
            " WHERE log_id = :log AND size = :size"
        ),
        {"log": log_id, "size": size},
    ).one_or_none()
    return None if row is None else _stored(row)


def insert_checkpoint(
    conn: Connection,
    log_id: str,
    *,
    size: int,
    root: bytes,
    note: str,
    key_id: bytes,
    signed_at: datetime,
) -> None:
    """A checkpoint signed outside the sequencer (a new log's size-0 checkpoint); the sequencer
    writes its own in the pipeline that holds the log's lock."""
    conn.execute(
        text(
            "INSERT INTO checkpoints (log_id, size, root, note, key_id, signed_at)"
            " VALUES (:log, :size, :root, :note, :kid, :at)"
        ),
        {"log": log_id, "size": size, "root": root, "note": note, "kid": key_id, "at": signed_at},
    )


def last_signed_by(conn: Connection, log_id: str, key_id: bytes) -> datetime | None:
    """When ``key_id`` last signed a checkpoint of the log (None: never)."""
    at: datetime | None = conn.execute(
        text("SELECT max(signed_at) FROM checkpoints WHERE log_id = :log AND key_id = :kid"),
        {"log": log_id, "kid": key_id},
    ).scalar_one_or_none()
    return at


@dataclass(frozen=True, slots=True)
class GivenCheckpoint:
    size: int
    root: bytes
    how: str
    """How it was given out, for the refusal's message: ``signed``, ``served`` or
    ``anchored (<where>)``."""


class GivenCheckpoints:
    """Per log, the largest checkpoint this process has given out: signed (once its batch
    committed), served (``GET …/checkpoint``) or seen anchored outside the database. The
    sequencer signs nothing on a tree that does not extend it (``CheckpointFork``): a database
    behind what was acknowledged (a rollback, a failover to a standby that lacked it) or beside
    it (an old primary back on its own) stops the log instead of putting two inconsistent
    checkpoints into the world.

    A process's memory: a new process learns the latest anchored checkpoint when it first
    serves a log (the anchors are the memory shared by every process and outlive them)."""

    def __init__(self) -> None:
        self._latest: dict[str, GivenCheckpoint] = {}
        self._lock = threading.Lock()

    def get(self, log_id: str) -> GivenCheckpoint | None:
        return self._latest.get(log_id)

    def remember(self, log_id: str, size: int, root: bytes, *, how: str) -> None:
        """Keep ``size``/``root`` if it is larger than what is kept (a smaller one is implied
        by the larger, which the sequencer only signed on a tree extending it)."""
        with self._lock:
            kept = self._latest.get(log_id)
            if kept is None or size > kept.size:
                self._latest[log_id] = GivenCheckpoint(size, bytes(root), how)
