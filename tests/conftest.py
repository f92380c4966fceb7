"""Fixtures on a real PostgreSQL: never SQLite, never mocks.

The server is LEDGER_TEST_DATABASE_URL (an admin URL), else the local one on 127.0.0.1:5432,
else an embedded pgserver instance. Each test session gets a fresh database built by the
migrations and dropped at the end. Tests are isolated by log: each takes its own new log(s),
since the append-only triggers make DELETE-based cleanup impossible anyway.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ledger.domain import PreparedEvent
from ledger.settings import Settings
from ledger.storage.db import make_engine, sqlalchemy_url, unit_of_work, upgrade_schema
from ledger.storage.keystore import KeyRing

SHARED = Path(os.environ.get("LEDGER_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
EXAMPLE = SHARED / "examples" / "escalated-conversation.json"
MASTER_KEY = base64.b64encode(b"\x07" * 32).decode()
TEST_ACTOR = {"kind": "system", "id": "test-suite"}
"""Who the tests' administrative calls (creating logs and credentials) are recorded as."""


def _admin_url() -> str:
    url = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if url:
        return url
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        psycopg.connect(local, connect_timeout=3).close()
    except psycopg.OperationalError:
        from ledger.embedded import embedded_database_url

        return embedded_database_url(Path(tempfile.gettempdir()) / "ledger-test-pg")
    return local


def _libpq(url: str) -> str:
    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def admin_url() -> str:
    return _admin_url()


def free_port() -> int:
    """A local TCP port nobody listens on now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(app: Any) -> Iterator[int]:
    """``app`` served by uvicorn on a free local port (its lifespan run), in a thread; its
    loggers left to propagate (so ``caplog`` sees them). Yields the port."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it served"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return (
        make_url(sqlalchemy_url(admin_url)).set(database=name).render_as_string(hide_password=False)
    )


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def migrated_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new database named ``{prefix}_{random}``, built by the migrations; dropped after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    url = create_database(admin_url, name)
    try:
        upgrade_schema(url)
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="session")
def db_url(admin_url: str) -> Iterator[str]:
    with migrated_database(admin_url, "ledger_test") as url:
        yield url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, pool_size=4)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def settings(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=db_url,
        master_key=MASTER_KEY,
        data_dir=tmp_path_factory.mktemp("ledger-data"),
        origin_prefix="ledger.test",
        # Servers the tests start act as production's does: as ledger_app, which tenant row
        # security binds (migration 0011; the superuser the tests connect as is never bound).
        db_role="ledger_app",
    )


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def new_log(engine: Engine, settings: Settings) -> Any:
    """A factory: ``new_log()`` creates a fresh log and returns its id."""
    from ledger.services.admin.logs import create_log

    def make(card_policy: str = "reject") -> str:
        log_id = f"t-{secrets.token_hex(6)}"
        with unit_of_work(engine) as conn:
            create_log(
                conn,
                KeyRing.from_master(settings.master_key_bytes),
                log_id,
                origin_prefix=settings.origin_prefix,
                actor=TEST_ACTOR,
                now=now(),
                card_policy=card_policy,
            )
        return log_id

    return make


def credential_token(engine: Engine, keys: KeyRing, log_id: str, role: str) -> str:
    """A new credential of ``role`` on ``log_id`` (in ``engine``'s database): its bearer token."""
    from ledger.services.admin.credentials import create_credential

    with unit_of_work(engine) as conn:
        return create_credential(
            conn, keys, log_id=log_id, role=role, label=f"test {role}", actor=TEST_ACTOR, now=now()
        ).token


@pytest.fixture
def token(engine: Engine, settings: Settings) -> Any:
    """A factory: ``token(log_id, role)`` creates a credential and returns the bearer token."""

    def make(log_id: str, role: str) -> str:
        return credential_token(
            engine, KeyRing.from_master(settings.master_key_bytes), log_id, role
        )

    return make


@pytest.fixture(scope="session")
def example_batch() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return data


