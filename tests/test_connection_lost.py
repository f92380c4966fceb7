"""A connection that breaks under psycopg's own calls (the unit of work's scope, a pipeline,
the COMMIT sent with the last writes) is ``StoreUnavailable``, like one that breaks under
SQLAlchemy's: the group committer retries it or looks its batch up, the writer gets its receipt
or a 503, never a 500 (a failover's first symptom, ``tests/test_failover.py``), and the broken
connection is not pooled again."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from ledger.errors import StoreUnavailable
from ledger.storage.db import (
    driver_connection,
    make_engine,
    send_last_writes,
    sqlalchemy_url,
    unit_of_work,
)


def _terminate(admin_url: str, pid: int) -> None:
    libpq = sqlalchemy_url(admin_url).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


@pytest.fixture
def one_connection(db_url: str) -> Any:
    engine = make_engine(db_url, pool_size=1)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("commit_with_last_writes", [True, False])
def test_a_connection_lost_in_the_last_writes_is_store_unavailable(
    one_connection: Engine, admin_url: str, commit_with_last_writes: bool
) -> None:
    def write_after_the_backend_died() -> None:
        with unit_of_work(one_connection, commit_with_last_writes=commit_with_last_writes) as c:
            _terminate(admin_url, driver_connection(c).info.backend_pid)
            send_last_writes(c, lambda pg: pg.execute("SELECT 1"))

    with pytest.raises(StoreUnavailable, match="connection lost"):
        write_after_the_backend_died()
    # The broken connection was dropped: the next unit of work gets a working one.
    with unit_of_work(one_connection) as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


def test_a_pooled_connection_found_dead_by_the_scope_is_store_unavailable(
    one_connection: Engine, admin_url: str
) -> None:
    with unit_of_work(one_connection) as conn:
        pid = driver_connection(conn).info.backend_pid
    _terminate(admin_url, pid)  # while it waits in the pool, as a failover leaves it
    with pytest.raises(StoreUnavailable), unit_of_work(one_connection, tenant="t") as conn:
        conn.exec_driver_sql("SELECT 1")
    with unit_of_work(one_connection, tenant="t") as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


@pytest.mark.parametrize("through", ["sqlalchemy", "psycopg"])
def test_a_server_that_takes_no_writes_is_store_unavailable(
    one_connection: Engine, through: str
) -> None:
    """During a failover a pooled connection may still point at a server that became (or still
    is) a standby: its writes fail as read-only. That is "the database cannot take this now"
    (503, retried), not a 500, and the connection is dropped so the next one finds the primary.
    A read-only transaction stands in for the standby: PostgreSQL refuses both the same way."""
    pids: list[int] = []

    def write_read_only() -> None:
        with unit_of_work(one_connection) as conn:
            pids.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            if through == "sqlalchemy":
                conn.exec_driver_sql("CREATE TEMP TABLE refused (a int)")
            else:
                driver_connection(conn).execute("CREATE TEMP TABLE refused (a int)")

    with pytest.raises(StoreUnavailable, match="takes no writes"):
        write_read_only()
    with unit_of_work(one_connection) as conn:  # a new connection: the refused one is gone
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pids[0]
