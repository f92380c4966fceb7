"""The signed erasure records a destroyed data key must be covered by.

An erasure destroys a conversation's data key (``data_keys.wrapped`` NULL) and, in the same
transaction, appends ``ledger.erasure.executed.v1`` to the tenant's system log (stream
``erasure``), whose payload names the events log and the destroyed key ids
(``ledger.services.privacy.approve``); a retention run does the same through the same path and
appends ``ledger.retention.executed.v1`` (``ledger.services.privacy.retention``). Either record
covers the keys it names; nothing else does. Setting ``wrapped`` to NULL needs no more than the
application role's UPDATE; forging the record needs the system log's signing key and rewriting
its chain. So the verifier accepts a payload it cannot read only if its key is named by such a
record below the system log's latest signed checkpoint, read in the verifier's own snapshot.

The records are read once per tenant and run (the ``erasure`` stream, by the conversation index:
a few rows, not the system log); the range checker then does one set lookup per destroyed key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from ledger.core.commitment import commitment_matches
from ledger.core.sealing import payload_aad, unseal_payload
from ledger.domain import LogInfo
from ledger.errors import CryptoError, IntegrityFailure, NotFound
from ledger.services.system_log import system_log_id
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.entries import stream_entries_of_type
from ledger.storage.keystore import DataKeyStore

ERASURE_STREAM = "erasure"
ERASURE_EXECUTED = "ledger.erasure.executed.v1"
RETENTION_EXECUTED = "ledger.retention.executed.v1"
RECORD_TYPES = (ERASURE_EXECUTED, RETENTION_EXECUTED)
"""The records that may name a destroyed data key."""


@dataclass(frozen=True, slots=True)
class OpenedRecord:
    """One signed record (``RECORD_TYPES``) of a tenant's system log, opened and matched
    against its entry's commitment: what the verifier reads and what a bundle carries."""

    seq: int
    leaf_hash: bytes
    entry: bytes
    """The exact entry bytes (the leaf)."""
    salt: bytes
    data: bytes
    """The payload's canonical bytes: SHA-256(salt || data) is the entry's commitment."""
    type: str
    record: dict[str, Any]

    @property
    def log(self) -> str:
        return str(self.record.get("log"))


def erasure_records(
    conn: Connection, data_keys: DataKeyStore, system_log: str, *, size: int
) -> list[OpenedRecord]:
    """Every erasure and retention record of ``system_log`` below ``size``, in seq order;
    ``IntegrityFailure`` (naming the system log and seq) for one that does not open."""
    return system_records(conn, data_keys, system_log, ERASURE_STREAM, RECORD_TYPES, size=size)


def system_records(
    conn: Connection,
    data_keys: DataKeyStore,
    system_log: str,
    stream: str,
    types: tuple[str, ...],
    *,
    size: int,
) -> list[OpenedRecord]:
    """Every record of ``types`` in ``stream`` of ``system_log`` below ``size``, in seq order,
    each opened and matched against its entry's commitment: the erasure records here, the
    writer-key records (``writer_keys``) too. ``IntegrityFailure`` (naming the system log and
    seq) for one that does not open."""
    rows = sorted(
        (
            row
            for record_type in types
            for row in stream_entries_of_type(conn, system_log, stream, record_type, size=size)
        ),
        key=lambda row: int(row[0]),
    )
    keys: dict[int, bytes | None] = {}
    return [
        _open(conn, data_keys, system_log, row, keys, stream=stream, types=types) for row in rows
    ]


class ErasureRecords:
    """Destroyed data key ids per events log, as the tenants' erasure records name them.

    A verification may cover an events log without its tenant's system log (``ledger verify
    --log acme``). The records are read from the system log all the same (read-only, in the
    same snapshot): without them every erased payload would have to be either accepted
    unchecked or failed, and the record is the only evidence that tells erasure from a key
    destroyed behind the ledger's back. What that run does not establish is the system log's
    own integrity (its chain, tree and signatures): the run that covers the system log does,
    and a record forged there fails that run. Each record is still opened with its data key
    (AES-GCM bound to the system log and the seq) and matched against its entry's commitment.
    """

    def __init__(self, conn: Connection, data_keys: DataKeyStore) -> None:
        self.conn = conn
        self.data_keys = data_keys
        self._by_tenant: dict[str, dict[str, frozenset[int]]] = {}

    def erased_keys(self, log: LogInfo) -> frozenset[int]:
        """The data key ids of ``log`` that a signed erasure record names as destroyed."""
        by_log = self._by_tenant.get(log.tenant)
        if by_log is None:
            by_log = self._by_tenant[log.tenant] = self._read(system_log_id(log.tenant))
        return by_log.get(log.id, frozenset())

    def _read(self, system_log: str) -> dict[str, frozenset[int]]:
        try:
            size = latest_checkpoint(self.conn, system_log).size
        except NotFound:
            return {}  # no system log, so no erasure record: no destroyed key is covered
        found: dict[str, set[int]] = {}
        for opened in erasure_records(self.conn, self.data_keys, system_log, size=size):
            try:
                log_id = str(opened.record["log"])
                destroyed = [int(k) for k in opened.record["destroyed_keys"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise _fail(system_log, opened.seq, f"erasure record is malformed: {exc}") from exc
            found.setdefault(log_id, set()).update(destroyed)
        return {log_id: frozenset(ids) for log_id, ids in found.items()}


def _open(
    conn: Connection,
    data_keys: DataKeyStore,
    system_log: str,
    row: Any,
    keys: dict[int, bytes | None],
    *,
    stream: str,
    types: tuple[str, ...],
) -> OpenedRecord:
    """A record's row ``(seq, leaf_hash, entry, data_key_id, sealed)``, opened and matched
    against its entry's commitment."""
    seq, leaf, raw, key_id, sealed = row
    if key_id is None or sealed is None:
        raise _fail(system_log, seq, f"{stream} record has no payload")
    if key_id not in keys:
        try:
            keys.update(data_keys.keys_by_id(conn, system_log, [key_id]))
        except CryptoError as exc:
            raise _fail(system_log, seq, f"{stream} record's data key: {exc}") from exc
    key = keys.get(key_id)
    if key is None:  # a system log's data keys are never erased
        raise _fail(system_log, seq, f"{stream} record's data key {key_id} is gone")
    try:
        entry = orjson.loads(raw)
        kind = (entry["event"]["type"], entry["event"]["conversation"])
        committed = base64.b64decode(entry["payload"]["commitment"], validate=True)
        salt, data = unseal_payload(key, bytes(sealed), payload_aad(system_log, seq))
        record = orjson.loads(data)
    except (CryptoError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise _fail(system_log, seq, f"{stream} record does not open: {exc}") from exc
    if kind[0] not in types or kind[1] != stream:
        raise _fail(system_log, seq, f"not a {stream} record: {kind[0]!r} in {kind[1]!r}")
    if not commitment_matches(committed, salt, data):
        raise _fail(system_log, seq, f"{stream} record does not match its entry's commitment")
    if not isinstance(record, dict):
        raise _fail(system_log, seq, f"{stream} record's payload is not an object")
    return OpenedRecord(int(seq), bytes(leaf), bytes(raw), salt, data, str(kind[0]), record)


def _fail(system_log: str, seq: int, what: str) -> IntegrityFailure:
    return IntegrityFailure(what, log=system_log, seq=seq)
