"""The sequencer: the only place sequence numbers are assigned.

``append_batch`` is the one way anything is appended to a log. It runs inside the caller's unit of
work (the group committer's, or a use case's that must commit its own rows with the events it
records): it locks the log's head row (``SELECT ... FOR UPDATE``), so any number of server
processes may append to one log and each batch sees the tree exactly as the previous batch left
it. Per batch: one lock, one Merkle frontier update, one signed checkpoint, one head update, and
two round trips while the lock is held: the reads, then every write at once as the unit of work's
last writes (``send_last_writes``: with the COMMIT when the group committer opened it so; array
INSERTs, since COPY cannot be pipelined and each COPY costs two round trips of its own, each a
thread wake-up on a loaded machine).

Before signing, the head must agree with the latest stored checkpoint: a head row edited behind
the ledger's back stops the log rather than getting a checkpoint signed over it (never sign two
checkpoints inconsistent with each other). Nor may the tree contradict the checkpoint this
process last gave out (signed, or saw anchored: ``SignerCache.given``): the database must still
hold it, else the log is behind what was acknowledged or forked from it (``CheckpointFork``).
One primary-key probe, in the same round trip as the lock.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection

from ledger.core.canonical import canonicalize
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.entry import EntryTemplate, entry_template, format_time
from ledger.core.merkle import (
    frontier_extend,
    frontier_root,
    leaf_hash,
    pack_frontier,
    unpack_frontier,
)
from ledger.core.sealing import fresh_nonces, payload_aad, payload_cipher, seal_payload
from ledger.core.types import RootHash
from ledger.core.writer_signature import SIGNATURE_ATTRIBUTE
from ledger.domain import AppendRequest, AppendResult, LogInfo, Receipt
from ledger.errors import (
    CheckpointFork,
    ClientError,
    EventInvalid,
    IdempotencyConflict,
    IntegrityFailure,
    LogMoved,
    ScopeErased,
)
from ledger.storage.checkpoints import GivenCheckpoint
from ledger.storage.db import after_commit, driver_connection, send_last_writes
from ledger.storage.keystore import DataKeyStore, SignerCache
from ledger.storage.writer_keys import REVOKED_KEYS_QUERY

# Each table's rows travel as one binary array per column (bytea as raw bytes, not hex text);
# what is the same for the whole batch travels once.
ENTRY_INSERT = (
    "INSERT INTO entries (log_id, seq, leaf_hash, entry, source, event_id, event_type,"
    " conversation_id, received_at, request_digest)"
    " SELECT %b, r.seq, r.leaf_hash, r.entry, r.source, r.event_id, r.event_type,"
    "   r.conversation_id, %b, r.request_digest"
    " FROM unnest(%b::int8[], %b::bytea[], %b::bytea[], %b::text[], %b::text[], %b::text[],"
    "   %b::text[], %b::bytea[])"
    " AS r(seq, leaf_hash, entry, source, event_id, event_type, conversation_id, request_digest)"
)
PAYLOAD_INSERT = (
    "INSERT INTO payloads (log_id, seq, data_key_id, sealed)"
    " SELECT %b, r.* FROM unnest(%b::int8[], %b::int8[], %b::bytea[]) AS r"
)
NODE_INSERT = (
    "INSERT INTO tree_nodes (log_id, level, idx, hash)"
    " SELECT %b, r.* FROM unnest(%b::int2[], %b::int8[], %b::bytea[]) AS r"
)
CHECKPOINT_INSERT = (
    "INSERT INTO checkpoints (log_id, size, root, note, key_id, signed_at)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
HEAD_UPDATE = (
    "UPDATE log_heads SET size = %s, root = %s, frontier = %s, last_leaf = %s WHERE log_id = %s"
)


@dataclass(slots=True)
class BatchOutcome:
    results: list[AppendResult | ClientError]
    """One per request, in order: its receipts, or why it was refused as a whole."""
    appended: int = 0


def append_batch(
    conn: Connection,
    log: LogInfo,
    requests: Sequence[AppendRequest],
    *,
    signers: SignerCache,
    data_keys: DataKeyStore,
    now: datetime,
) -> BatchOutcome:
    """Append ``requests`` (each all or nothing) in the caller's unit of work; its writes are the
    unit of work's last. New data keys are cached once it commits."""
    pg = driver_connection(conn)
    scopes = sorted({ev.scope for req in requests for ev in req.events})
    keys, missing = data_keys.cached(log.id, set(scopes))
    # Canonicalize before the lock: under it, each entry is only joined, hashed and sealed.
    templates = _templates(log, requests)
    signing_keys = sorted(
        {ev.writer_key_id for req in requests for ev in req.events if ev.writer_key_id is not None}
    )

    # One round trip: new conversations' data keys are created before the lock is taken, then
    # the lock, then the reads. Lock first, read second: in READ COMMITTED a statement that
    # waited for the lock re-reads the locked row but not its joins, so the reads need later
    # statements (each takes a fresh snapshot). An erasure destroys data keys under the same
    # lock, so the read of which scopes are erased sees every erasure committed before this
    # batch, by any process, whatever this process cached or read before the lock.
    with pg.pipeline():
        keys_cur = data_keys.queue_fetch_or_create(pg, log.id, missing) if missing else None
        pg.execute("SELECT 1 FROM log_heads WHERE log_id = %s FOR UPDATE", (log.id,))
        head_cur = pg.execute(HEAD_QUERY, (log.id,))
        existing_cur = pg.execute(EXISTING_QUERY, _existing_params(log.id, requests))
        conv_cur = pg.execute(LAST_SEQ_QUERY, _last_seq_params(log.id, requests))
        erased_cur = pg.execute(ERASED_QUERY, (scopes, log.id))
        # A writer key revoked since ingest checked it (revocation takes this lock too).
        revoked_cur = pg.execute(REVOKED_KEYS_QUERY, (signing_keys,)) if signing_keys else None
        # The checkpoint this process last gave out of the log: the database must still hold it.
        given = signers.given.get(log.id)
        given_cur = pg.execute(GIVEN_ROOT_QUERY, (log.id, given.size)) if given else None
        head = head_cur.fetchone()
        existing = {
            (source, event_id): (bytes(digest), Receipt(event_id, seq, bytes(leaf)))
            for source, event_id, seq, leaf, digest in existing_cur.fetchall()
        }
        conv_last = {c: s for c, s in conv_cur.fetchall() if s is not None}
        erased = {scope for (scope,) in erased_cur.fetchall()}
        revoked = {key for (key,) in revoked_cur.fetchall()} if revoked_cur else set()
        given_row = given_cur.fetchone() if given_cur else None
        new_keys = data_keys.unwrap(log.id, missing, keys_cur) if keys_cur else {}
    keys.update(new_keys)
    if erased:
        data_keys.forget(log.id, erased)
        for scope in erased:
            keys[scope] = (keys[scope][0], b"")  # closed: _check_request refuses it
    fresh = {
        (log.id, scope): key for scope, key in new_keys.items() if key[1] and scope not in erased
    }
    if fresh:
        after_commit(conn, lambda: data_keys.promote(fresh))  # a rolled-back key is never reused
    ciphers = {key_row_id: payload_cipher(key) for key_row_id, key in keys.values() if key}
    if head is None:
        raise IntegrityFailure("log has no head row", log=log.id)
    size, root, packed_frontier, last_leaf, key_id, cp_size, cp_root, cp_note, moved_to = head
    if moved_to is not None:
        # Its tenant moved to another cluster (migration 0014): this copy takes nothing more.
        raise LogMoved(f"log {log.id!r} has moved to cluster {moved_to!r}", log_id=log.id)
    if cp_size != size or bytes(cp_root) != bytes(root):
        raise IntegrityFailure(
            "head row disagrees with the latest signed checkpoint; refusing to sign",
            log=log.id,
            expected=f"size {cp_size}",
            found=f"size {size}",
        )
    if key_id is None:
        raise IntegrityFailure("log has no active signing key", log=log.id)
    if given is not None:
        _check_extends(log, given, given_row, size)

    results: list[AppendResult | ClientError | tuple[list[Receipt], int]] = []
    taken: dict[tuple[str, str], tuple[bytes, Receipt | None]] = dict(existing)
    # One list per column: the arrays of the pipelined INSERTs.
    seqs: list[int] = []
    leaves: list[bytes] = []
    entries: list[bytes] = []
    sources: list[str] = []
    event_ids: list[str] = []
    event_types: list[str] = []
    conversations: list[str] = []
    digests: list[bytes] = []
    key_ids: list[int] = []
    sealed: list[bytes] = []
    prev = bytes(last_leaf)
    seq = size
    nonces = fresh_nonces(sum(len(req.events) for req in requests))
    received_at = format_time(now).encode("ascii")

    for req, req_templates in zip(requests, templates, strict=True):
        problem = _check_request(req, taken, keys) or _revoked_signer(req, revoked)
        if problem is not None:
            results.append(problem)
            continue
        receipts: list[Receipt] = []
        added = 0
        for ev, template in zip(req.events, req_templates, strict=True):
            key = (ev.header.source, ev.header.event_id)
            seen = taken.get(key)
            if seen is not None:
                # A retry of an event already in the log (or earlier in this batch).
                assert seen[1] is not None
                receipts.append(seen[1])
                continue
            conv = ev.header.conversation_id
            entry_bytes = template.fill(
                seq=seq, prev=prev, received_at=received_at, conversation_prev=conv_last.get(conv)
            )
            leaf = leaf_hash(entry_bytes)
            key_row_id = keys[ev.scope][0]
            seqs.append(seq)
            leaves.append(leaf)
            entries.append(entry_bytes)
            sources.append(ev.header.source)
            event_ids.append(ev.header.event_id)
            event_types.append(ev.header.type)
            conversations.append(conv)
            digests.append(ev.request_digest)
            key_ids.append(key_row_id)
            sealed.append(
                seal_payload(
                    ciphers[key_row_id],
                    ev.salt,
                    ev.canonical_data,
                    payload_aad(log.id, seq),
                    nonce=next(nonces),
                )
            )
            receipt = Receipt(ev.header.event_id, seq, leaf)
            taken[key] = (ev.request_digest, receipt)
            receipts.append(receipt)
            added += 1
            conv_last[conv] = seq
            prev = leaf
            seq += 1
        results.append((receipts, added))

    note = cp_note
    if leaves:
        frontier = unpack_frontier(bytes(packed_frontier), size)
        frontier, nodes = frontier_extend(frontier, size, leaves)
        new_root = frontier_root(frontier, seq)
        signer = signers.get(conn, log.id, bytes(key_id))
        note = sign_checkpoint(Checkpoint(log.origin, seq, RootHash(new_root)), signer)
        after_commit(conn, lambda: signers.given.remember(log.id, seq, new_root, how="signed"))
        head_row = (seq, new_root, pack_frontier(frontier), prev, log.id)

        def writes(pg: psycopg.Connection[Any]) -> None:
            pg.execute(
                ENTRY_INSERT,
                (
                    log.id,
                    now,
                    seqs,
                    leaves,
                    entries,
                    sources,
                    event_ids,
                    event_types,
                    conversations,
                    digests,
                ),
            )
            pg.execute(PAYLOAD_INSERT, (log.id, seqs, key_ids, sealed))
            if nodes:
                levels, indexes, hashes = (list(column) for column in zip(*nodes, strict=True))
                pg.execute(NODE_INSERT, (log.id, levels, indexes, hashes))
            pg.execute(CHECKPOINT_INSERT, (log.id, seq, new_root, note, signer.key_id, now))
            pg.execute(HEAD_UPDATE, head_row)

        send_last_writes(conn, writes)
    else:
        send_last_writes(conn, lambda _pg: None)  # nothing new: only the COMMIT, if asked

    final: list[AppendResult | ClientError] = []
    for item in results:
        if isinstance(item, tuple):
            receipts, added = item
            final.append(
                AppendResult(receipts=receipts, created=added > 0, checkpoint=note, appended=added)
            )
        else:
            final.append(item)
    return BatchOutcome(final, appended=len(leaves))


