"""Master-key rotation without downtime (issue 14.8): ``ledger keys rotate-master`` re-wraps every
data key, signing key and wrapped secret under a new master key while a real server ingests and
serves reads; then every payload decrypts, ``ledger verify --full`` is intact with the new key
alone, and after ``retire-master`` the old key alone opens nothing. Interrupted half-way (a KMS
that stops answering), it resumes; bad input changes nothing. Each test has its own database:
a rotation spans every tenant of a database.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, text

from ledger.errors import DecryptionFailed, KeyProviderUnavailable
from ledger.keys.provider import LocalKeyProvider, local_key_id
from ledger.keys.ring import MasterKeyRing
from ledger.storage.db import make_engine, sqlalchemy_url, unit_of_work
from ledger.storage.keystore import KeyRing
from tests import key_provider_plugin as plugin
from tests.conftest import (
    TEST_ACTOR,
    direct_event,
    free_port,
    make_event,
    migrated_database,
    now,
)
from tests.servers import serving

OLD = secrets.token_bytes(32)
NEW = secrets.token_bytes(32)
B64 = base64.b64encode


@pytest.fixture
def own_db(admin_url: str) -> Iterator[str]:
    with migrated_database(admin_url, "ledger_test_rotation") as url:
        yield url


@pytest.fixture
def own_engine(own_db: str) -> Iterator[Engine]:
    eng = make_engine(own_db, pool_size=2)
    yield eng
    eng.dispose()


@dataclass
class Cli:
    """``ledger`` commands in this process, each with the master keys it is given."""

    db_url: str
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: Any
    keys: dict[str, str] = field(default_factory=dict)

    def __call__(self, *argv: str, **keys: str) -> tuple[int, str, str]:
        from ledger.cli import main

        env = {
            "LEDGER_DATABASE_URL": self.db_url,
            "LEDGER_ORIGIN_PREFIX": "ledger.test",
            "LEDGER_DATA_DIR": str(self.tmp / "data"),
            "LEDGER_VERIFIER_STATE_DIR": str(self.tmp / f"verifier-{secrets.token_hex(3)}"),
            "LEDGER_MASTER_KEY_REFRESH_SECONDS": "0.3",
        }
        for name in ("LEDGER_MASTER_KEY", "LEDGER_KEY_PROVIDER", "LEDGER_EXTRA_KEY_PROVIDERS"):
            self.monkeypatch.delenv(name, raising=False)
        for name, value in {**env, **(keys or self.keys)}.items():
            self.monkeypatch.setenv(name, value)
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(own_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Cli:
    return Cli(own_db, tmp_path, monkeypatch, capsys, {"LEDGER_MASTER_KEY": B64(OLD).decode()})


def _fill(engine: Engine, masters: MasterKeyRing, log_id: str, conversations: int) -> None:
    """One event in each of ``conversations`` new conversations, straight through the
    sequencer: a data key each (what a rotation has to re-wrap)."""
    from ledger.domain import AppendRequest, Principal
    from ledger.storage.logs import get_log
    from ledger.storage.sequencer import append_batch

    keys = KeyRing.from_masters(masters)
    with unit_of_work(engine) as conn:
        log = get_log(conn, log_id)
    principal = Principal(0, log_id, "writer", "fill")
    for start in range(0, conversations, 500):
        events = [
            direct_event(n, f"fill-{n}") for n in range(start, min(start + 500, conversations))
        ]
        with unit_of_work(engine) as conn:
            append_batch(
                conn,
                log,
                [AppendRequest(events, principal)],
                signers=keys.signers,
                data_keys=keys.data_keys,
                now=now(),
            )


def _live_rows(engine: Engine) -> list[tuple[str, str | None, bytes, bytes]]:
    """Every live wrapped key: (table, master key id, wrapped bytes, context)."""
    from ledger.storage.keystore import KeyTable, wrap_context

    with unit_of_work(engine) as conn:
        data = conn.execute(
            text(
                "SELECT log_id, scope, master_key_id, wrapped FROM data_keys"
                " WHERE wrapped IS NOT NULL"
            )
        ).all()
        signing = conn.execute(
            text("SELECT log_id, key_id, master_key_id, sealed_private FROM signing_keys")
        ).all()
        secret = conn.execute(
            text("SELECT name, name, master_key_id, wrapped FROM wrapped_secrets")
        ).all()
    tables: dict[KeyTable, Any] = {
        "data_keys": data,
        "signing_keys": signing,
        "wrapped_secrets": secret,
    }
    return [
        (table, master_key_id, bytes(wrapped), wrap_context(table, log_id, name))
        for table, rows in tables.items()
        for log_id, name, master_key_id, wrapped in rows
    ]


def _opens(key: bytes, rows: list[tuple[str, str | None, bytes, bytes]]) -> int:
    provider = LocalKeyProvider(key)
    opened = 0
    for _, _, wrapped, context in rows:
        try:
            provider.unwrap(wrapped, context=context)
            opened += 1
        except DecryptionFailed:
            pass
    return opened


@dataclass
class Load:
    """Writers posting events of new conversations (each a new data key) and auditors
    reading pages of entries, against one server, until stopped."""

    url: str
    writers: dict[str, str]
    auditors: dict[str, str]
    stop: threading.Event = field(default_factory=threading.Event)
    posted: list[tuple[float, int, float]] = field(default_factory=list)
    """(time, status, seconds) of each POST of 5 events."""
    reads: list[tuple[float, int, list[str]]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, writers: int = 3, readers: int = 1) -> None:
        for n in range(writers):
            self.threads.append(threading.Thread(target=self._write, args=(n,)))
        for n in range(readers):
            self.threads.append(threading.Thread(target=self._read, args=(n,)))
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _write(self, n: int) -> None:
        logs = sorted(self.writers)
        with httpx.Client(base_url=self.url, timeout=60) as http:
            i = 0
            while not self.stop.is_set():
                log_id = logs[i % len(logs)]
                events = [make_event(f"w{n}-{i}-{k}", k) for k in range(5)]
                t0 = time.monotonic()
                r = http.post(
                    f"/v1/logs/{log_id}/events",
                    json={"events": events},
                    headers={"Authorization": f"Bearer {self.writers[log_id]}"},
                )
                self.posted.append((t0, r.status_code, time.monotonic() - t0))
                i += 1

    def _read(self, n: int) -> None:
        logs = sorted(self.auditors)
        with httpx.Client(base_url=self.url, timeout=60) as http:
            i = n
            while not self.stop.is_set():
                log_id = logs[i % len(logs)]
                start = (i * 97) % 1500
                r = http.get(
                    f"/v1/logs/{log_id}/entries?start={start}&end={start + 50}",
                    headers={"Authorization": f"Bearer {self.auditors[log_id]}"},
                )
                statuses = (
                    [e["payload_status"] for e in r.json()["entries"]]
                    if r.status_code == 200
                    else []
                )
                self.reads.append((time.monotonic(), r.status_code, statuses))
                i += 1

    def rate(self, t0: float, t1: float) -> float:
        """Events per second accepted between ``t0`` and ``t1``."""
        done = [p for p in self.posted if t0 <= p[0] < t1 and p[1] == 201]
        return 5 * len(done) / (t1 - t0)


@pytest.fixture
def server(own_db: str, tmp_path: Path) -> Iterator[str]:
    """``ledger serve`` holding the old master key (its primary) and the new one (extra), as a
    deployment does before it rotates."""
    new_key_file = tmp_path / "new.key"
    new_key_file.write_text(B64(NEW).decode())
    port = free_port()
    env = {
        "LEDGER_DATABASE_URL": own_db,
        "LEDGER_MASTER_KEY": B64(OLD).decode(),
        "LEDGER_EXTRA_KEY_PROVIDERS": f"file:{new_key_file}",
        "LEDGER_MASTER_KEY_REFRESH_SECONDS": "0.2",
        "LEDGER_ORIGIN_PREFIX": "ledger.test",
        "LEDGER_DATA_DIR": str(tmp_path / "server-data"),
    }
    command = [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)]
    with serving(command, port, env, log=tmp_path / "server.log", stop_timeout=20) as url:
        yield url


def _setup_logs(cli: Cli) -> tuple[dict[str, str], dict[str, str]]:
    writers, auditors = {}, {}
    for log_id, tenant in (("rot-a", "tenant-a"), ("rot-b", "tenant-b")):
        assert cli("logs", "create", log_id, "--tenant", tenant)[0] == 0
        writers[log_id] = cli("credentials", "create", "--log", log_id, "--role", "writer")[
            1
        ].strip()
        auditors[log_id] = cli("credentials", "create", "--log", log_id, "--role", "auditor")[
            1
        ].strip()
    return writers, auditors


@pytest.mark.slow
def test_rotation_under_load_then_retirement(
    cli: Cli, own_engine: Engine, server: str, tmp_path: Path
) -> None:
    old_id, new_id = local_key_id(OLD), local_key_id(NEW)
    writers, auditors = _setup_logs(cli)
    _fill(own_engine, MasterKeyRing.local(OLD), "rot-a", 1500)
    _fill(own_engine, MasterKeyRing.local(OLD), "rot-b", 500)

    load = Load(server, writers, auditors)
    load.start()
    time.sleep(2.0)
    t_rotation = time.monotonic()
    code, rotated, err = cli(
        "keys", "rotate-master", "--to", f"file:{tmp_path / 'new.key'}", "--batch", "200"
    )
    t_rotated = time.monotonic()
    time.sleep(1.5)
    load.finish()
    assert code == 0, err
    assert rotated.startswith(f"{new_id}: ")

    # Nothing failed while the keys changed under the server.
    assert load.posted
    assert {status for _, status, _ in load.posted} == {201}
    assert load.reads
    assert {status for _, status, _ in load.reads} == {200}
    assert {s for _, _, statuses in load.reads for s in statuses} == {"verified"}

    # Keys the server made before it followed the activation were swept up: nothing is left
    # under the old key, and retiring it is allowed.
    rows = _live_rows(own_engine)
    assert {mk for _, mk, _, _ in rows} == {new_id}
    code, out, _ = cli("keys", "masters")
    lines = dict(line.split("\t", 1) for line in out.splitlines())
    assert lines[new_id].startswith("active\t")
    assert lines[old_id].startswith("superseded\t0\t0\t0\t")
    new_only = {"LEDGER_MASTER_KEY": B64(NEW).decode()}
    code, _, err = cli("keys", "retire-master", old_id, **new_only)
    assert code == 0, err
    assert f"{old_id}\tretired\t0\t0\t0\tnot held\n" in cli("keys", "masters", **new_only)[1]

    # The old key alone opens nothing any more; the new one opens everything.
    assert _opens(OLD, rows) == 0
    assert _opens(NEW, rows) == len(rows) > 2000
    for log_id in ("rot-a", "rot-b", "tenant-a.system", "tenant-b.system"):
        code, out, err = cli("verify", "--log", log_id, "--full", "--json", **new_only)
        assert code == 0, out + err
        assert json.loads(out)["status"] == "intact"

    # Each tenant's system log says what happened, with counts and ids only.
    from ledger.services.reads.entries import read_entries
    from ledger.storage.keystore import DataKeyStore
    from ledger.storage.logs import get_log, log_size

    with unit_of_work(own_engine) as conn:
        log = get_log(conn, "tenant-a.system")
        entries = read_entries(conn, log, 0, log_size(conn, log.id), DataKeyStore(NEW))
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        event = json.loads(base64.b64decode(e["entry_b64"]))["event"]
        by_type.setdefault(event["type"], []).append(e["payload"])
    started = by_type["ledger.master_key.rotation.started.v1"]
    finished = by_type["ledger.master_key.rotation.finished.v1"]
    assert started[0]["master_key"] == new_id
    assert started[0]["data_keys"] >= 1500
    assert sum(f["data_keys_rewrapped"] for f in finished) >= 1500
    assert by_type["ledger.master_key.retired.v1"][0]["master_key"] == old_id

    during = load.rate(t_rotation, t_rotated)
    before = load.rate(t_rotation - 2.0, t_rotation)
    print(
        f"\nrotation: {rotated.strip()}; ingest {before:.0f} events/s before,"
        f" {during:.0f} during ({t_rotated - t_rotation:.2f} s)"
    )

    # A server configured with only the retired key refuses to start, saying why.
    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.errors import ConfigurationError
    from ledger.settings import Settings

    stale = Settings(database_url=cli.db_url, master_key=B64(OLD).decode(), data_dir=tmp_path)
    with (
        pytest.raises(ConfigurationError, match=f"{old_id} was retired"),
        TestClient(create_app(stale)),
    ):
        pass


def test_bad_input_changes_nothing(cli: Cli, own_engine: Engine, tmp_path: Path) -> None:
    old_id, new_id = local_key_id(OLD), local_key_id(NEW)
    _setup_logs(cli)
    _fill(own_engine, MasterKeyRing.local(OLD), "rot-a", 20)
    new_file = tmp_path / "new.key"
    new_file.write_text(B64(NEW).decode())
    before = _live_rows(own_engine)

    def changes() -> int:
        with unit_of_work(own_engine) as conn:
            return int(conn.execute(text("SELECT count(*) FROM master_key_changes")).scalar_one())

    # An unknown provider, a key file that is not there, a key that is not a key.
    for spec, message in (
        ("aws-kms:alias/x", "unknown key provider"),
        (f"file:{tmp_path / 'missing.key'}", "does not exist"),
        ("env:LEDGER_TEST_NOT_SET", "is not set"),
    ):
        code, _, err = cli("keys", "rotate-master", "--to", spec)
        assert code == 2
        assert message in err
    # The wrong old key: nothing it holds opens what is stored. Refused before any change.
    wrong = secrets.token_bytes(32)
    code, _, err = cli(
        "keys",
        "rotate-master",
        "--to",
        f"file:{new_file}",
        LEDGER_MASTER_KEY=B64(wrong).decode(),
    )
    assert code == 2
    assert "nothing changed" in err
    assert B64(wrong).decode() not in err
    assert wrong.hex() not in err
    # Retiring the key everything is wrapped under; retiring a key nobody knows.
    code, _, err = cli("keys", "retire-master", old_id)
    assert code == 2
    assert f"master key {old_id} may still wrap" in err
    code, _, err = cli("keys", "retire-master", "local:0000000000000000")
    assert code == 2
    assert "no master key 'local:0000000000000000'" in err
    assert _live_rows(own_engine) == before
    assert changes() == 0

    # Rotated: retiring the active key is refused, and rotating to a retired one.
    assert cli("keys", "rotate-master", "--to", f"file:{new_file}")[0] == 0
    code, _, err = cli("keys", "retire-master", old_id)
    assert code == 2
    assert f"the active master key {new_id} is not configured here" in err
    code, _, err = cli("keys", "retire-master", old_id, LEDGER_MASTER_KEY=B64(NEW).decode())
    assert code == 0, err
    code, _, err = cli("keys", "retire-master", new_id, LEDGER_MASTER_KEY=B64(NEW).decode())
    assert code == 2
    assert "is the active one" in err
    old_file = tmp_path / "old.key"
    old_file.write_text(B64(OLD).decode())
    code, _, err = cli(
        "keys", "rotate-master", "--to", f"file:{old_file}", LEDGER_MASTER_KEY=B64(NEW).decode()
    )
    assert code == 2
    assert "was retired" in err
    # The activation, the key it supersedes, the retirement; nothing of the refusals.
    assert changes() == 3


def test_an_interrupted_rotation_resumes(
    cli: Cli, own_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KMS that stops answering half-way: the rotation stops with some keys re-wrapped and
    the rest not, every key still opens (each row names its master key), and a second run
    does only what is left."""
    from ledger.services.admin.master_keys import rotate_master

    _setup_logs(cli)
    _fill(own_engine, MasterKeyRing.local(OLD), "rot-a", 600)
    target = plugin.transit("resume")
    masters = MasterKeyRing([LocalKeyProvider(OLD), target])
    keys = KeyRing.from_masters(masters)
    plugin.FAIL_AFTER["resume"] = plugin.CALLS["resume:wrap"] + 250
    try:
        with pytest.raises(KeyProviderUnavailable, match="ConnectionError"):
            rotate_master(own_engine, keys, target.key_id, actor=TEST_ACTOR, now=now, batch=100)
    finally:
        del plugin.FAIL_AFTER["resume"]
    rows = _live_rows(own_engine)
    owners = {mk for _, mk, _, _ in rows}
    assert owners == {local_key_id(OLD), target.key_id}
    fresh = KeyRing.from_masters(MasterKeyRing([LocalKeyProvider(OLD), plugin.transit("resume")]))
    for _, mk, wrapped, context in rows:
        fresh.masters.unwrap(mk, wrapped, context=context)

    second = rotate_master(
        own_engine, fresh, target.key_id, actor=TEST_ACTOR, now=now, batch=100, settle_seconds=0
    )
    assert second.resumed
    assert 0 < second.rewrapped["data_keys"] < 600
    assert {mk for _, mk, _, _ in _live_rows(own_engine)} == {target.key_id}
    third = rotate_master(
        own_engine, fresh, target.key_id, actor=TEST_ACTOR, now=now, batch=100, settle_seconds=0
    )
    assert third.total == 0  # idempotent
    code, out, err = cli(
        "verify",
        "--log",
        "rot-a",
        "--full",
        LEDGER_KEY_PROVIDER="tests.key_provider_plugin:transit:resume",
    )
    assert code == 0, out + err


