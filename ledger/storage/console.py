"""Queries of the auditor console's index (migration 0013): one summary row per conversation,
events per day, and how far each log has been read into them.

The index is derived data, written only by ``ledger.services.console.index.catch_up``. Every
search reads it newest first along ``(log_id, last_seq)``; a data subject goes by the GIN index
on ``subjects``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, text

_INDEX_LOCK = "handoff-ledger/console-index/"


def lock_index(conn: Connection, log_id: str) -> int:
    """Take the log's index lock for this transaction (waiting for another transaction that
    holds it: it indexes at most a budget of entries) and return how far the log is indexed
    (0 if never), as committed by then."""
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": _INDEX_LOCK + log_id},
    )
    return indexed_size(conn, log_id)


def indexed_size(conn: Connection, log_id: str) -> int:
    """How many entries of the log, from seq 0, the index covers."""
    size = conn.execute(
        text("SELECT size FROM console_index_heads WHERE log_id = :log"), {"log": log_id}
    ).scalar_one_or_none()
    return 0 if size is None else int(size)


@dataclass(slots=True)
class ConversationDelta:
    """What a run of entries adds to one conversation's summary row."""

    first_seq: int
    last_seq: int
    events: int
    first_at: datetime
    last_at: datetime
    event_types: set[str]
    subjects: set[str]
    triggers: set[str]
    handed_off: bool = False
    escalated: bool = False
    requested_at: datetime | None = None
    accepted_at: datetime | None = None
    productive_at: datetime | None = None


def save_index(
    conn: Connection,
    log_id: str,
    *,
    size: int,
    conversations: dict[str, ConversationDelta],
    daily: dict[date, int],
) -> None:
    """Merge a run of entries into the index and move the log's index head to ``size``: one
    statement per table, whatever the number of conversations."""
    if conversations:
        ids = list(conversations)
        rows = [conversations[c] for c in ids]
        conn.execute(
            text(
                "INSERT INTO console_conversations AS c (log_id, conversation_id, first_seq,"
                " last_seq, events, first_at, last_at, event_types, subjects, triggers,"
                " handed_off, escalated, requested_at, accepted_at, productive_at)"
                " SELECT :log, d.conversation_id, d.first_seq, d.last_seq, d.events, d.first_at,"
                " d.last_at, coalesce(string_to_array(d.event_types, chr(31)), '{}'),"
                " coalesce(string_to_array(d.subjects, chr(31)), '{}'),"
                " coalesce(string_to_array(d.triggers, chr(31)), '{}'),"
                " d.handed_off, d.escalated, d.requested_at, d.accepted_at, d.productive_at"
                " FROM unnest(CAST(:ids AS text[]), CAST(:first_seq AS bigint[]),"
                " CAST(:last_seq AS bigint[]), CAST(:events AS integer[]),"
                " CAST(:first_at AS timestamptz[]), CAST(:last_at AS timestamptz[]),"
                " CAST(:event_types AS text[]), CAST(:subjects AS text[]),"
                " CAST(:triggers AS text[]), CAST(:handed_off AS boolean[]),"
                " CAST(:escalated AS boolean[]), CAST(:requested_at AS timestamptz[]),"
                " CAST(:accepted_at AS timestamptz[]), CAST(:productive_at AS timestamptz[]))"
                " AS d(conversation_id, first_seq, last_seq, events, first_at, last_at,"
                " event_types, subjects, triggers, handed_off, escalated, requested_at,"
                " accepted_at, productive_at)"
                " ON CONFLICT (log_id, conversation_id) DO UPDATE SET"
                " last_seq = excluded.last_seq, events = c.events + excluded.events,"
                " last_at = greatest(c.last_at, excluded.last_at),"
                " first_at = least(c.first_at, excluded.first_at),"
                " event_types = ARRAY(SELECT DISTINCT unnest(c.event_types"
                "   || excluded.event_types) ORDER BY 1),"
                " subjects = ARRAY(SELECT DISTINCT unnest(c.subjects || excluded.subjects)"
                "   ORDER BY 1),"
                " triggers = ARRAY(SELECT DISTINCT unnest(c.triggers || excluded.triggers)"
                "   ORDER BY 1),"
                " handed_off = c.handed_off OR excluded.handed_off,"
                " escalated = c.escalated OR excluded.escalated,"
                " requested_at = coalesce(c.requested_at, excluded.requested_at),"
                " accepted_at = coalesce(c.accepted_at, excluded.accepted_at),"
                " productive_at = coalesce(c.productive_at, excluded.productive_at)"
            ),
            {
                "log": log_id,
                "ids": ids,
                "first_seq": [r.first_seq for r in rows],
                "last_seq": [r.last_seq for r in rows],
                "events": [r.events for r in rows],
                "first_at": [r.first_at for r in rows],
                "last_at": [r.last_at for r in rows],
                # Sets of strings travel as one string each, joined by the unit separator
                # (identifiers cannot hold control characters: they are refused at ingest).
                "event_types": [_joined(r.event_types) for r in rows],
                "subjects": [_joined(r.subjects) for r in rows],
                "triggers": [_joined(r.triggers) for r in rows],
                "handed_off": [r.handed_off for r in rows],
                "escalated": [r.escalated for r in rows],
                "requested_at": [r.requested_at for r in rows],
                "accepted_at": [r.accepted_at for r in rows],
                "productive_at": [r.productive_at for r in rows],
            },
        )
    if daily:
        days = sorted(daily)
        conn.execute(
            text(
                "INSERT INTO console_daily AS d (log_id, day, events)"
                " SELECT :log, x.day, x.events FROM unnest(CAST(:days AS date[]),"
                " CAST(:events AS bigint[])) AS x(day, events)"
                " ON CONFLICT (log_id, day) DO UPDATE SET events = d.events + excluded.events"
            ),
            {"log": log_id, "days": days, "events": [daily[d] for d in days]},
        )
    conn.execute(
        text(
            "INSERT INTO console_index_heads (log_id, size) VALUES (:log, :size)"
            " ON CONFLICT (log_id) DO UPDATE SET size = excluded.size"
        ),
        {"log": log_id, "size": size},
    )


