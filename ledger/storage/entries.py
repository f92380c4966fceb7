"""Queries of appended entries and their sealed payloads (``entries``, ``payloads``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypeAlias

from sqlalchemy import Connection, Row, text

from ledger.storage.db import binary_cursor

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


def conversation_stored_bytes(
    conn: Connection, log_id: str, conversation_id: str, size: int, *, limit: int
) -> int:
    """The stored bytes (entry plus sealed payload) of the conversation's first ``limit``
    entries below ``size``: what its trail would be read from, summed without reading it out."""
    total = conn.execute(
        text(
            # Shaped as conversation_entries, so that it takes the same plan.
            "SELECT coalesce(sum(octet_length(c.entry) + coalesce(octet_length(c.sealed), 0)), 0)"
            " FROM (SELECT e.entry, p.sealed FROM entries e"
            " LEFT JOIN LATERAL (SELECT sealed FROM payloads p"
            "   WHERE p.log_id = e.log_id AND p.seq = e.seq LIMIT 1) p ON true"
            " WHERE e.log_id = :log AND e.conversation_id = :conv AND e.seq < :size"
            " ORDER BY e.log_id, e.conversation_id, e.seq LIMIT :limit) c"
        ),
        {"log": log_id, "conv": conversation_id, "size": size, "limit": limit},
    ).scalar_one()
    return int(total)


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


def first_conversation_of_type(conn: Connection, log_id: str, event_type: str) -> str | None:
    """The conversation of the log's first entry of ``event_type`` (None: no such entry): in an
    append-only log, the same answer whatever is appended later."""
    found = conn.execute(
        text(
            "SELECT conversation_id FROM entries WHERE log_id = :log AND event_type = :type"
            " ORDER BY seq LIMIT 1"
        ),
        {"log": log_id, "type": event_type},
    ).scalar_one_or_none()
    return None if found is None else str(found)


# --- the log a chunk at a time -------------------------------------------------------------


def chunk_rows(
    conn: Connection, log_id: str, low: int, high: int
) -> tuple[list[Any], list[Any]] | None:
    """Entry and payload rows of seqs ``[low, high)`` in seq order; None if it has no entry."""
    # Entry rows are (seq, leaf_hash, entry, source, event_id, conversation_id), payload rows
    # (seq, data_key_id, sealed). Entries and payloads are read apart, each by a primary-key
    # range: a join lets stale statistics pick a plan quadratic in the log.
    with binary_cursor(conn) as cur:
        cur.execute(
            "SELECT seq, leaf_hash, entry, source, event_id, conversation_id"
            " FROM entries WHERE log_id = %s AND seq >= %s AND seq < %s ORDER BY seq",
            (log_id, low, high),
        )
        rows: list[Any] = cur.fetchall()
        if not rows:
            return None
        cur.execute(
            "SELECT seq, data_key_id, sealed FROM payloads"
            " WHERE log_id = %s AND seq >= %s AND seq < %s ORDER BY seq",
            (log_id, low, high),
        )
        payloads: list[Any] = cur.fetchall()
    return rows, payloads


# --- what exports select ---------------------------------------------------------------------


def seq_bounds_received(
    conn: Connection, log_id: str, *, since: datetime, before: datetime, size: int
) -> tuple[int, int] | None:
    """The first and last seq below ``size`` whose ``received_at`` is in ``[since, before)``;
    None if there is none. Reads every entry of the log below ``size`` (no index on the time:
    an export is rare, and an index would cost every append)."""
    row = conn.execute(
        text(
            "SELECT min(seq), max(seq) FROM entries WHERE log_id = :log AND seq < :size"
            " AND received_at >= :since AND received_at < :before"
        ),
        {"log": log_id, "size": size, "since": since, "before": before},
    ).one()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def conversations_containing(
    conn: Connection, log_id: str, fragment: bytes, *, size: int, start: int = 0
) -> list[str]:
    """The conversations of the entries in ``[start, size)`` whose exact (canonical) bytes
    contain ``fragment``, in order of first appearance."""
    rows = conn.execute(
        text(
            "SELECT conversation_id FROM entries WHERE log_id = :log AND seq < :size"
            " AND seq >= :start AND position(:fragment IN entry) > 0"
            " GROUP BY conversation_id ORDER BY min(seq)"
        ),
        {"log": log_id, "size": size, "start": start, "fragment": fragment},
    )
    return [str(r[0]) for r in rows]


def stream_entries_of_type(
    conn: Connection, log_id: str, conversation_id: str, event_type: str, *, size: int
) -> Sequence[EntryRow]:
    """Rows ``(seq, leaf_hash, entry, data_key_id, sealed)`` of the entries below ``size`` of
    one conversation (a system log's stream) and type, in seq order: a tenant's erasure records,
    its auditors' trail reads. By the conversation index, so it reads the stream, not the log."""
    return conn.execute(
        text(
            _WITH_PAYLOAD + " WHERE e.log_id = :log AND e.conversation_id = :conv"
            " AND e.seq < :size AND e.event_type = :type"
            " ORDER BY e.log_id, e.conversation_id, e.seq"
        ),
        {"log": log_id, "conv": conversation_id, "size": size, "type": event_type},
    ).all()
