"""Creating and finding logs. A new log starts with a signing key and a signed size-0 checkpoint,
so readers can fetch a checkpoint and verifier key from the first moment."""

from __future__ import annotations

import json
import re
from datetime import datetime

from sqlalchemy import Connection, text

from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.entry import GENESIS_PREV
from ledger.core.merkle import EMPTY_ROOT
from ledger.core.types import RootHash
from ledger.domain import LogInfo
from ledger.errors import InvalidRequest, LogExists, NotFound
from ledger.storage.keystore import create_signing_key

LOG_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SYSTEM_SUFFIX = ".system"


def system_log_id(tenant: str) -> str:
    """Each tenant's own log of what the ledger did (reads, exports, verifications, keys)."""
    return tenant + SYSTEM_SUFFIX


def create_log(
    conn: Connection,
    log_id: str,
    *,
    origin_prefix: str,
    master_key: bytes,
    now: datetime,
    tenant: str | None = None,
    card_policy: str = "reject",
) -> LogInfo:
    """Create an events log, and its tenant's system log if that does not exist yet."""
    if not LOG_ID.fullmatch(log_id):
        raise InvalidRequest(
            f"log id {log_id!r} must be 1-63 characters of a-z, 0-9 and '-', starting alphanumeric"
        )
    tenant = tenant or log_id
    if find_log(conn, log_id) is not None:
        raise LogExists(f"log {log_id!r} already exists")
    info = _insert_log(conn, log_id=log_id, origin=f"{origin_prefix}/{log_id}", tenant=tenant,
                       kind="events", policy={"card_policy": card_policy},
                       master_key=master_key, now=now)
    sys_id = system_log_id(tenant)
    if find_log(conn, sys_id) is None:
        _insert_log(conn, log_id=sys_id, origin=f"{origin_prefix}/{sys_id}", tenant=tenant,
                    kind="system", policy={}, master_key=master_key, now=now)
    return info


def _insert_log(
    conn: Connection,
    *,
    log_id: str,
    origin: str,
    tenant: str,
    kind: str,
    policy: dict[str, str],
    master_key: bytes,
    now: datetime,
) -> LogInfo:
    conn.execute(
        text(
            "INSERT INTO logs (id, origin, tenant, kind, policy, created_at)"
            " VALUES (:id, :origin, :tenant, :kind, CAST(:policy AS jsonb), :now)"
        ),
        {"id": log_id, "origin": origin, "tenant": tenant, "kind": kind,
         "policy": json.dumps(policy), "now": now},
    )
    signer = create_signing_key(conn, log_id=log_id, origin=origin, master_key=master_key, now=now)
    conn.execute(
        text(
            "INSERT INTO log_heads (log_id, size, root, frontier, last_leaf)"
            " VALUES (:id, 0, :root, '', :genesis)"
        ),
        {"id": log_id, "root": EMPTY_ROOT, "genesis": GENESIS_PREV},
    )
    note = sign_checkpoint(Checkpoint(origin, 0, RootHash(EMPTY_ROOT)), signer)
    conn.execute(
        text(
            "INSERT INTO checkpoints (log_id, size, root, note, key_id, signed_at)"
            " VALUES (:id, 0, :root, :note, :kid, :now)"
        ),
        {"id": log_id, "root": EMPTY_ROOT, "note": note, "kid": signer.key_id, "now": now},
    )
    return LogInfo(log_id, origin, tenant, kind, policy)


def find_log(conn: Connection, log_id: str) -> LogInfo | None:
    row = conn.execute(
        text("SELECT id, origin, tenant, kind, policy FROM logs WHERE id = :id"), {"id": log_id}
    ).one_or_none()
    if row is None:
        return None
    return LogInfo(row[0], row[1], row[2], row[3], dict(row[4] or {}))


def get_log(conn: Connection, log_id: str) -> LogInfo:
    info = find_log(conn, log_id)
    if info is None:
        raise NotFound(f"no log {log_id!r}")
    return info


def list_logs(conn: Connection) -> list[LogInfo]:
    rows = conn.execute(text("SELECT id, origin, tenant, kind, policy FROM logs ORDER BY id"))
    return [LogInfo(r[0], r[1], r[2], r[3], dict(r[4] or {})) for r in rows]