def make_event(conversation: str = "c-1", n: int = 0, **data: Any) -> dict[str, Any]:
    """A small valid message.created event."""
    payload: dict[str, Any] = {
        "message_id": f"m-{n}",
        "author": {"kind": "customer", "id": "cust-1"},
        "actor": {"kind": "customer", "id": "cust-1"},
        "visibility": "public",
        "outcome": "success",
        "content": {"parts": [{"type": "text", "content": f"hello {n}"}]},
    }
    payload.update(data)
    return {
        "specversion": "1.0",
        "id": f"{conversation}-evt-{n}",
        "source": "urn:bot:test",
        "type": "handoff.message.created.v1",
        "time": "2026-11-20T09:14:01.000Z",
        "subject": f"conversations/{conversation}",
        "datacontenttype": "application/json",
        "data": payload,
    }


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(settings)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def example_log(client: Any, new_log: Any, token: Any, example_batch: dict[str, Any]) -> str:
    """A new log holding only the example conversation: seqs 0..15 are its events in order."""
    log_id: str = new_log()
    r = client.post(
        f"/v1/logs/{log_id}/events",
        json=example_batch,
        headers={"Authorization": f"Bearer {token(log_id, 'writer')}"},
    )
    assert r.status_code == 201, r.text
    return log_id


@pytest.fixture
def ledger_cli(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> Any:
    """``ledger_cli(*argv) -> (exit code, stdout, stderr)`` against the test database."""
    from ledger.cli import main

    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("LEDGER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("LEDGER_ORIGIN_PREFIX", settings.origin_prefix)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def direct_event(n: int, conversation: str) -> PreparedEvent:
    """Event ``n`` of ``conversation`` (a small customer message, ``direct-{n}``) as ingest
    would have prepared it: ready for the sequencer, no HTTP in between."""
    import hashlib

    from ledger.core.canonical import canonicalize
    from ledger.core.commitment import new_salt, payload_commitment
    from ledger.core.entry import EventHeader

    data = canonicalize({"text": f"direct message {n}", "actor": {"kind": "customer"}})
    salt = new_salt()
    header = EventHeader(
        event_id=f"direct-{n}",
        source="urn:test:direct",
        type="handoff.message.created.v1",
        time="2026-11-20T09:14:01.000Z",
        conversation_id=conversation,
        actor={"kind": "customer", "id": "c"},
        outcome="success",
        resource=None,
    )
    return PreparedEvent(
        header=header,
        scope=f"conversation:{conversation}",
        salt=salt,
        canonical_data=data,
        commitment=payload_commitment(salt, data),
        request_digest=hashlib.sha256(data).digest(),
    )


@pytest.fixture
def append_direct(engine: Engine, settings: Settings) -> Any:
    """A factory: ``append_direct(log_id, n, conversations=3, batch=500, on=engine)`` appends
    ``n`` small events straight through the sequencer (no HTTP), one signed checkpoint a batch."""
    import itertools

    from ledger.domain import AppendRequest, Principal
    from ledger.storage.keystore import DataKeyStore, SignerCache
    from ledger.storage.logs import get_log
    from ledger.storage.sequencer import append_batch

    data_keys = DataKeyStore(settings.master_key_bytes)
    counter = itertools.count()

    def append(
        log_id: str, n: int, *, conversations: int = 3, batch: int = 500, on: Engine = engine
    ) -> None:
        with unit_of_work(on) as conn:
            log = get_log(conn, log_id)
        principal = Principal(0, log_id, "writer", "direct")
        signers = SignerCache(settings.master_key_bytes)  # fresh: keys may have rotated
        while n > 0:
            k = min(batch, n)
            events = [
                direct_event(i, f"conv-{i % conversations}") for i in itertools.islice(counter, k)
            ]
            with unit_of_work(on) as conn:
                append_batch(
                    conn,
                    log,
                    [AppendRequest(events, principal)],
                    signers=signers,
                    data_keys=data_keys,
                    now=now(),
                )
            n -= k

    return append


@pytest.fixture
def verifier_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """``ledger verify`` / ``ledger anchor`` keep their files under this test's tmp_path:
    ``{"state": verifier state dir, "anchors": anchor dir}`` (LEDGER_ANCHOR_DIR is set)."""
    dirs = {"state": tmp_path / "verifier", "anchors": tmp_path / "anchors"}
    monkeypatch.setenv("LEDGER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEDGER_VERIFIER_STATE_DIR", str(dirs["state"]))
    monkeypatch.setenv("LEDGER_ANCHOR_DIR", str(dirs["anchors"]))
    for name in (
        "ALERT_WEBHOOK_URL",
        "ALERT_COMMAND",
        "VERIFY_RECORD_URL",
        "VERIFY_RECORD_TOKEN",
        "ANCHOR_WEBHOOK_URL",
        "ANCHOR_WITNESS_URL",
        "ANCHOR_WITNESS_KEY",
    ):
        monkeypatch.delenv(f"LEDGER_{name}", raising=False)
    return dirs
