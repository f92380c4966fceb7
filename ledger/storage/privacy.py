"""Queries of privacy requests and their approvals (``privacy_requests``, ``privacy_approvals``:
append-only, migration 0007), and of what an erasure touches: the data keys it destroys and the
entries whose payloads they sealed.

A request's state is what was inserted: approved iff it has an approval row; expired iff it has
none and ``expires_at`` is past; pending otherwise. A hold is active iff it is approved and no
approved release names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, text

Action = Literal["erase", "hold", "release", "retention"]
ScopeKind = Literal["conversation", "subject", "log"]
DestroyedBy = Literal["erasure", "retention"]
Status = Literal["pending", "approved", "expired"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "expired")


@dataclass(frozen=True, slots=True)
class PrivacyRecord:
    """A request as stored, with its approval if it has one."""

    id: int
    log_id: str
    action: str
    scope_kind: str
    scope_id: str
    hold_id: int | None
    legal_basis: str
    reference: str
    requested_by: int
    requested_at: datetime
    expires_at: datetime
    approved_by: int | None = None
    approved_at: datetime | None = None
    retention_days: int | None = None
    """A ``retention`` request's new period, in days."""

    def status(self, now: datetime) -> Status:
        if self.approved_at is not None:
            return "approved"
        return "expired" if now > self.expires_at else "pending"


@dataclass(frozen=True, slots=True)
class ErasureInfo:
    """Which erasure destroyed a data key (the request's fields are None for a key destroyed
    without one: by retention, or before migration 0007)."""

    request_id: int | None
    legal_basis: str | None
    reference: str | None
    erased_at: datetime | None
    destroyed_by: str | None = None
    """``erasure`` or ``retention`` (None: destroyed behind the ledger's back)."""


_SELECT = (
    "SELECT r.id, r.log_id, r.action, r.scope_kind, r.scope_id, r.hold_id, r.legal_basis,"
    " r.reference, r.requested_by, r.requested_at, r.expires_at, a.approved_by, a.approved_at,"
    " r.retention_days"
    " FROM privacy_requests r LEFT JOIN privacy_approvals a ON a.request_id = r.id"
)


def _record(row: Any) -> PrivacyRecord:
    return PrivacyRecord(
        id=int(row[0]),
        log_id=str(row[1]),
        action=str(row[2]),
        scope_kind=str(row[3]),
        scope_id=str(row[4]),
        hold_id=None if row[5] is None else int(row[5]),
        legal_basis=str(row[6]),
        reference=str(row[7]),
        requested_by=int(row[8]),
        requested_at=row[9],
        expires_at=row[10],
        approved_by=None if row[11] is None else int(row[11]),
        approved_at=row[12],
        retention_days=None if row[13] is None else int(row[13]),
    )


def insert_request(
    conn: Connection,
    *,
    log_id: str,
    action: Action,
    scope_kind: str,
    scope_id: str,
    hold_id: int | None,
    legal_basis: str,
    reference: str,
    requested_by: int,
    requested_at: datetime,
    expires_at: datetime,
    retention_days: int | None = None,
) -> PrivacyRecord:
    """The new request, pending."""
    request_id = conn.execute(
        text(
            "INSERT INTO privacy_requests (log_id, action, scope_kind, scope_id, hold_id,"
            " legal_basis, reference, requested_by, requested_at, expires_at, retention_days)"
            " VALUES (:log, :action, :kind, :scope, :hold, :basis, :ref, :by, :at, :expires,"
            " :days) RETURNING id"
        ),
        {
            "log": log_id,
            "action": action,
            "kind": scope_kind,
            "scope": scope_id,
            "hold": hold_id,
            "basis": legal_basis,
            "ref": reference,
            "by": requested_by,
            "at": requested_at,
            "expires": expires_at,
            "days": retention_days,
        },
    ).scalar_one()
    return PrivacyRecord(
        int(request_id),
        log_id,
        action,
        scope_kind,
        scope_id,
        hold_id,
        legal_basis,
        reference,
        requested_by,
        requested_at,
        expires_at,
        retention_days=retention_days,
    )


def insert_approval(
    conn: Connection, request_id: int, *, approved_by: int, approved_at: datetime
) -> bool:
    """Approve the request; False if it was approved already (by this transaction's time: a
    concurrent approval waits for the other to commit, then finds it). The database itself
    refuses an approval by the requester or after expiry (migration 0007's trigger)."""
    inserted = conn.execute(
        text(
            "INSERT INTO privacy_approvals (request_id, approved_by, approved_at)"
            " VALUES (:id, :by, :at) ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
        ),
        {"id": request_id, "by": approved_by, "at": approved_at},
    ).scalar_one_or_none()
    return inserted is not None


def get_request(conn: Connection, log_id: str, request_id: int) -> PrivacyRecord | None:
    row = conn.execute(
        text(_SELECT + " WHERE r.log_id = :log AND r.id = :id"), {"log": log_id, "id": request_id}
    ).one_or_none()
    return None if row is None else _record(row)