def _templates(log: LogInfo, requests: Sequence[AppendRequest]) -> list[list[EntryTemplate]]:
    out = []
    for req in requests:
        writer = canonicalize(req.principal.as_writer())
        out.append(
            [
                entry_template(
                    origin=log.origin,
                    header=ev.header,
                    writer=writer,
                    commitment=ev.commitment,
                    writer_signature=ev.writer_signature,
                )
                for ev in req.events
            ]
        )
    return out


def _check_extends(log: LogInfo, given: GivenCheckpoint, row: Any, size: int) -> None:
    """The database's tree (latest checkpoint ``size``) must extend ``given``: it holds a
    checkpoint of that size with that root. Enough, as every checkpoint the database holds is a
    prefix of its one tree (each signed on the head, which must agree with the latest), and a
    tree that forked below ``given.size`` has another root there, if it reaches it at all."""
    if row is not None and bytes(row[0]) == given.root:
        return
    if size < given.size:
        what = (
            f"the database's log (size {size}) is behind a checkpoint this ledger {given.how}"
            f" (size {given.size}): acknowledged entries are missing (a rollback, or a failover"
            " to a server that lacks them); refusing to sign"
        )
    else:
        what = (
            f"the database's log does not extend the checkpoint this ledger {given.how} at"
            f" size {given.size} (a fork: two primaries?); refusing to sign"
        )
    raise CheckpointFork(
        what,
        log=log.id,
        expected=f"size {given.size} root {b64encode(given.root).decode()}",
        found=f"size {size}"
        + ("" if row is None else f", root {b64encode(bytes(row[0])).decode()} at {given.size}"),
    )


