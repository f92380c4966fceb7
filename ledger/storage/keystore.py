"""Key material at rest: checkpoint signing keys, per-scope data keys and wrapped secrets, each
wrapped by a master key (``ledger.keys``: a local key or a KMS) whose id is stored beside it,
with in-process caches of the unwrapped keys; and the queries of a master-key rotation.

Public verifier keys are never deleted; a rotation retires the old signing key, it does not
remove it, so every old checkpoint still verifies. A master-key rotation replaces only the
wrapped bytes and ``master_key_id`` of a row (the triggers of migration 0012 allow nothing
else), compare-and-set on the wrapped bytes, so it races safely with erasures and servers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
from sqlalchemy import Connection, text

from ledger.core.sealing import new_key
from ledger.core.signing import NoteSigner
from ledger.errors import ConfigurationError, IntegrityFailure
from ledger.keys.ring import MasterKeyRing
from ledger.storage.checkpoints import GivenCheckpoints

FINGERPRINT_SECRET = "pan-fingerprint"  # noqa: S105 (the name of a stored secret, not one)


def _ring(masters: MasterKeyRing | bytes) -> MasterKeyRing:
    """A ring, or one local key (tests and benchmarks pass the key bytes)."""
    return masters if isinstance(masters, MasterKeyRing) else MasterKeyRing.local(masters)


def _secret_aad(name: str) -> bytes:
    return f"handoff-ledger/secret/v1\n{name}".encode()


def pan_fingerprint_key(conn: Connection, masters: MasterKeyRing) -> bytes:
    """The key of the guard's card-number fingerprints (PCI DSS 3.5.1.1: keyed, never a plain
    hash): one per ledger, so every process agrees on it, stored wrapped by the master key (a
    KMS never hands its key out to derive from). Made on first use: for a local master key, the
    value it was derived as before it was stored (fingerprints do not change on upgrade), else
    random; a master-key rotation re-wraps it and fingerprints stay the same."""
    masters = _ring(masters)
    aad = _secret_aad(FINGERPRINT_SECRET)
    query = text("SELECT master_key_id, wrapped FROM wrapped_secrets WHERE name = :name")
    row = conn.execute(query, {"name": FINGERPRINT_SECRET}).one_or_none()
    if row is None:
        value = masters.legacy_fingerprint_key() or new_key()
        wrapping_id = masters.wrapping_id  # once: a server's follower may switch it meanwhile
        conn.execute(
            text(
                "INSERT INTO wrapped_secrets (name, master_key_id, wrapped)"
                " VALUES (:name, :mk, :wrapped) ON CONFLICT (name) DO NOTHING"
            ),
            {
                "name": FINGERPRINT_SECRET,
                "mk": wrapping_id,
                "wrapped": masters.wrap(value, context=aad, key_id=wrapping_id),
            },
        )
        row = conn.execute(query, {"name": FINGERPRINT_SECRET}).one()
    return masters.unwrap(row[0], bytes(row[1]), context=aad)


def _signing_key_aad(log_id: str, key_id: bytes) -> bytes:
    return f"handoff-ledger/signing-key/v1\n{log_id}\n{key_id.hex()}".encode()


def _data_key_aad(log_id: str, scope: str) -> bytes:
    return f"handoff-ledger/data-key/v1\n{log_id}\n{scope}".encode()


def create_signing_key(
    conn: Connection,
    *,
    log_id: str,
    origin: str,
    master_key: MasterKeyRing | bytes,
    now: datetime,
) -> NoteSigner:
    """A new Ed25519 key named by the log origin, wrapped under the ring's wrapping master key;
    any current key is retired (not deleted)."""
    masters = _ring(master_key)
    wrapping_id = masters.wrapping_id  # once: a server's follower may switch it meanwhile
    signer = NoteSigner.generate(origin)
    conn.execute(
        text(
            "UPDATE signing_keys SET retired_at = :now WHERE log_id = :log AND retired_at IS NULL"
        ),
        {"now": now, "log": log_id},
    )
    conn.execute(
        text(
            "INSERT INTO signing_keys"
            " (log_id, key_id, verifier_key, sealed_private, master_key_id, created_at)"
            " VALUES (:log, :kid, :vkey, :sealed, :mk, :now)"
        ),
        {
            "log": log_id,
            "kid": signer.key_id,
            "vkey": signer.verifier_key(),
            "sealed": masters.wrap(
                signer.private_key_string().encode(),
                context=_signing_key_aad(log_id, signer.key_id),
                key_id=wrapping_id,
            ),
            "mk": wrapping_id,
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
    """Unsealed signing keys by (log, key id), and what they gave out (``given``: the sequencer
    never signs on a tree that does not extend it). Safe to share between threads."""

    def __init__(self, masters: MasterKeyRing | bytes) -> None:
        self._masters = _ring(masters)
        self._signers: dict[tuple[str, bytes], NoteSigner] = {}
        self._lock = threading.Lock()
        self.given = GivenCheckpoints()

    def get(self, conn: Connection, log_id: str, key_id: bytes) -> NoteSigner:
        cached = self._signers.get((log_id, key_id))
        if cached is not None:
            return cached
        row = conn.execute(
            text(
                "SELECT master_key_id, sealed_private FROM signing_keys"
                " WHERE log_id = :log AND key_id = :kid"
            ),
            {"log": log_id, "kid": key_id},
        ).one_or_none()
        if row is None:
            raise ConfigurationError(f"log {log_id} has no signing key {key_id.hex()}")
        private = self._masters.unwrap(
            row[0], bytes(row[1]), context=_signing_key_aad(log_id, key_id)
        )
        signer = NoteSigner.from_private_key_string(private.decode())
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

    def __init__(self, masters: MasterKeyRing | bytes) -> None:
        self._masters = _ring(masters)
        self._keys: OrderedDict[tuple[str, str], tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[DataKeyStore], tuple[MasterKeyRing]]:
        """Pickled (to a verification process) as a new store with the same master keys."""
        return DataKeyStore, (self._masters,)

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
    ) -> PendingKeys:
        """Queue, on a connection in pipeline mode, the creation of the keys of ``scopes`` that do
        not exist yet and the read of them all; what it returns goes to ``unwrap``.

        Rows are inserted in sorted scope order, so writers creating the same scopes never
        deadlock, and each transaction creates its keys before it takes any log's lock. Keys are
        wrapped here, before the lock; the ones this insert created are not unwrapped again
        under it (with a KMS, that would be a network call per new conversation under the lock).
        """
        masters = self._masters
        wrapping_id = masters.wrapping_id
        fresh = {s: new_key() for s in scopes}
        wrapped = {
            s: masters.wrap(k, context=_data_key_aad(log_id, s), key_id=wrapping_id)
            for s, k in fresh.items()
        }
        pg.execute(
            "INSERT INTO data_keys (log_id, scope, wrapped, master_key_id)"
            " SELECT %s, s.scope, s.wrapped, %s FROM unnest(%s::text[], %s::bytea[])"
            "   WITH ORDINALITY AS s(scope, wrapped, n) ORDER BY s.n"
            " ON CONFLICT (log_id, scope) DO NOTHING",
            (log_id, wrapping_id, scopes, [wrapped[s] for s in scopes]),
        )
        read = pg.execute(
            "SELECT id, scope, master_key_id, wrapped FROM data_keys"
            " WHERE log_id = %s AND scope = ANY(%s)",
            (log_id, scopes),
        )
        return PendingKeys(read, {wrapped[s]: fresh[s] for s in scopes})

    def unwrap(
        self, log_id: str, scopes: list[str], pending: PendingKeys
    ) -> dict[str, tuple[int, bytes]]:
        """The keys read by ``queue_fetch_or_create``. A destroyed (erased) key is ``(id, b"")``."""
        keys: dict[str, tuple[int, bytes]] = {}
        for key_id, scope, master_key_id, wrapped in pending.read.fetchall():
            if wrapped is None:
                keys[scope] = (key_id, b"")
                continue
            mine = pending.created.get(bytes(wrapped))
            keys[scope] = (
                key_id,
                mine
                if mine is not None
                else self._masters.unwrap(
                    master_key_id, bytes(wrapped), context=_data_key_aad(log_id, scope)
                ),
            )
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
            text(
                "SELECT id, scope, master_key_id, wrapped FROM data_keys"
                " WHERE log_id = :log AND id = ANY(:ids)"
            ),
            {"log": log_id, "ids": sorted(set(key_ids))},
        )
        return {
            key_id: None
            if wrapped is None
            else self._masters.unwrap(
                master_key_id, bytes(wrapped), context=_data_key_aad(log_id, scope)
            )
            for key_id, scope, master_key_id, wrapped in rows
        }

    def key_by_id(self, conn: Connection, log_id: str, key_id: int) -> bytes | None:
        """An existing data key by id (for reads); None once it has been destroyed."""
        row = conn.execute(
            text(
                "SELECT scope, master_key_id, wrapped FROM data_keys"
                " WHERE id = :id AND log_id = :log"
            ),
            {"id": key_id, "log": log_id},
        ).one_or_none()
        if row is None or row[2] is None:
            return None
        return self._masters.unwrap(row[1], bytes(row[2]), context=_data_key_aad(log_id, row[0]))


@dataclass(frozen=True, slots=True)
class PendingKeys:
    """A queued read of data keys, and the plaintext of each key this transaction wrapped
    (by its wrapped bytes: a row another writer created first is unwrapped instead)."""

    read: psycopg.Cursor[Any]
    created: dict[bytes, bytes] = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    """The master keys (``ledger.keys.MasterKeyRing``, keyed by master key id) and the caches
    of what they unwrap: what a use case needs to sign checkpoints and seal payloads. A server
    process keeps one for its life; a command builds one for its run."""

    masters: MasterKeyRing
    signers: SignerCache
    data_keys: DataKeyStore

    @classmethod
    def from_masters(cls, masters: MasterKeyRing) -> KeyRing:
        return cls(masters, SignerCache(masters), DataKeyStore(masters))

    @classmethod
    def from_master(cls, master_key: bytes) -> KeyRing:
        """One local master key (tests, benchmarks)."""
        return cls.from_masters(MasterKeyRing.local(master_key))


# Master-key rotation: which rows are wrapped under which master key, and the re-wrap itself.

KeyTable = Literal["data_keys", "signing_keys", "wrapped_secrets"]
KEY_TABLES: tuple[KeyTable, ...] = ("data_keys", "signing_keys", "wrapped_secrets")

_UNDER_OTHERS: dict[KeyTable, str] = {
    # The rows of a log (secrets: of the whole ledger) whose live wrapping is not under
    # ``:target``, after the cursor ``:after``; NULL master_key_id counts as not under it.
    # Data keys walk the (log_id, scope) unique index: each batch reads only its own rows,
    # however large the table (an id order would rescan other logs' rows on every batch).
    "data_keys": (
        "SELECT scope, log_id, scope, master_key_id, wrapped FROM data_keys"
        " WHERE log_id = :log AND scope > :after AND wrapped IS NOT NULL"
        "   AND master_key_id IS DISTINCT FROM :target ORDER BY scope LIMIT :limit"
    ),
    "signing_keys": (
        "SELECT CAST(id AS text), log_id, key_id, master_key_id, sealed_private"
        " FROM signing_keys WHERE log_id = :log AND CAST(id AS text) > :after"
        "   AND master_key_id IS DISTINCT FROM :target ORDER BY CAST(id AS text) LIMIT :limit"
    ),
    "wrapped_secrets": (
        "SELECT name, name, name, master_key_id, wrapped FROM wrapped_secrets"
        " WHERE name > :after AND master_key_id IS DISTINCT FROM :target"
        " ORDER BY name LIMIT :limit"
    ),
}

_REWRAP: dict[KeyTable, str] = {
    # Compare-and-set on the wrapped bytes: a row erased or re-wrapped since it was read is
    # left alone (and counted as skipped).
    "data_keys": (
        "UPDATE data_keys d SET wrapped = v.new, master_key_id = :target"
        " FROM unnest(CAST(:keys AS text[]), CAST(:olds AS bytea[]), CAST(:news AS bytea[]))"
        "   AS v(scope, old, new)"
        " WHERE d.log_id = :log AND d.scope = v.scope AND d.wrapped = v.old"
    ),
    "signing_keys": (
        "UPDATE signing_keys k SET sealed_private = v.new, master_key_id = :target"
        " FROM unnest(CAST(:keys AS text[]), CAST(:olds AS bytea[]), CAST(:news AS bytea[]))"
        "   AS v(id, old, new)"
        " WHERE k.id = CAST(v.id AS int4) AND k.sealed_private = v.old"
    ),
    "wrapped_secrets": (
        "UPDATE wrapped_secrets s SET wrapped = v.new, master_key_id = :target"
        " FROM unnest(CAST(:keys AS text[]), CAST(:olds AS bytea[]), CAST(:news AS bytea[]))"
        "   AS v(name, old, new)"
        " WHERE s.name = v.name AND s.wrapped = v.old"
    ),
}


@dataclass(frozen=True, slots=True)
class RewrapBatch:
    """What one batch of a rotation did: rows read, re-wrapped, skipped (changed meanwhile:
    erased, or re-wrapped by another run), and the cursor of the last row read (where the
    next batch starts: a scope, a signing key's id, a secret's name)."""

    read: int
    rewrapped: int
    skipped: int
    cursor: str


def wrap_context(table: KeyTable, log_id: str, name: Any) -> bytes:
    """What a key of ``table`` is wrapped bound to (the associated data): its log and scope,
    its log and key id, or a secret's name (``log_id`` ignored)."""
    if table == "data_keys":
        return _data_key_aad(log_id, name)
    if table == "signing_keys":
        return _signing_key_aad(log_id, bytes(name))
    return _secret_aad(name)