def _superuser(db_url: str) -> psycopg.Connection[Any]:
    url = sqlalchemy_url(db_url).replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(url, autocommit=True)


def test_the_key_tables_allow_only_destroying_and_rewrapping(
    db_url: str, new_log: Any, append_direct: Any
) -> None:
    """The triggers of migration 0012, as a superuser: a data key's identity never changes, a
    destroyed key never comes back, a signing key's public half never changes, the master key
    history is append-only."""
    log_id = new_log()
    append_direct(log_id, 3, conversations=2)
    refused = psycopg.errors.InsufficientPrivilege
    with _superuser(db_url) as conn:
        key_id = conn.execute(
            "SELECT id FROM data_keys WHERE log_id = %s ORDER BY id LIMIT 1", (log_id,)
        ).fetchone()[0]
        for change in ("scope = 'other'", "log_id = log_id || 'x'", "created_at = now()"):
            with pytest.raises(refused, match="destroyed or re-wrapped"):
                conn.execute(f"UPDATE data_keys SET {change} WHERE id = %s", (key_id,))
        with pytest.raises(refused, match="destroyed or re-wrapped"):
            conn.execute(
                "UPDATE data_keys SET wrapped = wrapped, master_key_id = NULL WHERE id = %s",
                (key_id,),
            )
        conn.execute(  # a re-wrap: allowed
            "UPDATE data_keys SET wrapped = wrapped, master_key_id = 'local:x' WHERE id = %s",
            (key_id,),
        )
        conn.execute(  # destroying: allowed
            "UPDATE data_keys SET wrapped = NULL, destroyed_at = now() WHERE id = %s", (key_id,)
        )
        with pytest.raises(refused, match="destroyed; it never changes again"):
            conn.execute(
                "UPDATE data_keys SET wrapped = '\\x00', master_key_id = 'k' WHERE id = %s",
                (key_id,),
            )
        conn.execute(
            "UPDATE signing_keys SET sealed_private = sealed_private, master_key_id = 'k2'"
            " WHERE log_id = %s",
            (log_id,),
        )
        with pytest.raises(refused, match="retired or re-wrapped"):
            conn.execute(
                "UPDATE signing_keys SET verifier_key = 'x', master_key_id = 'k3'"
                " WHERE log_id = %s",
                (log_id,),
            )
        conn.execute(
            "INSERT INTO wrapped_secrets (name, master_key_id, wrapped)"
            " VALUES ('trigger-test', 'k', '\\x00') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO master_key_changes (master_key_id, change, changed_at, actor)"
            " VALUES ('local:trigger-test', 'retired', now(), 'test')"
        )
        with pytest.raises(refused, match="append-only"):
            conn.execute(
                "UPDATE master_key_changes SET actor = 'x'"
                " WHERE master_key_id = 'local:trigger-test'"
            )
        with pytest.raises(refused, match="append-only"):
            conn.execute("DELETE FROM master_key_changes")
        with pytest.raises(refused, match="append-only"):
            conn.execute("DELETE FROM wrapped_secrets")
        with pytest.raises(refused, match="only be re-wrapped"):
            conn.execute(
                "UPDATE wrapped_secrets SET name = name || 'x' WHERE name = 'trigger-test'"
            )