def _check_request(
    req: AppendRequest,
    taken: dict[tuple[str, str], tuple[bytes, Receipt | None]],
    keys: dict[str, tuple[int, bytes]],
) -> ClientError | None:
    """Why this request cannot be appended as a whole, or None. Checked before any seq is
    assigned, so a rejected request leaves no trace in the batch."""
    own: dict[tuple[str, str], bytes] = {}
    for index, ev in enumerate(req.events):
        key = (ev.header.source, ev.header.event_id)
        digest = taken[key][0] if key in taken else own.get(key)
        if digest is not None and digest != ev.request_digest:
            where = f"events[{index}] " if len(req.events) > 1 else ""
            return IdempotencyConflict(
                f"{where}event id {ev.header.event_id!r} from source {ev.header.source!r} "
                "was already recorded with different content"
            )
        own[key] = ev.request_digest
        if not keys[ev.scope][1]:
            return ScopeErased(
                f"conversation {ev.header.conversation_id!r} was erased; its trail is closed"
            )
    return None


def _revoked_signer(req: AppendRequest, revoked: set[int]) -> ClientError | None:
    """The first event signed by a key revoked after ingest checked it, as ingest would name it."""
    for index, ev in enumerate(req.events if revoked else ()):
        if ev.writer_key_id in revoked:
            return EventInvalid(
                f"/events/{index}/{SIGNATURE_ATTRIBUTE}"
                if req.batch
                else f"/{SIGNATURE_ATTRIBUTE}",
                f"event {ev.header.event_id!r}: the writer key was revoked",
            )
    return None