def list_requests(
    conn: Connection, log_id: str, *, status: Status | None, now: datetime, limit: int
) -> list[PrivacyRecord]:
    """The log's requests, newest first, of one status (None: all)."""
    where = {
        None: "",
        "pending": " AND a.request_id IS NULL AND r.expires_at >= :now",
        "approved": " AND a.request_id IS NOT NULL",
        "expired": " AND a.request_id IS NULL AND r.expires_at < :now",
    }[status]
    rows = conn.execute(
        text(_SELECT + " WHERE r.log_id = :log" + where + " ORDER BY r.id DESC LIMIT :limit"),
        {"log": log_id, "now": now, "limit": limit},
    )
    return [_record(r) for r in rows]


def active_holds(conn: Connection, log_id: str) -> list[PrivacyRecord]:
    """The log's approved holds that no approved release names, oldest first."""
    rows = conn.execute(
        text(
            _SELECT + " WHERE r.log_id = :log AND r.action = 'hold' AND a.request_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM privacy_requests x"
            "   JOIN privacy_approvals y ON y.request_id = x.id"
            "   WHERE x.log_id = r.log_id AND x.action = 'release' AND x.hold_id = r.id)"
            " ORDER BY r.id"
        ),
        {"log": log_id},
    )
    return [_record(r) for r in rows]


# --- what an erasure touches ---------------------------------------------------------------------


# Shaped as the sequencer's lookups are (``ledger.storage.sequencer``): a lateral subquery per
# conversation or scope, in the order of the index it should probe and with a LIMIT, so that no
# table statistics (stale on a fast-growing log, absent for entries.log_id) can turn a probe
# into a scan of the whole log. The erasure runs these under the log's lock.


def conversations_present(conn: Connection, log_id: str, conversations: Sequence[str]) -> list[str]:
    """Those of ``conversations`` that have an entry in the log (one index probe each)."""
    rows = conn.execute(
        text(
            "SELECT c.id FROM unnest(CAST(:convs AS text[])) AS c(id)"
            " CROSS JOIN LATERAL (SELECT 1 FROM entries e WHERE e.log_id = :log"
            "   AND e.conversation_id = c.id ORDER BY e.log_id, e.conversation_id, e.seq"
            "   LIMIT 1) e"
        ),
        {"log": log_id, "convs": list(conversations)},
    )
    return [str(r[0]) for r in rows]


def conversations_mentioning(
    conn: Connection, log_id: str, conversations: Sequence[str], fragment: bytes
) -> list[str]:
    """Those of ``conversations`` with an entry whose exact bytes contain ``fragment`` (reads
    only those conversations' entries, by the conversation index)."""
    rows = conn.execute(
        text(
            "SELECT c.id FROM unnest(CAST(:convs AS text[])) AS c(id)"
            " CROSS JOIN LATERAL (SELECT 1 FROM entries e WHERE e.log_id = :log"
            "   AND e.conversation_id = c.id AND position(:fragment IN e.entry) > 0"
            "   ORDER BY e.log_id, e.conversation_id, e.seq LIMIT 1) e"
        ),
        {"log": log_id, "convs": list(conversations), "fragment": fragment},
    )
    return sorted(str(r[0]) for r in rows)


def destroyed_scopes(conn: Connection, log_id: str, scopes: Sequence[str]) -> list[str]:
    """Those of ``scopes`` whose data key is destroyed."""
    rows = conn.execute(
        text(
            "SELECT s.scope FROM unnest(CAST(:scopes AS text[])) AS s(scope)"
            " CROSS JOIN LATERAL (SELECT 1 FROM data_keys d WHERE d.log_id = :log"
            "   AND d.scope = s.scope AND d.wrapped IS NULL LIMIT 1) d"
        ),
        {"log": log_id, "scopes": list(scopes)},
    )
    return sorted(str(r[0]) for r in rows)


def destroy_data_keys(
    conn: Connection,
    log_id: str,
    scopes: Sequence[str],
    *,
    destroyed_by: DestroyedBy,
    request_id: int | None,
    now: datetime,
) -> list[tuple[int, str]]:
    """Crypto-shred: drop the wrapped key material of ``scopes`` (the rows stay, naming what
    destroyed them: the erase request, or retention). ``(key id, scope)`` of the keys destroyed
    now, by key id; keys destroyed before are left as they are."""
    rows = conn.execute(
        text(
            "UPDATE data_keys SET wrapped = NULL, destroyed_at = :now, erasure_request_id = :req,"
            " destroyed_by = :by"
            " WHERE id = ANY(ARRAY(SELECT d.id FROM unnest(CAST(:scopes AS text[])) AS s(scope)"
            "   CROSS JOIN LATERAL (SELECT id FROM data_keys k WHERE k.log_id = :log"
            "     AND k.scope = s.scope AND k.wrapped IS NOT NULL LIMIT 1) d))"
            " AND wrapped IS NOT NULL RETURNING id, scope"
        ),
        {"log": log_id, "scopes": list(scopes), "req": request_id, "now": now, "by": destroyed_by},
    )
    return sorted((int(r[0]), str(r[1])) for r in rows)


