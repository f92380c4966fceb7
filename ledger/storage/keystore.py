"""Key material at rest: checkpoint signing keys and per-scope data keys, both sealed under the
master key (AES-256-GCM), with in-process caches of the unsealed keys.

Public verifier keys are never deleted; a rotation retires the old signing key, it does not
remove it, so every old checkpoint still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, text

from ledger.core.sealing import new_key, seal, unseal
from ledger.core.signing import NoteSigner
from ledger.errors import ConfigurationError, IntegrityFailure


def pan_fingerprint_key(master_key: bytes) -> bytes:
    """The key of the guard's card-number fingerprints (PCI DSS 3.5.1.1: keyed, never a plain
    hash), derived from the master key so every process agrees on it and it is never stored."""
    return hmac.new(master_key, b"handoff-ledger/pan-fingerprint/v1", hashlib.sha256).digest()


def _signing_key_aad(log_id: str, key_id: bytes) -> bytes:
    return f"handoff-ledger/signing-key/v1\n{log_id}\n{key_id.hex()}".encode()


def _data_key_aad(log_id: str, scope: str) -> bytes:
    return f"handoff-ledger/data-key/v1\n{log_id}\n{scope}".encode()


def create_signing_key(
    conn: Connection, *, log_id: str, origin: str, master_key: bytes, now: datetime
) -> NoteSigner:
    """A new Ed25519 key named by the log origin; any current key is retired (not deleted)."""
    signer = NoteSigner.generate(origin)
    conn.execute(
        text(
            "UPDATE signing_keys SET retired_at = :now WHERE log_id = :log AND retired_at IS NULL"
        ),
        {"now": now, "log": log_id},
    )
    conn.execute(
        text(
            "INSERT INTO signing_keys (log_id, key_id, verifier_key, sealed_private, created_at)"
            " VALUES (:log, :kid, :vkey, :sealed, :now)"
        ),
        {
            "log": log_id,
            "kid": signer.key_id,
            "vkey": signer.verifier_key(),
            "sealed": seal(
                master_key,
                signer.private_key_string().encode(),
                _signing_key_aad(log_id, signer.key_id),
            ),
            "now": now,
        },
    )
    return signer


def verifier_keys(conn: Connection, log_id: str) -> list[str]:
    """Every verifier key the log ever signed with: the current one first, then older ones."""
    rows = conn.execute(
        text(
            "SELECT verifier_key FROM signing_keys WHERE log_id = :log"
            " ORDER BY retired_at IS NOT NULL, created_at DESC, id DESC"
        ),
        {"log": log_id},
    )
    return [r[0] for r in rows]


@dataclass(frozen=True)
class SigningKeyRecord:
    """A signing key as the database lists it."""

    key_id: bytes
    verifier_key: str
    created_at: datetime
    retired_at: datetime | None


def signing_key_records(conn: Connection, log_id: str) -> list[SigningKeyRecord]:
    """Every signing key of the log, oldest first."""
    rows = conn.execute(
        text(
            "SELECT key_id, verifier_key, created_at, retired_at FROM signing_keys"
            " WHERE log_id = :log ORDER BY id"
        ),
        {"log": log_id},
    )
    return [SigningKeyRecord(bytes(r[0]), r[1], r[2], r[3]) for r in rows]


def active_key_id(conn: Connection, log_id: str) -> bytes | None:
    """The key id the log signs with now; None if it has no active key."""
    kid = conn.execute(
        text(
            "SELECT key_id FROM signing_keys WHERE log_id = :log AND retired_at IS NULL"
            " ORDER BY id DESC LIMIT 1"
        ),
        {"log": log_id},
    ).scalar_one_or_none()
    return None if kid is None else bytes(kid)


def insert_rotation(
    conn: Connection,
    log_id: str,
    *,
    old_key_id: bytes,
    new_key_id: bytes,
    statement: str,
    rotated_at: datetime,
) -> None:
    conn.execute(
        text(
            "INSERT INTO key_rotations (log_id, old_key_id, new_key_id, statement, rotated_at)"
            " VALUES (:log, :old, :new, :statement, :at)"
        ),
        {
            "log": log_id,
            "old": old_key_id,
            "new": new_key_id,
            "statement": statement,
            "at": rotated_at,
        },
    )


def rotation_statements(conn: Connection, log_id: str) -> list[str]:
    """Every rotation statement of the log, oldest first."""
    rows = conn.execute(
        text("SELECT statement FROM key_rotations WHERE log_id = :log ORDER BY rotated_at"),
        {"log": log_id},
    )
    return [r[0] for r in rows]


class SignerCache:
    """Unsealed signing keys by (log, key id). Safe to share between threads."""

    def __init__(self, master_key: bytes) -> None:
        self._master_key = master_key
        self._signers: dict[tuple[str, bytes], NoteSigner] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, log_id: str, key_id: bytes) -> NoteSigner:
        cached = self._signers.get((log_id, key_id))
        if cached is not None:
            return cached
        row = conn.execute(
            text("SELECT sealed_private FROM signing_keys WHERE log_id = :log AND key_id = :kid"),
            {"log": log_id, "kid": key_id},
        ).one_or_none()
        if row is None:
            raise ConfigurationError(f"log {log_id} has no signing key {key_id.hex()}")
        signer = NoteSigner.from_private_key_string(
            unseal(self._master_key, row[0], _signing_key_aad(log_id, key_id)).decode()
        )
        if signer.key_id != key_id:
            raise IntegrityFailure("sealed signing key does not match its key id", log=log_id)
        with self._lock:
            self._signers[(log_id, key_id)] = signer
        return signer


class DataKeyStore:
    """Data keys by (log, scope), with an LRU cache of the unsealed ones.

    The sequencer asks for the keys a batch lacks in the same round trip that takes the log's
    lock (``queue_fetch_or_create``, then ``unwrap``), inside the append's transaction. New keys
    are cached once the caller reports the commit (``promote``), so a rolled-back key id is never
    reused. A cached key may have been destroyed since (an erasure, by any process): the
    sequencer asks, in that same round trip and after the lock, which of the batch's scopes are
    erased, and ``forget``s them.
    """

    MAX_CACHED = 50_000
    """Unsealed keys kept in memory (LRU): bounded memory, and a key is not kept for ever."""

    def __init__(self, master_key: bytes) -> None:
        self._master_key = master_key
        self._keys: OrderedDict[tuple[str, str], tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[DataKeyStore], tuple[bytes]]:
        """Pickled (to a verification process) as a new store with the same master key."""
        return DataKeyStore, (self._master_key,)

    def cached(
        self, log_id: str, scopes: set[str]
    ) -> tuple[dict[str, tuple[int, bytes]], list[str]]:
        """The cached keys of ``scopes`` by scope, and the scopes not cached, sorted."""
        found: dict[str, tuple[int, bytes]] = {}
        missing = []
        with self._lock:
            for scope in sorted(scopes):
                cached = self._keys.get((log_id, scope))
                if cached is None:
                    missing.append(scope)
                else:
                    self._keys.move_to_end((log_id, scope))
                    found[scope] = cached
        return found, missing

    def queue_fetch_or_create(
        self, pg: psycopg.Connection[Any], log_id: str, scopes: list[str]
    ) -> psycopg.Cursor[Any]:
        """Queue, on a connection in pipeline mode, the creation of the keys of ``scopes`` that do
        not exist yet and the read of them all; the read's cursor goes to ``unwrap``.

        Rows are inserted in sorted scope order, so writers creating the same scopes never
        deadlock, and each transaction creates its keys before it takes any log's lock.
        """
        sealed = [seal(self._master_key, new_key(), _data_key_aad(log_id, s)) for s in scopes]
        pg.execute(
            "INSERT INTO data_keys (log_id, scope, wrapped)"
            " SELECT %s, s.scope, s.wrapped FROM unnest(%s::text[], %s::bytea[])"
            "   WITH ORDINALITY AS s(scope, wrapped, n) ORDER BY s.n"
            " ON CONFLICT (log_id, scope) DO NOTHING",
            (log_id, scopes, sealed),
        )
        return pg.execute(
            "SELECT id, scope, wrapped FROM data_keys WHERE log_id = %s AND scope = ANY(%s)",
            (log_id, scopes),
        )

    def unwrap(
        self, log_id: str, scopes: list[str], read: psycopg.Cursor[Any]
    ) -> dict[str, tuple[int, bytes]]:
        """The keys read by ``queue_fetch_or_create``. A destroyed (erased) key is ``(id, b"")``."""
        keys = {
            scope: (key_id, b"")
            if wrapped is None
            else (key_id, unseal(self._master_key, wrapped, _data_key_aad(log_id, scope)))
            for key_id, scope, wrapped in read.fetchall()
        }
        if len(keys) != len(scopes):  # data keys are never deleted (an ENABLE ALWAYS trigger)
            lost = sorted(set(scopes) - keys.keys())
            raise IntegrityFailure(f"data keys vanished after insert: {lost[:3]}", log=log_id)
        return keys

    def promote(self, fresh: dict[tuple[str, str], tuple[int, bytes]]) -> None:
        """Cache keys whose creating transaction committed."""
        with self._lock:
            self._keys.update(fresh)
            while len(self._keys) > self.MAX_CACHED:
                self._keys.popitem(last=False)

    def forget(self, log_id: str, scopes: Iterable[str]) -> None:
        """Drop the cached keys of ``scopes`` (destroyed: the scope was erased)."""
        with self._lock:
            for scope in scopes:
                self._keys.pop((log_id, scope), None)

    def keys_by_id(
        self, conn: Connection, log_id: str, key_ids: Iterable[int]
    ) -> dict[int, bytes | None]:
        """Many data keys in one query (the verifier's chunks): None for a destroyed key, and
        no item for an id with no row."""
        rows = conn.execute(
            text("SELECT id, scope, wrapped FROM data_keys WHERE log_id = :log AND id = ANY(:ids)"),
            {"log": log_id, "ids": sorted(set(key_ids))},
        )
        return {
            key_id: None
            if wrapped is None
            else unseal(self._master_key, wrapped, _data_key_aad(log_id, scope))
            for key_id, scope, wrapped in rows
        }

    def key_by_id(self, conn: Connection, log_id: str, key_id: int) -> bytes | None:
        """An existing data key by id (for reads); None once it has been destroyed."""
        row = conn.execute(
            text("SELECT scope, wrapped FROM data_keys WHERE id = :id AND log_id = :log"),
            {"id": key_id, "log": log_id},
        ).one_or_none()
        if row is None or row[1] is None:
            return None
        return unseal(self._master_key, row[1], _data_key_aad(log_id, row[0]))


@dataclass(frozen=True)
class KeyRing:
    """The master key and the caches of what it unseals: what a use case needs to sign
    checkpoints and seal payloads. A server process keeps one for its life; a command builds one
    for its run."""

    master_key: bytes
    signers: SignerCache
    data_keys: DataKeyStore

    @classmethod
    def from_master(cls, master_key: bytes) -> KeyRing:
        return cls(master_key, SignerCache(master_key), DataKeyStore(master_key))