def rewrap_batch(
    conn: Connection,
    masters: MasterKeyRing,
    table: KeyTable,
    *,
    log_id: str | None,
    target: str,
    after: str,
    limit: int,
) -> RewrapBatch:
    """Re-wrap up to ``limit`` rows of ``table`` (of ``log_id``; secrets: None) that are not
    under master key ``target``, after the cursor ``after`` (``""`` to start): unwrap each with
    the master key that wrapped it, wrap it under ``target``, write it back if it did not
    change since it was read."""
    rows = conn.execute(
        text(_UNDER_OTHERS[table]),
        {"log": log_id, "after": after, "target": target, "limit": limit},
    ).all()
    if not rows:
        return RewrapBatch(0, 0, 0, after)
    keys, olds, news = [], [], []
    for cursor, row_log, name, master_key_id, wrapped in rows:
        context = wrap_context(table, row_log, name)
        plain = masters.unwrap(master_key_id, bytes(wrapped), context=context)
        keys.append(cursor)
        olds.append(bytes(wrapped))
        news.append(masters.wrap(plain, context=context, key_id=target))
    done = conn.execute(
        text(_REWRAP[table]),
        {"log": log_id, "keys": keys, "olds": olds, "news": news, "target": target},
    ).rowcount
    return RewrapBatch(len(rows), done, len(rows) - done, str(rows[-1][0]))


