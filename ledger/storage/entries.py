"""Queries of appended entries and their sealed payloads (``entries``, ``payloads``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

from sqlalchemy import Connection, Row, text

EntryRow: TypeAlias = "Row[int, bytes, bytes, int | None, bytes | None]"
"""``(seq, leaf_hash, entry, data_key_id, sealed)``; the payload columns are None where an entry
has no payload."""
SeqTable: TypeAlias = Literal["entries", "payloads"]

_WITH_PAYLOAD = (
    # LIMIT 1 keeps the payload lookup a primary-key probe per entry, whatever the statistics
    # say (a plain join may become a scan of every payload of the log).
    "SELECT e.seq, e.leaf_hash, e.entry, p.data_key_id, p.sealed FROM entries e"
    " LEFT JOIN LATERAL (SELECT data_key_id, sealed FROM payloads p"
    "   WHERE p.log_id = e.log_id AND p.seq = e.seq LIMIT 1) p ON true"
)


def entries_with_payloads(
    conn: Connection, log_id: str, start: int, end: int
) -> Sequence[EntryRow]:
    """Rows ``(seq, leaf_hash, entry, data_key_id, sealed)`` of ``[start, end)``, in seq order."""
    return conn.execute(
        text(
            _WITH_PAYLOAD
            + " WHERE e.log_id = :log AND e.seq >= :start AND e.seq < :end ORDER BY e.seq"
        ),
        {"log": log_id, "start": start, "end": end},
    ).all()


def conversation_entries(
    conn: Connection, log_id: str, conversation_id: str, size: int, *, limit: int
) -> Sequence[EntryRow]:
    """The same rows, of the conversation's first ``limit`` entries below ``size``, in seq order."""
    return conn.execute(
        text(
            # Shaped so that no table statistics can pick another plan: the ORDER BY is the
            # conversation index's own order, and LIMIT 1 keeps the payload lookup a
            # primary-key probe per entry (a plain join may become a scan of the log).
            _WITH_PAYLOAD + " WHERE e.log_id = :log AND e.conversation_id = :conv AND e.seq < :size"
            " ORDER BY e.log_id, e.conversation_id, e.seq LIMIT :limit"
        ),
        {"log": log_id, "conv": conversation_id, "size": size, "limit": limit},
    ).all()


def stored_leaf_hash(conn: Connection, log_id: str, seq: int) -> bytes | None:
    """The stored leaf hash of entry ``seq``; None if there is no such entry."""
    found = conn.execute(
        text("SELECT leaf_hash FROM entries WHERE log_id = :log AND seq = :seq"),
        {"log": log_id, "seq": seq},
    ).scalar_one_or_none()
    return None if found is None else bytes(found)


def first_seq_at_or_beyond(conn: Connection, table: SeqTable, log_id: str, size: int) -> int | None:
    """The smallest seq at or beyond ``size`` in ``table``; None if there is none."""
    seq = conn.execute(
        text(f"SELECT seq FROM {table} WHERE log_id = :log AND seq >= :size ORDER BY seq LIMIT 1"),
        {"log": log_id, "size": size},
    ).scalar_one_or_none()
    return None if seq is None else int(seq)


def latest_conversation_of_type(conn: Connection, log_id: str, event_type: str) -> str | None:
    """The conversation of the log's latest entry of ``event_type`` (None: no such entry)."""
    found = conn.execute(
        text(
            "SELECT conversation_id FROM entries WHERE log_id = :log AND event_type = :type"
            " ORDER BY seq DESC LIMIT 1"
        ),
        {"log": log_id, "type": event_type},
    ).scalar_one_or_none()
    return None if found is None else str(found)