def seq_ranges(
    conn: Connection, log_id: str, conversations: Sequence[str], *, size: int, limit: int
) -> tuple[list[tuple[int, int]], int]:
    """The seqs below ``size`` of the conversations' entries, as inclusive ``(first, last)``
    runs of consecutive seqs in order (at most ``limit`` of them), and how many entries there
    are in all."""
    seqs = (
        "SELECT e.seq FROM unnest(CAST(:convs AS text[])) AS c(id)"
        " CROSS JOIN LATERAL (SELECT seq FROM entries x WHERE x.log_id = :log"
        "   AND x.conversation_id = c.id AND x.seq < :size"
        "   ORDER BY x.log_id, x.conversation_id, x.seq LIMIT :cap) e"
    )
    params = {"log": log_id, "convs": list(conversations), "size": size, "cap": size}
    count = conn.execute(text(f"SELECT count(*) FROM ({seqs}) s"), params).scalar_one()
    rows = conn.execute(
        text(
            # Gaps and islands: seq minus its rank is constant along a run of consecutive seqs.
            "SELECT min(seq), max(seq) FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq)"
            f"   AS run FROM ({seqs}) e) s GROUP BY run ORDER BY 1 LIMIT :limit"
        ),
        {**params, "limit": limit},
    )
    return [(int(r[0]), int(r[1])) for r in rows], int(count)


def erasures_of_keys(
    conn: Connection, log_id: str, key_ids: Sequence[int]
) -> dict[int, ErasureInfo]:
    """For the destroyed ones of ``key_ids``: which erasure destroyed each, and when."""
    if not key_ids:
        return {}
    rows = conn.execute(
        text(
            "SELECT k.id, k.destroyed_at, r.id, r.legal_basis, r.reference, k.destroyed_by"
            " FROM data_keys k"
            " LEFT JOIN privacy_requests r ON r.id = k.erasure_request_id"
            " WHERE k.log_id = :log AND k.id = ANY(CAST(:ids AS int8[])) AND k.wrapped IS NULL"
        ),
        {"log": log_id, "ids": sorted(set(key_ids))},
    )
    return {
        int(r[0]): ErasureInfo(None if r[2] is None else int(r[2]), r[3], r[4], r[1], r[5])
        for r in rows
    }


# --- retention -----------------------------------------------------------------------------------


def approved_retention_days(
    conn: Connection, log_id: str, *, excluding: int | None = None
) -> tuple[int, int] | None:
    """``(days, request id)`` of the log's latest approved ``retention`` request (by approval
    time; approvals of one log run one at a time under its lock), leaving out request
    ``excluding``; None if there is none."""
    row = conn.execute(
        text(
            "SELECT r.retention_days, r.id FROM privacy_requests r"
            " JOIN privacy_approvals a ON a.request_id = r.id"
            " WHERE r.log_id = :log AND r.action = 'retention' AND r.id <> :excluding"
            " ORDER BY a.approved_at DESC, r.id DESC LIMIT 1"
        ),
        {"log": log_id, "excluding": -1 if excluding is None else excluding},
    ).one_or_none()
    return None if row is None else (int(row[0]), int(row[1]))


CONVERSATION_SCOPE_PREFIX = "conversation:"


def expired_conversation_keys(
    conn: Connection,
    log_id: str,
    *,
    cutoff: datetime,
    after_key: int = 0,
    limit: int,
    key_ids: Sequence[int] | None = None,
) -> list[tuple[int, str]]:
    """``(key id, conversation)`` of live conversation data keys whose conversation's last
    entry (by seq) was received before ``cutoff``, by key id: those above ``after_key`` (at
    most ``limit``), or, with ``key_ids``, those of them that still are (the re-check under the
    log's lock). A key of a conversation with no entry is not listed: it seals nothing.

    One probe of the conversation index per live key, for its last entry: shaped as the
    sequencer's lookups are, so no statistics turn it into a scan of the log's entries."""
    only = "" if key_ids is None else " AND k.id = ANY(CAST(:ids AS int8[]))"
    rows = conn.execute(
        text(
            "SELECT k.id, last.conversation_id FROM data_keys k"
            " CROSS JOIN LATERAL (SELECT e.conversation_id, e.received_at FROM entries e"
            "   WHERE e.log_id = :log AND e.conversation_id = substr(k.scope, :from)"
            "   ORDER BY e.log_id DESC, e.conversation_id DESC, e.seq DESC LIMIT 1) last"
            " WHERE k.log_id = :log AND k.id > :after AND k.wrapped IS NOT NULL"
            "   AND starts_with(k.scope, :prefix) AND last.received_at < :cutoff"
            + only
            + " ORDER BY k.id LIMIT :limit"
        ),
        {
            "log": log_id,
            "from": len(CONVERSATION_SCOPE_PREFIX) + 1,
            "prefix": CONVERSATION_SCOPE_PREFIX,
            "after": after_key,
            "cutoff": cutoff,
            "limit": limit,
            "ids": None if key_ids is None else sorted(set(key_ids)),
        },
    )
    return [(int(r[0]), str(r[1])) for r in rows]
