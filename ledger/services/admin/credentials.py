"""API credentials: bearer tokens scoped to one log and one role, stored only as SHA-256 hashes.
Every creation and revocation is recorded in the tenant's system log in the same transaction
(PCI DSS 10.2.1.5).

A token is 32 random bytes; hashing it with SHA-256 (no salt, no stretching) is sound because it
is not a password: it cannot be guessed, only stolen, and the hash makes the table useless to a
thief.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from ledger.core.entry import format_time
from ledger.domain import Principal
from ledger.errors import InvalidRequest, NotFound, Unauthenticated
from ledger.services.system_log import SystemLog, credential_event
from ledger.storage import credentials as stored
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log

ROLES = ("writer", "auditor", "verifier", "admin")
TOKEN_PREFIX = "hlt_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret


@dataclass(frozen=True)
class NewCredential:
    id: int
    token: str
    """Shown once, never stored."""


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_credential(
    conn: Connection,
    keys: KeyRing,
    *,
    log_id: str,
    role: str,
    label: str,
    actor: dict[str, Any],
    now: datetime,
    expires_at: datetime | None = None,
) -> NewCredential:
    """A new credential; with ``expires_at`` (after ``now``) it stops authenticating then, as if
    revoked (servers' caches included)."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest(f"expires_at must be after {format_time(now)}")
    log = get_log(conn, log_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    cred_id = stored.insert_credential(
        conn,
        token_hash=token_hash(token),
        log_id=log.id,
        role=role,
        label=label,
        created_at=now,
        expires_at=expires_at,
    )
    SystemLog.in_transaction(conn, keys, now=now).record_durably(
        log.tenant,
        credential_event(
            "created",
            credential_id=cred_id,
            log_id=log.id,
            actor=actor,
            now=now,
            role=role,
            label=label,
            expires_at=None if expires_at is None else format_time(expires_at),
        ),
    )
    return NewCredential(cred_id, token)


def revoke_credential(
    conn: Connection, keys: KeyRing, credential_id: int, *, actor: dict[str, Any], now: datetime
) -> str:
    """Revoke a credential (kept, never deleted); returns its log. Servers cache a principal
    for at most a second (``ledger.server.state``), so a revocation takes effect on every
    server process within that time."""
    log_id = stored.revoke_credential(conn, credential_id, revoked_at=now)
    if log_id is None:
        raise NotFound(f"no active credential {credential_id}")
    SystemLog.in_transaction(conn, keys, now=now).record_durably(
        get_log(conn, log_id).tenant,
        credential_event(
            "revoked", credential_id=credential_id, log_id=log_id, actor=actor, now=now
        ),
    )
    return log_id


def authenticate(conn: Connection, token: str, *, now: datetime | None = None) -> Principal:
    """The principal behind a token, or ``Unauthenticated`` (one message for every reason:
    unknown, revoked, or expired at ``now``, by default the present)."""
    principal = stored.active_principal(
        conn, token_hash(token), now=datetime.now(UTC) if now is None else now
    )
    if principal is None:
        raise Unauthenticated("invalid or revoked token")
    return principal
