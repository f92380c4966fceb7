"""RFC 9162 proofs from stored tree nodes: one query for the O(log n) nodes a proof needs,
never a rehash of the log. Level 0 nodes are the entries' leaf hashes; higher levels are the
perfect subtree hashes the sequencer stored in ``tree_nodes``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from ledger.core import merkle
from ledger.errors import IntegrityFailure


def fetch_nodes(
    conn: Connection, log_id: str, coords: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    wanted = sorted(set(coords))
    pg = conn.connection.driver_connection
    assert pg is not None
    found: dict[tuple[int, int], bytes] = {}
    with pg.cursor() as cur:
        # One primary-key lookup per node, whatever the planner believes about the log's size:
        # a scalar subquery runs once per wanted node and cannot be turned into a scan of the
        # log (which stale statistics on a fast-growing log otherwise invite). The arrays go
        # in binary (%b): no text formatting and parsing of thousands of integers.
        cur.execute(
            "SELECT w.level, w.idx, CASE WHEN w.level = 0"
            "   THEN (SELECT e.leaf_hash FROM entries e WHERE e.log_id = %s AND e.seq = w.idx)"
            "   ELSE (SELECT n.hash FROM tree_nodes n WHERE n.log_id = %s AND n.level = w.level"
            "         AND n.idx = w.idx) END"
            " FROM unnest(%b::smallint[], %b::bigint[]) AS w(level, idx)",
            (log_id, log_id, [lv for lv, _ in wanted], [i for _, i in wanted]),
        )
        for level, idx, digest in cur.fetchall():
            if digest is not None:
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


def inclusion_proofs(
    conn: Connection, log_id: str, seqs: Sequence[int], size: int
) -> list[list[bytes]]:
    """RFC 9162 audit paths of every leaf in ``seqs`` in the tree of ``size``, from one fetch
    of the union of the stored nodes they need (neighbouring leaves share most of theirs)."""
    wanted: set[tuple[int, int]] = set()
    for seq in seqs:
        wanted.update(merkle.inclusion_proof_nodes(seq, size))
    nodes = fetch_nodes(conn, log_id, wanted)
    return [merkle.inclusion_proof(seq, size, nodes) for seq in seqs]