def count_not_under(conn: Connection, *, tenant: str, target: str) -> dict[str, int]:
    """The tenant's live data keys and signing keys not wrapped under ``target``."""
    row = conn.execute(
        text(
            "SELECT (SELECT count(*) FROM data_keys d JOIN logs l ON l.id = d.log_id"
            "         WHERE l.tenant = :tenant AND d.wrapped IS NOT NULL"
            "           AND d.master_key_id IS DISTINCT FROM :target),"
            "       (SELECT count(*) FROM signing_keys k JOIN logs l ON l.id = k.log_id"
            "         WHERE l.tenant = :tenant AND k.master_key_id IS DISTINCT FROM :target)"
        ),
        {"tenant": tenant, "target": target},
    ).one()
    return {"data_keys": int(row[0]), "signing_keys": int(row[1])}


def count_wrapped_by(conn: Connection) -> dict[str | None, dict[str, int]]:
    """Live wrapped keys per master key id (None: wrapped before ids were recorded) and
    table: what a retirement must find empty, what ``ledger keys masters`` prints."""
    rows = conn.execute(
        text(
            "SELECT master_key_id, 'data_keys', count(*) FROM data_keys"
            "  WHERE wrapped IS NOT NULL GROUP BY master_key_id"
            " UNION ALL SELECT master_key_id, 'signing_keys', count(*) FROM signing_keys"
            "  GROUP BY master_key_id"
            " UNION ALL SELECT master_key_id, 'wrapped_secrets', count(*) FROM wrapped_secrets"
            "  GROUP BY master_key_id"
        )
    ).all()
    out: dict[str | None, dict[str, int]] = {}
    for master_key_id, table, count in rows:
        out.setdefault(master_key_id, dict.fromkeys(KEY_TABLES, 0))[table] = int(count)
    return out


