"""Queries of logs and their head rows (``logs``, ``log_heads``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from ledger.core.entry import GENESIS_PREV
from ledger.core.merkle import EMPTY_ROOT
from ledger.domain import LogInfo
from ledger.errors import NotFound

_COLUMNS = "id, origin, tenant, kind, policy"


def _info(row: Any) -> LogInfo:
    return LogInfo(row[0], row[1], row[2], row[3], dict(row[4] or {}))


def find_log(conn: Connection, log_id: str) -> LogInfo | None:
    row = conn.execute(
        text(f"SELECT {_COLUMNS} FROM logs WHERE id = :id"), {"id": log_id}
    ).one_or_none()
    return None if row is None else _info(row)


def log_directory(conn: Connection, log_id: str) -> LogInfo:
    """The log ``log_id`` names, whichever tenant's it is (``NotFound`` if none): what a request
    needs before its tenant is known (public reads, authorization), through the one function
    that may look across tenants for it (migration 0011). Any other read of a log is
    ``get_log``, which row security confines to the session's tenant."""
    row = conn.execute(
        text(f"SELECT {_COLUMNS} FROM ledger_log_directory(:id)"), {"id": log_id}
    ).one_or_none()
    if row is None:
        raise NotFound(f"no log {log_id!r}")
    return _info(row)


def get_log(conn: Connection, log_id: str) -> LogInfo:
    info = find_log(conn, log_id)
    if info is None:
        raise NotFound(f"no log {log_id!r}")
    return info


def list_logs(conn: Connection) -> list[LogInfo]:
    """The logs this cluster holds live, by id: not the frozen copies a tenant's move to another
    cluster left behind (their heads name it, migration 0014), which take no appends and so no
    anchoring, retention or verification run here."""
    rows = conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM logs l WHERE NOT EXISTS"
            " (SELECT FROM log_heads h WHERE h.log_id = l.id AND h.moved_to IS NOT NULL)"
            " ORDER BY id"
        )
    )
    return [_info(r) for r in rows]


def insert_log(conn: Connection, info: LogInfo, *, created_at: datetime) -> None:
    """The log's row and its empty head (size 0, genesis ``prev``); its signing key and size-0
    checkpoint are the caller's next writes."""
    conn.execute(
        text(
            "INSERT INTO logs (id, origin, tenant, kind, policy, created_at)"
            " VALUES (:id, :origin, :tenant, :kind, CAST(:policy AS jsonb), :at)"
        ),
        {
            "id": info.id,
            "origin": info.origin,
            "tenant": info.tenant,
            "kind": info.kind,
            "policy": json.dumps(info.policy),
            "at": created_at,
        },
    )
    conn.execute(
        text(
            "INSERT INTO log_heads (log_id, size, root, frontier, last_leaf)"
            " VALUES (:id, 0, :root, '', :genesis)"
        ),
        {"id": info.id, "root": EMPTY_ROOT, "genesis": GENESIS_PREV},
    )


def log_size(conn: Connection, log_id: str) -> int:
    """The head row's size (what the sequencer has appended and committed)."""
    size = conn.execute(
        text("SELECT size FROM log_heads WHERE log_id = :log"), {"log": log_id}
    ).scalar_one_or_none()
    if size is None:
        raise NotFound(f"no log {log_id!r}")
    return int(size)


def lock_head(conn: Connection, log_id: str) -> None:
    """Take the log's lock for the rest of the transaction: no batch appends or signs meanwhile
    (the sequencer takes the same row lock)."""
    conn.execute(text("SELECT 1 FROM log_heads WHERE log_id = :log FOR UPDATE"), {"log": log_id})
