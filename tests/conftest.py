"""Fixtures on a real PostgreSQL: never SQLite, never mocks.

The server is LEDGER_TEST_DATABASE_URL (an admin URL), else the local one on 127.0.0.1:5432,
else an embedded pgserver instance. Each test session gets a fresh database built by the
migrations and dropped at the end. Tests are isolated by log: each takes its own new log(s),
since the append-only triggers make DELETE-based cleanup impossible anyway.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ledger.settings import Settings
from ledger.storage.db import make_engine, sqlalchemy_url, unit_of_work, upgrade_schema

SHARED = Path(os.environ.get("LEDGER_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
EXAMPLE = SHARED / "examples" / "escalated-conversation.json"
MASTER_KEY = base64.b64encode(b"\x07" * 32).decode()


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


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(sqlalchemy_url(admin_url)).set(database=name).render_as_string(
        hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def db_url(admin_url: str) -> Iterator[str]:
    name = f"ledger_test_{secrets.token_hex(4)}"
    url = create_database(admin_url, name)
    upgrade_schema(url)
    yield url
    drop_database(admin_url, name)


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
    )


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def new_log(engine: Engine, settings: Settings) -> Any:
    """A factory: ``new_log()`` creates a fresh log and returns its id."""
    from ledger.services.logs import create_log

    def make(card_policy: str = "reject") -> str:
        log_id = f"t-{secrets.token_hex(6)}"
        with unit_of_work(engine) as conn:
            create_log(conn, log_id, origin_prefix=settings.origin_prefix,
                       master_key=settings.master_key_bytes, now=now(), card_policy=card_policy)
        return log_id

    return make


@pytest.fixture
def token(engine: Engine) -> Any:
    """A factory: ``token(log_id, role)`` creates a credential and returns the bearer token."""
    from ledger.services.credentials import create_credential

    def make(log_id: str, role: str) -> str:
        with unit_of_work(engine) as conn:
            _, tok = create_credential(conn, log_id=log_id, role=role, label=f"test {role}",
                                       now=now())
        return tok

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
