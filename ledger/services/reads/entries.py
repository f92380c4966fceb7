"""Reads auditors make: entries with their canonical bytes and decrypted payloads.

Every read is recorded in the tenant's system log before anything is read (PCI DSS 10.2.1.3:
fail closed: a read that cannot be recorded is not served).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from ledger.core.commitment import commitment_matches
from ledger.core.entry import format_time
from ledger.core.sealing import payload_aad, unseal_payload
from ledger.domain import LogInfo
from ledger.errors import DecryptionFailed, InvalidRequest, NotFound
from ledger.services.system_log import Access, SystemLog
from ledger.storage.entries import entries_with_payloads
from ledger.storage.keystore import DataKeyStore
from ledger.storage.logs import log_size
from ledger.storage.privacy import erasures_of_keys

MAX_PAGE = 1000
MAX_PAGE_BYTES = 8 << 20
"""A page also ends once its entries come to about this much JSON (a 1,000-entry page of 1 MiB
events would be over 2 GB); it always holds at least one entry."""
_STEP = 50


@dataclass(frozen=True, slots=True)
class EntriesPage:
    start: int
    end: int
    tree_size: int
    entries: list[dict[str, Any]]
    rest: tuple[int, int] | None
    """``[start, end)`` of what was asked for and is not on this page."""


def list_entries(
    conn: Connection,
    system_log: SystemLog,
    log: LogInfo,
    *,
    start: int,
    end: int | None,
    reader: dict[str, Any],
    access: Access,
    data_keys: DataKeyStore,
    now: datetime,
) -> EntriesPage:
    """Entries ``[start, end)`` (``end`` None: to the head), at most ``MAX_PAGE`` of them and
    about ``MAX_PAGE_BYTES`` of JSON; ``rest`` names what the next page starts at."""
    if end is not None and end < start:
        raise InvalidRequest(f"end ({end}) must not be before start ({start})")
    system_log.record_read(
        "entries", log, actor=reader, access=access, now=now, start=start, end=end
    )
    size = log_size(conn, log.id)
    wanted_end = size if end is None else min(end, size)
    limit = min(wanted_end, start + MAX_PAGE)
    entries: list[dict[str, Any]] = []
    stop, served = start, 0
    while stop < limit and (served < MAX_PAGE_BYTES or not entries):
        step = read_entries(conn, log, stop, min(stop + _STEP, limit), data_keys)
        for entry in step:
            if entries and served >= MAX_PAGE_BYTES:
                break
            entries.append(entry)
            # base64 fields plus their decoded JSON: about 1.75 times the base64
            served += 7 * (len(entry["entry_b64"]) + len(entry["payload_b64"] or "")) // 4
        stop = start + len(entries)
        if not step:
            break
    rest = (stop, wanted_end) if stop < wanted_end else None
    return EntriesPage(start, max(stop, start), size, entries, rest)


def get_entry(
    conn: Connection,
    system_log: SystemLog,
    log: LogInfo,
    seq: int,
    *,
    reader: dict[str, Any],
    access: Access,
    data_keys: DataKeyStore,
    now: datetime,
) -> dict[str, Any]:
    if seq < 0:
        raise InvalidRequest("seq must be >= 0")
    system_log.record_read("entry", log, actor=reader, access=access, now=now, seq=seq)
    found = read_entries(conn, log, seq, seq + 1, data_keys)
    if not found:
        raise NotFound(f"log {log.id!r} has no entry {seq}")
    return found[0]


def read_entries(
    conn: Connection, log: LogInfo, start: int, end: int, data_keys: DataKeyStore
) -> list[dict[str, Any]]:
    """Entries ``[start, end)`` with canonical bytes (base64), leaf hash and payload, and for an
    erased payload the erasure that destroyed its key."""
    rows = entries_with_payloads(conn, log.id, start, end)
    entries = [
        _present(
            conn,
            log,
            data_keys,
            seq=seq,
            leaf=bytes(leaf),
            entry_bytes=bytes(raw),
            data_key_id=key_id,
            sealed=sealed,
        )
        for seq, leaf, raw, key_id, sealed in rows
    ]
    attach_erasures(conn, log.id, entries, [row[3] for row in rows])
    return entries


def attach_erasures(
    conn: Connection, log_id: str, entries: list[dict[str, Any]], key_ids: list[int | None]
) -> None:
    """Give each entry whose payload is ``erased`` its ``erasure``: what destroyed its data key
    (``by``: ``erasure`` or ``retention``), the erase request (id, legal basis, reference; null
    for retention or a key destroyed without one) and when.
    One query for the page or trail, and none when nothing is erased."""
    erased = [
        (entry, key_id)
        for entry, key_id in zip(entries, key_ids, strict=True)
        if entry["payload_status"] == "erased" and key_id is not None
    ]
    if not erased:
        return
    found = erasures_of_keys(conn, log_id, sorted({key_id for _, key_id in erased}))
    for entry, key_id in erased:
        info = found.get(key_id)
        if info is not None:
            entry["erasure"] = {
                "by": info.destroyed_by,
                "request": info.request_id,
                "legal_basis": info.legal_basis,
                "reference": info.reference,
                "erased_at": None if info.erased_at is None else format_time(info.erased_at),
            }


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
        log_id=log.id,
        seq=seq,
        entry=entry,
        data_key_id=data_key_id,
        sealed=sealed,
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
