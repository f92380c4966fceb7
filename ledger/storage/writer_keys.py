"""Queries of writers' public keys (``writer_keys``: never deleted, revoked in place once)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from ledger.core.entry import format_time
from ledger.core.writer_signature import WriterKey


@dataclass(frozen=True, slots=True)
class WriterKeyRecord:
    id: int
    log_id: str
    credential_id: int
    kid: str
    public_key: bytes
    added_at: datetime
    revoked_at: datetime | None

    def as_writer_key(self) -> WriterKey:
        """What verifiers check signatures with (times as entries spell ``received_at``)."""
        return WriterKey(
            self.kid,
            self.credential_id,
            self.public_key,
            format_time(self.added_at),
            None if self.revoked_at is None else format_time(self.revoked_at),
        )


_COLUMNS = "id, log_id, credential_id, kid, public_key, added_at, revoked_at"


def _record(row: Any) -> WriterKeyRecord:
    return WriterKeyRecord(int(row[0]), row[1], int(row[2]), row[3], bytes(row[4]), row[5], row[6])


def insert_writer_key(
    conn: Connection,
    *,
    log_id: str,
    credential_id: int,
    kid: str,
    public_key: bytes,
    added_at: datetime,
) -> WriterKeyRecord | None:
    """The new key; None if the log already has a key with that kid (the same public key)."""
    row = conn.execute(
        text(
            "INSERT INTO writer_keys (log_id, credential_id, kid, public_key, added_at)"
            " VALUES (:log, :cred, :kid, :key, :at)"
            f" ON CONFLICT (log_id, kid) DO NOTHING RETURNING {_COLUMNS}"
        ),
        {"log": log_id, "cred": credential_id, "kid": kid, "key": public_key, "at": added_at},
    ).one_or_none()
    return None if row is None else _record(row)


def revoke_writer_key(
    conn: Connection, log_id: str, kid: str, *, revoked_at: datetime
) -> WriterKeyRecord | None:
    """Revoke an active key of the log; None if it has no active key by that kid."""
    row = conn.execute(
        text(
            "UPDATE writer_keys SET revoked_at = greatest(:at, added_at)"
            " WHERE log_id = :log AND kid = :kid AND revoked_at IS NULL"
            f" RETURNING {_COLUMNS}"
        ),
        {"at": revoked_at, "log": log_id, "kid": kid},
    ).one_or_none()
    return None if row is None else _record(row)


def writer_keys_of_log(conn: Connection, log_id: str) -> list[WriterKeyRecord]:
    """Every key of the log, revoked ones included, oldest first."""
    rows = conn.execute(
        text(f"SELECT {_COLUMNS} FROM writer_keys WHERE log_id = :log ORDER BY id"),
        {"log": log_id},
    )
    return [_record(r) for r in rows]


def writer_key_by_kid(conn: Connection, log_id: str, kid: str) -> WriterKeyRecord | None:
    row = conn.execute(
        text(f"SELECT {_COLUMNS} FROM writer_keys WHERE log_id = :log AND kid = :kid"),
        {"log": log_id, "kid": kid},
    ).one_or_none()
    return None if row is None else _record(row)


REVOKED_KEYS_QUERY = (
    "SELECT k.id FROM writer_keys k WHERE k.id = ANY(%s::int4[]) AND k.revoked_at IS NOT NULL"
)
"""Which of the given keys are revoked: read by the sequencer under the log's lock, where a
revocation (which takes the same lock) is serialised against appends."""


def set_signature_policy(conn: Connection, log_id: str, policy: str) -> None:
    conn.execute(
        text("UPDATE logs SET policy = policy || CAST(:patch AS jsonb) WHERE id = :log"),
        {"patch": json.dumps({"signatures": policy}), "log": log_id},
    )
