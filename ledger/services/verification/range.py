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
(an erased payload, whose data key was destroyed, is counted, not failed, if a signed erasure
record names its key: ``erased_keys``, from ``ErasureRecords``); an entry carrying a writer
signature is signed by a key the tenant's system log records as registered for that entry's
writer credential, not revoked before the entry was received, over the statement rebuilt from
the entry itself (``ledger.core.writer_signature``, ``writer_keys``). For the tree: every
perfect node completed in the range equals the stored one, and every stored checkpoint in the
range carries the recomputed root and a signature by its key, made while that key was active.

``start`` is 0 for full verification; incremental verification starts at the last verified
checkpoint, from the frontier of stored nodes that fold to that checkpoint's root.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection

from ledger.core.checkpoint import open_checkpoint
from ledger.core.commitment import SALT_SIZE
from ledger.core.merkle import EMPTY_ROOT, LEAF_PREFIX, NODE_PREFIX, frontier_root
from ledger.core.sealing import NONCE_SIZE, payload_aad_prefix, payload_cipher
from ledger.core.signing import NoteVerifier
from ledger.core.writer_signature import WriterKeyring
from ledger.domain import LogInfo
from ledger.errors import CryptoError, IntegrityFailure
from ledger.services.verification.writer_keys import (
    recorded_required_policy,
    recorded_writer_keys,
)
from ledger.storage.entries import chunk_rows
from ledger.storage.keystore import DataKeyStore
from ledger.storage.verification import checkpoints_between, last_seqs_before, tree_nodes_in

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


