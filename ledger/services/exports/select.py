"""What an export reads: the plan (which seqs, at which signed checkpoint) and the entries
themselves, streamed a chunk at a time with their payloads opened.

Everything is read at the log's latest signed checkpoint, in the caller's read-only,
repeatable-read unit of work, so every file of an export describes the same tree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection

from ledger.core.checkpoint import open_checkpoint
from ledger.core.commitment import SALT_SIZE, commitment_matches
from ledger.core.entry import subject_fragment
from ledger.core.merkle import verify_consistency
from ledger.core.sampling import sample_seqs
from ledger.core.sealing import NONCE_SIZE, payload_aad_prefix, payload_cipher
from ledger.core.signing import NoteVerifier
from ledger.domain import LogInfo
from ledger.errors import ConsistencyProofInvalid, CryptoError, ExportInvalid
from ledger.services.exports.model import AccessRecord, ExportedEntry
from ledger.services.exports.query import ExportQuery
from ledger.storage import proofs
from ledger.storage.anchorings import last_anchored_checkpoint
from ledger.storage.checkpoints import StoredCheckpoint, checkpoint_at, latest_checkpoint
from ledger.storage.entries import (
    EntryRow,
    chunk_rows,
    conversation_entries,
    conversations_containing,
    entries_with_payloads,
    seq_bounds_received,
    stream_entries_of_type,
)
from ledger.storage.keystore import DataKeyStore, verifier_keys

CHUNK = 5000
MAX_CONVERSATION_ENTRIES = 100_000

Selection = Literal["range", "entries", "sample"]


@dataclass
class ExportPlan:
    checkpoint: StoredCheckpoint
    selection: Selection
    start: int = 0
    end: int = 0
    """``[start, end)``: the range, or the sample's population."""
    conversations: list[str] = field(default_factory=list)
    sample: list[int] = field(default_factory=list)
    since: StoredCheckpoint | None = None
    """The earlier checkpoint the bundle proves consistency from (auditor's or last anchored)."""

    @property
    def seqs(self) -> list[int] | None:
        """The seqs a sample bundle carries: the population's first and last, and the sample."""
        if self.selection != "sample":
            return None
        return sorted({self.start, self.end - 1, *self.sample})


def plan_export(conn: Connection, log: LogInfo, query: ExportQuery) -> ExportPlan:
    """Which entries, at which checkpoint; ``ExportInvalid`` for a range beyond the log, a data
    subject with no conversation, a sample larger than its population, a ``since_checkpoint``
    that is not one of this log's."""
    checkpoint = latest_checkpoint(conn, log.id)
    size = checkpoint.size
    if query.is_range:
        start, end = _range(conn, log, query, size)
        plan = ExportPlan(checkpoint, "range", start, end)
        if query.sample is not None:
            if query.sample > end - start:
                raise ExportInvalid(
                    f"sample {query.sample} is larger than the population "
                    f"[{start}, {end}) of {end - start} entries"
                )
            plan.selection = "sample"
            plan.sample = sample_seqs(checkpoint.root, query.seed, start, end, query.sample)
    else:
        plan = ExportPlan(checkpoint, "entries", conversations=_conversations(conn, log, query))
    plan.since = _since(conn, log, query, checkpoint)
    return plan


def _range(conn: Connection, log: LogInfo, q: ExportQuery, size: int) -> tuple[int, int]:
    if q.from_time is not None or q.to_time is not None:
        bounds = seq_bounds_received(
            conn,
            log.id,
            since=q.from_time or _FAR_PAST,
            before=q.to_time or _FAR_FUTURE,
            size=size,
        )
        if bounds is None:
            raise ExportInvalid("no entry of the log was received in that time range")
        # The range's neighbours come along: they show the window is complete at both ends.
        return max(bounds[0] - 1, 0), min(bounds[1] + 2, size)
    start = q.start_seq or 0
    end = size if q.end_seq is None else q.end_seq
    if size == 0:
        raise ExportInvalid(f"log {log.id!r} has no entries yet")
    if end > size or start >= size:
        raise ExportInvalid(
            f"the range [{start}, {end}) is beyond the log: its latest signed "
            f"checkpoint has {size} entries"
        )
    return start, end


