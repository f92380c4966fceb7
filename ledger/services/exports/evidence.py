"""What a version 2 evidence bundle carries beyond the log's own entries and proofs
(``docs/evidence-bundle.md``, "Erasure records" and "Witness cosignatures"):

- for every erased payload of the bundle (by an erasure or by retention), the signed record in
  the tenant's system log that covers it: the record's entry and payload bytes, a C2SP
  tlog-proof to the system log's checkpoint, that checkpoint, and the system log's verifier
  keys and rotations (under ``erasures/``), so an offline verifier checks the record as it
  checks any entry;
- the log's writer-key records (``ledger.writer_key.added.v1`` / ``revoked.v1``, issue 18), in
  the same way and under the same system-log checkpoint (``erasures/writer-keys.jsonl``): the
  verifiers take writer keys and their revocation times from them, not from the ``writer_keys``
  table (the ledger's word); trails carry the records their entries' kids need
  (:func:`trail_writer_key_records`);
- the witness cosignatures the database holds for the bundle's checkpoint, and for the system
  log's checkpoint when the bundle carries one (``witnesses.json``).

Read in the export's snapshot, so the records are those that existed at the bundle's
checkpoint. A record covers an erased entry when it is of the same log, names the entry's
conversation, and was made at a log size above the entry's seq.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from ledger.core.canonical import canonicalize
from ledger.core.entry import b64
from ledger.core.tlog_proof import format_tlog_proof
from ledger.core.writer_signature import WriterKey, writer_keys_from_records
from ledger.domain import LogInfo
from ledger.errors import NotFound
from ledger.services.system_log import system_log_id
from ledger.services.verification.erasures import OpenedRecord, erasure_records
from ledger.services.verification.writer_keys import writer_key_records
from ledger.storage import proofs
from ledger.storage.anchorings import cosignatures_at
from ledger.storage.checkpoints import StoredCheckpoint, latest_checkpoint
from ledger.storage.keystore import DataKeyStore, KeyRing, rotation_statements, verifier_keys

ERASURES_DIR = "erasures/"
WRITER_KEY_RECORDS_FILE = f"{ERASURES_DIR}writer-keys.jsonl"
WITNESSES_FILE = "witnesses.json"


@dataclass
class ErasureEvidence:
    """The records covering a bundle's erased payloads, and the log's writer-key records, and
    where they are signed (one system-log checkpoint for both)."""

    origin: str
    checkpoint: StoredCheckpoint
    records: list[OpenedRecord]
    proofs: dict[int, list[bytes]]
    keys: list[str]
    rotations: list[str]
    key_records: list[OpenedRecord] = field(default_factory=list)

    def files(self) -> Iterator[tuple[str, bytes]]:
        yield f"{ERASURES_DIR}checkpoint", self.checkpoint.note.encode()
        yield f"{ERASURES_DIR}verifier-keys", "".join(k + "\n" for k in self.keys).encode()
        for i, statement in enumerate(self.rotations):
            yield f"{ERASURES_DIR}rotations/{i}.note", statement.encode()
        yield f"{ERASURES_DIR}records.jsonl", b"".join(record_line(r) for r in self.records)
        if self.key_records:
            yield WRITER_KEY_RECORDS_FILE, b"".join(record_line(r) for r in self.key_records)
        for record in sorted([*self.records, *self.key_records], key=lambda r: r.seq):
            yield (
                f"{ERASURES_DIR}proofs/{record.seq}.tlog-proof",
                format_tlog_proof(
                    record.seq, self.proofs[record.seq], self.checkpoint.note
                ).encode(),
            )

    def manifest(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "tree_size": self.checkpoint.size,
            "records": len(self.records),
            "writer_key_records": len(self.key_records),
        }

    def writer_keys(self) -> list[WriterKey]:
        """The keys the records state (what ``writer-keys.json`` shows, for reading)."""
        return recorded_keys(self.key_records)


def recorded_keys(records: list[OpenedRecord]) -> list[WriterKey]:
    return writer_keys_from_records((r.seq, r.type, r.record) for r in records)[0]


def record_line(record: OpenedRecord) -> bytes:
    """A line of ``erasures/records.jsonl``: canonical JSON, as ``entries.jsonl``'s lines."""
    return (
        canonicalize(
            {
                "seq": record.seq,
                "leaf_hash": b64(record.leaf_hash),
                "entry_b64": b64(record.entry),
                "payload_b64": b64(record.data),
                "payload_salt": b64(record.salt),
            }
        )
        + b"\n"
    )


