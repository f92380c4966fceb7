"""RFC 9162 proofs from stored tree nodes: one query for the O(log n) nodes a proof needs,
never a rehash of the log. Level 0 nodes are the entries' leaf hashes; higher levels are the
perfect subtree hashes the sequencer stored in ``tree_nodes``."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from ledger.core import merkle
from ledger.errors import IntegrityFailure


def fetch_nodes(
    conn: Connection, log_id: str, coords: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    wanted = sorted(set(coords))
    leaves = [idx for level, idx in wanted if level == 0]
    inner = [(level, idx) for level, idx in wanted if level > 0]
    pg = conn.connection.driver_connection
    assert pg is not None
    found: dict[tuple[int, int], bytes] = {}
    with pg.cursor() as cur:
        cur.execute(
            "SELECT 0, seq, leaf_hash FROM entries WHERE log_id = %s AND seq = ANY(%s)"
            " UNION ALL"
            " SELECT n.level, n.idx, n.hash FROM tree_nodes n"
            " JOIN unnest(%s::smallint[], %s::bigint[]) AS w(level, idx)"
            "   ON n.level = w.level AND n.idx = w.idx"
            " WHERE n.log_id = %s",
            (log_id, leaves, [lv for lv, _ in inner], [i for _, i in inner], log_id),
        )
        for level, idx, digest in cur.fetchall():
            found[(int(level), int(idx))] = bytes(digest)
    missing = [c for c in wanted if c not in found]
    if missing:
        raise IntegrityFailure(f"stored tree node(s) missing: {missing[:3]}", log=log_id)
    return found


def inclusion_proof(conn: Connection, log_id: str, index: int, size: int) -> list[bytes]:
    nodes = fetch_nodes(conn, log_id, merkle.inclusion_proof_nodes(index, size))
    return merkle.inclusion_proof(index, size, nodes)


def consistency_proof(conn: Connection, log_id: str, size1: int, size2: int) -> list[bytes]:
    nodes = fetch_nodes(conn, log_id, merkle.consistency_proof_nodes(size1, size2))
    return merkle.consistency_proof(size1, size2, nodes)