def _joined(values: set[str]) -> str | None:
    # NULL for no values (string_to_array('', …) would be one empty string); the INSERT
    # coalesces NULL to the empty array.
    return "\x1f".join(sorted(values)) if values else None


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """What a search asks for; None: anything."""

    since: datetime | None = None
    """Conversations with activity at or after this (``last_at``)."""
    before: datetime | None = None
    """Conversations with activity before this (``first_at``)."""
    subject: str | None = None
    event_type: str | None = None
    trigger: str | None = None
    handed_off: bool | None = None


CONVERSATION_COLUMNS = (
    "conversation_id, first_seq, last_seq, events, first_at, last_at, event_types, subjects,"
    " triggers, handed_off, escalated, requested_at, accepted_at, productive_at"
)


_FILTER_CLAUSES = {
    "since": "last_at >= :since",
    "before": "first_at < :before",
    "subject": "subjects @> ARRAY[CAST(:subject AS text)]",
    "event_type": ":event_type = ANY(event_types)",
    "trigger": ":trigger = ANY(triggers)",
    "handed_off": "handed_off = :handed_off",
}
"""The SQL condition of each field of :class:`ConversationFilter` (every field has one), its
value bound by the field's name; a field that is None adds none."""


def search_conversations(
    conn: Connection,
    log_id: str,
    where: ConversationFilter,
    *,
    below_seq: int | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """Indexed conversations matching ``where``, newest (largest ``last_seq``) first, those with
    ``last_seq`` below ``below_seq`` only (the page after one ending there)."""
    clauses = ["log_id = :log"]
    params: dict[str, Any] = {"log": log_id, "limit": limit}
    if below_seq is not None:
        clauses.append("last_seq < :below")
        params["below"] = below_seq
    for field in fields(where):
        value = getattr(where, field.name)
        if value is not None:
            clauses.append(_FILTER_CLAUSES[field.name])
            params[field.name] = value
    return conn.execute(
        text(
            f"SELECT {CONVERSATION_COLUMNS} FROM console_conversations"
            f" WHERE {' AND '.join(clauses)} ORDER BY log_id, last_seq DESC LIMIT :limit"
        ),
        params,
    ).all()


def handed_off_at_or_after(conn: Connection, log_id: str, seq: int) -> Row[Any] | None:
    """The first handed-off conversation whose last entry is at or after ``seq`` (by the
    ``(log_id, last_seq)`` index); None if there is none."""
    return conn.execute(
        text(
            f"SELECT {CONVERSATION_COLUMNS} FROM console_conversations"
            " WHERE log_id = :log AND last_seq >= :seq AND handed_off"
            " ORDER BY log_id, last_seq LIMIT 1"
        ),
        {"log": log_id, "seq": seq},
    ).one_or_none()


def events_per_day(conn: Connection, log_id: str, *, days: int) -> list[tuple[date, int]]:
    """The last ``days`` days of the log that have events, oldest first."""
    rows = conn.execute(
        text(
            "SELECT day, events FROM (SELECT day, events FROM console_daily WHERE log_id = :log"
            " ORDER BY day DESC LIMIT :days) d ORDER BY day"
        ),
        {"log": log_id, "days": days},
    ).all()
    return [(r[0], int(r[1])) for r in rows]


def conversation_totals(conn: Connection, log_id: str) -> dict[str, Any]:
    """Conversations, handed off, escalated; and the seconds from the handoff's request to its
    acceptance and to productive takeover: count, median and 90th percentile."""
    row = conn.execute(
        text(
            "SELECT count(*), count(*) FILTER (WHERE handed_off),"
            " count(*) FILTER (WHERE escalated),"
            " count(a.s), percentile_cont(0.5) WITHIN GROUP (ORDER BY a.s),"
            " percentile_cont(0.9) WITHIN GROUP (ORDER BY a.s),"
            " count(p.s), percentile_cont(0.5) WITHIN GROUP (ORDER BY p.s),"
            " percentile_cont(0.9) WITHIN GROUP (ORDER BY p.s)"
            " FROM console_conversations c"
            " CROSS JOIN LATERAL (SELECT extract(epoch FROM c.accepted_at - c.requested_at)) a(s)"
            " CROSS JOIN LATERAL (SELECT extract(epoch FROM c.productive_at - c.requested_at))"
            "   p(s)"
            " WHERE c.log_id = :log"
        ),
        {"log": log_id},
    ).one()

    def stats(n: Any, median: Any, p90: Any) -> dict[str, Any]:
        return {
            "count": int(n),
            "median_seconds": None if median is None else float(median),
            "p90_seconds": None if p90 is None else float(p90),
        }

    return {
        "conversations": int(row[0]),
        "handed_off": int(row[1]),
        "escalated": int(row[2]),
        "time_to_accept": stats(row[3], row[4], row[5]),
        "time_to_productive": stats(row[6], row[7], row[8]),
    }


def trigger_mix(conn: Connection, log_id: str) -> list[tuple[str, int]]:
    """How many conversations were escalated for each trigger type, most frequent first."""
    rows = conn.execute(
        text(
            "SELECT t, count(*) FROM console_conversations, unnest(triggers) t"
            " WHERE log_id = :log GROUP BY t ORDER BY count(*) DESC, t"
        ),
        {"log": log_id},
    ).all()
    return [(str(r[0]), int(r[1])) for r in rows]


def latest_stream_entries(
    conn: Connection, log_id: str, stream: str, event_type: str, *, size: int, limit: int
) -> Sequence[Row[Any]]:
    """Rows ``(seq, leaf_hash, entry, data_key_id, sealed)`` of a system log stream's latest
    ``limit`` entries of ``event_type`` below ``size``, newest first (by the conversation
    index: it reads the stream's tail, not the log)."""
    return conn.execute(
        text(
            "SELECT e.seq, e.leaf_hash, e.entry, p.data_key_id, p.sealed FROM entries e"
            " LEFT JOIN LATERAL (SELECT data_key_id, sealed FROM payloads p"
            "   WHERE p.log_id = e.log_id AND p.seq = e.seq LIMIT 1) p ON true"
            " WHERE e.log_id = :log AND e.conversation_id = :conv AND e.seq < :size"
            " AND e.event_type = :type"
            " ORDER BY e.log_id DESC, e.conversation_id DESC, e.seq DESC LIMIT :limit"
        ),
        {"log": log_id, "conv": stream, "size": size, "type": event_type, "limit": limit},
    ).all()
