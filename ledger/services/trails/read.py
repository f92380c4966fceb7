"""A conversation's trail: every entry of the conversation in seq order, with its canonical bytes,
leaf hash, decrypted payload and an RFC 9162 inclusion proof against one signed checkpoint; the
back-link check that shows the trail is gap-free on its own; and the at-a-glance sections of
:mod:`ledger.services.trails.summary`.

The trail is read *at* the latest checkpoint: entries beyond its size are left out, so every
entry served has a proof against the note served with it.

Cost does not grow with the log, and the round trips do not grow with the conversation: the
checkpoint, one query summing the stored size of the conversation's entries and payloads (a
trail over ``MAX_TRAIL_STORED_BYTES`` is refused before anything is read out), one query on
``ix_entries_conversation`` (log_id, conversation_id, seq) for entries and payloads, one query
for the proof nodes of all entries together, and one per distinct data key (a conversation has
one); when the conversation was erased, one more for the erasure that destroyed its key (each
erased entry carries it as ``erasure``).
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from ledger.core import merkle
from ledger.core.writer_signature import jws_kid
from ledger.domain import LogInfo
from ledger.errors import NotFound, TrailTooLarge
from ledger.events.envelope import CONVERSATION_ID
from ledger.services.exports.evidence import trail_writer_key_records
from ledger.services.reads.entries import attach_erasures, open_payload
from ledger.services.system_log import Access, SystemLog
from ledger.services.trails.summary import TrailEvent, summarize
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.entries import conversation_entries, conversation_stored_bytes
from ledger.storage.keystore import DataKeyStore, rotation_statements
from ledger.storage.proofs import inclusion_proofs

MAX_TRAIL_ENTRIES = 10_000
"""A trail is served whole (it must be complete to prove anything); beyond this, use exports."""
MAX_TRAIL_STORED_BYTES = 64 << 20
"""Nor is a trail served whose entries and sealed payloads come to more than this as stored
(summed in the database before any is read): its JSON is about twice that, and 10,000 entries of
1 MiB would be a 10+ GB answer. Beyond it, use exports."""
_EXPORT_INSTEAD = (
    'export it instead (POST /v1/logs/{log}/exports with "conversations": [{conversation!r}])'
)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One row of the conversation as stored: the entry bytes, their parse, the sealed payload."""

    seq: int
    leaf: bytes
    entry_bytes: bytes
    entry: dict[str, Any]
    """The parsed entry bytes; empty if they are not a JSON object (then a problem is shown)."""
    data_key_id: int | None
    sealed: bytes | None


class _RequestKeys:
    """Data keys for one trail read. Cached only for the request, never across requests: an
    erasure destroys the key, and the next read must see it gone."""

    def __init__(self, store: DataKeyStore) -> None:
        self._store = store
        self._keys: dict[int, bytes | None] = {}

    def get(self, conn: Connection, log_id: str, key_id: int) -> bytes | None:
        if key_id not in self._keys:
            self._keys[key_id] = self._store.key_by_id(conn, log_id, key_id)
        return self._keys[key_id]


def read_trail_for(
    conn: Connection,
    system_log: SystemLog,
    log: LogInfo,
    conversation_id: str,
    *,
    reader: dict[str, Any],
    access: Access,
    data_keys: DataKeyStore,
    now: datetime,
) -> dict[str, Any]:
    """The auditor's use case: the read is recorded in the tenant's system log, durably, before
    anything is read (PCI DSS 10.2.1.3: fail closed), then the trail is read."""
    if not CONVERSATION_ID.fullmatch(conversation_id):  # no conversation can have that id
        raise NotFound(f"log {log.id!r} has no conversation {conversation_id!r}")
    system_log.record_read(
        "trail", log, actor=reader, access=access, now=now, conversation=conversation_id
    )
    return read_trail(conn, log, conversation_id, data_keys)


def read_trail(
    conn: Connection, log: LogInfo, conversation_id: str, data_keys: DataKeyStore
) -> dict[str, Any]:
    """The whole trail of ``conversation_id``, as served by the API and printed by the CLI.

    Raises ``NotFound`` if the conversation has no entry covered by the latest checkpoint.
    """
    checkpoint = latest_checkpoint(conn, log.id)
    size, note = checkpoint.size, checkpoint.note
    rows = _conversation_rows(conn, log.id, conversation_id, size)
    if not rows:
        raise NotFound(f"log {log.id!r} has no conversation {conversation_id!r}")
    proofs = inclusion_proofs(conn, log.id, [r.seq for r in rows], size)
    keys = _RequestKeys(data_keys)
    entries: list[dict[str, Any]] = []
    events: list[TrailEvent] = []
    for row, proof in zip(rows, proofs, strict=True):
        entry = row.entry
        opened = open_payload(
            lambda key_id: keys.get(conn, log.id, key_id),
            log_id=log.id,
            seq=row.seq,
            entry=row.entry,
            data_key_id=row.data_key_id,
            sealed=row.sealed,
        )
        payload, status = opened.payload, opened.status
        entries.append(
            {
                "seq": row.seq,
                "leaf_hash": _b64(row.leaf),
                "entry_b64": _b64(row.entry_bytes),
                "entry": entry,
                **opened.as_json(),
                "inclusion_proof": {
                    "leaf_index": row.seq,
                    "tree_size": size,
                    "hashes": [_b64(h) for h in proof],
                },
            }
        )
        events.append(
            _trail_event(row.seq, entry, payload if status == "verified" else None, status)
        )
    attach_erasures(conn, log.id, entries, [row.data_key_id for row in rows])
    signing = {
        kid
        for row in rows
        if row.entry.get("writer_signature") is not None
        and (kid := jws_kid(row.entry.get("writer_signature"))) is not None
    }
    # The keys come as the system log records them, with inclusion proofs (the verifiers check
    # against those); ``writer_keys`` restates them for reading, as before.
    key_records, stated = trail_writer_key_records(conn, log, data_keys, signing)
    return {
        "log": log.id,
        "origin": log.origin,
        "conversation": conversation_id,
        "tree_size": size,
        "checkpoint": note,
        "back_links": check_back_links(conversation_id, rows),
        "summary": summarize(events),
        "entries": entries,
        "writer_keys": [key.as_json() for key in stated],
        "writer_key_records": key_records,
        # Every key rotation statement of the log, oldest first: a verifier that pinned an
        # earlier key follows them to the key that signed ``checkpoint`` (ledger/core/rotation.py).
        "rotations": rotation_statements(conn, log.id),
    }