def test_keys_wrapped_before_master_key_ids_are_rotated_too(
    cli: Cli, own_engine: Engine, own_db: str, tmp_path: Path
) -> None:
    """Rows from before migration 0012 name no master key: any held key that opens them does,
    ``keys masters`` lists them as unrecorded, and a rotation re-wraps them with the rest."""
    _setup_logs(cli)
    _fill(own_engine, MasterKeyRing.local(OLD), "rot-a", 50)
    with _superuser(own_db) as conn, conn.transaction():
        # As a deployment upgraded from before 0012 has them (the trigger forbids it since).
        conn.execute("ALTER TABLE data_keys DISABLE TRIGGER data_keys_change_rule")
        conn.execute("UPDATE data_keys SET master_key_id = NULL")
        conn.execute("ALTER TABLE data_keys ENABLE ALWAYS TRIGGER data_keys_change_rule")
    code, out, _ = cli("keys", "masters")
    assert code == 0
    unrecorded = next(line for line in out.splitlines() if line.startswith("(unrecorded)"))
    assert int(unrecorded.split("\t")[2]) >= 50
    new_file = tmp_path / "new.key"
    new_file.write_text(B64(NEW).decode())
    code, out, err = cli("keys", "rotate-master", "--to", f"file:{new_file}")
    assert code == 0, err
    rows = _live_rows(own_engine)
    assert {mk for _, mk, _, _ in rows} == {local_key_id(NEW)}
    assert _opens(NEW, rows) == len(rows)
    code, _, err = cli(
        "keys", "retire-master", local_key_id(OLD), LEDGER_MASTER_KEY=B64(NEW).decode()
    )
    assert code == 0, err
