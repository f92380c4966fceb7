"""Queries of what was published outside the database (``anchorings``,
``witness_cosignatures``: append-only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text

from ledger.storage.checkpoints import StoredCheckpoint, checkpoint_at

_ANCHORING_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('handoff-ledger/anchoring'))"


def try_anchoring_lock(conn: Connection) -> bool:
    """Whether this transaction may anchor: one anchoring run at a time across processes."""
    return bool(conn.execute(text(_ANCHORING_LOCK)).scalar_one())


def last_anchored_size(conn: Connection, log_id: str, sink: str) -> int | None:
    """The largest checkpoint size ``sink`` took for the log (None: never anchored there)."""
    size = conn.execute(
        text("SELECT max(size) FROM anchorings WHERE log_id = :log AND sink = :sink"),
        {"log": log_id, "sink": sink},
    ).scalar_one_or_none()
    return None if size is None else int(size)


def insert_anchoring(
    conn: Connection, log_id: str, *, sink: str, size: int, root: bytes, anchored_at: datetime
) -> None:
    conn.execute(
        text(
            "INSERT INTO anchorings (log_id, sink, size, root, anchored_at)"
            " VALUES (:log, :sink, :size, :root, :at) ON CONFLICT DO NOTHING"
        ),
        {"log": log_id, "sink": sink, "size": size, "root": root, "at": anchored_at},
    )


def last_anchored_checkpoint(conn: Connection, log_id: str) -> StoredCheckpoint | None:
    """The largest of the log's checkpoints that a sink took; None if none was anchored."""
    size = conn.execute(
        text("SELECT max(size) FROM anchorings WHERE log_id = :log"), {"log": log_id}
    ).scalar_one_or_none()
    return None if size is None else checkpoint_at(conn, log_id, int(size))


def has_entries_other_than(conn: Connection, log_id: str, *, since: int, event_type: str) -> bool:
    """Whether the log has an entry at or after seq ``since`` of another type than
    ``event_type``."""
    found = conn.execute(
        text(
            "SELECT 1 FROM entries WHERE log_id = :log AND seq >= :since"
            " AND event_type <> :type LIMIT 1"
        ),
        {"log": log_id, "since": since, "type": event_type},
    ).first()
    return found is not None


def last_cosigned_size(conn: Connection, log_id: str, witness: str) -> int:
    """The largest size ``witness`` cosigned for the log (0: none)."""
    size = conn.execute(
        text(
            "SELECT coalesce(max(size), 0) FROM witness_cosignatures"
            " WHERE log_id = :log AND witness = :w"
        ),
        {"log": log_id, "w": witness},
    ).scalar_one()
    return int(size)


def insert_cosignature(
    conn: Connection,
    log_id: str,
    *,
    witness: str,
    size: int,
    root: bytes,
    line: str,
    timestamp: int,
) -> None:
    conn.execute(
        text(
            "INSERT INTO witness_cosignatures (log_id, witness, size, root, cosignature,"
            " timestamp, received_at) VALUES (:log, :w, :size, :root, :line, :ts, now())"
            " ON CONFLICT DO NOTHING"
        ),
        {"log": log_id, "w": witness, "size": size, "root": root, "line": line, "ts": timestamp},
    )


def cosignatures_at(conn: Connection, log_id: str, size: int) -> list[tuple[str, str]]:
    """``(witness verifier key, cosignature line)`` of every cosignature stored for the log's
    checkpoint of ``size``, by witness (what an evidence bundle carries)."""
    rows = conn.execute(
        text(
            "SELECT witness, cosignature FROM witness_cosignatures"
            " WHERE log_id = :log AND size = :size ORDER BY witness, timestamp"
        ),
        {"log": log_id, "size": size},
    )
    return [(str(r[0]), str(r[1])) for r in rows]