@dataclass(frozen=True)
class Chunk:
    """One chunk's rows: entries and payloads in seq order; stored tree nodes and checkpoints
    keyed."""

    rows: list[Any]
    payloads: list[Any]
    """``(seq, data_key_id, sealed)`` by seq: the i-th belongs to the i-th entry."""
    nodes: dict[tuple[int, int], bytes]
    checkpoints: dict[int, Any]


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
        erased_keys: frozenset[int] = frozenset(),
        part: bool = False,
    ) -> None:
        """``erased_keys``: the data key ids of this log that the tenant's signed erasure
        records name as destroyed; any other destroyed key is tampering. ``part``: this range
        is one part of a longer run (``verify_parallel``), so reading stops at ``end`` (the next
        part reads on) and the checkpoint at ``start`` is left to the part that ends there."""
        self.conn = conn
        self.log = log
        self.data_keys = data_keys
        self.keys = keys
        self.erased_keys = erased_keys
        self.start = start
        self.end = end
        self.part = part
        self.result = RangeResult(start, frontier_root(frontier, start), list(frontier), prev)
        self.conv_last: dict[str, int | None] = {}
        self.conv_evicted = start > 0  # a cache miss must then ask the index
        self.ciphers: dict[int, AESGCM | None] = {}
        # Writer signatures are checked against the keys and revocations the tenant's system
        # log records (signed, hash-chained), not the table ingest reads: a few rows, read once
        # per range in the run's snapshot.
        self.writer_keys = WriterKeyring(recorded_writer_keys(conn, data_keys, log))
        # And when the log required signatures, by the same records: an unsigned entry
        # received then (past the time servers take to apply it) should have been refused.
        self.required = recorded_required_policy(conn, data_keys, log)

    def fail(
        self,
        what: str,
        *,
        seq: int | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> IntegrityFailure:
        return IntegrityFailure(what, log=self.log.id, seq=seq, expected=expected, found=found)

    def run(self, progress: Progress | None = None) -> RangeResult:
        if not (self.part and self.start > 0):
            for row in self._checkpoints(self.start - 1, self.start).values():
                self._check_checkpoint(row, self.result.root)
        low = self.start
        while (chunk := self.read_chunk(low)) is not None:
            self._check_chunk(chunk)
            if progress is not None:
                progress(self.log.id, self.result.size, self.end)
            low += CHUNK
        if self.result.size != self.end:
            raise self.fail(
                f"the log ends at {self.result.size} entries but its latest"
                f" checkpoint covers {self.end}",
                seq=self.result.size,
                expected=str(self.end),
                found=str(self.result.size),
            )
        return self.result

    # --- reads ---------------------------------------------------------------------------

    def read_chunk(self, low: int) -> Chunk | None:
        """Everything chunk ``[low, low + CHUNK)`` is checked against, or None past the end.
        Entries and payloads are read apart, each by a primary-key range (``chunk_rows``)."""
        high = min(low + CHUNK, self.end) if self.part else low + CHUNK
        if high <= low:
            return None
        found = chunk_rows(self.conn, self.log.id, low, high)
        if found is None:
            return None
        rows, payloads = found
        # The tree reads assume the chunk is contiguous; if it is not, its first gap fails the
        # chunk before any tree node is compared.
        end = low + len(rows)
        return Chunk(rows, payloads, self._stored_nodes(low, end), self._checkpoints(low, end))

    # --- entries -------------------------------------------------------------------------

    def _check_chunk(self, chunk: Chunk) -> None:
        """The per-entry checks of the module docstring, in one loop with everything it
        touches bound to locals: this loop is the verifier's cost per entry."""
        rows, payloads = chunk.rows, chunk.payloads
        res = self.result
        first = res.size
        self._prefetch_conversations(rows, first)
        ciphers = self._ciphers(chunk)
        origin, end, fail = self.log.origin, self.end, self.fail
        aad_prefix = payload_aad_prefix(self.log.id)
        conv_last, sha256, loads, b2a = (
            self.conv_last,
            hashlib.sha256,
            orjson.loads,
            binascii.b2a_base64,
        )
        writer_keys, required = self.writer_keys, self.required
        last_leaf = res.last_leaf
        last_b64 = b64(last_leaf)
        leaves: list[bytes] = []
        seq = first - 1
        for i, row in enumerate(rows):
            expected_seq = seq + 1
            seq, stored_leaf, entry_bytes, source, event_id, conversation = row
            if seq != expected_seq:
                raise fail(
                    "sequence gap or reorder",
                    seq=expected_seq,
                    expected=str(expected_seq),
                    found=str(seq),
                )
            if seq >= end:
                raise fail(f"entry beyond the latest signed checkpoint (size {end})", seq=seq)
            leaf = sha256(LEAF_PREFIX + entry_bytes).digest()
            if leaf != stored_leaf:
                raise fail(
                    "leaf hash does not match the stored entry bytes",
                    seq=seq,
                    expected=b64(leaf),
                    found=b64(stored_leaf),
                )
            try:
                entry = loads(entry_bytes)
                event = entry["event"]
                header_ok = (
                    entry["seq"] == seq
                    and entry["origin"] == origin
                    and event["source"] == source
                    and event["id"] == event_id
                    and event["conversation"] == conversation
                )
                entry_prev = entry["prev"]
                entry_conv_prev = entry["conversation_prev"]
                commitment = entry["payload"]["commitment"]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise fail(f"entry bytes are not a well-formed entry: {exc}", seq=seq) from exc
            if not header_ok:
                raise fail(
                    "entry header disagrees with its seq, origin or indexed columns", seq=seq
                )
            if "writer_signature" in entry:
                reason = writer_keys.check_entry(entry)
                if reason is not None:
                    raise fail(f"writer signature does not check out: {reason}", seq=seq)
            elif required:
                reason = required.unsigned_problem(entry.get("received_at"))
                if reason is not None:
                    raise fail(f"writer signature missing: {reason}", seq=seq)
            if entry_prev != last_b64:
                raise fail(
                    "hash chain broken: prev is not the previous leaf hash",
                    seq=seq,
                    expected=last_b64,
                    found=str(entry_prev),
                )
            expected_conv_prev = conv_last.pop(conversation, None)  # re-inserted: recency
            if entry_conv_prev != expected_conv_prev:
                raise fail(
                    "conversation back-link broken",
                    seq=seq,
                    expected=str(expected_conv_prev),
                    found=str(entry_conv_prev),
                )
            conv_last[conversation] = seq
            if i >= len(payloads) or payloads[i][0] != seq:
                raise fail("payload is missing", seq=seq)
            _, key_id, sealed = payloads[i]
            cipher = ciphers[key_id]
            if cipher is None:  # its data key was destroyed: nothing left to compare
                res.erased_payloads += 1
            else:
                try:
                    plain = cipher.decrypt(
                        sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad_prefix + b"%d" % seq
                    )  # = payload_aad()
                except (InvalidTag, ValueError) as exc:
                    raise fail(
                        "payload does not decrypt: authentication tag mismatch"
                        " (tampered blob or wrong key)",
                        seq=seq,
                    ) from exc
                # The plaintext is salt || canonical(data): its hash is the commitment, which
                # the entry carries as canonical base64.
                if (
                    len(plain) < SALT_SIZE
                    or b2a(sha256(plain).digest(), newline=False).decode() != commitment
                ):
                    raise fail("payload does not match the entry's commitment", seq=seq)
            leaves.append(leaf)
            last_leaf = leaf
            last_b64 = b2a(leaf, newline=False).decode()
        res.last_leaf = last_leaf
        res.size = first + len(leaves)
        res.entries += len(leaves)
        self._extend_tree(first, leaves, chunk.nodes, chunk.checkpoints)

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
        for conv, last in last_seqs_before(self.conn, self.log.id, missing, first):
            self.conv_last[conv] = last

    def _ciphers(self, chunk: Chunk) -> dict[int, AESGCM | None]:
        """An AES-GCM context for each data key of the chunk (None: destroyed), unwrapping
        those not cached with one query. A key id with no row at all is a failure: data keys
        are never deleted (a trigger), so only a disabled trigger lets one go missing; so is a
        key that does not unwrap (a wrapped key edited or moved), and a destroyed key that no
        signed erasure record names (``erased_keys``: one set lookup per destroyed key read)."""
        wanted = {key_id for _, key_id, _ in chunk.payloads}
        if len(self.ciphers) + len(wanted - self.ciphers.keys()) > DATA_KEY_CACHE:
            self.ciphers.clear()
        missing = wanted - self.ciphers.keys()
        if not missing:
            return self.ciphers
        try:
            found = self.data_keys.keys_by_id(self.conn, self.log.id, missing)
        except CryptoError as exc:
            raise self.fail(
                f"a data key of this chunk does not unwrap under the master key: {exc}",
                seq=self.result.size,
            ) from exc
        for key_id in sorted(missing):
            if key_id not in found:
                seq = min(s for s, k, _ in chunk.payloads if k == key_id)
                raise self.fail(f"the payload's data key {key_id} is missing", seq=seq)
            key = found[key_id]
            if key is None and key_id not in self.erased_keys:
                seq = min(s for s, k, _ in chunk.payloads if k == key_id)
                raise self.fail(
                    f"data key destroyed without an erasure record (data key {key_id})",
                    seq=seq,
                    expected="a ledger.erasure.executed.v1 or ledger.retention.executed.v1"
                    f" record naming data key {key_id}"
                    f" in the system log of tenant {self.log.tenant!r}",
                    found=f"data key {key_id} destroyed, named by no erasure record",
                )
            self.ciphers[key_id] = None if key is None else payload_cipher(key)
        return self.ciphers

    # --- tree and checkpoints ------------------------------------------------------------

    def _extend_tree(
        self,
        first: int,
        leaves: list[bytes],
        stored: dict[tuple[int, int], bytes],
        checkpoints: dict[int, Any],
    ) -> None:
        """Fold the chunk's leaves into the frontier; compare every completed perfect node with
        the stored one and every checkpoint in ``(first, first + len(leaves)]``."""
        end = first + len(leaves)
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
                    raise self.fail(
                        f"tree node ({level}, {index}) {what}",
                        seq=seq,
                        expected=b64(acc),
                        found=b64(found) if found else None,
                    )
            stack.append(acc)
            checkpoint = checkpoints.get(seq + 1)
            if checkpoint is not None:
                self._check_checkpoint(checkpoint, frontier_root(stack, seq + 1))
        if computed != len(stored):
            raise self.fail(
                f"{len(stored) - computed} stored tree node(s) in entries"
                f" [{first}, {end}) belong to no entry"
            )
        self.result.root = frontier_root(stack, end) if end else EMPTY_ROOT

    def _stored_nodes(self, first: int, end: int) -> dict[tuple[int, int], bytes]:
        """Stored perfect nodes (level >= 1) completed by a leaf in ``[first, end)``: at level
        L, the indexes ``[first >> L, end >> L)``. One index range scan per level."""
        levels = [lv for lv in range(1, MAX_LEVELS) if end >> lv > first >> lv]
        if not levels:
            return {}
        return tree_nodes_in(self.conn, self.log.id, levels, first, end)

    def _check_checkpoint(self, row: Any, expected_root: bytes) -> None:
        check_checkpoint(self.log, self.keys, row, expected_root=expected_root)
        self.result.checkpoints += 1

    def _checkpoints(self, after: int, upto: int) -> dict[int, Any]:
        """Stored checkpoint rows with ``after < size <= upto``, by size."""
        return checkpoints_between(self.conn, self.log.id, after, upto)


def check_checkpoint(
    log: LogInfo, keys: dict[bytes, SigningKey], row: Any, *, expected_root: bytes
) -> None:
    """A stored checkpoint row ``(size, root, note, key_id, signed_at)``: its root, its key
    (which must still have been active when it signed), its signature and signed fields."""
    size, root, note, key_id, signed_at = row
    root, key_id = bytes(root), bytes(key_id)

    def fail(what: str, expected: str | None = None, found: str | None = None) -> IntegrityFailure:
        return IntegrityFailure(
            f"checkpoint at size {size}{what}", log=log.id, expected=expected, found=found
        )

    if root != expected_root:
        raise fail(
            ": root differs from the recomputed tree", expected=b64(expected_root), found=b64(root)
        )
    key = keys.get(key_id)
    if key is None:
        raise fail(f" names unknown key {key_id.hex()}")
    if key.retired_at is not None and signed_at > key.retired_at:
        raise fail(
            f" was signed after its key {key_id.hex()} was retired",
            expected=f"signed by {key.retired_at.isoformat()}",
            found=f"signed at {signed_at.isoformat()}",
        )
    try:
        cp = open_checkpoint(note, [key.verifier])
    except CryptoError as exc:
        raise fail(f" does not verify: {exc}") from exc
    if cp.size != size or cp.root_hash != root or cp.origin != log.origin:
        raise fail(
            ": signed note disagrees with its row",
            expected=f"{log.origin} {size} {b64(root)}",
            found=f"{cp.origin} {cp.size} {b64(cp.root_hash)}",
        )
