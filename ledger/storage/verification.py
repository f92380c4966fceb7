"""What only the verifier reads: the head row, the log a chunk at a time, stray tree nodes beyond
the log, and the transaction settings that let several processes read one snapshot.

The chunk reads go through the raw psycopg connection with binary transfer: they are the
verifier's I/O per entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from ledger.errors import WorkerFailed
from ledger.storage.db import binary_cursor

_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


@dataclass(frozen=True, slots=True)
class StoredHead:
    """The log's head row as the sequencer left it."""

    size: int
    root: bytes
    frontier: bytes
    """The packed right frontier (``pack_frontier``)."""
    last_leaf: bytes


def head_row(conn: Connection, log_id: str) -> StoredHead | None:
    """The log's head row; None if it has none."""
    row = conn.execute(
        text("SELECT size, root, frontier, last_leaf FROM log_heads WHERE log_id = :log"),
        {"log": log_id},
    ).one_or_none()
    if row is None:
        return None
    return StoredHead(int(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]))


def last_seqs_before(
    conn: Connection, log_id: str, conversations: list[str], before: int
) -> list[Any]:
    """``(conversation, its last seq below before, or None)`` for each of ``conversations``."""
    with binary_cursor(conn) as cur:
        cur.execute(
            "SELECT c.id, (SELECT max(e.seq) FROM entries e WHERE e.log_id = %s"
            "   AND e.conversation_id = c.id AND e.seq < %s)"
            " FROM unnest(%s::text[]) AS c(id)",
            (log_id, before, conversations),
        )
        return cur.fetchall()


def tree_nodes_in(
    conn: Connection, log_id: str, levels: list[int], first: int, end: int
) -> dict[tuple[int, int], bytes]:
    """Stored node hashes by ``(level, idx)``: ``idx`` in ``[first >> level, end >> level)``."""
    with binary_cursor(conn) as cur:
        cur.execute(  # OFFSET 0: one index range scan per level, never a scan of the log
            "SELECT w.level, n.idx, n.hash FROM unnest(%s::smallint[], %s::bigint[],"
            " %s::bigint[]) AS w(level, lo, hi) CROSS JOIN LATERAL (SELECT idx, hash"
            " FROM tree_nodes WHERE log_id = %s AND level = w.level AND idx >= w.lo"
            " AND idx < w.hi OFFSET 0) n",
            (levels, [first >> lv for lv in levels], [end >> lv for lv in levels], log_id),
        )
        return {(level, idx): digest for level, idx, digest in cur.fetchall()}


def checkpoints_between(conn: Connection, log_id: str, after: int, upto: int) -> dict[int, Any]:
    """Checkpoint rows ``(size, root, note, key_id, signed_at)``, after < size <= upto, by size."""
    with binary_cursor(conn) as cur:
        cur.execute(
            "SELECT size, root, note, key_id, signed_at FROM checkpoints"
            " WHERE log_id = %s AND size > %s AND size <= %s",
            (log_id, after, upto),
        )
        return {row[0]: row for row in cur.fetchall()}


# --- nothing beyond the log ----------------------------------------------------------------


def tree_node_beyond(
    conn: Connection, log_id: str, levels: list[int], size: int
) -> tuple[int, int] | None:
    """``(level, idx)`` of a stored node at one of ``levels`` beyond leaf ``size``, or None."""
    row = conn.execute(
        text(
            "SELECT w.level, n.idx FROM unnest(CAST(:levels AS smallint[]),"
            " CAST(:lows AS bigint[])) AS w(level, lo) CROSS JOIN LATERAL (SELECT idx"
            " FROM tree_nodes WHERE log_id = :log AND level = w.level AND idx >= w.lo"
            " LIMIT 1) n LIMIT 1"
        ),
        {"levels": levels, "lows": [size >> lv for lv in levels], "log": log_id},
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


# --- one snapshot, several processes -------------------------------------------------------


def transaction_isolation(conn: Connection) -> str:
    """The isolation level of the connection's transaction (``repeatable read``, ...)."""
    return str(conn.exec_driver_sql("SHOW transaction_isolation").scalar_one())


def export_snapshot(conn: Connection) -> str:
    """The id of the transaction's snapshot, exported for other processes' ``read_in_snapshot``."""
    snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
    # Checked, not trusted: read_in_snapshot spells it into SQL.
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise WorkerFailed(f"unexpected snapshot id {snapshot!r}")
    return snapshot


def read_in_snapshot(conn: Connection, snapshot: str) -> None:
    """Nothing; the new transaction is read-only, repeatable-read, in the exported ``snapshot``."""
    conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