GIVEN_ROOT_QUERY = "SELECT root FROM checkpoints WHERE log_id = %s AND size = %s"
HEAD_QUERY = (
    "SELECT h.size, h.root, h.frontier, h.last_leaf, k.key_id, c.size, c.root, c.note,"
    " h.moved_to"
    " FROM log_heads h"
    " LEFT JOIN LATERAL (SELECT key_id FROM signing_keys s WHERE s.log_id = h.log_id"
    "   AND s.retired_at IS NULL ORDER BY s.id DESC LIMIT 1) k ON true"
    " LEFT JOIN LATERAL (SELECT size, root, note FROM checkpoints p"
    "   WHERE p.log_id = h.log_id ORDER BY p.size DESC LIMIT 1) c ON true"
    " WHERE h.log_id = %s"
)
# Both lookups are shaped so that no table statistics can turn them into scans of the log
# (statistics of a fast-growing log are often stale): one unique-index probe per key (LIMIT 1
# keeps the subquery from being flattened into a join), and an ORDER BY that is exactly the
# conversation index's order.
EXISTING_QUERY = (
    "SELECT k.source, k.event_id, e.seq, e.leaf_hash, e.request_digest"
    " FROM unnest(%s::text[], %s::text[]) AS k(source, event_id)"
    " CROSS JOIN LATERAL (SELECT x.seq, x.leaf_hash, x.request_digest FROM entries x"
    "   WHERE x.log_id = %s AND x.source = k.source AND x.event_id = k.event_id LIMIT 1) e"
)
LAST_SEQ_QUERY = (
    "SELECT c.id, (SELECT e.seq FROM entries e WHERE e.log_id = %s AND e.conversation_id = c.id"
    "   ORDER BY e.log_id DESC, e.conversation_id DESC, e.seq DESC LIMIT 1)"
    " FROM unnest(%s::text[]) AS c(id)"
)
ERASED_QUERY = (
    "SELECT s.scope FROM unnest(%s::text[]) AS s(scope)"
    " CROSS JOIN LATERAL (SELECT 1 FROM data_keys d WHERE d.log_id = %s AND d.scope = s.scope"
    "   AND d.wrapped IS NULL LIMIT 1) d"
)
"""The batch's scopes whose data key is destroyed (usually none): one probe of the
(log_id, scope) unique index per scope, whatever the statistics (``scope = ANY(...)`` lets the
planner scan every key of the log and filter)."""


