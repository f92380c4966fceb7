"""Checkpoint signing keys: the first key of a log, rotation, and the key history verifiers read.

Rotation (``rotate_signing_key``), in one transaction:

1. lock the log's head row, so no batch signs while the key changes;
2. retire the active key at ``max(now, its last signature time)`` (clocks of several servers
   may disagree; a key is never retired before a checkpoint it signed);
3. create the new key, created at that same moment;
4. store the rotation statement (``ledger.core.rotation``) signed by the old and the new key;
5. append ``ledger.key.rotated.v1`` with both verifier keys and the statement to the tenant's
   system log (PCI DSS 10.2.1.7).

Checkpoints signed before stay valid under the old key, which is never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ledger.core.entry import format_time
from ledger.core.rotation import sign_rotation
from ledger.core.signing import NoteSigner, NoteVerifier
from ledger.domain import LogInfo
from ledger.errors import KeyStateConflict
from ledger.services.system_log import SystemLog, system_event
from ledger.storage.checkpoints import last_signed_by
from ledger.storage.keystore import (
    KeyRing,
    active_key_id,
    create_signing_key,
    insert_rotation,
)
from ledger.storage.logs import lock_head


@dataclass(frozen=True)
class KeyRotation:
    old: NoteVerifier
    new: NoteVerifier
    statement: str
    rotated_at: datetime


def generate_first_key(
    conn: Connection, keys: KeyRing, log: LogInfo, *, now: datetime, actor: dict[str, Any]
) -> NoteSigner:
    """A signing key for a log that has no active one; otherwise the answer is rotation."""
    if active_key_id(conn, log.id) is not None:
        raise KeyStateConflict(
            f"log {log.id!r} already has an active signing key;"
            f" use `ledger keys rotate --log {log.id}`"
        )
    signer = create_signing_key(
        conn, log_id=log.id, origin=log.origin, master_key=keys.masters, now=now
    )
    _record(
        conn,
        keys,
        log,
        "key.generated",
        {"log": log.id, "new_key": signer.verifier_key()},
        now=now,
        actor=actor,
    )
    return signer


def rotate_signing_key(
    conn: Connection, keys: KeyRing, log: LogInfo, *, now: datetime, actor: dict[str, Any]
) -> KeyRotation:
    lock_head(conn, log.id)
    old_id = active_key_id(conn, log.id)
    if old_id is None:
        raise KeyStateConflict(
            f"log {log.id!r} has no active signing key; use `ledger keys generate --log {log.id}`"
        )
    last_signed = last_signed_by(conn, log.id, old_id)
    at = max(now, last_signed) if last_signed is not None else now
    old = keys.signers.get(conn, log.id, old_id)
    new = create_signing_key(
        conn, log_id=log.id, origin=log.origin, master_key=keys.masters, now=at
    )
    statement = sign_rotation(old, new, format_time(at))
    insert_rotation(
        conn,
        log.id,
        old_key_id=old.key_id,
        new_key_id=new.key_id,
        statement=statement,
        rotated_at=at,
    )
    _record(
        conn,
        keys,
        log,
        "key.rotated",
        {
            "log": log.id,
            "old_key": old.verifier_key(),
            "new_key": new.verifier_key(),
            "statement": statement,
            "rotated_at": format_time(at),
        },
        now=now,
        actor=actor,
    )
    return KeyRotation(old.verifier(), new.verifier(), statement, at)


def _record(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    name: str,
    data: dict[str, Any],
    *,
    now: datetime,
    actor: dict[str, Any],
) -> None:
    event = system_event(
        name, stream="keys", data=data, now=now, actor=actor, resource={"type": "log", "id": log.id}
    )
    SystemLog.in_transaction(conn, keys, now=now).record_durably(log.tenant, event)
