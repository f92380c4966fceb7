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
