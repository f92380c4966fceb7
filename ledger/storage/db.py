"""Engines, the unit of work, and schema migration.

One transaction per unit of work, opened at the edge (a request handler, the sequencer, a CLI
command); code below never commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, NullPool, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

from ledger.errors import StoreUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (as libpq and pgserver print them) for psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, role: str | None = None, pool_size: int = 8) -> Engine:
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per transaction. A dead connection fails its
        # transaction instead (503, or one retry in the committer), and SQLAlchemy then
        # invalidates the whole pool, so the next checkout reconnects.
        pool_pre_ping=False,
        pool_recycle=1800,
    )
    if role:
        # Least privilege: the server's connections act as e.g. ledger_app (INSERT/SELECT only).
        quoted = '"' + role.replace('"', '""') + '"'

        @event.listens_for(engine, "connect")
        def _set_role(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET ROLE {quoted}")
            dbapi_conn.commit()

    return engine


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """A transaction: committed if the block returns, rolled back if it raises.

    A database that cannot be reached becomes ``StoreUnavailable`` (503 + Retry-After).
    """
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(f"database connection lost: {exc.orig}") from exc
        raise


def upgrade_schema(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def schema_is_current(url: str) -> bool:
    """Whether the database is at the newest migration (read-only: any role may ask)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return bool(MigrationContext.configure(conn).get_current_revision() == head)
    except OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc
    finally:
        engine.dispose()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg
