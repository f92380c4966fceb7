"""Queries of API credentials (``credentials``: kept for ever, revoked in place, expired by
time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from ledger.domain import Principal


def insert_credential(
    conn: Connection,
    *,
    token_hash: bytes,
    log_id: str,
    role: str,
    label: str,
    created_at: datetime,
    expires_at: datetime | None = None,
) -> int:
    """The new credential's id."""
    cred_id = conn.execute(
        text(
            "INSERT INTO credentials (token_hash, log_id, role, label, created_at, expires_at)"
            " VALUES (:h, :log, :role, :label, :at, :expires) RETURNING id"
        ),
        {
            "h": token_hash,
            "log": log_id,
            "role": role,
            "label": label,
            "at": created_at,
            "expires": expires_at,
        },
    ).scalar_one()
    return int(cred_id)


def revoke_credential(conn: Connection, credential_id: int, *, revoked_at: datetime) -> str | None:
    """Revoke an active credential; its log, or None if there is no active one by that id."""
    log_id = conn.execute(
        text(
            "UPDATE credentials SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL"
            " RETURNING log_id"
        ),
        {"at": revoked_at, "id": credential_id},
    ).scalar_one_or_none()
    return None if log_id is None else str(log_id)


def active_principal(conn: Connection, token_hash: bytes, *, now: datetime) -> Principal | None:
    """The principal of the active credential with that token hash: neither revoked nor
    expired at ``now``. Asked before the caller's tenant is known, so through the one function
    that may look across tenants for it (migration 0011), in any unit of work."""
    row = conn.execute(
        text(
            "SELECT id, log_id, role, label, expires_at"
            " FROM ledger_active_credential(CAST(:h AS bytea), CAST(:now AS timestamptz))"
        ),
        {"h": token_hash, "now": now},
    ).one_or_none()
    return None if row is None else Principal(int(row[0]), row[1], row[2], row[3], row[4])


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """A credential as listed (never its token: only its hash is stored)."""

    id: int
    log_id: str
    role: str
    label: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None


def list_credentials(conn: Connection, log_id: str) -> list[CredentialRecord]:
    """Every credential of the log, revoked ones included, oldest first."""
    rows = conn.execute(
        text(
            "SELECT id, log_id, role, label, created_at, revoked_at, expires_at FROM credentials"
            " WHERE log_id = :log ORDER BY id"
        ),
        {"log": log_id},
    )
    return [CredentialRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]
