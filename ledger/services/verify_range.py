"""Recompute a log from its stored bytes over ``[start, end)``, in constant memory.

The log is read a chunk of ``CHUNK`` seqs at a time, every read a primary-key range of one
table (keyset pagination, binary transfer), all in the caller's repeatable-read snapshot: the
entries, their payloads, and the stored checkpoints and tree nodes that chunk must reproduce.
No read joins two tables or scans the log: with statistics taken while a log was small (a
restore, a burst of appends), a join over a whole log can be planned as a quadratic nested loop;
a narrow PK range cannot. What is kept between chunks: the tree's right frontier (O(log n)
hashes), the previous leaf hash, and bounded caches of each conversation's last seq (a miss is
answered by the conversation index) and of unwrapped data keys.

Checked for every entry: seq contiguous from ``start``; leaf hash = SHA-256(0x00 || stored
bytes); the entry names this log's origin and its own seq; the indexed columns agree with the
hashed bytes; ``prev`` is the previous leaf hash; ``conversation_prev`` is that conversation's
previous seq; the payload decrypts under its data key and matches the entry's salted commitment
(an erased payload, whose data key was destroyed, is counted, not failed). For the tree: every
perfect node completed in the range equals the stored one, and every stored checkpoint in the
range carries the recomputed root and a signature by its key, made while that key was active.

``start`` is 0 for full verification; incremental verification starts at the last verified
checkpoint, from the frontier of stored nodes that fold to that checkpoint's root.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from ledger.core.checkpoint import open_checkpoint
from ledger.core.commitment import commitment_matches
from ledger.core.merkle import EMPTY_ROOT, NODE_PREFIX, frontier_root, leaf_hash
from ledger.core.sealing import payload_aad, unseal_payload
from ledger.core.signing import NoteVerifier
from ledger.errors import CryptoError, IntegrityFailure
from ledger.storage.keystore import DataKeyStore
from ledger.storage.rows import LogInfo

CHUNK = 5000
MAX_LEVELS = 64
CONVERSATION_CACHE = 100_000
DATA_KEY_CACHE = 50_000

Progress = Callable[[str, int, int], None]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class SigningKey:
    """A verifier key the log may have signed with, and when it stopped being valid."""

    verifier: NoteVerifier
    retired_at: datetime | None


@dataclass
class RangeResult:
    size: int
    root: bytes
    frontier: list[bytes]
    last_leaf: bytes
    entries: int = 0
    checkpoints: int = 0
    erased_payloads: int = 0


class RangeChecker:
    """Recomputes entries ``[start, end)``; raises the first IntegrityFailure it meets."""

    def __init__(
        self,
        conn: Connection,
        log: LogInfo,
        *,
        data_keys: DataKeyStore,
        keys: dict[bytes, SigningKey],
        start: int,
        end: int,
        frontier: list[bytes],
        prev: bytes,
    ) -> None:
        self.conn = conn
        self.pg = conn.connection.driver_connection
        self.log = log
        self.data_keys = data_keys
        self.keys = keys
        self.start = start
        self.end = end
        self.result = RangeResult(start, frontier_root(frontier, start), list(frontier), prev)
        self.conv_last: dict[str, int | None] = {}
        self.conv_evicted = start > 0  # a cache miss must then ask the index
        self.unwrapped: dict[int, bytes | None] = {}

    def fail(self, what: str, *, seq: int | None = None, expected: str | None = None,
             found: str | None = None) -> IntegrityFailure:
        return IntegrityFailure(what, log=self.log.id, seq=seq, expected=expected, found=found)

    def run(self, progress: Progress | None = None) -> RangeResult:
        for row in self._checkpoints(self.start - 1, self.start).values():
            self._check_checkpoint(row, self.result.root)
        low = self.start
        while rows := self._entries(low, low + CHUNK):
            self._check_chunk(rows, self._payloads(low, low + CHUNK))
            if progress is not None:
                progress(self.log.id, self.result.size, self.end)
            low += CHUNK
        if self.result.size != self.end:
            raise self.fail(f"the log ends at {self.result.size} entries but its latest"
                            f" checkpoint covers {self.end}", seq=self.result.size,
                            expected=str(self.end), found=str(self.result.size))
        return self.result

    # --- entries -------------------------------------------------------------------------

    def _entries(self, low: int, high: int) -> list[Any]:
        """Entry rows with ``low <= seq < high``. Entries and payloads are read apart, each by a
        primary-key range: a join lets stale statistics pick a plan quadratic in the log."""
        assert self.pg is not None
        with self.pg.cursor(binary=True) as cur:
            cur.execute("SELECT seq, leaf_hash, entry, source, event_id, conversation_id"
                        " FROM entries WHERE log_id = %s AND seq >= %s AND seq < %s ORDER BY seq",
                        (self.log.id, low, high))
            rows: list[Any] = cur.fetchall()
            return rows

    def _payloads(self, low: int, high: int) -> dict[int, tuple[int, bytes]]:
        assert self.pg is not None
        with self.pg.cursor(binary=True) as cur:
            cur.execute("SELECT seq, data_key_id, sealed FROM payloads"
                        " WHERE log_id = %s AND seq >= %s AND seq < %s", (self.log.id, low, high))
            return {seq: (key_id, sealed) for seq, key_id, sealed in cur.fetchall()}

    def _check_chunk(self, rows: Sequence[Any], payloads: dict[int, tuple[int, bytes]]) -> None:
        first = self.result.size
        self._prefetch_conversations(rows, first)
        self._prefetch_data_keys(payloads)
        leaves = [self._check_entry(row, payloads.get(row[0])) for row in rows]
        self._extend_tree(first, leaves)

    def _check_entry(self, row: Any, payload: tuple[int, bytes] | None) -> bytes:
        seq, stored_leaf, entry_bytes, source, event_id, conversation = row
        res = self.result
        if seq != res.size:
            raise self.fail("sequence gap or reorder", seq=res.size, expected=str(res.size),
                            found=str(seq))
        if seq >= self.end:
            raise self.fail(f"entry beyond the latest signed checkpoint (size {self.end})",
                            seq=seq)
        leaf = leaf_hash(entry_bytes)
        if leaf != stored_leaf:
            raise self.fail("leaf hash does not match the stored entry bytes", seq=seq,
                            expected=b64(leaf), found=b64(stored_leaf))
        try:
            entry = orjson.loads(entry_bytes)
            event = entry["event"]
            header_ok = (entry["seq"] == seq and entry["origin"] == self.log.origin
                         and event["source"] == source and event["id"] == event_id
                         and event["conversation"] == conversation)
            entry_prev = entry["prev"]
            entry_conv_prev = entry["conversation_prev"]
            commitment = base64.b64decode(entry["payload"]["commitment"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise self.fail(f"entry bytes are not a well-formed entry: {exc}", seq=seq) from exc
        if not header_ok:
            raise self.fail("entry header disagrees with its seq, origin or indexed columns",
                            seq=seq)
        if entry_prev != b64(res.last_leaf):
            raise self.fail("hash chain broken: prev is not the previous leaf hash", seq=seq,
                            expected=b64(res.last_leaf), found=str(entry_prev))
        expected_conv_prev = self.conv_last.get(conversation)
        if entry_conv_prev != expected_conv_prev:
            raise self.fail("conversation back-link broken", seq=seq,
                            expected=str(expected_conv_prev), found=str(entry_conv_prev))
        self._check_payload(seq, payload, commitment)
        self.conv_last.pop(conversation, None)  # re-insert: the dict's order is recency
        self.conv_last[conversation] = seq
        res.last_leaf = leaf
        res.size = seq + 1
        res.entries += 1
        return leaf

    def _prefetch_conversations(self, rows: Sequence[Any], first: int) -> None:
        """Each conversation's last seq before this chunk, for those the cache lacks."""
        if len(self.conv_last) > CONVERSATION_CACHE:
            for conv in list(self.conv_last)[: len(self.conv_last) // 2]:
                del self.conv_last[conv]
            self.conv_evicted = True
        if not self.conv_evicted:
            return
        missing = sorted({row[5] for row in rows} - self.conv_last.keys())
        if not missing:
            return
        assert self.pg is not None
        with self.pg.cursor(binary=True) as cur:
            cur.execute(
                "SELECT c.id, (SELECT max(e.seq) FROM entries e WHERE e.log_id = %s"
                "   AND e.conversation_id = c.id AND e.seq < %s)"
                " FROM unnest(%s::text[]) AS c(id)",
                (self.log.id, first, missing),
            )
            for conv, last in cur.fetchall():
                self.conv_last[conv] = last

    def _prefetch_data_keys(self, payloads: dict[int, tuple[int, bytes]]) -> None:
        """Unwrap the chunk's data keys with one query, not one round trip per conversation."""
        missing = {key_id for key_id, _ in payloads.values()} - self.unwrapped.keys()
        if not missing:
            return
        if len(self.unwrapped) + len(missing) > DATA_KEY_CACHE:
            self.unwrapped.clear()
        self.unwrapped.update(self.data_keys.keys_by_id(self.conn, self.log.id, missing))

    def _check_payload(self, seq: int, payload: tuple[int, bytes] | None,
                       commitment: bytes) -> None:
        if payload is None:
            raise self.fail("payload is missing", seq=seq)
        key_id, sealed = payload
        if key_id not in self.unwrapped:
            if len(self.unwrapped) >= DATA_KEY_CACHE:
                self.unwrapped.clear()
            self.unwrapped[key_id] = self.data_keys.key_by_id(self.conn, self.log.id, key_id)
        key = self.unwrapped[key_id]
        if key is None:
            self.result.erased_payloads += 1
            return
        try:
            salt, canonical_data = unseal_payload(key, sealed, payload_aad(self.log.id, seq))
        except CryptoError as exc:
            raise self.fail(f"payload does not decrypt: {exc}", seq=seq) from exc
        if not commitment_matches(commitment, salt, canonical_data):
            raise self.fail("payload does not match the entry's commitment", seq=seq)

    # --- tree and checkpoints ------------------------------------------------------------

    def _extend_tree(self, first: int, leaves: list[bytes]) -> None:
        """Fold the chunk's leaves into the frontier; compare every completed perfect node with
        the stored one and every checkpoint in ``(first, first + len(leaves)]``."""
        end = first + len(leaves)
        stored = self._stored_nodes(first, end)
        checkpoints = self._checkpoints(first, end)
        stack = self.result.frontier
        sha256 = hashlib.sha256
        computed = 0
        for offset, leaf in enumerate(leaves):
            seq = first + offset
            acc, index, level = leaf, seq, 0
            while index & 1:  # leaf `seq` completes one perfect subtree per trailing 1-bit
                acc = sha256(NODE_PREFIX + stack.pop() + acc).digest()
                level += 1
                index >>= 1
                computed += 1
                found = stored.get((level, index))
                if found != acc:
                    what = "is missing" if found is None else "differs from the recomputed node"
                    raise self.fail(f"tree node ({level}, {index}) {what}", seq=seq,
                                    expected=b64(acc), found=b64(found) if found else None)
            stack.append(acc)
            checkpoint = checkpoints.get(seq + 1)
            if checkpoint is not None:
                self._check_checkpoint(checkpoint, frontier_root(stack, seq + 1))
        if computed != len(stored):
            raise self.fail(f"{len(stored) - computed} stored tree node(s) in entries"
                            f" [{first}, {end}) belong to no entry")
        self.result.root = frontier_root(stack, end) if end else EMPTY_ROOT

    def _stored_nodes(self, first: int, end: int) -> dict[tuple[int, int], bytes]:
        """Stored perfect nodes (level >= 1) completed by a leaf in ``[first, end)``: at level
        L, the indexes ``[first >> L, end >> L)``. One index range scan per level."""
        levels = [lv for lv in range(1, MAX_LEVELS) if end >> lv > first >> lv]
        if not levels:
            return {}
        assert self.pg is not None
        with self.pg.cursor(binary=True) as cur:
            cur.execute(  # OFFSET 0: one index range scan per level, never a scan of the log
                "SELECT w.level, n.idx, n.hash FROM unnest(%s::smallint[], %s::bigint[],"
                " %s::bigint[]) AS w(level, lo, hi) CROSS JOIN LATERAL (SELECT idx, hash"
                " FROM tree_nodes WHERE log_id = %s AND level = w.level AND idx >= w.lo"
                " AND idx < w.hi OFFSET 0) n",
                (levels, [first >> lv for lv in levels], [end >> lv for lv in levels],
                 self.log.id),
            )
            return {(level, idx): digest for level, idx, digest in cur.fetchall()}

    def _check_checkpoint(self, row: Any, expected_root: bytes) -> None:
        check_checkpoint(self.log, self.keys, row, expected_root=expected_root)
        self.result.checkpoints += 1

    def _checkpoints(self, after: int, upto: int) -> dict[int, Any]:
        """Stored checkpoint rows with ``after < size <= upto``, by size."""
        assert self.pg is not None
        with self.pg.cursor(binary=True) as cur:
            cur.execute("SELECT size, root, note, key_id, signed_at FROM checkpoints"
                        " WHERE log_id = %s AND size > %s AND size <= %s",
                        (self.log.id, after, upto))
            return {row[0]: row for row in cur.fetchall()}


def check_checkpoint(log: LogInfo, keys: dict[bytes, SigningKey], row: Any, *,
                     expected_root: bytes) -> None:
    """A stored checkpoint row ``(size, root, note, key_id, signed_at)``: its root, its key
    (which must still have been active when it signed), its signature and signed fields."""
    size, root, note, key_id, signed_at = row
    root, key_id = bytes(root), bytes(key_id)

    def fail(what: str, expected: str | None = None, found: str | None = None
             ) -> IntegrityFailure:
        return IntegrityFailure(f"checkpoint at size {size}{what}", log=log.id,
                                expected=expected, found=found)

    if root != expected_root:
        raise fail(": root differs from the recomputed tree", expected=b64(expected_root),
                   found=b64(root))
    key = keys.get(key_id)
    if key is None:
        raise fail(f" names unknown key {key_id.hex()}")
    if key.retired_at is not None and signed_at > key.retired_at:
        raise fail(f" was signed after its key {key_id.hex()} was retired",
                   expected=f"signed by {key.retired_at.isoformat()}",
                   found=f"signed at {signed_at.isoformat()}")
    try:
        cp = open_checkpoint(note, [key.verifier])
    except CryptoError as exc:
        raise fail(f" does not verify: {exc}") from exc
    if cp.size != size or cp.root_hash != root or cp.origin != log.origin:
        raise fail(": signed note disagrees with its row",
                   expected=f"{log.origin} {size} {b64(root)}",
                   found=f"{cp.origin} {cp.size} {b64(cp.root_hash)}")
