"""API credentials: bearer tokens scoped to one log and one role, stored only as SHA-256 hashes.

A token is 32 random bytes; hashing it with SHA-256 (no salt, no stretching) is sound because it
is not a password: it cannot be guessed, only stolen, and the hash makes the table useless to a
thief.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import Connection, text

from ledger.domain import Principal
from ledger.errors import InvalidRequest, NotFound, Unauthenticated

ROLES = ("writer", "auditor", "verifier", "admin")
TOKEN_PREFIX = "hlt_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_credential(
    conn: Connection, *, log_id: str, role: str, label: str, now: datetime
) -> tuple[int, str]:
    """Returns ``(credential id, token)``. The token is shown once and never stored."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    cred_id = conn.execute(
        text(
            "INSERT INTO credentials (token_hash, log_id, role, label, created_at)"
            " VALUES (:h, :log, :role, :label, :now) RETURNING id"
        ),
        {"h": token_hash(token), "log": log_id, "role": role, "label": label, "now": now},
    ).scalar_one()
    return int(cred_id), token


def revoke_credential(conn: Connection, credential_id: int, *, now: datetime) -> str:
    """Revoke a credential (kept, never deleted); returns its log. Servers cache a principal
    for a few seconds, so a revocation takes effect everywhere within that time."""
    log_id = conn.execute(
        text("UPDATE credentials SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL"
             " RETURNING log_id"),
        {"now": now, "id": credential_id},
    ).scalar_one_or_none()
    if log_id is None:
        raise NotFound(f"no active credential {credential_id}")
    return str(log_id)


def authenticate(conn: Connection, token: str) -> Principal:
    """The principal behind a token, or ``Unauthenticated`` (one message for every reason)."""
    row = conn.execute(
        text(
            "SELECT id, log_id, role, label FROM credentials"
            " WHERE token_hash = :h AND revoked_at IS NULL"
        ),
        {"h": token_hash(token)},
    ).one_or_none()
    if row is None:
        raise Unauthenticated("invalid or revoked token")
    return Principal(int(row[0]), row[1], row[2], row[3])
