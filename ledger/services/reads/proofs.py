"""RFC 9162 §2.1.3-2.1.4 proofs for any sizes up to the latest signed checkpoint: a proof is
useful only against a root someone can hold the log to."""

from __future__ import annotations

from sqlalchemy import Connection

from ledger.domain import LogInfo
from ledger.errors import BeyondLatestCheckpoint, InvalidRequest
from ledger.storage import proofs
from ledger.storage.checkpoints import latest_checkpoint


def inclusion_proof(conn: Connection, log: LogInfo, seq: int, tree_size: int) -> list[bytes]:
    latest = latest_checkpoint(conn, log.id).size
    if tree_size > latest:
        raise BeyondLatestCheckpoint(
            f"tree_size {tree_size} is beyond the latest checkpoint ({latest})"
        )
    if seq >= tree_size:
        raise InvalidRequest(f"seq {seq} is not in a tree of size {tree_size}")
    return proofs.inclusion_proof(conn, log.id, seq, tree_size)


def consistency_proof(conn: Connection, log: LogInfo, first: int, second: int) -> list[bytes]:
    latest = latest_checkpoint(conn, log.id).size
    if second > latest:
        raise BeyondLatestCheckpoint(f"second {second} is beyond the latest checkpoint ({latest})")
    if first > second:
        raise InvalidRequest(f"first ({first}) must not exceed second ({second})")
    return proofs.consistency_proof(conn, log.id, first, second)
