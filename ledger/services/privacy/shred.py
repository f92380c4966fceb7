"""Crypto-shredding: the one way the ledger destroys data keys, for an approved erasure
(``approve``) and for retention (``retention``) alike.

The caller holds the log's lock (``lock_head``) and has checked the legal holds under it. The
conversations' data keys lose their wrapped material in the caller's transaction (the rows stay,
naming what destroyed them); this process's cache forgets them once it commits, and every other
process finds out under the same lock before its next append to those conversations
(``ledger.storage.sequencer``). Entries are never touched. The caller records what this returns
in the tenant's system log in the same transaction: the verifier accepts a destroyed key only if
such a signed record names it (``ledger.services.verification.erasures``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ledger.domain import LogInfo
from ledger.services.privacy.scopes import data_key_scope
from ledger.storage import privacy as stored
from ledger.storage.db import after_commit
from ledger.storage.keystore import KeyRing

MAX_SEQ_RANGES = 1000
"""Runs of consecutive seqs a record lists (a subject's many conversations interleave with
others'); beyond, it says the list is cut and gives the count."""


@dataclass(frozen=True, slots=True)
class ErasureDone:
    conversations: list[str]
    destroyed_keys: list[int]
    """Data key ids destroyed now (keys destroyed before are not listed)."""
    seq_ranges: list[tuple[int, int]]
    """Inclusive runs of the affected entries' seqs, in order."""
    entries: int
    ranges_truncated: bool
    tree_size: int

    def as_json(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "destroyed_keys": self.destroyed_keys,
            "seqs": [list(r) for r in self.seq_ranges],
            "seqs_truncated": self.ranges_truncated,
            "entries": self.entries,
            "tree_size": self.tree_size,
        }


def shred_conversations(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    conversations: Sequence[str],
    *,
    destroyed_by: stored.DestroyedBy,
    request_id: int | None,
    size: int,
    now: datetime,
) -> ErasureDone:
    """Destroy the data keys of ``conversations`` (under the log's lock, holds checked) and
    say what was affected below ``size`` (the conversations' entries; ``destroyed_keys`` names
    only the keys destroyed now)."""
    destroyed = stored.destroy_data_keys(
        conn,
        log.id,
        [data_key_scope(c) for c in conversations],
        destroyed_by=destroyed_by,
        request_id=request_id,
        now=now,
    )
    scopes = [scope for _, scope in destroyed]
    # This process stops using them at once; every other one finds out under the lock.
    after_commit(conn, lambda: keys.data_keys.forget(log.id, scopes))
    ranges, count = (
        stored.seq_ranges(conn, log.id, conversations, size=size, limit=MAX_SEQ_RANGES + 1)
        if conversations
        else ([], 0)
    )
    return ErasureDone(
        conversations=list(conversations),
        destroyed_keys=[key_id for key_id, _ in destroyed],
        seq_ranges=ranges[:MAX_SEQ_RANGES],
        entries=count,
        ranges_truncated=len(ranges) > MAX_SEQ_RANGES,
        tree_size=size,
    )