_FAR_PAST = datetime.fromisoformat("0001-01-02T00:00:00+00:00")
_FAR_FUTURE = datetime.fromisoformat("9999-12-31T00:00:00+00:00")


def _conversations(conn: Connection, log: LogInfo, q: ExportQuery) -> list[str]:
    size = latest_checkpoint(conn, log.id).size
    if q.data_subject is not None:
        found = conversations_containing(conn, log.id, subject_fragment(q.data_subject), size=size)
        if not found:
            raise ExportInvalid(
                f"no conversation of log {log.id!r} has data subject "
                f"{q.data_subject!r} as its customer"
            )
        return found
    return list(q.conversations)


def _since(
    conn: Connection, log: LogInfo, q: ExportQuery, checkpoint: StoredCheckpoint
) -> StoredCheckpoint | None:
    if q.since_checkpoint is None:
        earlier = last_anchored_checkpoint(conn, log.id)
        return earlier if earlier is not None and earlier.size <= checkpoint.size else None
    verifiers = [NoteVerifier.from_verifier_key(k) for k in verifier_keys(conn, log.id)]
    try:
        named = open_checkpoint(q.since_checkpoint, verifiers)
    except CryptoError as exc:
        raise ExportInvalid(
            f"since_checkpoint is not a checkpoint signed by this log: {exc}"
        ) from exc
    if named.origin != log.origin or named.size > checkpoint.size:
        raise ExportInvalid(
            "since_checkpoint is not a checkpoint of this log's tree "
            f"(origin {named.origin!r}, size {named.size})"
        )
    stored = checkpoint_at(conn, log.id, named.size)
    try:
        hashes = proofs.consistency_proof(conn, log.id, named.size, checkpoint.size)
        verify_consistency(named.size, checkpoint.size, hashes, named.root_hash, checkpoint.root)
    except ConsistencyProofInvalid as exc:
        raise ExportInvalid("since_checkpoint is not consistent with this log's tree") from exc
    if stored is None:
        raise ExportInvalid(f"since_checkpoint (size {named.size}) is not one this log signed")
    return StoredCheckpoint(
        named.size, named.root_hash, q.since_checkpoint, stored.key_id, stored.signed_at
    )


# --- reading ---------------------------------------------------------------------------------

Row = tuple[int, bytes, bytes, int | None, bytes | None]
"""``(seq, leaf_hash, entry, data_key_id, sealed)``: an entry and its sealed payload, if any."""
Ciphers = dict[int, AESGCM | None]
"""AES-GCM contexts by data key id; None for a destroyed (or unknown) key."""
KEY_CACHE = 20_000
"""Data keys kept unwrapped across chunks (one per conversation scope: a chunk may name
thousands). Past this, the cache restarts from the keys of the chunk at hand."""


