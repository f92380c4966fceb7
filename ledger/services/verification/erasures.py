"""The signed erasure records a destroyed data key must be covered by.

An erasure destroys a conversation's data key (``data_keys.wrapped`` NULL) and, in the same
transaction, appends ``ledger.erasure.executed.v1`` to the tenant's system log (stream
``erasure``), whose payload names the events log and the destroyed key ids
(``ledger.services.privacy.approve``). Setting ``wrapped`` to NULL needs no more than the
application role's UPDATE; forging the record needs the system log's signing key and rewriting
its chain. So the verifier accepts a payload it cannot read only if its key is named by such a
record below the system log's latest signed checkpoint, read in the verifier's own snapshot.

The records are read once per tenant and run (the ``erasure`` stream, by the conversation index:
a few rows, not the system log); the range checker then does one set lookup per destroyed key.
"""

from __future__ import annotations

import base64
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
        rows = stream_entries_of_type(
            self.conn, system_log, ERASURE_STREAM, ERASURE_EXECUTED, size=size
        )
        found: dict[str, set[int]] = {}
        keys: dict[int, bytes | None] = {}
        for row in rows:
            seq, record = row[0], self._open(system_log, row, keys)
            try:
                log_id = str(record["log"])
                destroyed = [int(k) for k in record["destroyed_keys"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise _fail(system_log, seq, f"erasure record is malformed: {exc}") from exc
            found.setdefault(log_id, set()).update(destroyed)
        return {log_id: frozenset(ids) for log_id, ids in found.items()}

    def _open(self, system_log: str, row: Any, keys: dict[int, bytes | None]) -> dict[str, Any]:
        """The payload of a record's row ``(seq, leaf_hash, entry, data_key_id, sealed)``,
        opened and matched against its entry's commitment."""
        seq, _leaf, raw, key_id, sealed = row
        if key_id is None or sealed is None:
            raise _fail(system_log, seq, "erasure record has no payload")
        if key_id not in keys:
            try:
                keys.update(self.data_keys.keys_by_id(self.conn, system_log, [key_id]))
            except CryptoError as exc:
                raise _fail(system_log, seq, f"erasure record's data key: {exc}") from exc
        key = keys.get(key_id)
        if key is None:  # a system log's data keys are never erased
            raise _fail(system_log, seq, f"erasure record's data key {key_id} is gone")
        try:
            entry = orjson.loads(raw)
            kind = (entry["event"]["type"], entry["event"]["conversation"])
            committed = base64.b64decode(entry["payload"]["commitment"], validate=True)
            salt, data = unseal_payload(key, bytes(sealed), payload_aad(system_log, seq))
            record = orjson.loads(data)
        except (CryptoError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise _fail(system_log, seq, f"erasure record does not open: {exc}") from exc
        if kind != (ERASURE_EXECUTED, ERASURE_STREAM):
            raise _fail(system_log, seq, f"not an erasure record: {kind[0]!r} in {kind[1]!r}")
        if not commitment_matches(committed, salt, data):
            raise _fail(system_log, seq, "erasure record does not match its entry's commitment")
        if not isinstance(record, dict):
            raise _fail(system_log, seq, "erasure record's payload is not an object")
        return record


def _fail(system_log: str, seq: int, what: str) -> IntegrityFailure:
    return IntegrityFailure(what, log=system_log, seq=seq)