WrappedSample = tuple[KeyTable, str, Any, str | None, bytes]
"""A sampled row: table, log id (secrets: name), scope / key id / name, master key id, bytes."""


def sample_wrapped(conn: Connection) -> list[WrappedSample]:
    """One live row per (table, master key id): a rotation opens each before it changes
    anything, so a missing or wrong master key is refused with nothing changed."""
    rows: list[Any] = []
    rows += conn.execute(
        text(
            "SELECT DISTINCT ON (master_key_id) 'data_keys', log_id, scope, master_key_id,"
            "  wrapped FROM data_keys WHERE wrapped IS NOT NULL"
            "  ORDER BY master_key_id, id"
        )
    ).all()
    rows += conn.execute(
        text(
            "SELECT DISTINCT ON (master_key_id) 'signing_keys', log_id, key_id, master_key_id,"
            "  sealed_private FROM signing_keys ORDER BY master_key_id, id"
        )
    ).all()
    rows += conn.execute(
        text("SELECT 'wrapped_secrets', name, name, master_key_id, wrapped FROM wrapped_secrets")
    ).all()
    return [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]


def open_sample(masters: MasterKeyRing, sample: WrappedSample) -> None:
    """Unwrap one sampled row (``sample_wrapped``); raises what the ring raises."""
    table, log_id, name, master_key_id, wrapped = sample
    masters.unwrap(master_key_id, wrapped, context=wrap_context(table, log_id, name))