class _Keys:
    """Data keys by id, unwrapped in one query for all the keys a chunk names that are not
    cached yet (a query per key would cost a round trip every few entries)."""

    def __init__(self, conn: Connection, log: LogInfo, data_keys: DataKeyStore) -> None:
        self._conn = conn
        self._log_id = log.id
        self._data_keys = data_keys
        self._cache: Ciphers = {}

    def ciphers(self, key_ids: Iterable[int | None]) -> Ciphers:
        wanted = {k for k in key_ids if k is not None}
        missing = [k for k in wanted if k not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > KEY_CACHE:
                self._cache = {k: self._cache[k] for k in wanted if k in self._cache}
            found = self._data_keys.keys_by_id(self._conn, self._log_id, missing)
            for k in missing:
                key = found.get(k)
                self._cache[k] = None if key is None else payload_cipher(key)
        return {k: self._cache[k] for k in wanted}


_MISSING: Final = ("missing", None, None)
_ERASED: Final = ("erased", None, None)
_UNDECRYPTABLE: Final = ("undecryptable", None, None)

Carried = tuple[int, bytes, bytes, str, bytes | None, bytes | None]
"""What a bundle's ``entries.jsonl`` carries of an entry: ``(seq, leaf_hash, entry bytes,
payload_status, payload bytes, salt)``; the payload opened and checked as for an
:class:`ExportedEntry`, but nothing parsed beyond what that takes."""


class _Opener:
    """Rows to entries: the entry parsed, its payload opened (AES-GCM) and checked against the
    entry's commitment, when the query reports it and the profile carries payloads."""

    def __init__(
        self,
        log: LogInfo,
        reports: Callable[[str], bool],
        *,
        with_payloads: bool,
        every: bool,
    ) -> None:
        self._aad_prefix = payload_aad_prefix(log.id)
        self._reports = reports
        self._every = every
        """Every event type is reported (no ``event_types`` filter)."""
        self._with_payloads = with_payloads

    def entries(self, rows: Iterable[Row], ciphers: Ciphers) -> Iterator[ExportedEntry]:
        """One :class:`ExportedEntry` at a time, its payload parsed."""
        loads, reports, opened = orjson.loads, self._reports, self.opened
        with_payloads, every = self._with_payloads, self._every
        for seq, leaf, entry_bytes, key_id, sealed in rows:
            entry = loads(entry_bytes)
            if with_payloads and (every or reports(str((entry.get("event") or {}).get("type")))):
                status, data, salt = opened(seq, entry, key_id, sealed, ciphers)
                payload = None if data is None else loads(data)
                yield ExportedEntry(seq, leaf, entry_bytes, entry, status, payload, data, salt)
            else:
                yield ExportedEntry(seq, leaf, entry_bytes, entry, "withheld")

    def carried(self, rows: Iterable[Row], ciphers: Ciphers) -> list[Carried]:
        """The same, as :data:`Carried` tuples, for a whole chunk: no payload parsed, no
        object kept per entry but the tuple (a bundle's hot path)."""
        out: list[Carried] = []
        append, loads, reports, opened = out.append, orjson.loads, self._reports, self.opened
        with_payloads, every = self._with_payloads, self._every
        for seq, leaf, entry_bytes, key_id, sealed in rows:
            entry = loads(entry_bytes)
            if with_payloads and (every or reports(str((entry.get("event") or {}).get("type")))):
                status, data, salt = opened(seq, entry, key_id, sealed, ciphers)
                append((seq, leaf, entry_bytes, status, data, salt))
            else:
                append((seq, leaf, entry_bytes, "withheld", None, None))
        return out

    def opened(
        self,
        seq: int,
        entry: dict[str, Any],
        key_id: int | None,
        sealed: bytes | None,
        ciphers: Ciphers,
    ) -> tuple[str, bytes | None, bytes | None]:
        """``open``, with the common case settled first: the payload decrypts and SHA-256 of
        it (salt || data) is the entry's commitment, base64 for base64, as the ledger writes
        it. Anything else (erased, missing, undecryptable, a commitment to decode) is left to
        ``open``."""
        cipher = None if key_id is None else ciphers.get(key_id)
        if cipher is not None and sealed is not None:
            try:
                plain = cipher.decrypt(
                    sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], self._aad_prefix + b"%d" % seq
                )
            except (InvalidTag, ValueError):
                return _UNDECRYPTABLE
            payload = entry.get("payload")
            committed = payload.get("commitment") if type(payload) is dict else None
            if (
                len(plain) >= SALT_SIZE
                and type(committed) is str
                and committed
                == binascii.b2a_base64(hashlib.sha256(plain).digest(), newline=False).decode()
            ):
                return "verified", plain[SALT_SIZE:], plain[:SALT_SIZE]
        return self.open(seq, entry, key_id, sealed, ciphers)

    def open(
        self,
        seq: int,
        entry: dict[str, Any],
        key_id: int | None,
        sealed: bytes | None,
        ciphers: Ciphers,
    ) -> tuple[str, bytes | None, bytes | None]:
        """``(status, canonical payload bytes, salt)``."""
        if key_id is None or sealed is None:
            return _MISSING
        cipher = ciphers.get(key_id)
        if cipher is None:
            return _ERASED
        try:
            plain = cipher.decrypt(
                sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], self._aad_prefix + b"%d" % seq
            )
        except (InvalidTag, ValueError):
            return _UNDECRYPTABLE
        salt, data = plain[:SALT_SIZE], plain[SALT_SIZE:]
        try:
            committed = base64.b64decode(entry["payload"]["commitment"], validate=True)
        except (KeyError, TypeError, ValueError):
            committed = b""
        return "verified" if commitment_matches(committed, salt, data) else "mismatch", data, salt


