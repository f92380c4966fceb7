"""Creating logs. A new log starts with a signing key and a signed size-0 checkpoint, so readers
can fetch a checkpoint and verifier key from the first moment; its creation is recorded in its
tenant's system log in the same transaction (PCI DSS 10.2.1.7)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.merkle import EMPTY_ROOT
from ledger.core.types import RootHash
from ledger.domain import LogInfo
from ledger.errors import InvalidRequest, LogExists
from ledger.services.privacy.retention import DEFAULT_PROFILE, MAX_DAYS, PROFILES
from ledger.services.system_log import (
    SYSTEM_SUFFIX,
    SystemLog,
    log_created_event,
    system_log_id,
)
from ledger.storage.checkpoints import insert_checkpoint
from ledger.storage.keystore import KeyRing, create_signing_key
from ledger.storage.logs import find_log, insert_log

LOG_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
"""A log id, and a tenant's name (its system log is ``{tenant}.system``)."""


def is_log_reference(text: str) -> bool:
    """Whether ``text`` can name a log at all: an events log's id or a tenant's system log.
    Anything else (a NUL, a slash, 2,000 characters) names no log and need not be looked up."""
    return bool(LOG_ID.fullmatch(text.removesuffix(SYSTEM_SUFFIX)))


CARD_POLICIES = ("reject", "mask")


def create_log(
    conn: Connection,
    keys: KeyRing,
    log_id: str,
    *,
    origin_prefix: str,
    actor: dict[str, Any],
    now: datetime,
    tenant: str | None = None,
    card_policy: str = "reject",
    retention_days: int | None = None,
) -> LogInfo:
    """Create an events log, and its tenant's system log if that does not exist yet.
    ``retention_days``: how long payloads are kept (``ledger.services.privacy.retention``;
    default six years, HIPAA's)."""
    if not LOG_ID.fullmatch(log_id):
        raise InvalidRequest(
            f"log id {log_id!r} must be 1-63 characters of a-z, 0-9 and '-', starting alphanumeric"
        )
    if card_policy not in CARD_POLICIES:
        raise InvalidRequest(f"card policy must be one of {', '.join(CARD_POLICIES)}")
    if retention_days is None:
        retention_days = PROFILES[DEFAULT_PROFILE]
    if not 0 < retention_days <= MAX_DAYS:
        raise InvalidRequest(f"retention must be 1 to {MAX_DAYS} days")
    tenant = tenant or log_id
    if not LOG_ID.fullmatch(tenant):
        raise InvalidRequest(
            f"tenant {tenant!r} must be 1-63 characters of a-z, 0-9 and '-', starting alphanumeric"
        )
    if find_log(conn, log_id) is not None:
        raise LogExists(f"log {log_id!r} already exists")
    info = _new_log(
        conn,
        keys,
        LogInfo(
            log_id,
            f"{origin_prefix}/{log_id}",
            tenant,
            "events",
            {"card_policy": card_policy, "retention_days": retention_days},
        ),
        now=now,
    )
    system_id = system_log_id(tenant)
    if find_log(conn, system_id) is None:
        _new_log(
            conn,
            keys,
            LogInfo(system_id, f"{origin_prefix}/{system_id}", tenant, "system", {}),
            now=now,
        )
    SystemLog.in_transaction(conn, keys, now=now).record_durably(
        tenant, log_created_event(info, actor=actor, now=now)
    )
    return info


def _new_log(conn: Connection, keys: KeyRing, info: LogInfo, *, now: datetime) -> LogInfo:
    insert_log(conn, info, created_at=now)
    signer = create_signing_key(
        conn, log_id=info.id, origin=info.origin, master_key=keys.masters, now=now
    )
    note = sign_checkpoint(Checkpoint(info.origin, 0, RootHash(EMPTY_ROOT)), signer)
    insert_checkpoint(
        conn, info.id, size=0, root=EMPTY_ROOT, note=note, key_id=signer.key_id, signed_at=now
    )
    return info