MasterKeyChangeKind = Literal["activated", "superseded", "retired"]


@dataclass(frozen=True, slots=True)
class MasterKeyState:
    """What ``master_key_changes`` says: the active master key (latest activation; None:
    never rotated, each process wraps under its configured primary), the retired ones, and
    every id ever named (activated, superseded, retired), in the order first named."""

    active: str | None
    retired: dict[str, datetime]
    known: list[str]


def master_key_state(conn: Connection) -> MasterKeyState:
    rows = conn.execute(
        text("SELECT master_key_id, change, changed_at FROM master_key_changes ORDER BY id")
    ).all()
    active = None
    retired: dict[str, datetime] = {}
    known: list[str] = []
    for master_key_id, change, at in rows:
        if master_key_id not in known:
            known.append(master_key_id)
        if change == "activated":
            active = master_key_id
        elif change == "retired":
            retired[master_key_id] = at
    return MasterKeyState(active, retired, known)


def active_master_key(conn: Connection) -> str | None:
    """The master key a rotation made the one new keys are wrapped under (None: none yet)."""
    value = conn.execute(
        text(
            "SELECT master_key_id FROM master_key_changes WHERE change = 'activated'"
            " ORDER BY id DESC LIMIT 1"
        )
    ).scalar_one_or_none()
    return None if value is None else str(value)


def record_master_key_change(
    conn: Connection, master_key_id: str, change: MasterKeyChangeKind, *, at: datetime, actor: str
) -> None:
    conn.execute(
        text(
            "INSERT INTO master_key_changes (master_key_id, change, changed_at, actor)"
            " VALUES (:id, :change, :at, :actor)"
        ),
        {"id": master_key_id, "change": change, "at": at, "actor": actor},
    )


def lock_master_key_changes(conn: Connection) -> None:
    """Serialize retirements and activations (until the transaction ends)."""
    conn.execute(text("LOCK TABLE master_key_changes IN SHARE ROW EXCLUSIVE MODE"))