def check_back_links(conversation_id: str, rows: Sequence[StoredEntry]) -> dict[str, Any]:
    """Whether the entries form one unbroken back-linked chain: the first names no predecessor
    (``conversation_prev`` null), each next one names the seq of the one before it, and each
    belongs to this conversation. A back-link read from bytes that do not hash to the stored
    leaf proves nothing, so that is checked as well. Each problem says what was expected and
    what was found, and what it means."""
    problems: list[dict[str, Any]] = []
    seqs = {r.seq for r in rows}

    def problem(seq: int, what: str, expected: Any, found: Any, message: str) -> None:
        problems.append(
            {
                "seq": seq,
                "what": what,
                "expected": expected,
                "found": found,
                "message": f"seq {seq}: {message}",
            }
        )

    previous: int | None = None
    for row in rows:
        entry = row.entry
        if merkle.leaf_hash(row.entry_bytes) != row.leaf:
            problem(
                row.seq,
                "leaf_hash",
                _b64(merkle.leaf_hash(row.entry_bytes)),
                _b64(row.leaf),
                "the entry bytes do not hash to the stored leaf hash "
                "(the entry was altered after it was appended)",
            )
        if entry.get("seq") != row.seq:
            problem(
                row.seq,
                "seq",
                row.seq,
                entry.get("seq"),
                f"the entry bytes name seq {entry.get('seq')}",
            )
        named = (entry.get("event") or {}).get("conversation")
        if named != conversation_id:
            problem(
                row.seq,
                "conversation",
                conversation_id,
                named,
                f"the entry belongs to conversation {named!r}, not {conversation_id!r} "
                "(it was moved into this trail)",
            )
        found = entry.get("conversation_prev")
        if found != previous:
            problem(
                row.seq, "conversation_prev", previous, found, _link_message(previous, found, seqs)
            )
        previous = row.seq
    return {
        "status": "broken" if problems else "intact",
        "entries": len(rows),
        "first_seq": rows[0].seq if rows else None,
        "last_seq": rows[-1].seq if rows else None,
        "problems": problems,
    }


def _link_message(expected: int | None, found: Any, seqs: set[int]) -> str:
    if expected is None:
        return (
            f"the conversation's first entry here names conversation_prev {found}; "
            f"entry {found} is missing from the trail (removed or moved to another "
            "conversation)"
        )
    if found is None:
        return (
            f"conversation_prev is null, but the previous entry of the conversation is "
            f"seq {expected}: this entry claims to start the conversation"
        )
    if found in seqs:
        return (
            f"conversation_prev is {found}, but the previous entry of the trail is seq "
            f"{expected}: entry {expected} is not part of the chain (added or moved in)"
        )
    return (
        f"conversation_prev is {found}, but the previous entry of the trail is seq "
        f"{expected}: entry {found} is missing from the trail (removed or moved to "
        "another conversation)"
    )


# --- reads ---------------------------------------------------------------------------------------


def _conversation_rows(
    conn: Connection, log_id: str, conversation_id: str, size: int
) -> list[StoredEntry]:
    export = _EXPORT_INSTEAD.format(log=log_id, conversation=conversation_id)
    stored = conversation_stored_bytes(
        conn, log_id, conversation_id, size, limit=MAX_TRAIL_ENTRIES + 1
    )
    if stored > MAX_TRAIL_STORED_BYTES:
        raise TrailTooLarge(
            f"conversation {conversation_id!r} is {stored} bytes as stored, more than a trail "
            f"serves whole ({MAX_TRAIL_STORED_BYTES}); {export}"
        )
    rows = conversation_entries(conn, log_id, conversation_id, size, limit=MAX_TRAIL_ENTRIES + 1)
    if len(rows) > MAX_TRAIL_ENTRIES:
        raise TrailTooLarge(
            f"conversation {conversation_id!r} has more than {MAX_TRAIL_ENTRIES} entries; {export}"
        )
    return [
        StoredEntry(
            int(seq),
            bytes(leaf),
            bytes(raw),
            _parse_entry(bytes(raw)),
            key_id,
            bytes(sealed) if sealed is not None else None,
        )
        for seq, leaf, raw, key_id, sealed in rows
    ]


def _parse_entry(raw: bytes) -> dict[str, Any]:
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return entry if isinstance(entry, dict) else {}


def _trail_event(
    seq: int, entry: dict[str, Any], payload: dict[str, Any] | None, status: str
) -> TrailEvent:
    event = entry.get("event") or {}
    return TrailEvent(
        seq=seq,
        type=str(event.get("type")),
        event_id=str(event.get("id")),
        time=str(event.get("time")),
        actor=entry.get("actor") or {},
        resource=entry.get("resource"),
        payload=payload,
        payload_status=status,
    )


def _b64(data: bytes) -> str:
    # binascii directly: a 200-entry trail encodes ~4,000 hashes, and the wrapper shows.
    return binascii.b2a_base64(data, newline=False).decode("ascii")
