"""Reads auditors make: checkpoints, entries with their canonical bytes and decrypted payloads."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, text

from ledger.core.commitment import commitment_matches
from ledger.core.sealing import payload_aad, unseal_payload
from ledger.domain import LogInfo
from ledger.errors import DecryptionFailed, NotFound
from ledger.storage.keystore import DataKeyStore

MAX_PAGE = 1000


def latest_checkpoint(conn: Connection, log_id: str) -> str:
    note = conn.execute(
        text("SELECT note FROM checkpoints WHERE log_id = :log ORDER BY size DESC LIMIT 1"),
        {"log": log_id},
    ).scalar_one_or_none()
    if note is None:
        raise NotFound(f"log {log_id!r} has no checkpoint")
    return str(note)


def latest_checkpoint_size(conn: Connection, log_id: str) -> int:
    size = conn.execute(
        text("SELECT max(size) FROM checkpoints WHERE log_id = :log"), {"log": log_id}
    ).scalar_one_or_none()
    if size is None:
        raise NotFound(f"log {log_id!r} has no checkpoint")
    return int(size)


def log_size(conn: Connection, log_id: str) -> int:
    size = conn.execute(
        text("SELECT size FROM log_heads WHERE log_id = :log"), {"log": log_id}
    ).scalar_one_or_none()
    if size is None:
        raise NotFound(f"no log {log_id!r}")
    return int(size)


def read_entries(
    conn: Connection, log: LogInfo, start: int, end: int, data_keys: DataKeyStore
) -> list[dict[str, Any]]:
    """Entries ``[start, end)`` with canonical bytes (base64), leaf hash and payload."""
    rows = conn.execute(
        text(
            # LIMIT 1 keeps the payload lookup a primary-key probe per entry, whatever the
            # statistics say (a plain join may become a scan of every payload of the log).
            "SELECT e.seq, e.leaf_hash, e.entry, p.data_key_id, p.sealed FROM entries e"
            " LEFT JOIN LATERAL (SELECT data_key_id, sealed FROM payloads p"
            "   WHERE p.log_id = e.log_id AND p.seq = e.seq LIMIT 1) p ON true"
            " WHERE e.log_id = :log AND e.seq >= :start AND e.seq < :end ORDER BY e.seq"
        ),
        {"log": log.id, "start": start, "end": end},
    ).all()
    return [
        _present(conn, log, data_keys, seq=seq, leaf=bytes(leaf), entry_bytes=bytes(raw),
                 data_key_id=key_id, sealed=sealed)
        for seq, leaf, raw, key_id, sealed in rows
    ]


def read_entry(conn: Connection, log: LogInfo, seq: int, data_keys: DataKeyStore) -> dict[str, Any]:
    found = read_entries(conn, log, seq, seq + 1, data_keys)
    if not found:
        raise NotFound(f"log {log.id!r} has no entry {seq}")
    return found[0]


def _present(
    conn: Connection,
    log: LogInfo,
    data_keys: DataKeyStore,
    *,
    seq: int,
    leaf: bytes,
    entry_bytes: bytes,
    data_key_id: int | None,
    sealed: bytes | None,
) -> dict[str, Any]:
    entry = orjson.loads(entry_bytes)
    opened = open_payload(
        lambda key_id: data_keys.key_by_id(conn, log.id, key_id),
        log_id=log.id, seq=seq, entry=entry, data_key_id=data_key_id, sealed=sealed,
    )
    return {
        "seq": seq,
        "leaf_hash": base64.b64encode(leaf).decode(),
        "entry_b64": base64.b64encode(entry_bytes).decode(),
        "entry": entry,
        **opened.as_json(),
    }


@dataclass(frozen=True, slots=True)
class OpenedPayload:
    """A decrypted payload with what an auditor needs to check it offline: the canonical bytes
    and the salt, so that SHA-256(salt || bytes) can be compared with the entry's commitment."""

    status: str
    """verified, mismatch (decrypts, but not to the committed value), erased (data key
    destroyed), missing, undecryptable."""
    payload: dict[str, Any] | None = None
    canonical: bytes | None = None
    salt: bytes | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "payload": self.payload,
            "payload_status": self.status,
            "payload_b64": _b64_or_none(self.canonical),
            "payload_salt": _b64_or_none(self.salt),
        }


def _b64_or_none(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def open_payload(
    get_key: Callable[[int], bytes | None],
    *,
    log_id: str,
    seq: int,
    entry: Any,
    data_key_id: int | None,
    sealed: bytes | None,
) -> OpenedPayload:
    if data_key_id is None or sealed is None:
        return OpenedPayload("missing")
    key = get_key(data_key_id)
    if key is None:
        return OpenedPayload("erased")
    try:
        salt, canonical_data = unseal_payload(key, bytes(sealed), payload_aad(log_id, seq))
    except DecryptionFailed:
        return OpenedPayload("undecryptable")
    payload = orjson.loads(canonical_data)
    try:  # altered entry bytes may hold anything here; the verifier reports those
        committed = base64.b64decode(entry["payload"]["commitment"], validate=True)
    except (KeyError, TypeError, ValueError):
        committed = b""
    status = "verified" if commitment_matches(committed, salt, canonical_data) else "mismatch"
    return OpenedPayload(status, payload, canonical_data, salt)