def erasure_evidence(
    conn: Connection, log: LogInfo, keys: KeyRing, erased: list[tuple[int, str]]
) -> ErasureEvidence | None:
    """The records covering ``erased`` (``(seq, conversation)`` of the bundle's erased
    payloads) and the log's writer-key records; None when there is nothing erased and no
    writer key. An erased payload no record covers (a key destroyed behind the ledger's back)
    is left so: the bundle then fails verification at that seq, which is what it should show."""
    system_log = system_log_id(log.tenant)
    try:
        checkpoint = latest_checkpoint(conn, system_log)
    except NotFound:
        if erased:
            raise
        return None  # no system log yet: no writer key was ever recorded
    key_records = writer_key_records(conn, keys.data_keys, log, size=checkpoint.size)
    if not erased and not key_records:
        return None
    wanted = {conversation for _, conversation in erased}
    covering: dict[int, OpenedRecord] = {}
    for record in (
        erasure_records(conn, keys.data_keys, system_log, size=checkpoint.size) if erased else ()
    ):
        conversations = record.record.get("conversations")
        if (
            record.log == log.id
            and isinstance(conversations, list)
            and wanted.intersection(c for c in conversations if isinstance(c, str))
        ):
            covering[record.seq] = record
    records = [covering[seq] for seq in sorted(covering)]
    seqs = sorted([*(r.seq for r in records), *(r.seq for r in key_records)])
    paths = proofs.inclusion_proofs(conn, system_log, seqs, checkpoint.size) if seqs else []
    origin = str(checkpoint.note.split("\n", 1)[0])
    return ErasureEvidence(
        origin=origin,
        checkpoint=checkpoint,
        records=records,
        proofs=dict(zip(seqs, paths, strict=True)),
        keys=verifier_keys(conn, system_log),
        rotations=rotation_statements(conn, system_log),
        key_records=key_records,
    )


def trail_writer_key_records(
    conn: Connection, log: LogInfo, data_keys: DataKeyStore, kids: set[str]
) -> tuple[dict[str, Any] | None, list[WriterKey]]:
    """A trail's ``writer_key_records``: the system-log records of the keys ``kids`` (added,
    revoked), each with its exact entry bytes, payload and salt, and an RFC 9162 inclusion
    proof to the system log's signed checkpoint, which comes with them (None without ``kids``);
    and the keys they state (the trail's ``writer_keys``, for reading)."""
    if not kids:
        return None, []
    system_log = system_log_id(log.tenant)
    checkpoint = latest_checkpoint(conn, system_log)
    records = [
        r
        for r in writer_key_records(conn, data_keys, log, size=checkpoint.size)
        if r.record.get("kid") in kids
    ]
    seqs = [r.seq for r in records]
    paths = proofs.inclusion_proofs(conn, system_log, seqs, checkpoint.size) if seqs else []
    carried = {
        "origin": str(checkpoint.note.split("\n", 1)[0]),
        "tree_size": checkpoint.size,
        "checkpoint": checkpoint.note,
        "records": [
            {
                "seq": r.seq,
                "leaf_hash": b64(r.leaf_hash),
                "entry_b64": b64(r.entry),
                "payload_b64": b64(r.data),
                "payload_salt": b64(r.salt),
                "hashes": [b64(h) for h in path],
            }
            for r, path in zip(records, paths, strict=True)
        ],
    }
    return carried, recorded_keys(records)


def witness_cosignatures(
    conn: Connection, log: LogInfo, size: int, evidence: ErasureEvidence | None
) -> bytes | None:
    """``witnesses.json``: every stored cosignature of the bundle's checkpoint (and of the
    system log's checkpoint it carries), or None when there is none."""
    found = [
        {"checkpoint": "checkpoint", "witness_key": witness, "cosignature": line}
        for witness, line in cosignatures_at(conn, log.id, size)
    ]
    if evidence is not None:
        found += [
            {"checkpoint": f"{ERASURES_DIR}checkpoint", "witness_key": witness, "cosignature": line}
            for witness, line in cosignatures_at(
                conn, system_log_id(log.tenant), evidence.checkpoint.size
            )
        ]
    return canonicalize({"cosignatures": found}) if found else None