def _existing_params(log_id: str, requests: Sequence[AppendRequest]) -> tuple[Any, ...]:
    """Every (source, id) of the batch, to find those already in the log (idempotency)."""
    sources = [ev.header.source for req in requests for ev in req.events]
    ids = [ev.header.event_id for req in requests for ev in req.events]
    return (sources, ids, log_id)


def _last_seq_params(log_id: str, requests: Sequence[AppendRequest]) -> tuple[Any, ...]:
    """Each conversation of the batch, for its latest seq (``conversation_prev``)."""
    conversations = sorted({ev.header.conversation_id for req in requests for ev in req.events})
    return (log_id, conversations)


STORED_QUERY = (
    "SELECT k.source, k.event_id, e.seq, e.leaf_hash, e.request_digest, e.received_at"
    " FROM unnest(%s::text[], %s::text[]) AS k(source, event_id)"
    " CROSS JOIN LATERAL (SELECT x.seq, x.leaf_hash, x.request_digest, x.received_at"
    "   FROM entries x WHERE x.log_id = %s AND x.source = k.source AND x.event_id = k.event_id"
    "   LIMIT 1) e"
)
LATEST_NOTE_QUERY = "SELECT note FROM checkpoints WHERE log_id = %s ORDER BY size DESC LIMIT 1"


def stored_results(
    conn: Connection,
    log: LogInfo,
    requests: Sequence[AppendRequest],
    *,
    attempted_at: Collection[datetime],
) -> list[AppendResult | None]:
    """For each request, its receipts if every one of its events is in the log with the same
    content, else None: what a batch whose COMMIT's reply was lost left behind. ``created`` is
    whether any of them was stored by an attempt at ``attempted_at`` (the ``now`` each attempt
    passed to :func:`append_batch`, which every entry it stores keeps as ``received_at``).
    The latest checkpoint covers them all (each batch signs one before it commits)."""
    pg = driver_connection(conn)
    with pg.pipeline():
        stored_cur = pg.execute(STORED_QUERY, _existing_params(log.id, requests))
        note_cur = pg.execute(LATEST_NOTE_QUERY, (log.id,))
        stored = {
            (source, event_id): (bytes(digest), Receipt(event_id, seq, bytes(leaf)), received)
            for source, event_id, seq, leaf, digest, received in stored_cur.fetchall()
        }
        note_row = note_cur.fetchone()
    results: list[AppendResult | None] = []
    for req in requests:
        found = [stored.get((ev.header.source, ev.header.event_id)) for ev in req.events]
        if note_row is None or any(
            row is None or row[0] != ev.request_digest
            for row, ev in zip(found, req.events, strict=True)
        ):
            results.append(None)
            continue
        rows = [row for row in found if row is not None]
        ours = {row[1].seq for row in rows if row[2] in attempted_at}
        results.append(
            AppendResult(
                receipts=[row[1] for row in rows],
                created=bool(ours),
                checkpoint=str(note_row[0]),
                appended=len(ours),
            )
        )
    return results


__all__ = ["BatchOutcome", "append_batch", "stored_results"]