def read_entries(
    conn: Connection,
    log: LogInfo,
    plan: ExportPlan,
    query: ExportQuery,
    *,
    data_keys: DataKeyStore,
    with_payloads: bool,
) -> Iterator[ExportedEntry]:
    """Every entry the plan names, in seq order, one chunk of rows in memory at a time.
    Payloads are opened for the entries the query reports, when the profile carries payloads;
    otherwise their status is ``withheld``.

    A range is read ahead: the next chunk's rows (and its data keys) are fetched on a second
    thread, on ``conn``, while this one handles the chunk at hand (the wait on PostgreSQL does
    not hold the GIL); ``conn`` must not be used otherwise until the iteration ends or the
    iterator is closed."""
    opener = _Opener(log, query.reports, with_payloads=with_payloads, every=not query.event_types)
    keys = _Keys(conn, log, data_keys) if with_payloads else None
    for rows, ciphers in _chunks(conn, log, plan, keys):
        yield from opener.entries(rows, ciphers)


def read_carried(
    conn: Connection,
    log: LogInfo,
    plan: ExportPlan,
    query: ExportQuery,
    *,
    data_keys: DataKeyStore,
    with_payloads: bool,
) -> Iterator[list[Carried]]:
    """:func:`read_entries` as a bundle's ``entries.jsonl`` needs it: :data:`Carried` tuples,
    a chunk (at most ``CHUNK``) at a time; the same read ahead, the same rule on ``conn``."""
    opener = _Opener(log, query.reports, with_payloads=with_payloads, every=not query.event_types)
    keys = _Keys(conn, log, data_keys) if with_payloads else None
    for rows, ciphers in _chunks(conn, log, plan, keys):
        yield opener.carried(rows, ciphers)


def _chunks(
    conn: Connection, log: LogInfo, plan: ExportPlan, keys: _Keys | None
) -> Iterator[tuple[list[Row], Ciphers]]:
    if plan.selection == "range":
        yield from _range_chunks(conn, log.id, plan.start, plan.end, keys)
        return
    for batch in _batched(_rows(conn, log, plan), CHUNK):
        yield batch, keys.ciphers(row[3] for row in batch) if keys is not None else {}


