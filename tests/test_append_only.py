"""PCI DSS 10.3.2 / NIST AU-9: modification is impossible for the application and blocked by
PostgreSQL itself, even for a superuser who silences ordinary triggers."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from ledger.storage.db import schema_is_current, sqlalchemy_url

APPEND_ONLY = ["entries", "payloads", "tree_nodes", "checkpoints"]
NEVER_DELETED = ["logs", "signing_keys", "credentials", "data_keys"]


def _libpq(url: str, user: str | None = None) -> str:
    u = make_url(sqlalchemy_url(url))
    if user:
        u = u.set(username=user, password=None)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def app_role_url(db_url: str) -> str:
    with psycopg.connect(_libpq(db_url), autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_test_app')"
            " THEN CREATE ROLE ledger_test_app LOGIN IN ROLE ledger_app; END IF; END $$"
        )
    return _libpq(db_url, "ledger_test_app")


@pytest.fixture
def filled_log(new_log, client, token) -> str:  # type: ignore[no-untyped-def]
    from tests.conftest import make_event

    log_id: str = new_log()
    writer = token(log_id, "writer")
    events = [make_event("c-a", n) for n in range(3)]
    r = client.post(
        f"/v1/logs/{log_id}/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {writer}"},
    )
    assert r.status_code == 201, r.text
    return log_id


@pytest.fixture
def app_conn(app_role_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(app_role_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def superuser_replica(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(_libpq(db_url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {t} SET log_id = log_id WHERE log_id = %s", "DELETE FROM {t} WHERE log_id = %s"],
)
def test_app_role_cannot_update_or_delete(app_conn, filled_log, table, statement) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute(statement.format(t=table), (filled_log,))


@pytest.mark.parametrize("table", APPEND_ONLY + NEVER_DELETED)
def test_app_role_cannot_truncate(app_conn, table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute(f"TRUNCATE {table} CASCADE")


def test_app_role_can_insert_and_select(app_conn, filled_log) -> None:  # type: ignore[no-untyped-def]
    # As the server does, for the log's tenant (its own id): row security, migration 0011.
    app_conn.execute(f"SET ledger.scope = 'tenant:{filled_log}'")
    count = app_conn.execute(
        "SELECT count(*) FROM entries WHERE log_id = %s", (filled_log,)
    ).fetchone()
    assert count == (3,)
    app_conn.execute(  # a level no tree of 3 leaves reaches
        "INSERT INTO tree_nodes (log_id, level, idx, hash) VALUES (%s, 30, 0, %s)",
        (filled_log, b"\x00" * 32),
    )


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_superuser_in_replica_mode_cannot_update(superuser_replica, filled_log, table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        superuser_replica.execute(
            f"UPDATE {table} SET log_id = log_id WHERE log_id = %s", (filled_log,)
        )


@pytest.mark.parametrize("table", APPEND_ONLY + NEVER_DELETED)
def test_superuser_in_replica_mode_cannot_delete(superuser_replica, filled_log, table) -> None:  # type: ignore[no-untyped-def]
    column = "id" if table == "logs" else "log_id"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        superuser_replica.execute(f"DELETE FROM {table} WHERE {column} = %s", (filled_log,))


@pytest.mark.parametrize("table", APPEND_ONLY + NEVER_DELETED)
def test_superuser_in_replica_mode_cannot_truncate(superuser_replica, table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        superuser_replica.execute(f"TRUNCATE {table} CASCADE")


def test_signing_keys_may_only_be_retired(superuser_replica, filled_log) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="retired"):
        superuser_replica.execute(
            "UPDATE signing_keys SET verifier_key = 'x' WHERE log_id = %s", (filled_log,)
        )


def test_the_rows_survive(superuser_replica, filled_log) -> None:  # type: ignore[no-untyped-def]
    for table in APPEND_ONLY:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            superuser_replica.execute(f"DELETE FROM {table} WHERE log_id = %s", (filled_log,))
    count = superuser_replica.execute(
        "SELECT count(*) FROM entries WHERE log_id = %s", (filled_log,)
    ).fetchone()
    assert count == (3,)


def test_app_role_can_check_the_schema_version(app_role_url: str) -> None:
    """`ledger serve` runs as the app role and checks the schema before it starts."""
    assert schema_is_current(app_role_url) is True
