"""The writer keys `ledger verify` checks writer signatures against: from the tenant's system log.

Registering a writer key appends ``ledger.writer_key.added.v1`` (the log, the writer credential,
the kid and the public key) to the tenant's system log, and revoking one appends
``ledger.writer_key.revoked.v1`` (with the time it signs nothing from), each in the same
transaction as its row of ``writer_keys`` (``ledger.services.admin.writer_keys``). The table is
what ingest reads; the verifier reads the signed records instead, so a key inserted into the
table behind the ledger's back, or a revocation removed from it, changes nothing here: an entry
signed by such a key, or after its recorded revocation, fails. Forging a record needs the system
log's signing key and rewriting its chain, which the run covering the system log finds.

The records of the ``keys`` stream are read once per range checker (a few rows, by the
conversation index), each opened with its data key and matched against its entry's commitment,
as erasure records are (``erasures``).
"""

from __future__ import annotations

import orjson
from sqlalchemy import Connection

from ledger.core.writer_signature import (
    KEY_RECORD_TYPES,
    KEYS_STREAM,
    POLICY_CHANGED,
    RequiredPolicy,
    WriterKey,
    writer_keys_from_records,
)
from ledger.domain import LogInfo
from ledger.errors import IntegrityFailure, NotFound
from ledger.services.system_log import system_log_id
from ledger.services.verification.erasures import OpenedRecord, system_records
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.keystore import DataKeyStore


def writer_key_records(
    conn: Connection, data_keys: DataKeyStore, log: LogInfo, *, size: int
) -> list[OpenedRecord]:
    """``log``'s writer-key records (added, revoked) in its tenant's system log below ``size``,
    each opened and matched against its entry's commitment, in seq order: what ``ledger verify``
    reads, and what trails and bundles carry with their inclusion proofs."""
    return [
        record
        for record in system_records(
            conn, data_keys, system_log_id(log.tenant), KEYS_STREAM, KEY_RECORD_TYPES, size=size
        )
        if record.log == log.id
    ]


def recorded_writer_keys(
    conn: Connection, data_keys: DataKeyStore, log: LogInfo
) -> list[WriterKey]:
    """``log``'s writer keys and their revocations, as its tenant's system log records them
    below its latest signed checkpoint. ``IntegrityFailure`` (naming the system log and seq) for
    a record that does not open or does not make sense."""
    system_log = system_log_id(log.tenant)
    try:
        size = latest_checkpoint(conn, system_log).size
    except NotFound:
        return []
    records = writer_key_records(conn, data_keys, log, size=size)
    keys, problems = writer_keys_from_records((r.seq, r.type, r.record) for r in records)
    if problems:
        seq, what = problems[0]
        raise IntegrityFailure(what, log=system_log, seq=seq)
    return keys


def recorded_required_policy(
    conn: Connection, data_keys: DataKeyStore, log: LogInfo
) -> RequiredPolicy:
    """When ``log``'s writer-signature policy was ``required``, as its tenant's system log
    records the changes (``ledger.log.signatures.changed.v1``) below its latest checkpoint."""
    system_log = system_log_id(log.tenant)
    try:
        size = latest_checkpoint(conn, system_log).size
    except NotFound:
        return RequiredPolicy([])
    changes = []
    for record in system_records(
        conn, data_keys, system_log, KEYS_STREAM, (POLICY_CHANGED,), size=size
    ):
        if record.log != log.id:
            continue
        try:
            time = str(orjson.loads(record.entry)["event"]["time"])
            changes.append((time, str(record.record["signatures"])))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise IntegrityFailure(
                f"signature policy record is malformed: {exc!r}", log=system_log, seq=record.seq
            ) from exc
    return RequiredPolicy(changes)
