"""Writer keys: the Ed25519 public keys a writer credential signs its events with (issue 18),
and each log's writer-signature policy.

An admin registers a writer's public key (the private key never reaches the ledger), lists the
keys, and revokes one; each change is an event in the tenant's system log, in the same
transaction as its row. Keys are never deleted. A revocation takes the log's lock and is dated
after the log's latest checkpoint, so every entry the key signed before it was received before
it, and the sequencer (under the same lock) takes nothing signed by the key afterwards: a
verifier can hold "received before the revocation" against every entry.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection

from ledger.core.entry import format_time
from ledger.core.writer_signature import (
    DEFAULT_POLICY,
    ED25519_PUBLIC_KEY_SIZE,
    POLICIES,
    WriterKey,
    b64url,
    key_thumbprint,
)
from ledger.errors import Conflict, InvalidRequest, NotFound, WriterSignatureInvalid
from ledger.services.system_log import SystemLog, signature_policy_event, writer_key_event
from ledger.storage import writer_keys as stored
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.credentials import list_credentials
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log, lock_head

REVOCATION_MARGIN = timedelta(microseconds=1)
"""A revocation is dated strictly after the log's latest checkpoint (entries' ``received_at``
are their batch's checkpoint time): nothing received before it ever looks revoked."""


def parse_public_key(text: str) -> bytes:
    """An Ed25519 public key from what an admin pastes: 32 bytes in base64url or base64, or a
    PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo). Anything else is refused, never guessed at."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise WriterSignatureInvalid("not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise WriterSignatureInvalid("the PEM key is not an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError) as exc:
        raise WriterSignatureInvalid("not base64 / base64url of an Ed25519 public key") from exc
    if len(raw) != ED25519_PUBLIC_KEY_SIZE:
        raise WriterSignatureInvalid(
            f"an Ed25519 public key is {ED25519_PUBLIC_KEY_SIZE} bytes, not {len(raw)}"
        )
    return raw


def add_writer_key(
    conn: Connection,
    keys: KeyRing,
    *,
    log_id: str,
    credential_id: int,
    public_key: str,
    actor: dict[str, Any],
    now: datetime,
) -> stored.WriterKeyRecord:
    """Register ``public_key`` for the writer credential ``credential_id`` of ``log_id``."""
    log = get_log(conn, log_id)
    raw = parse_public_key(public_key)
    credential = next((c for c in list_credentials(conn, log.id) if c.id == credential_id), None)
    if credential is None:
        raise NotFound(f"no credential {credential_id} on log {log.id!r}")
    if credential.role != "writer":
        raise InvalidRequest(f"credential {credential_id} is a {credential.role}, not a writer")
    if credential.revoked_at is not None:
        raise InvalidRequest(f"credential {credential_id} is revoked")
    kid = key_thumbprint(raw)
    record = stored.insert_writer_key(
        conn, log_id=log.id, credential_id=credential_id, kid=kid, public_key=raw, added_at=now
    )
    if record is None:
        raise Conflict(
            f"key {kid} is already registered on log {log.id!r} (keys are never re-added)"
        )
    SystemLog.in_transaction(conn, keys, now=now).record_durably(
        log.tenant,
        writer_key_event(
            "added",
            log_id=log.id,
            kid=kid,
            credential_id=credential_id,
            actor=actor,
            now=now,
            public_key=b64url(raw),
            added_at=format_time(record.added_at),
        ),
    )
    return record


def revoke_writer_key(
    conn: Connection, keys: KeyRing, *, log_id: str, kid: str, actor: dict[str, Any], now: datetime
) -> stored.WriterKeyRecord:
    """Revoke the log's key ``kid``: it signs nothing received from then on."""
    log = get_log(conn, log_id)
    lock_head(conn, log.id)  # serialised with appends: see the module docstring
    revoked_at = max(now, latest_checkpoint(conn, log.id).signed_at + REVOCATION_MARGIN)
    record = stored.revoke_writer_key(conn, log.id, kid, revoked_at=revoked_at)
    if record is None:
        raise NotFound(f"no active writer key {kid!r} on log {log.id!r}")
    assert record.revoked_at is not None
    SystemLog.in_transaction(conn, keys, now=now).record_durably(
        log.tenant,
        writer_key_event(
            "revoked",
            log_id=log.id,
            kid=kid,
            credential_id=record.credential_id,
            actor=actor,
            now=now,
            revoked_at=format_time(record.revoked_at),
        ),
    )
    return record


def list_writer_keys(conn: Connection, log_id: str) -> list[stored.WriterKeyRecord]:
    """Every writer key of the log, revoked ones included, oldest first."""
    return stored.writer_keys_of_log(conn, get_log(conn, log_id).id)


def writer_keys_for_verifiers(conn: Connection, log_id: str) -> list[WriterKey]:
    """The log's keys and their history, as the verifiers (and trails, bundles) carry them."""
    return [record.as_writer_key() for record in stored.writer_keys_of_log(conn, log_id)]


def signature_policy_of(conn: Connection, log_id: str) -> str:
    """The log's ``signatures`` policy as stored (``optional`` when never set)."""
    return str(get_log(conn, log_id).policy.get("signatures", DEFAULT_POLICY))


def set_signature_policy(
    conn: Connection,
    keys: KeyRing,
    *,
    log_id: str,
    policy: str,
    actor: dict[str, Any],
    now: datetime,
) -> str:
    """Set the log's ``signatures`` policy; returns the previous one. Servers apply it within
    the time they cache a log (30 s)."""
    if policy not in POLICIES:
        raise InvalidRequest(f"signatures must be one of {', '.join(POLICIES)}, not {policy!r}")
    log = get_log(conn, log_id)
    if log.kind != "events":
        raise InvalidRequest(f"log {log.id!r} is written only by the ledger itself")
    previous = str(log.policy.get("signatures", DEFAULT_POLICY))
    stored.set_signature_policy(conn, log.id, policy)
    SystemLog.in_transaction(conn, keys, now=now).record_durably(
        log.tenant,
        signature_policy_event(log.id, policy=policy, previous=previous, actor=actor, now=now),
    )
    return previous


def key_json(record: stored.WriterKeyRecord) -> dict[str, Any]:
    """A key as the CLI's ``--json`` and the HTTP API show it."""
    return {
        **record.as_writer_key().as_json(),
        "log": record.log_id,
        "status": "revoked" if record.revoked_at is not None else "active",
    }
