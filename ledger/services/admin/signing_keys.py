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

from sqlalchemy import Connection, text

from ledger.core.entry import format_time
from ledger.core.rotation import sign_rotation
from ledger.core.signing import NoteSigner, NoteVerifier
from ledger.domain import LogInfo
from ledger.errors import KeyStateConflict
from ledger.services.system_log import append_system_events, system_event
from ledger.storage.keystore import SignerCache, create_signing_key


@dataclass(frozen=True)
class KeyRecord:
    """A signing key as the database lists it."""

    key_id: bytes
    verifier_key: str
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class KeyRotation:
    old: NoteVerifier
    new: NoteVerifier
    statement: str
    rotated_at: datetime


def active_key_id(conn: Connection, log_id: str) -> bytes | None:
    kid = conn.execute(
        text("SELECT key_id FROM signing_keys WHERE log_id = :log AND retired_at IS NULL"
             " ORDER BY id DESC LIMIT 1"), {"log": log_id}).scalar_one_or_none()
    return None if kid is None else bytes(kid)


def generate_first_key(
    conn: Connection, log: LogInfo, *, master_key: bytes, now: datetime, actor: dict[str, Any]
) -> NoteSigner:
    """A signing key for a log that has no active one; otherwise the answer is rotation."""
    if active_key_id(conn, log.id) is not None:
        raise KeyStateConflict(f"log {log.id!r} already has an active signing key;"
                               f" use `ledger keys rotate --log {log.id}`")
    signer = create_signing_key(conn, log_id=log.id, origin=log.origin, master_key=master_key,
                                now=now)
    _record(conn, log, "key.generated", {"log": log.id, "new_key": signer.verifier_key()},
            master_key=master_key, now=now, actor=actor)
    return signer


def rotate_signing_key(
    conn: Connection, log: LogInfo, *, master_key: bytes, now: datetime, actor: dict[str, Any]
) -> KeyRotation:
    conn.execute(text("SELECT 1 FROM log_heads WHERE log_id = :log FOR UPDATE"), {"log": log.id})
    old_id = active_key_id(conn, log.id)
    if old_id is None:
        raise KeyStateConflict(f"log {log.id!r} has no active signing key;"
                               f" use `ledger keys generate --log {log.id}`")
    last_signed = conn.execute(
        text("SELECT max(signed_at) FROM checkpoints WHERE log_id = :log AND key_id = :kid"),
        {"log": log.id, "kid": old_id}).scalar_one_or_none()
    at = max(now, last_signed) if last_signed is not None else now
    old = SignerCache(master_key).get(conn, log.id, old_id)
    new = create_signing_key(conn, log_id=log.id, origin=log.origin, master_key=master_key,
                             now=at)
    statement = sign_rotation(old, new, format_time(at))
    conn.execute(
        text("INSERT INTO key_rotations (log_id, old_key_id, new_key_id, statement, rotated_at)"
             " VALUES (:log, :old, :new, :statement, :at)"),
        {"log": log.id, "old": old.key_id, "new": new.key_id, "statement": statement, "at": at})
    _record(conn, log, "key.rotated",
            {"log": log.id, "old_key": old.verifier_key(), "new_key": new.verifier_key(),
             "statement": statement, "rotated_at": format_time(at)},
            master_key=master_key, now=now, actor=actor)
    return KeyRotation(old.verifier(), new.verifier(), statement, at)


def key_records(conn: Connection, log_id: str) -> list[KeyRecord]:
    rows = conn.execute(
        text("SELECT key_id, verifier_key, created_at, retired_at FROM signing_keys"
             " WHERE log_id = :log ORDER BY id"), {"log": log_id})
    return [KeyRecord(bytes(r[0]), r[1], r[2], r[3]) for r in rows]


def rotation_statements(conn: Connection, log_id: str) -> list[str]:
    """Every rotation statement of the log, oldest first."""
    rows = conn.execute(
        text("SELECT statement FROM key_rotations WHERE log_id = :log ORDER BY rotated_at"),
        {"log": log_id})
    return [r[0] for r in rows]


def _record(conn: Connection, log: LogInfo, name: str, data: dict[str, Any], *,
            master_key: bytes, now: datetime, actor: dict[str, Any]) -> None:
    event = system_event(name, stream="keys", data=data, now=now, actor=actor,
                         resource={"type": "log", "id": log.id})
    append_system_events(conn, log.tenant, [event], master_key=master_key, now=now)