def _batched(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _rows(conn: Connection, log: LogInfo, plan: ExportPlan) -> Iterator[Row]:
    """The rows of a sample or of conversations (a range is read by ``_range_chunks``)."""
    if plan.selection == "sample":
        for seq in plan.seqs or ():
            yield from _as_rows(entries_with_payloads(conn, log.id, seq, seq + 1))
    else:
        streams = [
            _as_rows(
                conversation_entries(
                    conn,
                    log.id,
                    conversation,
                    plan.checkpoint.size,
                    limit=MAX_CONVERSATION_ENTRIES,
                )
            )
            for conversation in plan.conversations
        ]
        yield from heapq.merge(*streams, key=lambda row: row[0])


def _as_rows(rows: Iterable[EntryRow]) -> Iterator[Row]:
    for seq, leaf, raw, key_id, sealed in rows:
        yield int(seq), bytes(leaf), bytes(raw), key_id, None if sealed is None else bytes(sealed)


def _range_chunks(
    conn: Connection, log_id: str, start: int, end: int, keys: _Keys | None
) -> Iterator[tuple[list[Row], Ciphers]]:
    """The rows of ``[start, end)`` and the ciphers of their payloads, a chunk at a time, the
    next chunk fetched while the caller handles this one. Stops at the first empty chunk."""

    def fetch(low: int) -> tuple[list[Row], Ciphers] | None:
        found = chunk_rows(conn, log_id, low, min(low + CHUNK, end))
        if found is None:
            return None
        entries, payloads = found
        rows: list[Row]
        if [e[0] for e in entries] == [p[0] for p in payloads]:  # every entry has its payload
            rows = [(e[0], e[1], e[2], p[1], p[2]) for e, p in zip(entries, payloads, strict=True)]
        else:
            by_seq = {p[0]: p for p in payloads}
            rows = []
            for seq, leaf, raw, *_ in entries:
                payload = by_seq.get(seq)
                if payload is None:
                    rows.append((seq, leaf, raw, None, None))
                else:
                    rows.append((seq, leaf, raw, payload[1], payload[2]))
        ciphers = keys.ciphers(row[1] for row in payloads) if keys is not None else {}
        return rows, ciphers

    lows = range(start, end, CHUNK)
    if not lows:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-read") as ahead:
        pending: Future[tuple[list[Row], Ciphers] | None] | None = ahead.submit(fetch, lows[0])
        try:
            for i in range(len(lows)):
                assert pending is not None
                got = pending.result()
                pending = None
                if got is None:
                    return
                if i + 1 < len(lows):
                    pending = ahead.submit(fetch, lows[i + 1])
                yield got
        finally:
            # Closed early (or failed): the read ahead finishes before ``conn`` is handed back.
            if pending is not None and not pending.cancel():
                futures_wait([pending])


def accesses_of_subject(
    conn: Connection,
    log: LogInfo,
    system_log: LogInfo,
    entries: Iterable[ExportedEntry],
    conversations: list[str],
    *,
    data_keys: DataKeyStore,
) -> list[AccessRecord]:
    """Every access to the subject's records: the ``data.access`` events of its conversations
    (their purpose) and the auditors' reads of those conversations' trails, from the tenant's
    system log (when, and that it was an audit; never who)."""
    records = [
        AccessRecord(
            time=str(e.entry["event"]["time"]),
            kind="data.access",
            purpose=str((e.payload or {}).get("purpose", "(payload not available)")),
            conversation=str(e.entry["event"]["conversation"]),
            seq=e.seq,
            log=log.id,
        )
        for e in entries
        if e.entry.get("event", {}).get("type") == DATA_ACCESS
    ]
    wanted = set(conversations)
    keys = _Keys(conn, system_log, data_keys)
    opener = _Opener(system_log, _everything, with_payloads=True, every=True)
    size = latest_checkpoint(conn, system_log.id).size
    # Reads are the system log's "access" stream: read by its conversation index, not the log.
    reads = _as_rows(
        stream_entries_of_type(conn, system_log.id, ACCESS_STREAM, TRAIL_READ, size=size)
    )
    for batch in _batched(reads, CHUNK):
        ciphers = keys.ciphers(row[3] for row in batch)
        for seq, _leaf, raw, key_id, sealed in batch:
            entry = orjson.loads(raw)
            _status, data, _salt = opener.open(seq, entry, key_id, sealed, ciphers)
            payload = None if data is None else orjson.loads(data)
            if payload is None or payload.get("log") != log.id:
                continue
            if payload.get("conversation") in wanted:
                records.append(
                    AccessRecord(
                        time=str(entry["event"]["time"]),
                        kind="trail.read",
                        purpose="audit review of the conversation's trail",
                        conversation=str(payload["conversation"]),
                        seq=seq,
                        log=system_log.id,
                    )
                )
    return sorted(records, key=lambda r: (r.time, r.log, r.seq))


def _everything(_event_type: str) -> bool:
    return True


DATA_ACCESS = "handoff.data.access.v1"
TRAIL_READ = "ledger.trail.read.v1"
ACCESS_STREAM = "access"
"""The system-log stream reads are recorded in (``system_log.read_event``)."""
